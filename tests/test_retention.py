"""Retention and statistics on every backend: ``Store.purge`` and ``Store.stats``.

The property that matters: purging, however far, leaves the planning core's view of history
(``load_histories``: last fire, last start, last success, outcome, success counts, duration
estimates, run numbering) exactly as it was, so no process becomes due, stale or runnable again
because its old records went.
"""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from click.testing import CliRunner
from sqlalchemy import func, insert, select, update

from planner.interfaces.cli import cli
from planner.live.housekeeping import Housekeeper
from registry.lifecycle import RunStatus
from registry.model import ProcessDef, RegistryDef, Retention
from registry.records import Request, RequestKind
from registry.storage import retention
from registry.storage.retention import DURATIONS_KEPT, Cutoffs, Purged
from registry.storage.sqlstore import SqlStore
from registry.storage.statistics import percentile
from registry.storage.tables import attempts, decisions

T0 = datetime(2026, 3, 1, 3, 0, tzinfo=UTC)


def day(n: float) -> datetime:
    return T0 + timedelta(days=n)


def proc(name: str, **fields: Any) -> ProcessDef:
    fields.setdefault("run", "workflows.jobs.etl:extract")
    return ProcessDef(name=name, **fields)


def run(
    store: SqlStore,
    process: str,
    seq: int,
    when: datetime,
    status: RunStatus,
    *,
    minutes: float = 5,
    late_s: float = 0,
) -> str:
    run_id = f"{process}-{seq}"
    store.create_run(run_id=run_id, process=process, scheduled=when, queued=when, params={})
    start = when + timedelta(seconds=late_s)
    store.attempt_started(run_id, 1, start=start, worker="tcp://w:1")
    store.finish_attempt(run_id, 1, status=status, end=start + timedelta(minutes=minutes))
    return run_id


def history_of_many(store: SqlStore) -> RegistryDef:
    """60 days of runs: a daily process, a capped one, one whose last run failed, one removed."""
    reg = RegistryDef(
        processes={
            p.name: p
            for p in (
                proc("daily", cron="0 3 * * *"),
                proc("capped", max_runs=3),
                proc("flaky", every=timedelta(days=1)),
                proc("report", ancestors=("daily",), refresh_window=timedelta(hours=1)),
            )
        }
    )
    store.apply(reg, now=T0)
    for n in range(60):
        run(store, "daily", n + 1, day(n), RunStatus.SUCCEEDED, minutes=5 + n % 7)
        run(store, "report", n + 1, day(n) + timedelta(hours=1), RunStatus.SUCCEEDED)
        status = RunStatus.FAILED if n % 3 == 0 or n == 59 else RunStatus.SUCCEEDED
        run(store, "flaky", n + 1, day(n), status)
    for n in range(3):
        run(store, "capped", n + 1, day(n), RunStatus.SUCCEEDED)
    run(store, "capped", 4, day(3), RunStatus.FAILED)
    # a process removed from the registry keeps its numbering through its history
    run(store, "gone", 7, day(1), RunStatus.CANCELLED)
    return reg


def test_purging_everything_old_leaves_readiness_unchanged(store: SqlStore) -> None:
    reg = history_of_many(store)
    before = store.load_histories(durations_kept=DURATIONS_KEPT)
    runs_before = len(store.history(limit=None))

    cut = retention.cutoffs(reg, day(100), older_than=timedelta(0))
    purged = store.purge(cut, counted=retention.counted(reg))

    after = store.load_histories(durations_kept=DURATIONS_KEPT)
    # readiness reads the count of successes only against max_runs ("capped", exact) and as
    # "has succeeded" (a single is done): the others keep at least one
    assert after["capped"].successes == before["capped"].successes == 3
    assert all(after[p].successes >= 1 for p in before if before[p].successes)
    assert {p: replace(h, successes=0) for p, h in after.items()} == {
        p: replace(h, successes=0) for p, h in before.items()
    }
    assert purged.runs > 0 and purged.attempts == purged.runs
    left = store.history(limit=None)
    assert len(left) == runs_before - purged.attempts
    kept = {a.run_id for a in left}
    # every success of the max_runs process stays (they are counted), and the removed
    # process's last run (its numbering)
    assert {"capped-1", "capped-2", "capped-3", "capped-4", "gone-7"} <= kept
    assert "daily-1" not in kept and "daily-60" in kept and "flaky-60" in kept
    # purging again finds nothing more
    assert store.purge(cut, counted=retention.counted(reg)).total == 0


def test_dry_run_counts_what_a_purge_removes_and_removes_nothing(store: SqlStore) -> None:
    reg = history_of_many(store)
    cut = retention.cutoffs(reg, day(100), older_than=timedelta(days=30))
    before = store.history(limit=None)
    would = store.purge(cut, counted=retention.counted(reg), dry_run=True)
    assert store.history(limit=None) == before
    assert would.runs > 0
    assert store.purge(cut, counted=retention.counted(reg)) == would


def test_only_records_older_than_the_cutoff_go(store: SqlStore) -> None:
    reg = history_of_many(store)
    everything = store.history(limit=None)
    recent_successes: dict[str, list[str]] = {}
    for a in sorted(everything, key=lambda a: a.end or T0, reverse=True):
        if a.status is RunStatus.SUCCEEDED:
            recent_successes.setdefault(a.process, []).append(a.run_id)
    latest = {a.process: a.run_id for a in sorted(everything, key=lambda a: a.queued)}

    store.purge(Cutoffs(runs=day(30)), counted=retention.counted(reg))
    left = store.history(limit=None)
    assert {a.run_id for a in everything if a.end and a.end >= day(30)} <= {a.run_id for a in left}
    for a in left:
        if a.end is not None and a.end < day(30):
            estimates = recent_successes.get(a.process, [])[:DURATIONS_KEPT]
            assert (
                a.process == "capped" or a.run_id in estimates or a.run_id == latest[a.process]
            ), a


def test_logs_and_decisions_age_out_on_their_own(store: SqlStore) -> None:
    history_of_many(store)
    with store.engine.begin() as conn:
        conn.execute(update(attempts).values(log="line\n"))
        conn.execute(
            insert(decisions),
            [
                {"at": day(n), "process": "daily", "decision": "wait", "reasons": []}
                for n in range(10)
            ],
        )
    store.add_request(RequestKind.TRIGGER, at=day(1), process="daily")
    purged = store.purge(Cutoffs(logs=day(50), decisions=day(5)))
    assert purged.runs == 0 and purged.decisions == 5 and purged.logs > 0
    with store.engine.connect() as conn:
        logged = conn.execute(select(func.count()).where(attempts.c.log.is_not(None))).scalar()
        total = conn.execute(select(func.count()).select_from(attempts)).scalar()
        assert total == len(store.history(limit=None)) and logged == total - purged.logs
    assert sorted(d.at for d in store.decisions(limit=100)) == [day(n) for n in range(5, 10)]
    # a request still waiting is never purged, whatever its age
    assert [r.process for r in store.pending_requests()] == ["daily"]
    assert store.purge(Cutoffs(runs=day(1000))).requests == 0


def test_the_registry_retention_is_the_default_and_older_than_overrides_it() -> None:
    reg = RegistryDef(retention=Retention(runs=timedelta(days=90), logs=None))
    now = day(200)
    assert retention.cutoffs(reg, now) == Cutoffs(
        runs=now - timedelta(days=90), logs=None, decisions=now - timedelta(days=7)
    )
    assert retention.cutoffs(reg, now, timedelta(days=1)) == Cutoffs(
        runs=day(199), logs=day(199), decisions=day(199)
    )
    assert RegistryDef().retention == Retention(
        runs=None, logs=timedelta(days=30), decisions=timedelta(days=7)
    )


# -- statistics ---------------------------------------------------------------------------------


def test_stats_count_outcomes_and_percentiles_per_process(store: SqlStore) -> None:
    store.apply(RegistryDef(processes={"a": proc("a"), "b": proc("b")}), now=T0)
    for n, minutes in enumerate([1, 2, 3, 4, 10]):
        run(store, "a", n + 1, day(n), RunStatus.SUCCEEDED, minutes=minutes, late_s=n * 10)
    run(store, "a", 6, day(5), RunStatus.FAILED)
    run(store, "a", 7, day(6), RunStatus.TIMED_OUT)
    run(store, "b", 1, day(0), RunStatus.CANCELLED)
    run(store, "b", 2, day(9), RunStatus.SUCCEEDED)  # before the window below: not counted
    store.create_run(run_id="b-3", process="b", scheduled=day(10), queued=day(10), params={})

    figures = {f.process: f for f in store.stats(since=day(0))}
    a, b = figures["a"], figures["b"]
    assert (a.runs, a.succeeded, a.failed, a.timed_out, a.cancelled) == (7, 5, 1, 1, 0)
    assert a.success_rate == 5 / 7
    assert a.duration_p50_s == 180.0 and a.duration_p90_s == 600.0
    assert a.lateness_p90_s == 40.0  # 0, 10, 20, 30, 40, 0, 0 s late: rank ⌈0.9·7⌉ = 7
    assert (b.runs, b.succeeded, b.cancelled) == (3, 1, 1)
    assert b.success_rate == 0.5  # the queued run has not ended
    assert [f.process for f in store.stats(since=day(0), process="b")] == ["b"]
    late = store.stats(since=day(8))
    assert [(f.process, f.runs) for f in late] == [("b", 2)]
    doc = a.document()
    assert list(doc) == [
        "process",
        "runs",
        "succeeded",
        "failed",
        "timed_out",
        "cancelled",
        "success_rate",
        "duration_p50_s",
        "duration_p90_s",
        "lateness_p90_s",
    ]


def test_lateness_of_backfills_and_retries_counts_from_when_they_were_asked(
    store: SqlStore,
) -> None:
    """A backfill's or a retry's run keeps its old fire as ``scheduled``: it is late only
    from its request on (from its due time, for a request for later)."""
    store.apply(RegistryDef(processes={"a": proc("a", cron="0 3 * * *")}), now=T0)
    run(store, "a", 1, day(0), RunStatus.FAILED, late_s=30)  # its own fire, 30 s late
    fire = day(-700)
    (backfill,) = store.add_requests(
        [Request(id=0, kind=RequestKind.TRIGGER, created=day(1), process="a", scheduled=fire)]
    )
    retry = store.add_retry("a-1", at=day(2))
    later = store.add_request(
        RequestKind.TRIGGER, at=day(2), process="a", scheduled=fire, due=day(3)
    )
    for seq, request, asked, late_s in [
        (2, backfill, day(1), 5),
        (3, retry, day(2), 20),
        (4, later, day(3), 10),
        (5, 999, day(4), 1),  # its request was purged: when it was asked is not known
    ]:
        run_id = f"a-{seq}"
        store.create_run(
            run_id=run_id,
            process="a",
            scheduled=day(0) if request == retry else fire,
            queued=asked,
            params={},
            request_id=request,
        )
        start = asked + timedelta(seconds=late_s)
        store.attempt_started(run_id, 1, start=start, worker="tcp://w:1")
        store.finish_attempt(run_id, 1, status=RunStatus.SUCCEEDED, end=start + timedelta(1))
    (figures,) = store.stats(since=day(-800))
    assert figures.runs == 5
    assert figures.lateness_p90_s == 30.0  # of 30, 5, 20 and 10 s; not 700 days


def test_percentile_is_nearest_rank() -> None:
    assert percentile([], 0.5) is None
    assert percentile([3.0], 0.9) == 3.0
    assert percentile([5.0, 1.0, 3.0, 2.0, 4.0], 0.5) == 3.0
    assert percentile([float(n) for n in range(1, 11)], 0.9) == 9.0


# -- the commands -------------------------------------------------------------------------------


def test_stats_and_purge_commands(sqlite_url: str) -> None:
    store = SqlStore(sqlite_url)
    try:
        now = datetime.now(UTC)
        store.apply(RegistryDef(processes={"a": proc("a")}), now=now - timedelta(days=40))
        run(store, "a", 1, now - timedelta(days=40), RunStatus.SUCCEEDED)
        run(store, "a", 2, now - timedelta(days=35), RunStatus.FAILED)
        run(store, "a", 3, now - timedelta(hours=2), RunStatus.SUCCEEDED, minutes=2)
    finally:
        store.close()
    runner = CliRunner()
    out = runner.invoke(cli, ["--db", sqlite_url, "stats", "--format", "json"])
    assert out.exit_code == 0, out.output
    doc = json.loads(out.output)
    assert [(p["process"], p["runs"], p["succeeded"]) for p in doc["processes"]] == [("a", 1, 1)]
    month = json.loads(
        runner.invoke(
            cli, ["--db", sqlite_url, "stats", "a", "--since", "60d", "--format", "json"]
        ).output
    )
    assert month["processes"][0]["runs"] == 3 and month["processes"][0]["failed"] == 1
    assert runner.invoke(cli, ["--db", sqlite_url, "stats", "nope"]).exit_code == 1
    table = runner.invoke(cli, ["--db", sqlite_url, "stats", "--since", "60d"])
    assert table.exit_code == 0 and "a" in table.output and "67%" in table.output

    dry = runner.invoke(cli, ["--db", sqlite_url, "purge", "--older-than", "30d", "--dry-run"])
    assert dry.exit_code == 0 and "would remove 1 run (1 attempt)" in dry.output, dry.output
    done = runner.invoke(cli, ["--db", sqlite_url, "purge", "--older-than", "30d"])
    assert done.exit_code == 0 and "removed 1 run (1 attempt)" in done.output, done.output
    again = runner.invoke(cli, ["--db", sqlite_url, "purge", "--older-than", "30d"])
    assert "nothing to purge" in again.output
    store = SqlStore(sqlite_url)
    try:
        # a-2 went; a-1 stays (a recent success for duration estimates), a-3 is the latest
        assert {a.run_id for a in store.history(limit=None)} == {"a-1", "a-3"}
    finally:
        store.close()


# -- the running planner's housekeeping ---------------------------------------------------------


def test_the_housekeeper_purges_with_the_current_registry_retention(store: SqlStore) -> None:
    reg = history_of_many(store)
    current = [replace(reg, retention=Retention(runs=None, logs=None, decisions=None))]
    keeper = Housekeeper(store, lambda: current[0], lambda: day(100))
    assert keeper.purge_now().total == 0  # nothing expires: nothing goes
    current[0] = replace(reg, retention=Retention(runs=timedelta(days=60)))
    done = keeper.purge_now()
    assert done.runs > 0 and keeper.purged == done and keeper.passes == 2
    daily = [a for a in store.history(limit=None) if a.process == "daily"]
    assert len(daily) == DURATIONS_KEPT and all(a.end and a.end >= day(40) for a in daily)


def test_the_housekeeper_thread_purges_until_closed(sqlite_url: str) -> None:
    store = SqlStore(sqlite_url)
    reg = history_of_many(store)
    passes: list[Purged] = []
    purged = threading.Event()

    class Watched:  # the real store, with a signal after each purge
        def purge(self, *args: Any, **kwargs: Any) -> Purged:
            result = store.purge(*args, **kwargs)
            passes.append(result)
            purged.set()
            return result

    now = day(100)
    keeper = Housekeeper(
        Watched(),  # type: ignore[arg-type]
        lambda: replace(reg, retention=Retention(runs=timedelta(days=1))),
        lambda: now,
        interval=timedelta(hours=1),
        first_after=timedelta(0),
    ).start()
    try:
        assert purged.wait(30)
    finally:
        keeper.close()
    assert len(passes) == 1 and passes[0].runs > 0  # one pass, then the hour-long wait
    store.close()
