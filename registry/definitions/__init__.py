"""The YAML side of the registry: files in, a validated, frozen ``RegistryDef`` out.

``schema`` (pydantic models and the JSON Schema), ``loader`` (total, atomic validation with file,
line and key path), ``templates`` (``foreach`` entries → one process per item, placeholders,
template names in ancestors, ``members``), ``targets`` (``module:callable`` import checks, each
module once), ``graph`` (ancestors exist, no cycles), ``yaml_source`` (YAML text → data and
lines, composed by libyaml when PyYAML has it, aliases bounded), ``stored`` (the same rules for
rows of the store, one invalid process at a time), ``durations`` (``90s``, ``15m``, ``6h``…),
``reference`` (the README's YAML reference, generated from the schema). The only package that
knows YAML.

May import: ``registry.model``, ``registry.errors``. Never ``registry.storage`` or ``planner``.
"""
