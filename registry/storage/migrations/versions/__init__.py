"""The revisions of the store's schema, one per file, oldest first (``0001_first_release`` …).

May import: ``alembic.op`` and SQLAlchemy only; never the planner's own modules (a released
revision must keep doing what it did when later ones change ``registry.storage.tables``).
"""
