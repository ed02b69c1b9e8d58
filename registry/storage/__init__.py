"""The SQL side of the registry: the durable state of registries, runs, requests and decisions.

``store`` (the ``Store`` protocol and ``open_store``), ``sqlstore`` (its SQLAlchemy
implementation for SQLite and PostgreSQL), ``tables`` (table definitions and triggers),
``queries`` (rows → records), ``codec`` (definitions ↔ JSON documents).

May import: ``registry.model``, ``records``, ``lifecycle``, ``errors``, and the loader's
``revise`` (the same validation for ``planner set`` as for YAML). Never ``planner``.
"""
