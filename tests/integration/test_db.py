"""`devenv db`: named snapshots, the template cache per migrations key, dump and load, on the real engine."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tests.integration.helpers import ExampleProject, make_project, remove


def _authors(example: ExampleProject) -> set[str]:
    with example.pg() as conn:
        return {str(row[0]) for row in conn.execute("select author from quotes").fetchall()}


def _write(example: ExampleProject, author: str) -> None:
    with example.pg() as conn:
        conn.execute("insert into quotes (author, text) values (%s, %s)", (author, f"by {author}"))


def _json(example: ExampleProject, *args: str) -> dict[str, object]:
    done = example.devenv(*args, "--json", check=True)
    return dict(json.loads(done.stdout))


def test_snapshot_restore_list_rm(clean: ExampleProject) -> None:
    example = clean
    _write(example, "before-snapshot")
    taken = _json(example, "db", "snapshot", "base")
    assert taken["action"] == "snapshot" and taken["name"] == "base"
    _write(example, "after-snapshot")
    example.redis().set("cache:after", "1")
    with example.pg() as conn:  # an open session, like the running server's pool or a developer's psql
        assert conn.execute("select 1").fetchone() == (1,)
        restored = _json(example, "db", "restore", "base", "--yes")
    assert restored["action"] == "restore" and restored["redis_flushed"] is True
    authors = _authors(example)
    assert "before-snapshot" in authors and "after-snapshot" not in authors
    assert example.redis().get("cache:after") is None
    # Again: the ready copy made after the last restore is swapped in, and the data is the snapshot's once more.
    _write(example, "after-restore")
    again = _json(example, "db", "restore", "base", "--yes")
    assert again["from_ready"] is True
    assert "after-restore" not in _authors(example) and "before-snapshot" in _authors(example)
    status, _ = example.http("GET", "/v1/quotes")  # the running server reconnects
    assert status == 200

    listing = _json(example, "db", "list")
    kinds = {(e["kind"], e["name"]): e for e in listing["entries"]}  # type: ignore[union-attr, index, attr-defined]
    snap = kinds[("snapshot", "base")]
    assert snap["size"] > 0 and snap["current"] is True and snap["key"] == listing["key"]
    assert any(k == "template" for k, _ in kinds)
    human = example.devenv("db", "list", check=True).stdout
    assert "base" in human and "(current)" in human

    dup = example.devenv("db", "snapshot", "base")
    assert dup.returncode == 2 and "exists already" in dup.stderr
    refused = example.devenv("db", "rm", "base")  # no terminal, no --yes
    assert refused.returncode == 2 and "--yes" in refused.stderr
    assert _json(example, "db", "rm", "base", "--yes")["action"] == "rm"
    gone = example.devenv("db", "restore", "base", "--yes")
    assert gone.returncode == 2 and "no snapshot 'base'" in gone.stderr
    with example.pg("postgres") as conn:
        names = {str(r[0]) for r in conn.execute("select datname from pg_database").fetchall()}
    assert not [n for n in names if "__devenv_snap" in n]  # the snapshot and its ready copy


def test_db_commands_refuse_a_postgres_without_the_stacks_mark(clean: ExampleProject) -> None:
    example = clean
    with example.pg("postgres") as conn:
        mark = conn.execute("select shobj_description(oid, 'pg_database') from pg_database where datname = 'postgres'")
        original = mark.fetchone()
        assert original is not None
        conn.execute("comment on database postgres is 'someone else'")
    try:
        for args in (["snapshot", "x"], ["list"], ["dump", "-o", str(example.root / "x.dump")]):
            done = example.devenv("db", *args)
            assert done.returncode == 2 and "not the" in done.stderr, (args, done.stderr)
        assert not (example.root / "x.dump").exists()
    finally:
        with example.pg("postgres") as conn:
            conn.execute(f"comment on database postgres is '{original[0]}'")


def test_reset_after_switching_back_to_a_cached_migrations_key_reuses_its_template(clean: ExampleProject) -> None:
    example = clean
    try:
        _switch_back_and_forth(example)
    finally:  # the module's stack goes back to the example's migrations
        shutil.rmtree(example.server_dir / "prisma" / "migrations" / "99990101000000_add_audit", ignore_errors=True)


def _switch_back_and_forth(example: ExampleProject) -> None:
    first = _json(example, "reset", "--yes")
    assert first["mode"] == "template"
    example.wait_for_spare()  # A's spare is made before the switch: it goes into the cache with A's template
    migration = example.server_dir / "prisma" / "migrations" / "99990101000000_add_audit"
    migration.mkdir()
    (migration / "migration.sql").write_text('CREATE TABLE "Audit" ("id" SERIAL PRIMARY KEY, "what" TEXT);\n')
    branch_b = _json(example, "reset", "--yes")
    assert branch_b["mode"] == "remigrated" and branch_b["key"] != first["key"]

    saved = example.root.parent / "audit-migration"
    example.wait_for_spare()  # B's spare is made: it goes into the cache with B's template
    shutil.move(migration, saved)  # back to "branch A"
    back = _json(example, "reset", "--yes")
    assert back["mode"] == "cached" and back["key"] == first["key"]  # no migrate job ran: the template came back
    assert back["from_spare"] is True  # with the spare A's template had: renamed into place, nothing copied
    with example.pg() as conn:
        assert conn.execute("select to_regclass('public.\"Audit\"') is null").fetchone() == (True,)
    assert _json(example, "reset", "--yes")["mode"] == "template"  # and it is the current template again

    example.wait_for_spare()
    shutil.move(saved, migration)  # "branch B" once more: its template is in the cache too
    forth = _json(example, "reset", "--yes")
    assert forth["mode"] == "cached" and forth["key"] == branch_b["key"] and forth["from_spare"] is True
    with example.pg() as conn:
        assert conn.execute("select to_regclass('public.\"Audit\"') is not null").fetchone() == (True,)
    listing = _json(example, "db", "list")
    entries = listing["entries"]
    assert isinstance(entries, list)
    assert {(e["kind"], e["key"], e["current"]) for e in entries} == {
        ("template", branch_b["key"], True),
        ("cached", first["key"], False),
    }


def test_a_dump_loads_into_a_fresh_stack(clean: ExampleProject, tmp_path: Path) -> None:
    example = clean
    _write(example, "dumped-author")
    dump = tmp_path / "dumps" / "quotes.dump"
    result = _json(example, "db", "dump", "-o", str(dump))
    assert result["path"] == str(dump) and dump.read_bytes()[:5] == b"PGDMP"
    assert not list(dump.parent.glob("*.partial"))
    default = example.devenv("db", "dump", check=True)
    assert "/.devenv/dumps/quotes-" in default.stdout

    other = make_project(tmp_path / "fresh")
    try:
        other.devenv("up", check=True)
        assert "dumped-author" not in _authors(other)
        refused = other.devenv("db", "load", str(dump))
        assert refused.returncode == 2 and "--yes" in refused.stderr
        loaded = _json(other, "db", "load", str(dump), "--yes")
        assert loaded["action"] == "load" and loaded["redis_flushed"] is True
        assert "dumped-author" in _authors(other)
        status, _ = other.http("GET", "/v1/quotes")
        assert status == 200

        broken = tmp_path / "broken.dump"
        broken.write_bytes(dump.read_bytes()[:200])  # the right header, then nothing
        failed = other.devenv("db", "load", str(broken), "--yes")
        assert failed.returncode == 7 and "left as it was" in failed.stderr, failed.stderr
        assert "dumped-author" in _authors(other)  # the app database is the one loaded before
        not_a_dump = other.devenv("db", "load", str(other.server_dir / ".env"), "--yes")
        assert not_a_dump.returncode == 2 and "not a pg_dump custom-format file" in not_a_dump.stderr
        with other.pg("postgres") as conn:
            names = {str(r[0]) for r in conn.execute("select datname from pg_database").fetchall()}
        assert not [n for n in names if n.endswith(("__devenv_incoming", "__devenv_outgoing"))]
    finally:
        remove(other)
