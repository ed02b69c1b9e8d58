"""The process registry: definitions from YAML files, kept in SQL tables.

=======================  ======================================================================
``registry.model``        frozen definitions (``RegistryDef``, ``ProcessDef``) — shared by all
``registry.records``      run, attempt, request and decision records — shared by all
``registry.lifecycle``    run statuses and their legal transitions (one table)
``registry.errors``       the exception hierarchy (``PlannerError`` and below)
``registry.definitions``  the YAML side: schema, loader (total, atomic validation), durations,
                          the generated reference
``registry.storage``      the SQL side: tables, the ``Store`` protocol and ``SqlStore``, queries,
                          the JSON document codec, Alembic migrations
=======================  ======================================================================

``definitions`` and ``storage`` import the shared modules and nothing of ``planner``; storage
uses the YAML side's validation for ``planner set`` (``revise``) and for the rows it loads
(``definitions.stored``), never the reverse.
"""
