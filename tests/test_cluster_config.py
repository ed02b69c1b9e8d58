"""Misconfigured or exposed clusters, with real ``dask scheduler``/``dask worker`` processes.

- A remote scheduler at Dask's default ``allowed-failures`` (3) silently re-runs an attempt
  whose worker died: the planner refuses it unless told ``--allow-reruns``, and survives the
  rerun's second "started" event when told so.
- A remote scheduler over TLS: the planner's client takes its certificates from Dask's config.
- The in-process cluster speaks TLS with a temporary certificate: no other client can use it.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pytest

from planner.live.cluster import connect
from registry.lifecycle import RunStatus
from registry.storage.sqlstore import SqlStore
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
RERUNS = "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES"


def _env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DASK_")}
    return {**env, **(extra or {})}


def _start(args: list[str], log: Path, env: Mapping[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        args,
        cwd=REPO,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env=dict(env),
    )


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    """Workers first: a worker whose scheduler went away first may take long to give up."""
    for proc in reversed(procs):
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)


@contextmanager
def dask_cluster(
    tmp_path: Path,
    *,
    env: Mapping[str, str] | None = None,
    tls: list[str] | None = None,
    workers: int = 1,
) -> Iterator[tuple[str, list[subprocess.Popen[bytes]]]]:
    """A scheduler and ``workers`` workers (no nanny) in processes of their own: the address
    and the workers' processes (worker ``i`` is named ``w{i}``)."""
    scheduler_file = tmp_path / "scheduler.json"
    scheduler_file.unlink(missing_ok=True)
    env = _env(env)
    tls = tls or []
    dask = str(BIN / "dask")
    host = ["--host", "127.0.0.1", *(["--protocol", "tls"] if tls else [])]
    scheduler = [dask, "scheduler", *host, "--port", "0", "--no-dashboard"]
    procs = [
        _start(
            [*scheduler, "--scheduler-file", str(scheduler_file), *tls],
            tmp_path / "scheduler.log",
            env,
        )
    ]
    worker_procs: list[subprocess.Popen[bytes]] = []
    try:
        wait_for(scheduler_file.exists, 60, "the scheduler file")
        for i in range(workers):
            worker = [dask, "worker", "--scheduler-file", str(scheduler_file), "--no-nanny"]
            worker += ["--name", f"w{i}"]
            worker += ["--nthreads", "2", "--no-dashboard", "--host", "127.0.0.1", *tls]
            worker_procs.append(_start(worker, tmp_path / f"worker{i}.log", env))
        procs += worker_procs
        logs = [tmp_path / f"worker{i}.log" for i in range(workers)]
        wait_for(
            lambda: all("Registered to" in log.read_text() for log in logs),
            60,
            "the workers to register",
        )
        import json

        yield json.loads(scheduler_file.read_text())["address"], worker_procs
    finally:
        _stop(procs)


def _planner(
    db: str, *args: str, env: Mapping[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "planner"), "--db", db, "run", "--until-idle", "--page-port", "0", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=_env(env),
    )


def _two_jobs(tmp_path: Path) -> Path:
    path = tmp_path / "registry.yaml"
    path.write_text(
        "processes:\n"
        "  first: {run: 'workflows.jobs.demo:noop', retries: 0}\n"
        "  second: {run: 'workflows.jobs.demo:noop', retries: 0, ancestors: [first]}\n"
    )
    return path


def _statuses(db: str) -> dict[str, list[tuple[int, RunStatus]]]:
    store = SqlStore(db)
    try:
        out: dict[str, list[tuple[int, RunStatus]]] = {}
        for a in sorted(store.history(), key=lambda a: (a.process, a.attempt)):
            out.setdefault(a.process, []).append((a.attempt, a.status))
        return out
    finally:
        store.close()


def _succeeded_both(db: str) -> bool:
    return _statuses(db) == {
        "first": [(1, RunStatus.SUCCEEDED)],
        "second": [(1, RunStatus.SUCCEEDED)],
    }


# -- allowed-failures ---------------------------------------------------------------------------


def test_a_scheduler_that_reruns_attempts_is_refused(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'planner.db'}"
    with dask_cluster(tmp_path) as (address, _):  # Dask's default: allowed-failures 3
        refused = _planner(db, str(_two_jobs(tmp_path)), "--scheduler", address)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "distributed.scheduler.allowed-failures" in refused.stderr
    assert "allowed-failures = 3" in refused.stderr
    assert f"{RERUNS}=0" in refused.stderr
    assert "--allow-reruns" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert _statuses(db) == {}  # nothing was submitted


def test_a_scheduler_with_allowed_failures_zero_is_accepted(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'planner.db'}"
    with dask_cluster(tmp_path, env={RERUNS: "0"}) as (address, _):
        done = _planner(db, str(_two_jobs(tmp_path)), "--scheduler", address)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "allowed-failures" not in done.stderr
    assert _succeeded_both(db)


def test_allow_reruns_warns_and_survives_a_rerun_after_a_worker_death(tmp_path: Path) -> None:
    """The scheduler re-runs the attempt on the other worker: the re-run does not execute the job
    (``planner.live.once``), the attempt fails and the planner retries it by its policy."""
    db = f"sqlite:///{tmp_path / 'planner.db'}"
    marker = tmp_path / "worker.address"
    registry = tmp_path / "registry.yaml"
    registry.write_text(
        "processes:\n"
        "  victim:\n"
        "    run: tests.live_jobs:mark_and_sleep\n"
        f"    params: {{marker: '{marker}', seconds: 8}}\n"
        "    retries: 1\n"
        "    retry_delay: 0\n"
    )
    with dask_cluster(tmp_path, workers=2) as (address, workers):
        remote = ["--page-port", "0", "--scheduler", address, "--allow-reruns"]
        planner = subprocess.Popen(
            [str(BIN / "planner"), "--db", db, "run", str(registry), "--until-idle", *remote],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(),
        )
        try:
            first = wait_for(lambda: marker.exists() and marker.read_text(), 60, "the attempt")
            from distributed import Client

            with Client(address, timeout=30) as client:
                name = client.scheduler_info(n_workers=-1)["workers"][first]["name"]
            victim = workers[int(name.removeprefix("w"))]
            os.killpg(victim.pid, signal.SIGKILL)  # the scheduler re-runs it on the other worker
            out, err = planner.communicate(timeout=120)
        finally:
            if planner.poll() is None:
                planner.kill()
                planner.wait(30)
    assert planner.returncode == 0, out + err
    assert "warning:" in err and "allowed-failures" in err
    assert "IllegalTransition" not in err + out
    store = SqlStore(db)
    try:
        first_attempt, second_attempt = sorted(store.history("victim"), key=lambda a: a.attempt)
    finally:
        store.close()
    assert first_attempt.status is RunStatus.FAILED and first_attempt.error is not None
    assert first_attempt.error.type == "AttemptAlreadyRan"  # Dask did re-run it: not executed
    assert second_attempt.status is RunStatus.SUCCEEDED and second_attempt.result == "survived"


# -- TLS to a remote scheduler ------------------------------------------------------------------


def _certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a certificate it signed for 127.0.0.1 (CA file, cert, key)."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)

    def build(
        subject: str,
        issuer: str,
        key: ec.EllipticCurvePrivateKey,
        public: ec.EllipticCurvePublicKey,
        ca: bool,
    ) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        return builder.sign(key, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = build("planner-test-ca", "planner-test-ca", ca_key, ca_key.public_key(), True)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = build("planner-test", "planner-test-ca", ca_key, key.public_key(), False)
    paths = directory / "ca.pem", directory / "cert.pem", directory / "key.pem"
    paths[0].write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


def test_a_tls_scheduler_with_certificates_from_dask_config(tmp_path: Path) -> None:
    ca, cert, key = _certificates(tmp_path)
    tls = ["--tls-ca-file", str(ca), "--tls-cert", str(cert), "--tls-key", str(key)]
    client_tls = {
        "DASK_DISTRIBUTED__COMM__TLS__CA_FILE": str(ca),
        "DASK_DISTRIBUTED__COMM__TLS__CLIENT__CERT": str(cert),
        "DASK_DISTRIBUTED__COMM__TLS__CLIENT__KEY": str(key),
    }
    db = f"sqlite:///{tmp_path / 'planner.db'}"
    with dask_cluster(tmp_path, env={RERUNS: "0"}, tls=tls) as (address, _):
        assert address.startswith("tls://")
        no_certificates = _planner(db, "--scheduler", address, timeout=60)
        done = _planner(db, str(_two_jobs(tmp_path)), "--scheduler", address, env=client_tls)
    # a client without the certificates gets nowhere, and is told what to set
    assert no_certificates.returncode == 1, no_certificates.stderr
    assert "DASK_DISTRIBUTED__COMM__TLS__CA_FILE" in no_certificates.stderr
    assert done.returncode == 0, done.stdout + done.stderr
    assert _succeeded_both(db)


# -- the in-process cluster refuses other clients -----------------------------------------------


FOREIGN_CLIENT = """
import sys
from distributed import Client
try:
    Client(sys.argv[1], timeout="5s").close()
except Exception as exc:
    print(type(exc).__name__, exc)
    sys.exit(3)
print("connected")
"""


@pytest.mark.parametrize("processes", [True, False], ids=["processes", "threads"])
def test_the_in_process_cluster_refuses_foreign_clients(processes: bool) -> None:
    with connect(
        processes=processes, n_workers=1, threads_per_worker=1, dashboard_address="127.0.0.1:0"
    ) as conn:
        address = conn.client.scheduler.address
        assert conn.client.submit(sum, [1, 2], pure=False).result(timeout=30) == 3
        if not processes:  # threads of this process: nothing listens on the network
            assert address.startswith("inproc://")
            return
        assert address.startswith("tls://")
        # another local user's client, with Dask's default (no) certificates, in its own process
        for foreign in (address, address.replace("tls://", "tcp://")):
            began = time.monotonic()
            other = subprocess.run(
                [sys.executable, "-c", FOREIGN_CLIENT, foreign],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
                env=_env(),
            )
            assert other.returncode == 3, (foreign, other.stdout, other.stderr)
            assert time.monotonic() - began < 30
        assert conn.client.submit(sum, [3, 4], pure=False).result(timeout=30) == 7


# -- a second "started" event for one attempt ----------------------------------------------------


def test_a_second_started_event_for_an_attempt_is_ignored(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """However it comes about (a re-run the claim could not stop, a replayed event), a repeated
    "started" must not move a running attempt to running again (an illegal transition)."""
    import threading

    from distributed import Client, LocalCluster

    from planner.live.dispatch import TOPIC, Dispatcher, attempt_key
    from planner.live.loop import LiveDriver, utcnow
    from registry.definitions.loader import load_files
    from tests import live_jobs

    live_jobs.reset()
    path = tmp_path / "registry.yaml"
    path.write_text("processes:\n  job: {run: tests.live_jobs:gate, params: {name: job}}\n")
    store = SqlStore(f"sqlite:///{tmp_path}/planner.db")
    store.apply(load_files([path]), now=utcnow())
    with (
        LocalCluster(
            processes=False, n_workers=1, threads_per_worker=2, dashboard_address=":0"
        ) as cluster,
        Client(cluster) as client,
    ):
        driver = LiveDriver(store, Dispatcher(client, remote=False), poll_interval=0.05)
        summary: list[object] = []
        thread = threading.Thread(target=lambda: summary.append(driver.run(until_idle=True)))
        thread.start()
        try:
            assert live_jobs.STARTED["job"].wait(30)
            wait_for(lambda: store.history("job")[0].status is RunStatus.RUNNING, 30, "running")
            again = {
                "event": "started",
                "key": attempt_key("job-1", 1),
                "run_id": "job-1",
                "attempt": 1,
                "start": utcnow().isoformat(),
                "worker": "tcp://elsewhere:1",
            }
            client.log_event(TOPIC, again)
            wait_for(lambda: "reported started again" in caplog.text, 30, "the repeat")
            live_jobs.RELEASE["job"].set()
            thread.join(60)
        finally:
            live_jobs.RELEASE["job"].set()
            driver.stop()
            thread.join(60)
    assert summary, "the planner loop died"
    (attempt,) = store.history("job")
    store.close()
    assert attempt.status is RunStatus.SUCCEEDED
    assert attempt.worker != "tcp://elsewhere:1"  # the first start stands


def test_the_planner_runs_and_shows_its_page_on_the_tls_in_process_cluster(tmp_path: Path) -> None:
    from urllib.request import urlopen

    from planner.interfaces.page import serve
    from planner.live.cluster import Connection
    from planner.live.loop import LiveDriver
    from planner.live.runner import run_planner
    from registry.definitions.loader import load_files

    store = SqlStore(f"sqlite:///{tmp_path}/planner.db")
    store.apply(load_files([_two_jobs(tmp_path)]), now=dt.datetime.now(dt.UTC))
    seen: dict[str, str] = {}

    def on_ready(driver: LiveDriver, conn: Connection) -> None:
        page = serve(driver, conn, port=0)
        try:
            seen["address"] = conn.client.scheduler.address
            seen["mounted"] = str(page.mounted)
            for name, url in (
                ("page", page.url),
                ("status", page.url.replace("planner", "status")),
            ):
                with urlopen(url, timeout=30) as response:
                    seen[name] = f"{response.status} {response.read().decode()}"
        finally:
            page.close()

    summary = run_planner(
        store, until_idle=True, n_workers=1, dashboard_address="127.0.0.1:0", on_ready=on_ready
    )
    try:
        assert summary.statuses == {"succeeded": 2}
    finally:
        store.close()
    assert seen["address"].startswith("tls://127.0.0.1:")
    assert seen["mounted"] == "True"
    assert seen["page"].startswith("200 ") and seen["status"].startswith("200 ")
    assert 'href="planner"' in seen["status"]  # Dask's own pages link to the planner page
