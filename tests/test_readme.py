"""The README's YAML reference is generated from the schema; it must not drift."""

from __future__ import annotations

from pathlib import Path

from registry.definitions.reference import embed

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_yaml_reference_is_up_to_date() -> None:
    text = README.read_text()
    assert embed(text) == text, "run `python -m registry.definitions.reference --update`"


def test_readme_names_the_two_commands() -> None:
    text = README.read_text()
    assert "make demo" in text and "make test" in text
