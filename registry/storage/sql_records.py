"""``OperatorRecords``: the records around the runs — saved job states and resets, operator
requests, dead letters and their retries, the decision log, statistics and retention — on
``SqlBase``'s transactions.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, insert, select, update

from registry.lifecycle import RunStatus
from registry.records import AttemptRecord, LoggedDecision, Request, RequestKind
from registry.storage import queries as q
from registry.storage import retention, run_writes, statistics
from registry.storage.codec import json_roundtrip
from registry.storage.retention import Cutoffs, Purged
from registry.storage.run_writes import Retry
from registry.storage.sql_base import SqlBase
from registry.storage.statistics import ProcessStats
from registry.storage.tables import attempts, process_state, requests, runs

__all__ = ["OperatorRecords"]


class OperatorRecords(SqlBase):
    # -- per-process saved state and resets ---------------------------------------------------

    def load_state(self, process: str) -> Any:
        with self._read() as conn:
            return conn.execute(
                select(process_state.c.state).where(process_state.c.process == process)
            ).scalar_one_or_none()

    def load_states(self, processes: Sequence[str] | None = None) -> dict[str, Any]:
        if processes is None:
            every = select(process_state.c.process, process_state.c.state)
            with self._read() as conn:
                return {row.process: row.state for row in conn.execute(every)}
        found: dict[str, Any] = dict.fromkeys(processes)
        names = list(found)
        with self._read() as conn:
            for i in range(0, len(names), 500):
                query = select(process_state.c.process, process_state.c.state).where(
                    process_state.c.process.in_(names[i : i + 500])
                )
                found.update({row.process: row.state for row in conn.execute(query)})
        return found

    def save_state(self, process: str, state: Any) -> None:
        value = json_roundtrip(state)
        with self._write() as conn:
            conn.execute(self._upsert(process_state, {"process": process}, {"state": value}))

    def reset(self, process: str, *, at: datetime) -> None:
        with self._write() as conn:
            conn.execute(self._upsert(process_state, {"process": process}, {"reset_at": at}))

    # -- operator requests --------------------------------------------------------------------

    def add_request(
        self,
        kind: RequestKind,
        *,
        at: datetime,
        process: str | None = None,
        run_id: str | None = None,
        params: Mapping[str, Any] | None = None,
        force: bool = False,
        due: datetime | None = None,
        scheduled: datetime | None = None,
    ) -> int:
        request = Request(
            id=0,
            kind=kind,
            created=at,
            process=process,
            run_id=run_id,
            params=params or {},
            force=force,
            due=due,
            scheduled=scheduled,
        )
        return self.add_requests([request])[0]

    def add_requests(self, requests_: Sequence[Request]) -> list[int]:
        ids = []
        with self._write() as conn:
            for r in requests_:
                values = {
                    "kind": RequestKind(r.kind).value,
                    "process": r.process,
                    "run_id": r.run_id,
                    "params": json_roundtrip(dict(r.params)),
                    "force": r.force,
                    "created": r.created,
                    "due": r.due,
                    "scheduled": r.scheduled,
                }
                key = conn.execute(insert(requests).values(**values)).inserted_primary_key
                assert key is not None
                ids.append(int(key[0]))
        return ids

    def pending_requests(self) -> list[Request]:
        with self._read() as conn:
            return q.pending_requests(conn)

    def mark_handled(self, request_ids: Sequence[int], *, at: datetime) -> None:
        if not request_ids:
            return
        with self._write() as conn:
            conn.execute(
                update(requests)
                .where(requests.c.id.in_(list(request_ids)), requests.c.handled.is_(None))
                .values(handled=at)
            )

    # -- dead letters and their retries ---------------------------------------------------------

    def runs_in_status(
        self,
        statuses: Collection[RunStatus],
        process: str | None = None,
        *,
        since: datetime | None = None,
        limit: int | None = None,
    ) -> list[AttemptRecord]:
        latest = and_(attempts.c.run_id == runs.c.run_id, attempts.c.attempt == runs.c.attempt)
        query = (
            select(*(c for c in attempts.c if c.name != "log"), runs.c.params)
            .join(runs, latest)
            .where(runs.c.status.in_(sorted(s.value for s in statuses)))
            .order_by(attempts.c.queued.desc(), attempts.c.attempt.desc(), attempts.c.run_id.desc())
        )
        if process is not None:
            query = query.where(runs.c.process == process)
        if since is not None:
            query = query.where(attempts.c.queued >= since)
        if limit is not None:
            query = query.limit(limit)
        with self._read() as conn:
            rows: list[Any] = list(conn.execute(query))
        return [q.attempt_record(row) for row in rows]

    def retries(self, run_ids: Collection[str]) -> list[Retry]:
        with self._read() as conn:
            return run_writes.retries(conn, run_ids)

    def add_retry(self, run_id: str, *, at: datetime) -> int:
        with self._write() as conn:
            return run_writes.add_retry(conn, run_id, at=at)

    # -- decision log -------------------------------------------------------------------------

    def log_decisions(self, decisions: Sequence[LoggedDecision]) -> None:
        if not decisions:
            return
        rows = q.decision_rows(decisions)
        with self._write() as conn:
            conn.execute(insert(q.decisions), rows)

    def decisions(self, process: str | None = None, *, limit: int = 50) -> list[LoggedDecision]:
        with self._read() as conn:
            return q.logged_decisions(conn, process, limit)

    # -- statistics and retention ---------------------------------------------------------------

    def stats(self, *, since: datetime, process: str | None = None) -> list[ProcessStats]:
        with self._read() as conn:
            return statistics.process_stats(conn, since=since, process=process)

    def purge(
        self,
        cutoffs: Cutoffs,
        *,
        counted: Collection[str] = (),
        dry_run: bool = False,
        stop: Callable[[], bool] | None = None,
    ) -> Purged:
        if dry_run:
            with self._read() as conn:
                return retention.purgeable(conn, cutoffs, counted=counted)
        done = Purged()
        with self._read() as conn:
            kept = retention.protected(conn)
        while True:  # one short transaction per batch: the planner's own writes go in between
            with self._write() as conn:
                step = retention.purge_batch(conn, cutoffs, counted=counted, kept=kept)
            done += step
            if step.total == 0 or (stop is not None and stop()):
                return done
