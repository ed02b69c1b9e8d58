"""The lease and its fencing, on SQLite and real PostgreSQL (store level).

One planner holds the lease; a second cannot take it until it expires or is released; a takeover
increments the fencing number, after which every write of the old holder fails with
``LeaseLost`` — also a transaction the old holder had already begun (PostgreSQL row lock).
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from planner.live.leadership import Leadership
from registry.errors import LeaseLost
from registry.records import RequestKind
from registry.storage.sqlstore import SqlStore
from tests.waiting import wait_for

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


class _Clock:
    """A virtual clock the test moves; the planners read it."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def test_the_lease_is_renewed_while_the_new_holder_gets_ready(store_url: str) -> None:
    """Between taking the lease and its loop's first turn (a cluster starting), a planner keeps
    the lease from a thread: a standby does not take it past the timeout. Without the renewals
    it does — a slow cluster start once let a third planner take over from the second."""
    clock = _Clock()
    with SqlStore(store_url) as a, SqlStore(store_url) as b:
        holder = Leadership(a, timeout=TIMEOUT, clock=clock)
        assert holder.wait(threading.Event())
        renewer = holder.renew_meanwhile(every=0.01)
        clock.now = T0 + timedelta(seconds=20)
        wait_for(lambda: a.lease_state().renewed_at == clock.now, 30, "a renewal at the new time")
        renewer.stop()
        assert b.acquire_lease("b", now=T0 + timedelta(seconds=30), timeout=TIMEOUT) is None
        # the loop renews from here on; a planner that does not is taken over from
        assert b.acquire_lease("b", now=T0 + timedelta(seconds=35), timeout=TIMEOUT) == 2


def test_a_lease_lost_while_getting_ready_is_raised_when_the_renewals_stop(
    store_url: str,
) -> None:
    clock = _Clock()
    with SqlStore(store_url) as a, SqlStore(store_url) as b:
        holder = Leadership(a, timeout=TIMEOUT, clock=clock)
        assert holder.wait(threading.Event())
        assert b.acquire_lease("b", now=T0 + TIMEOUT, timeout=TIMEOUT) == 2  # a was cut off
        renewer = holder.renew_meanwhile(every=0.01)
        wait_for(lambda: renewer.lost is not None, 30, "the renewal to find the lease lost")
        with pytest.raises(LeaseLost, match="'b' holds it now"):
            renewer.stop()
        renewer.stop()  # once raised, stopping again is quiet
