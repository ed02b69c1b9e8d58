"""Big registries start fast and speak briefly: each module imported once, problems alike of many
processes said once, large diffs summarised, and files unchanged since the last apply neither
validated nor applied again by ``planner run FILES`` (the digest in ``registry_digest``)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import registry.definitions.loader
from planner.interfaces.cli import cli
from planner.interfaces.cli.definitions import apply_files
from planner.interfaces.terminal import apply_lines
from registry.definitions.loader import load_files
from registry.errors import DefinitionError
from registry.records import ApplyResult
from registry.storage import digest
from registry.storage.sqlstore import SqlStore

REPO = Path(__file__).resolve().parent.parent
UNCHANGED = "registry unchanged since last apply (digest "


@pytest.fixture
def validations(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the validations of files (calls of ``load_files``) from here on."""
    calls: list[int] = []
    real = registry.definitions.loader.load_files

    def counting(paths):  # type: ignore[no-untyped-def]
        calls.append(len(paths))
        return real(paths)

    monkeypatch.setattr(registry.definitions.loader, "load_files", counting)
    return calls


@pytest.fixture
def in_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)  # workflows.jobs.demo importable, as for `planner` run from here


def template(n: int, *, hold: bool = False, extra: str = "") -> str:
    items = ", ".join(f"n{i:05d}" for i in range(n))
    held = "\n    hold: true" if hold else ""
    body = f"    foreach: [{items}]\n    run: workflows.jobs.demo:noop{held}\n"
    return f"processes:\n  job:\n{body}{extra}"


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), prog_name="planner")


# -- one import per module, one error per kind ----------------------------------------------------


def test_700_processes_naming_an_unimportable_module_give_one_grouped_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    counter = tmp_path / "imports.txt"
    (tmp_path / "broken_jobs_700.py").write_text(
        f"open({str(counter)!r}, 'a').write('imported\\n')\nraise RuntimeError('no database')\n"
    )
    lines = ["processes:"]
    for i in range(700):
        lines += [f"  p{i:03d}:", f"    run: broken_jobs_700:job_{i}"]  # 700 distinct targets
    path = tmp_path / "jobs.yaml"
    path.write_text("\n".join(lines) + "\n")
    result = invoke("validate", str(path))
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"{path}:3: 700 processes (p000, p001, p002, p003, p004, … and 695 more): run: cannot "
        "import module 'broken_jobs_700': RuntimeError: no database (key run)",
        "error: 700 problems found",
    ]
    assert counter.read_text() == "imported\n"  # imported once, not once per process
    with pytest.raises(DefinitionError) as info:
        load_files([path])
    assert len(info.value.problems) == 700 and len(info.value.grouped()) == 1


def test_a_few_alike_problems_stay_one_line_each(tmp_path: Path) -> None:
    path = tmp_path / "few.yaml"
    path.write_text(
        "processes:\n" + "".join(f"  p{i}: {{run: os.path:join, pool: x}}\n" for i in range(3))
    )
    result = invoke("validate", str(path))
    assert result.exit_code == 1
    assert [line.split(":")[1] for line in result.stderr.splitlines()[:3]] == ["2", "3", "4"]


def test_apply_summarises_large_diffs(tmp_path: Path, in_repo: None) -> None:
    url = f"sqlite:///{tmp_path}/planner.db"
    path = tmp_path / "big.yaml"
    path.write_text(template(2000))
    result = invoke("--db", url, "apply", str(path))
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "added 2000 processes: job.n00000, job.n00001, job.n00002, job.n00003, job.n00004, … "
        "and 1995 more"
    ]
    path.write_text(template(1990))
    removed = invoke("--db", url, "apply", str(path)).stdout.splitlines()
    assert removed == [
        "removed: " + ", ".join(f"job.n{i:05d}" for i in range(1990, 2000)),  # ten: listed
    ]


def test_apply_lines_list_up_to_ten_names_then_count() -> None:
    names = tuple(f"p{i}" for i in range(11))
    assert apply_lines(ApplyResult(added=names[:10])) == ["added: " + ", ".join(names[:10])]
    assert apply_lines(ApplyResult(changed=names)) == [
        "changed 11 processes: p0, p1, p2, p3, p4, … and 6 more"
    ]


# -- the digest: unchanged files are not validated again ------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlStore]:
    with SqlStore(f"sqlite:///{tmp_path}/planner.db") as opened:
        yield opened


def test_files_digest_covers_names_bytes_order_and_the_planner(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text("processes: {}\n")
    b.write_text("processes: {}\n")
    first = digest.files_digest([a, b])
    assert first == digest.files_digest([a, b]) and len(first) == 64
    assert first != digest.files_digest([b, a])
    assert digest.files_digest([a]) != digest.files_digest([b])  # same bytes, another name
    a.write_text("processes: {}\n\n")
    assert first != digest.files_digest([a, b])
    now = digest.files_digest([a, b])
    monkeypatch.setattr(digest, "_planner_identity", lambda: b"dask-planner 99.0\n")
    assert digest.files_digest([a, b]) != now  # another release validates again


def test_run_skips_validation_of_files_unchanged_since_the_last_apply(
    tmp_path: Path,
    store: SqlStore,
    validations: list[int],
    capsys: pytest.CaptureFixture[str],
    in_repo: None,
) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(template(3))
    apply_files(store, [str(path)], revalidate=False)  # nothing applied yet: validated
    assert validations == [1]
    apply_files(store, [str(path)], revalidate=False)
    assert validations == [1]
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("added: job.n00000") and out[1].startswith(UNCHANGED)
    assert out[1].endswith("): not validated again")

    apply_files(store, [str(path)], revalidate=True)  # `planner apply` always validates
    assert validations == [1, 1]
    assert capsys.readouterr().out.splitlines() == ["no changes"]

    path.write_text(template(4))  # a changed file
    apply_files(store, [str(path)], revalidate=False)
    assert validations == [1, 1, 1]
    assert capsys.readouterr().out.splitlines() == ["added: job.n00003"]

    store.update_process("job.n00001", {"priority": 5})  # the registry changed since
    apply_files(store, [str(path)], revalidate=False)
    assert validations == [1, 1, 1, 1]
    assert capsys.readouterr().out.splitlines() == ["changed: job.n00001"]
    apply_files(store, [str(path)], revalidate=False)
    assert validations == [1, 1, 1, 1]
    assert capsys.readouterr().out.startswith(UNCHANGED)


def test_an_invalid_file_records_no_digest(
    tmp_path: Path, store: SqlStore, validations: list[int], in_repo: None
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("processes:\n  a: {run: workflows.jobs.demo:noop, retries: x}\n")
    for _ in range(2):
        with pytest.raises(DefinitionError):
            apply_files(store, [str(path)], revalidate=False)
    assert validations == [1, 1]
    assert not store.unchanged_since_apply(digest.files_digest([path]))


def test_an_unreadable_file_is_validated_and_named(
    tmp_path: Path, store: SqlStore, in_repo: None
) -> None:
    with pytest.raises(DefinitionError, match="cannot read"):
        apply_files(store, [str(tmp_path / "missing.yaml")], revalidate=False)


def test_the_digest_is_written_with_the_apply_on_postgres_too(
    tmp_path: Path, pg_url: str, in_repo: None
) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(template(2))
    files = digest.files_digest([path])
    with SqlStore(pg_url) as pg:
        assert not pg.unchanged_since_apply(files)
        pg.apply(load_files([path]), now=datetime.now(UTC), digest=files)
        assert pg.unchanged_since_apply(files)
        pg.update_process("job.n00000", {"hold": True})
        assert not pg.unchanged_since_apply(files)


@pytest.mark.integration
def test_a_second_planner_run_on_an_unchanged_10000_process_registry_skips_validation(
    tmp_path: Path, validations: list[int], in_repo: None
) -> None:
    url = f"sqlite:///{tmp_path}/planner.db"
    path = tmp_path / "big.yaml"
    path.write_text(template(10_000, hold=True))  # held: nothing runs, --until-idle ends at once
    args = ["--db", url, "run", str(path), "--until-idle", "--local-threads", "--workers", "1"]
    args += ["--dashboard-address", "127.0.0.1:0", "--page-port", "0"]
    first = invoke(*args)
    assert first.exit_code == 0, first.output
    assert "added 10000 processes: job.n00000" in first.stdout
    assert validations == [1]
    second = invoke(*args)
    assert second.exit_code == 0, second.output
    assert UNCHANGED in second.stdout and "added" not in second.stdout
    assert validations == [1]  # not validated again
    with SqlStore(url) as store:
        registry, _ = store.load_registry()
    assert len(registry.processes) == 10_000 and not registry.invalid
