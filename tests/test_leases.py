"""The lease and its fencing, on SQLite and real PostgreSQL (store level).

One planner holds the lease; a second cannot take it until it expires or is released; a takeover
increments the fencing number, after which every write of the old holder fails with
``LeaseLost`` — also a transaction the old holder had already begun (PostgreSQL row lock).
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from registry.errors import LeaseLost
from registry.records import RequestKind
from registry.storage.sqlstore import SqlStore

T0 = datetime(2026, 3, 1, 3, 0, tzinfo=UTC)
TIMEOUT = timedelta(seconds=15)


def test_one_holder_at_a_time_and_takeover_after_expiry(store_url: str) -> None:
    with SqlStore(store_url) as a, SqlStore(store_url) as b:
        assert a.acquire_lease("a", now=T0, timeout=TIMEOUT) == 1
        assert b.acquire_lease("b", now=T0 + timedelta(seconds=14), timeout=TIMEOUT) is None
        a.renew_lease(now=T0 + timedelta(seconds=10), timeout=TIMEOUT)
        # renewed at +10: still a's at +20, b's at +25
        assert b.acquire_lease("b", now=T0 + timedelta(seconds=20), timeout=TIMEOUT) is None
        assert b.acquire_lease("b", now=T0 + timedelta(seconds=25), timeout=TIMEOUT) == 2
        state = a.lease_state()
        assert (state.holder, state.fence) == ("b", 2)
        assert state.acquired_at == T0 + timedelta(seconds=25)


def test_a_planner_that_lost_its_lease_can_no_longer_write(store_url: str) -> None:
    with SqlStore(store_url) as a, SqlStore(store_url) as b:
        a.acquire_lease("a", now=T0, timeout=TIMEOUT)
        a.create_run(run_id="x-1", process="x", scheduled=T0, queued=T0, params={})
        assert b.acquire_lease("b", now=T0 + TIMEOUT, timeout=TIMEOUT) == 2  # a was paused

        with pytest.raises(LeaseLost, match=r"planner 'a' lost the lease .* 'b' holds it now"):
            a.attempt_started("x-1", 1, start=T0, worker="w")
        with pytest.raises(LeaseLost), a.batch():
            a.create_run(run_id="x-2", process="x", scheduled=T0, queued=T0, params={})
        with pytest.raises(LeaseLost):
            a.renew_lease(now=T0 + TIMEOUT, timeout=TIMEOUT)
        assert [r.run_id for r in b.active_runs()] == ["x-1"]  # nothing of a's landed
        assert b.active_runs()[0].status.value == "queued"
        b.attempt_started("x-1", 1, start=T0, worker="w")  # the new holder writes as usual


def test_release_lets_a_standby_take_over_at_once(store_url: str) -> None:
    with SqlStore(store_url) as a, SqlStore(store_url) as b:
        a.acquire_lease("a", now=T0, timeout=TIMEOUT)
        a.release_lease(now=T0 + timedelta(seconds=1))
        assert b.acquire_lease("b", now=T0 + timedelta(seconds=1), timeout=TIMEOUT) == 2
        assert a.acquire_lease("a", now=T0 + timedelta(seconds=2), timeout=TIMEOUT) is None


def test_operator_writes_are_not_fenced(store_url: str) -> None:
    with SqlStore(store_url) as planner, SqlStore(store_url) as operator:
        planner.acquire_lease("a", now=T0, timeout=TIMEOUT)
        operator.add_request(RequestKind.RESET, at=T0, process="x")
        assert len(planner.pending_requests()) == 1


def test_planners_seen_keep_the_latest_stopped_ones(store_url: str) -> None:
    with SqlStore(store_url) as store:
        store.planner_seen("h:1:a", host="h", pid=1, role="leader", now=T0)
        store.planner_seen("h:2:b", host="h", pid=2, role="standby", now=T0)
        store.planner_seen("h:1:a", host="h", pid=1, role="stopped", now=T0 + TIMEOUT)
        for i in range(30):
            store.planner_seen(f"old:{i}", host="old", pid=i, role="stopped", now=T0)
        seen = {p.instance: p for p in store.lease_state().planners}
        assert seen["h:1:a"].role == "stopped" and seen["h:1:a"].started == T0
        assert seen["h:1:a"].seen == T0 + TIMEOUT
        assert seen["h:2:b"].role == "standby"
        assert sum(1 for p in seen.values() if p.role == "stopped") == 20


@pytest.mark.postgres
def test_a_takeover_waits_for_the_holders_open_transaction(pg_url: str) -> None:
    """On PostgreSQL the fence check locks the lease row: a takeover that comes while the old
    holder's transaction is open waits for it, so the holder's last batch lands whole before the
    fence moves, and its next one fails."""
    with SqlStore(pg_url) as a, SqlStore(pg_url) as b:
        a.acquire_lease("a", now=T0, timeout=TIMEOUT)
        inside, took_over = threading.Event(), threading.Event()
        result: list[int | None] = []

        def take_over() -> None:
            inside.wait()
            result.append(b.acquire_lease("b", now=T0 + TIMEOUT, timeout=TIMEOUT))
            took_over.set()

        thread = threading.Thread(target=take_over)
        thread.start()
        with a.batch():
            a.create_run(run_id="x-1", process="x", scheduled=T0, queued=T0, params={})
            inside.set()
            assert not took_over.wait(0.3), "the takeover must wait for the open transaction"
        thread.join()
        assert result == [2]
        assert [r.run_id for r in b.active_runs()] == ["x-1"]
        with pytest.raises(LeaseLost):
            a.create_run(run_id="x-2", process="x", scheduled=T0, queued=T0, params={})
