"""The claim that keeps an attempt at most once also announces its start: the scheduler publishes
the ``started`` event when, and only when, it grants the claim. A refused claim (a re-run, or a
withdrawn submission) publishes nothing, so the planner never hears of a start that did not
happen. On a real in-process cluster, claims made from the worker's task threads."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from distributed import Client, LocalCluster, get_worker

from planner.live import once

pytestmark = pytest.mark.integration

TOPIC = "claims-test"


@pytest.fixture(scope="module")
def client() -> Iterator[Client]:
    with (
        LocalCluster(
            processes=False, n_workers=1, threads_per_worker=1, dashboard_address=":0"
        ) as cluster,
        Client(cluster) as c,
    ):
        once.install(c)
        yield c


def _claim(token: str, note: str) -> bool:
    return once.claim(get_worker(), token, TOPIC, {"event": "started", "note": note})


def _notes(client: Client) -> list[Any]:
    return [msg["note"] for _, msg in client.get_events(TOPIC)]


def test_a_granted_claim_publishes_the_start_and_a_repeated_one_does_not(client: Client) -> None:
    token = once.new_token("a-1")
    first = client.submit(_claim, token, "first", pure=False).result()
    again = client.submit(_claim, token, "again", pure=False).result()
    assert (first, again) == (True, False)
    assert _notes(client).count("first") == 1
    assert "again" not in _notes(client)


def test_a_withdrawn_submission_is_refused_without_a_start(client: Client) -> None:
    token = once.new_token("b-1")
    assert once.withdraw(client, [token]) == set()  # not claimed yet: withdrawn in time
    assert client.submit(_claim, token, "withdrawn", pure=False).result() is False
    assert "withdrawn" not in _notes(client)
    other = once.new_token("b-1")  # a later submission of the same attempt key is its own
    assert client.submit(_claim, other, "later", pure=False).result() is True
    assert "later" in _notes(client)
