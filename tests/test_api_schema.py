"""schemathesis against the API's own OpenAPI document, over real HTTP: every operation, with
generated paths, queries and bodies (the token given, so writes are exercised too), answers as the
document says — the documented status codes, content types and shapes — and never with a 5xx."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from planner.live.loop import utcnow
from registry.lifecycle import RunStatus
from registry.storage.sqlstore import SqlStore
from tests.live_api import AUTH, apply, serving

pytestmark = pytest.mark.integration

REGISTRY = """
processes:
  a: {run: workflows.jobs.demo:noop}
  b: {run: workflows.jobs.demo:noop, ancestors: [a], cron: "0 3 * * *"}
"""


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    tmp_path: Path = tmp_path_factory.mktemp("schema")
    url = apply(tmp_path, REGISTRY)
    store = SqlStore(url)  # one run of a in the history, so some run ids exist
    now = utcnow()
    store.create_run(run_id="a-1", process="a", scheduled=now, queued=now, params={})
    store.attempt_started("a-1", 1, start=now, worker="w")
    store.finish_attempt("a-1", 1, status=RunStatus.FAILED, end=utcnow())
    store.close()
    with serving(url) as (api, _http):
        yield schemathesis.openapi.from_url(f"{api.url}/openapi.json")


#: examples per operation and generation mode: the whole test stays well under a minute
EXAMPLES = 20


# schemathesis' pytest integration (``from_fixture``/``parametrize``) does not run on pytest 9
# yet, so each operation's cases are drawn from its hypothesis strategy here
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_the_api_conforms_to_its_openapi_document(api_schema: Any, mode: GenerationMode) -> None:
    failures: list[str] = []
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 14, [o.label for o in operations]
    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case: Any) -> None:
            case.call_and_validate(headers=AUTH)

        try:
            check()
        except Unsatisfiable:  # no input can break its schema (no parameters, or any string)
            assert mode is GenerationMode.NEGATIVE, operation.label
        except Exception as exc:  # every operation's failure, not only the first
            failures.append(f"{operation.label}: {exc}")
    assert not failures, "\n\n".join(failures)
