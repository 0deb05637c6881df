"""The names `--tagger` takes (built by `select.build_tagger`).

A module of its own, importing nothing, so the CLI can offer them for `copilot --help` without
importing pydantic or spaCy (`copilot.tagging.base` alone took `import copilot.cli` from 0.14 s
to 2.1 s here, python -X importtime).
"""

TAGGER_KINDS = ("rules", "llm", "hybrid", "rules-only", "classifier-only")
RULES_KINDS = ("rules", "rules-only", "classifier-only")  # the offline tagger, whole or one half
