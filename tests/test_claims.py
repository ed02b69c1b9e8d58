"""The claim that keeps an attempt at most once also announces its start: the scheduler publishes
the ``started`` event when, and only when, it grants the claim. A refused claim (a re-run, or a
withdrawn submission) publishes nothing, so the planner never hears of a start that did not
happen. On a real in-process cluster, claims made from the worker's task threads.

Claims sent ahead (``planner.live.claim_ahead``): with the plugin, an attempt's claim goes from the
worker's event loop as the worker decides to run it, so the task's thread asks nothing itself;
the guarantee is unchanged — a repeated or withdrawn submission is refused and announces
nothing, a chained attempt whose ancestor failed claims nothing — and nothing is left behind on
the worker."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from distributed import Client, LocalCluster, get_worker

from planner.live import claim_ahead, once, tasks
from planner.live.keys import attempt_key
from planner.live.tasks import run_attempt, run_chained
from planner.live.worker import JobOutcome, JobSpec
from registry.lifecycle import RunStatus
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

TOPIC = "claims-test"


@pytest.fixture(scope="module")
def client() -> Iterator[Client]:
    with (
        LocalCluster(
            processes=False, n_workers=1, threads_per_worker=2, dashboard_address=":0"
        ) as cluster,
        Client(cluster) as c,
    ):
        once.install(c, TOPIC)
        yield c


def _claim(token: str, note: str) -> bool:
    return once.claim(get_worker(), token, TOPIC, {"event": "started", "note": note})


def _notes(client: Client) -> list[Any]:
    return [msg.get("note") for _, msg in client.get_events(TOPIC)]


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


@pytest.fixture
def thread_claims(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The claims asked from a task's thread (the way without the plugin)."""
    asked: list[str] = []
    real = once.claim

    def counted(worker: Any, key: str, *args: Any, **kwargs: Any) -> bool:
        asked.append(key)
        return real(worker, key, *args, **kwargs)

    monkeypatch.setattr(once, "claim", counted)
    return asked


def _spec(run_id: str, run: str = "workflows.jobs.demo:noop", **params: Any) -> JobSpec:
    process = run_id.rsplit("-", 1)[0]
    now = datetime.now(UTC)
    return JobSpec(process=process, run_id=run_id, attempt=1, scheduled=now, run=run, params=params)


def _starts(client: Client, key: str) -> int:
    return sum(
        1
        for _, msg in client.get_events(TOPIC)
        if msg.get("event") == "started" and msg.get("key") == key
    )


def _pending(client: Client) -> list[int]:
    def sizes(dask_worker: Any) -> list[int]:
        claims = getattr(dask_worker, "_dask_planner_claims_ahead", None)
        return [len(claims.grants), len(claims.tokens)] if claims else [-1, -1]

    return [n for answer in client.run(sizes).values() for n in answer]


def test_the_claim_is_sent_ahead_and_the_start_published_once(
    client: Client, thread_claims: list[str]
) -> None:
    token = once.new_token("ahead-1/1")
    outcome = client.submit(
        run_attempt, _spec("ahead-1"), "ahead-1/1", token, key="k-ahead"
    ).result()
    assert outcome.status is RunStatus.SUCCEEDED
    assert thread_claims == []  # the thread asked nothing: its answer was waiting
    assert _starts(client, "ahead-1/1") == 1
    again = client.submit(run_attempt, _spec("ahead-1"), "ahead-1/1", token, key="k-again")
    with pytest.raises(once.AttemptAlreadyRan):
        again.result()
    assert thread_claims == []
    assert _starts(client, "ahead-1/1") == 1  # the refused re-run announced nothing


def test_a_withdrawn_submission_is_refused_ahead(client: Client, thread_claims: list[str]) -> None:
    token = once.new_token("gone-1/1")
    assert once.withdraw(client, [token]) == set()
    future = client.submit(run_attempt, _spec("gone-1"), "gone-1/1", token, key="k-gone")
    with pytest.raises(once.AttemptAlreadyRan):
        future.result()
    assert thread_claims == [] and _starts(client, "gone-1/1") == 0


def test_a_chained_attempt_after_a_failure_claims_nothing(
    client: Client, thread_claims: list[str]
) -> None:
    failed = client.submit(
        run_attempt,
        _spec("first-1", run="tests.live_jobs:raise_named", kind="ValueError"),
        "first-1/1",
        once.new_token("first-1/1"),
        key="k-first",
    )
    token = once.new_token("next-1/1")
    chained = client.submit(run_chained, failed, _spec("next-1"), "next-1/1", token, key="k-next")
    outcome: JobOutcome = chained.result()
    assert outcome.status is RunStatus.CANCELLED
    assert _starts(client, "next-1/1") == 0 and thread_claims == []
    # it was never claimed: the token is still free
    assert client.submit(_claim, token, "late", pure=False).result() is True


def test_a_chained_attempt_after_a_success_is_claimed_ahead(
    client: Client, thread_claims: list[str]
) -> None:
    first = client.submit(
        run_attempt, _spec("up-1"), "up-1/1", once.new_token("up-1/1"), key="k-up"
    )
    token = once.new_token("down-1/1")
    chained = client.submit(run_chained, first, _spec("down-1"), "down-1/1", token, key="k-down")
    assert chained.result().status is RunStatus.SUCCEEDED
    assert thread_claims == [] and _starts(client, "down-1/1") == 1


def test_many_attempts_leave_no_claim_behind_on_the_worker(client: Client) -> None:
    keys = [f"many-{i}/1" for i in range(50)]
    futures = client.map(
        run_attempt,
        [_spec(f"many-{i}") for i in range(50)],
        keys,
        [once.new_token(k) for k in keys],
        key=[f"k-many-{i}" for i in range(50)],
    )
    assert {f.result().status for f in futures} == {RunStatus.SUCCEEDED}
    assert _pending(client) == [0, 0]  # each was dropped as its task's result was kept


def test_a_worker_without_the_plugin_claims_from_the_thread() -> None:
    class Bare:
        pass

    assert claim_ahead.await_grant(Bare(), "x-1/1") is None


def _tasks(dask_scheduler: Any = None) -> list[str]:
    return list(dask_scheduler.tasks)


def test_on_a_remote_scheduler_a_begun_attempt_outlives_a_planner_gone_before_its_hold(
    tmp_path: Path,
) -> None:
    """A planner on a remote scheduler holds its attempts with ``fire_and_forget``, a message
    sent after the submission; killed between the two (once seen in CI), the scheduler dropped
    the attempt with the planner's client and the next planner recorded it lost although it
    ran on. The granted claim holds it now: the attempt that began is kept until it ends, and
    its end is there for the next planner."""
    marker, release = tmp_path / "started", tmp_path / "release"
    with (
        LocalCluster(
            processes=False, n_workers=1, threads_per_worker=1, dashboard_address=":0"
        ) as cluster,
        Client(cluster) as watcher,
    ):
        planner = Client(cluster)
        once.install(planner, TOPIC, hold=True)  # as a planner on a remote scheduler does
        spec = _spec(
            "held-1", run="tests.live_jobs:wait_for_file", marker=str(marker), release=str(release)
        )
        key = attempt_key("held-1", 1)
        future = planner.submit(run_attempt, spec, key, once.new_token(key), key=key, pure=False)
        wait_for(marker.exists, 30, "the attempt to begin")
        assert future.status == "pending"
        planner.close()  # gone before it said fire_and_forget
        assert key in watcher.run_on_scheduler(_tasks)
        release.write_text("go")

        def finished() -> bool:
            events = watcher.get_events(tasks.TOPIC)  # where an attempt's end is told
            return any(m.get("event") == "finished" and m.get("key") == key for _, m in events)

        wait_for(finished, 30, "the attempt's end, for the next planner")
        wait_for(lambda: key not in watcher.run_on_scheduler(_tasks), 30, "the key released")


def _count_claims_sent(scheduler: Any) -> list[str]:
    """Wraps the scheduler's handler of claims sent over a worker's stream; the tokens it saw."""
    seen: list[str] = []
    real = scheduler.stream_handlers[claim_ahead.CLAIM_OP]

    def counted(**msg: Any) -> None:
        seen.append(msg.get("token", ""))
        real(**msg)

    scheduler.stream_handlers[claim_ahead.CLAIM_OP] = counted
    return seen


@pytest.mark.parametrize("processes", [False, True], ids=["threads", "worker-process"])
def test_a_claim_is_asked_without_a_message_only_where_the_scheduler_shares_the_loop(
    processes: bool, thread_claims: list[str]
) -> None:
    """Workers of threads share the scheduler's event loop: the plugin asks the scheduler's
    claim handler directly, so an attempt's claim costs no message either way. A worker in a
    process of its own (``planner run``'s default) cannot reach the handler: its claims go over
    its batched stream, one per submission. Either way the guarantee is the same — one start
    announced, a re-run refused, and the task's thread asks nothing itself."""
    with (
        LocalCluster(
            processes=processes, n_workers=1, threads_per_worker=1, dashboard_address=":0"
        ) as cluster,
        Client(cluster) as c,
    ):
        once.install(c, TOPIC)
        sent = _count_claims_sent(cluster.scheduler)
        token = once.new_token("direct-1/1")
        first = c.submit(run_attempt, _spec("direct-1"), "direct-1/1", token, key="k-direct")
        assert first.result().status is RunStatus.SUCCEEDED
        again = c.submit(run_attempt, _spec("direct-1"), "direct-1/1", token, key="k-direct-2")
        with pytest.raises(once.AttemptAlreadyRan):
            again.result()
        assert sent == ([token, token] if processes else [])
        assert thread_claims == []  # in a worker process it would not be seen here anyway
        assert _starts(c, "direct-1/1") == 1


def test_a_claim_handler_that_raises_fails_the_attempt_rather_than_hanging_it() -> None:
    """Asked directly on a cluster of threads, a handler that raises leaves no claim waiting
    for an answer that never comes: the task's thread asks for itself, and the attempt fails."""
    with (
        LocalCluster(
            processes=False, n_workers=1, threads_per_worker=1, dashboard_address=":0"
        ) as cluster,
        Client(cluster) as c,
    ):
        once.install(c, TOPIC)

        def broken(**_: Any) -> bool:
            raise RuntimeError("claims are broken")

        cluster.scheduler.handlers[claim_ahead.HANDLER] = broken
        future = c.submit(
            run_attempt, _spec("broken-1"), "broken-1/1", once.new_token("broken-1/1"), key="k-b"
        )
        with pytest.raises(RuntimeError, match="claims are broken"):
            future.result(timeout=60)
        assert _pending(c) == [0, 0]
