"""What the README and the OpenAPI document say of the HTTP API agrees with what it serves: every
route of the README's table is in the document, the error statuses the README lists are those the
document declares (and no other, FastAPI's unused 422 included), and the document's description
names every write operation."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from planner.interfaces.api.app import create_app
from registry.storage.sqlstore import SqlStore

README = Path(__file__).resolve().parents[1] / "README.md"


def _section(title: str) -> str:
    text = README.read_text()
    start = text.index(f"## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end >= 0 else None]


@pytest.fixture(scope="module")
def document(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    store = SqlStore(f"sqlite:///{tmp_path_factory.mktemp('docs')}/planner.db")
    try:
        yield create_app(store, token="t").openapi()
    finally:
        store.close()


def _operations(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, ops in document["paths"].items() for method in ops}


def test_every_route_of_the_readme_is_served(document: dict[str, Any]) -> None:
    rows = re.findall(
        r"^\| `(GET|POST|PATCH) (/api/v1/[^`?]+)[^`]*`", _section("HTTP API and metrics"), re.M
    )
    assert len(rows) >= 12
    served = _operations(document)
    for method, path in rows:
        assert (method, path) in served, (method, path)
    # "…/release, …/reset" rows name the operations after the first one's path
    assert ("GET", "/api/v1/runs/{run_id}/logs") in set(rows)


def test_the_readme_lists_the_error_statuses_the_document_declares(
    document: dict[str, Any],
) -> None:
    declared = {
        int(status)
        for ops in document["paths"].values()
        for op in ops.values()
        for status in op["responses"]
        if not status.startswith("2")
    }
    assert declared == {400, 401, 403, 404, 409}  # never 422: validation errors are 400
    section = _section("HTTP API and metrics")
    errors = section[section.index("Errors are JSON") :]
    listed = {int(n) for n in re.findall(r"\b(\d{3})\s+`[a-z_]+`", errors)}
    assert listed == declared
    assert "501" not in section and "HTTPValidationError" not in str(document)


def test_the_description_names_every_write_operation(document: dict[str, Any]) -> None:
    description = document["info"]["description"]
    writes = {path.rsplit("/", 1)[-1] for method, path in _operations(document) if method == "POST"}
    assert writes == {"trigger", "hold", "release", "reset", "cancel", "retry"}
    for name in [*writes, "set"]:  # PATCH is `planner set`
        assert f"`{name}`" in description or f"`planner {name}`" in description, name
