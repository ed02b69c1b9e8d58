"""Job code of the example registries in ``workflows/`` (see ``workflows/README.md``)."""
