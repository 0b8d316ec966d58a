"""`devenv db` without Docker: names and marks, the cache's eviction, the swap that never loses the app database,
and the refusals (another stack's Postgres, a missing or taken snapshot, a file that is not a dump, no --yes)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from devenv.clients.pgwire import PgError
from devenv.commands import dump, snapshots
from devenv.commands.lifecycle import up
from devenv.core.errors import (
    ConfigError,
    DatabaseCommandFailed,
    ExitCode,
    NotOurDatabase,
    SnapshotExists,
    SnapshotNotFound,
    UsageError,
)
from devenv.db import marks, template_cache
from devenv.project.config import load_config
from devenv.project.discovery import Project, load_project
from tests.fakes import FakeConnectors, FakeRuntime, state
from tests.fixtures.helpers import context_of, run_cli

PUBLISHED = {"postgres": {5432: 49001}, "redis": {6379: 49002}, "server": {3000: 49003}}


# -- names and marks ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("db", ["app", "x" * 63, "ü" * 31, "quotes"])
def test_snapshot_and_cache_names_fit_63_bytes_and_never_collide(db: str) -> None:
    names = {marks.snapshot_name(db, f"n{i}") for i in range(50)} | {marks.snapshot_name(db, "n" * 100)}
    names |= {marks.snapshot_ready_name(db, "n1"), marks.cached_template_name(db, "0123456789abcdef")}
    names |= {marks.incoming_name(db), marks.outgoing_name(db), marks.template_name(db), marks.spare_name(db)}
    assert len(names) == 51 + 6  # all distinct
    assert all(len(n.encode()) <= marks.MAX_NAME_BYTES for n in names)
    assert db not in names


def test_short_names_are_readable_long_ones_hashed() -> None:
    assert marks.snapshot_name("quotes", "before") == "quotes__devenv_snap_before"
    assert marks.cached_template_name("quotes", "abc") == "quotes__devenv_cache_abc"
    long = marks.snapshot_name("quotes", "a" * 60)
    assert long.startswith("devenv_") and long.endswith("__snap") and long == marks.snapshot_name("quotes", "a" * 60)
    assert long != marks.snapshot_name("quotes", "a" * 61) != marks.snapshot_name("other", "a" * 60)


def test_marks_round_trip_and_reject_anything_else() -> None:
    assert marks.parse_snapshot_mark(marks.snapshot_mark("v1.2_x-y", "k1", 1700000000)) == (
        "v1.2_x-y",
        "k1",
        1700000000,
    )
    assert marks.parse_cached_mark(marks.cached_mark("k2", 12)) == ("k2", 12)
    assert marks.template_key(marks.template_mark("k3")) == "k3"
    for junk in (None, "", "devenv:seeded", "devenv-snapshot:k", "devenv-snapshot:k:x:name", "devenv-cached:k:"):
        assert marks.parse_snapshot_mark(junk) is None and marks.parse_cached_mark(junk) is None
    assert marks.template_key("devenv-template:") is None


@pytest.mark.parametrize("name", ["", "-x", "a b", "a/b", "x" * 101, "naïve", "a;drop"])
def test_bad_snapshot_names_are_refused(name: str) -> None:
    with pytest.raises(UsageError, match="is not a snapshot name"):
        snapshots.validate_name(name)


def test_a_snapshot_without_a_name_is_named_by_its_time() -> None:
    assert snapshots.validate_name(snapshots.default_name(0)) == snapshots.default_name(0)


# -- the template cache ---------------------------------------------------------------------------------------------
def test_eviction_keeps_the_current_template_and_the_most_recently_used_others() -> None:
    entries = [template_cache.Cached(f"db__devenv_cache_k{i}", f"k{i}", used) for i, used in enumerate([5, 1, 9, 3, 7])]
    assert [c.key for c in template_cache.to_evict(entries, 4)] == ["k3", "k1"]  # 3 cached + the current one stay
    assert [c.key for c in template_cache.to_evict(entries, 1)] == ["k2", "k4", "k0", "k3", "k1"]  # none cached
    assert template_cache.to_evict(entries, 10) == []


def test_reset_keep_is_read_and_checked(tmp_path: Path) -> None:
    path = tmp_path / "devenv.toml"
    path.write_text("[reset]\nkeep = 2\n")
    assert load_config(path, {}).reset.keep == 2
    path.write_text("")
    assert load_config(path, {}).reset.keep == 4
    for bad in ("0", "true", '"4"', "101"):
        path.write_text(f"[reset]\nkeep = {bad}\n")
        with pytest.raises(ConfigError, match=r"devenv.toml:2: reset.keep"):
            load_config(path, {})


class Recorder:
    """A session that records statements and fails the first one containing FAIL."""

    def __init__(self, existing: set[str], fail: str = "") -> None:
        self.existing, self.fail, self.statements = existing, fail, []  # type: list[str]

    def execute(self, query: str) -> list[tuple[str | None, ...]]:
        self.statements.append(query)
        if self.fail and self.fail in query:
            raise PgError({"C": "XX000", "M": "boom"})
        return []

    def database(self, name: str) -> tuple[str, str | None] | None:
        return ("1", None) if name in self.existing else None


def test_a_failed_swap_leaves_the_app_database_in_place_and_open() -> None:
    conn = Recorder({"app", "app__devenv_incoming"}, fail="RENAME TO")
    with pytest.raises(PgError):
        snapshots.swap_in(conn, "app", "app__devenv_incoming")  # type: ignore[arg-type]
    assert not [s for s in conn.statements if s.startswith('DROP DATABASE "app"')]
    assert conn.statements[-1] == 'ALTER DATABASE "app" WITH ALLOW_CONNECTIONS true'


def test_the_swap_renames_both_in_one_transaction_then_drops_the_old_contents() -> None:
    conn = Recorder({"app", "app__devenv_incoming"})
    snapshots.swap_in(conn, "app", "app__devenv_incoming")  # type: ignore[arg-type]
    swap = next(s for s in conn.statements if "RENAME" in s)
    assert swap.startswith(
        'ALTER DATABASE "app" RENAME TO "app__devenv_outgoing"; ALTER DATABASE "app__devenv_incoming"'
    )
    assert "devenv:seeded" in swap
    assert conn.statements[-1] == 'DROP DATABASE "app__devenv_outgoing" WITH (FORCE)'


# -- refusals through a context with fakes --------------------------------------------------------------------------
def _stack(example: Project, monkeypatch: pytest.MonkeyPatch) -> tuple[Project, FakeRuntime, FakeConnectors]:
    for var in ("DEVENV_POSTGRES_PORT", "DEVENV_REDIS_PORT", "DEVENV_SERVER_PORT"):
        monkeypatch.setenv(var, "0")
    project = load_project(example.root)
    runtime = FakeRuntime(
        states=[
            state("postgres", health="healthy", ports=PUBLISHED["postgres"]),
            state("redis", health="healthy", ports=PUBLISHED["redis"]),
            state("migrate", "exited"),
            state("server", health="healthy", ports=PUBLISHED["server"]),
        ]
    )
    fakes = FakeConnectors()
    up(context_of(project, runtime=runtime, connectors=fakes))  # .env, the cluster mark, the template
    return project, runtime, fakes


def test_nothing_runs_on_a_postgres_without_this_stacks_mark(example: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    project, runtime, fakes = _stack(example, monkeypatch)
    fakes.cluster.databases["postgres"] = "devenv-project:someone-else@/elsewhere"
    before = dict(fakes.cluster.databases)
    for call in (
        lambda c: snapshots.take(c, "x"),
        lambda c: snapshots.restore(c, "x"),
        lambda c: snapshots.remove(c, "x"),
        lambda c: snapshots.listing(c),
        lambda c: dump.dump(c, project.root / "x.dump"),
    ):
        with pytest.raises(NotOurDatabase):
            call(context_of(project, runtime=runtime, connectors=fakes))
    assert fakes.cluster.databases == before and not (project.root / "x.dump").exists()
    assert not [c for c in runtime.calls if c[0].startswith("exec")]


def test_a_snapshot_is_never_overwritten_and_a_missing_one_is_named(
    example: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    project, runtime, fakes = _stack(example, monkeypatch)
    db = next(n for n, m in fakes.cluster.databases.items() if m == "devenv:seeded")
    snapshots.take(context_of(project, runtime=runtime, connectors=fakes), "one")
    assert marks.snapshot_name(db, "one") in fakes.cluster.databases
    with pytest.raises(SnapshotExists, match=r"'one' of .* exists already"):
        snapshots.take(context_of(project, runtime=runtime, connectors=fakes), "one")
    with pytest.raises(SnapshotNotFound, match="no snapshot 'two'") as info:
        snapshots.restore(context_of(project, runtime=runtime, connectors=fakes), "two")
    assert info.value.exit_code == ExitCode.USAGE and "devenv db list" in (info.value.hint or "")


def test_a_failed_dump_leaves_no_file(example: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    project, runtime, fakes = _stack(example, monkeypatch)
    runtime.exec_result = (1, b"PGDMP half", "pg_dump: error: connection lost")
    target = project.root / "out" / "db.dump"
    with pytest.raises(DatabaseCommandFailed, match="no dump was written") as info:
        dump.dump(context_of(project, runtime=runtime, connectors=fakes), target)
    assert info.value.exit_code == ExitCode.DATABASE == 7 and "connection lost" in (info.value.details or "")
    assert list(target.parent.iterdir()) == []
    runtime.exec_result = (0, b"PGDMP whole", "")
    done = dump.dump(context_of(project, runtime=runtime, connectors=fakes), target)
    assert done.path == target and target.read_bytes() == b"PGDMP whole" and list(target.parent.iterdir()) == [target]
    assert target.stat().st_mode & 0o777 == 0o600
    argv = next(c for c in runtime.calls if c[0] == "exec_out")[1]
    assert argv[0] == "postgres" and argv[1][:2] == ("pg_dump", "--format=custom")


def test_a_failed_load_drops_the_new_database_and_keeps_the_app_one(
    example: Project, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    project, runtime, fakes = _stack(example, monkeypatch)
    db = next(n for n, m in fakes.cluster.databases.items() if m == "devenv:seeded")
    file = tmp_path / "x.dump"
    file.write_bytes(b"PGDMP...")
    runtime.exec_result = (1, b"", "pg_restore: error: could not read from input file")
    with pytest.raises(DatabaseCommandFailed, match=f"'{db}' was left as it was"):
        dump.load(context_of(project, runtime=runtime, connectors=fakes), file)
    assert fakes.cluster.databases[db] == "devenv:seeded" and marks.incoming_name(db) not in fakes.cluster.databases


def test_load_refuses_a_file_that_is_not_a_dump(tmp_path: Path) -> None:
    text = tmp_path / "dump.sql"
    text.write_text("CREATE TABLE x ();\n")
    with pytest.raises(UsageError, match="not a pg_dump custom-format file"):
        dump.check_dump_file(text)
    with pytest.raises(UsageError, match="No such file"):
        dump.check_dump_file(tmp_path / "missing.dump")


@pytest.mark.parametrize(
    "args", [["db", "rm", "x"], ["db", "restore", "x"], ["db", "load", "{dump}"]], ids=["rm", "restore", "load"]
)
def test_destructive_db_commands_need_yes_off_a_terminal(
    args: list[str],
    example: Project,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    file = tmp_path / "x.dump"
    file.write_bytes(b"PGDMP")
    monkeypatch.setattr("sys.stdin", open(os.devnull))  # noqa: SIM115 (closed with the test's process)
    code, _, err = run_cli([a.format(dump=file) for a in args], example.root, capsys, monkeypatch)
    assert code == 2 and "needs a confirmation" in err and "--yes" in err


class Cluster:
    """Databases by name (oid, comment) for the cache's statements; every statement recorded."""

    def __init__(self, databases: dict[str, tuple[str, str | None]]) -> None:
        self.databases, self.statements = databases, []  # type: dict[str, tuple[str, str | None]], list[str]

    def execute(self, query: str) -> list[tuple[str | None, ...]]:
        self.statements.append(query)
        if query.startswith("SELECT datname, shobj_description"):
            return [(n, c) for n, (_, c) in self.databases.items() if (c or "").startswith(marks.CACHED_MARK)]
        if query.startswith("DROP DATABASE"):
            self.databases.pop(query.split('"')[1], None)
        return []

    def database(self, name: str) -> tuple[str, str | None] | None:
        return self.databases.get(name)


def test_a_cached_key_comes_back_with_its_spare_and_the_current_one_goes_into_the_cache(tmp_path: Path) -> None:
    db = "app"
    conn = Cluster(
        {
            marks.template_name(db): ("10", marks.template_mark("kB")),
            marks.spare_name(db): ("11", marks.spare_mark("kB", "10")),
            marks.cached_template_name(db, "kA"): ("20", marks.cached_mark("kA", 100)),
            marks.cached_ready_name(db, "kA"): ("21", marks.spare_mark("kA", "20")),
        }
    )
    assert template_cache.bring_back(conn, db, "kA", 4, tmp_path) == (marks.template_name(db), "10")  # type: ignore[arg-type]
    swap = next(s for s in conn.statements if "RENAME" in s)
    # One transaction: B's template and spare into the cache, A's template and its ready copy back as the current.
    assert swap.count("RENAME TO") == 4
    assert f'"{marks.template_name(db)}" RENAME TO "{marks.cached_template_name(db, "kB")}"' in swap
    assert f'"{marks.spare_name(db)}" RENAME TO "{marks.cached_ready_name(db, "kB")}"' in swap
    assert f'"{marks.cached_ready_name(db, "kA")}" RENAME TO "{marks.spare_name(db)}"' in swap
    assert marks.template_mark("kA") in swap and "devenv-cached:kB:" in swap
    assert not [s for s in conn.statements if s.startswith("DROP DATABASE") and "IF EXISTS" not in s]
    assert template_cache.bring_back(conn, db, "kC", 4, tmp_path) is None  # not cached: nothing to bring back


def test_parking_drops_a_spare_that_is_not_the_templates_finished_copy(tmp_path: Path) -> None:
    db = "app"
    conn = Cluster(
        {
            marks.template_name(db): ("10", marks.template_mark("kB")),
            marks.spare_name(db): ("11", "devenv-spare:kB:unfinished"),
        }
    )
    template_cache.park(conn, db, 4, tmp_path)  # type: ignore[arg-type]
    assert f'DROP DATABASE "{marks.spare_name(db)}" WITH (FORCE)' in conn.statements
    park = next(s for s in conn.statements if "RENAME" in s)
    assert park.count("RENAME TO") == 1 and marks.cached_template_name(db, "kB") in park
