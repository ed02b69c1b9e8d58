"""The SQL side of the registry: the durable state of registries, runs, requests and decisions.

=====================  ========================================================================
``store``               the ``Store`` protocol and ``open_store``
``sqlstore``            ``SqlStore``, its SQLAlchemy implementation for SQLite and PostgreSQL
``engine``              engines and write transactions (SQLite's WAL, ``BEGIN IMMEDIATE``)
``run_writes``          the write side of runs and attempts (status changes, checked)
``queries``             the read side: rows → records
``tables``              table definitions and the registry revision triggers
``codec``               definitions ↔ JSON documents
``digest``              the digest of the files last applied (``planner run FILES`` skips them)
``snapshot``            the registry as last validated, bound to its revision (reads of an
                        unchanged registry validate nothing)
``schema_version``      the schema's Alembic revision: ``head``, ``current``, ``upgrade``, and
                        the check ``SqlStore`` makes when it opens a database
``migrations``          the Alembic environment and one script per revision
=====================  ========================================================================

May import: ``registry.model``, ``records``, ``lifecycle``, ``errors``, the loader's ``revise``
(the same validation for ``planner set`` as for YAML) and ``registry.definitions.stored`` (the
same validation for the rows it loads, which operators may have edited with SQL). Never
``planner``.
"""
