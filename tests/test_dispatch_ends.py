"""An attempt's end is taken from its ``finished`` event, which reaches the planner a few ms
before Dask completes the attempt's future: the slot is handed over sooner. The future's own
completion then finds the attempt taken and changes nothing. On a real in-process cluster, with
the event sent through the real scheduler while the job still runs."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from distributed import Client, LocalCluster

from planner.live.dispatch import Dispatcher, Done
from planner.live.keys import attempt_key
from planner.live.tasks import TOPIC, outcome_to_message
from planner.live.worker import JobOutcome, JobSpec
from registry.lifecycle import RunStatus
from tests import live_jobs
from tests.waiting import wait_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def client() -> Iterator[Client]:
    with (
        LocalCluster(
            processes=False, n_workers=1, threads_per_worker=2, dashboard_address=":0"
        ) as cluster,
        Client(cluster) as c,
    ):
        yield c


@pytest.fixture(autouse=True)
def _fresh_jobs() -> None:
    live_jobs.reset()


def _spec(name: str) -> JobSpec:
    return JobSpec(
        process=name,
        run_id=f"{name}-1",
        attempt=1,
        scheduled=datetime.now(UTC),
        run="tests.live_jobs:gate",
        params={"name": name},
    )


def _next_done(dispatcher: Dispatcher) -> Done:
    """The next ``Done`` the dispatcher reports (its ``Started`` reports are passed over)."""

    def done() -> Done | None:
        while not dispatcher.inbox.empty():
            item = dispatcher.inbox.get_nowait()
            if isinstance(item, Done):
                return item
        return None

    found = wait_for(done, what="an attempt's end")
    assert found is not None
    return found


def _finished(name: str, **extra: object) -> dict[str, object]:
    now = datetime.now(UTC)
    outcome = JobOutcome(status=RunStatus.SUCCEEDED, start=now, end=now, worker="w", result="r")
    key = attempt_key(f"{name}-1", 1)
    return {"event": "finished", "key": key, **outcome_to_message(outcome), **extra}


def test_the_finished_event_ends_the_attempt_before_its_future_completes(client: Client) -> None:
    dispatcher = Dispatcher(client, remote=False)
    dispatcher.submit(_spec("early"))
    assert live_jobs.STARTED["early"].wait(30)
    future = dispatcher.futures[("early-1", 1)]
    client.log_event(TOPIC, _finished("early"))  # as the worker's wrapper sends it
    done = _next_done(dispatcher)
    assert (done.run_id, done.attempt, done.future) == ("early-1", 1, future)
    assert not future.done()  # the job still runs: the end came with the event
    outcome = dispatcher.take(done)
    assert outcome is not None and outcome.status is RunStatus.SUCCEEDED
    assert outcome.result == "r"
    assert not dispatcher.in_flight("early-1")
    live_jobs.RELEASE["early"].set()
    wait_for(future.done)
    late = _next_done(dispatcher)  # the future's own completion
    assert late.future is future
    assert dispatcher.take(late) is None  # already taken: nothing is recorded twice


def test_an_end_whose_log_was_cut_waits_for_the_future(client: Client) -> None:
    dispatcher = Dispatcher(client, remote=False)
    dispatcher.submit(_spec("long"))
    assert live_jobs.STARTED["long"].wait(30)
    future = dispatcher.futures[("long-1", 1)]
    client.log_event(TOPIC, _finished("long", log="tail", log_cut=True))
    wait_for(lambda: attempt_key("long-1", 1) in dispatcher.finished)
    reported = []
    while not dispatcher.inbox.empty():
        reported.append(dispatcher.inbox.get_nowait())
    # not ended by the event: its whole log is in the future's result
    assert not any(isinstance(item, Done) for item in reported)
    live_jobs.RELEASE["long"].set()
    done = _next_done(dispatcher)
    assert done.future is future and future.done()
    outcome = dispatcher.take(done)
    assert outcome is not None and outcome.status is RunStatus.SUCCEEDED
