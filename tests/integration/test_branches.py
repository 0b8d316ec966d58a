"""A database per git branch on the real engine: data survives switches through `reset`, `up` and the hook."""

from __future__ import annotations

import json
import subprocess

from tests.integration.helpers import ExampleProject


def _git(example: ExampleProject, *args: str) -> None:
    subprocess.run(["git", *args], cwd=example.root, env=example.env, check=True, capture_output=True, text=True)


def _write(example: ExampleProject, text: str) -> None:
    with example.pg() as conn:
        conn.execute("insert into quotes (author, text) values ('branch test', %s)", (text,))


def _rows(example: ExampleProject) -> list[str]:
    with example.pg() as conn:
        return sorted(str(r[0]) for r in conn.execute("select text from quotes where author = 'branch test'"))


def test_each_branch_keeps_its_own_data_across_switches(example: ExampleProject) -> None:
    example.env.update(DEVENV_DB_PER_BRANCH="true", GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.com",
                       GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@example.com")  # fmt: skip
    _git(example, "init", "-q", "-b", "a")
    _git(example, "add", "-A")
    _git(example, "commit", "-q", "-m", "example")
    example.devenv("up", check=True)
    app = example.env_values()["POSTGRES_DB"]
    _write(example, "written on a")

    _git(example, "checkout", "-q", "-b", "b")  # reset: a's database is parked, b gets a fresh one
    reset = example.devenv("reset", "--yes", check=True)
    assert f"parked 'a''s database as {app}__branch_a" in reset.stderr, reset.stderr
    assert _rows(example) == []
    _write(example, "written on b")
    status, _ = example.http("GET", "/v1/quotes")  # the running server follows the rename (same DATABASE_URL)
    assert status == 200

    _git(example, "checkout", "-q", "a")  # up: b's database is parked, a's own comes back
    up = example.devenv("up", check=True)
    assert "'a' gets its own database back" in up.stdout + up.stderr
    assert _rows(example) == ["written on a"]

    listed = json.loads(example.devenv("db", "branches", "--json", check=True).stdout)
    by_branch = {b["branch"]: b for b in listed["branches"]}
    assert listed["enabled"] is True and listed["checked_out"] == "a"
    assert by_branch["a"]["database"] == app and by_branch["a"]["current"] is True
    assert by_branch["b"]["database"] == f"{app}__branch_b" and by_branch["b"]["state"] == "parked"

    installed = example.devenv("hooks", "install", check=True)
    assert "post-checkout: written" in installed.stdout
    _git(example, "checkout", "-q", "b")  # the hook switches at checkout
    assert _rows(example) == ["written on b"]
    with example.pg("postgres") as conn:
        marks = dict(conn.execute("select datname, shobj_description(oid, 'pg_database') from pg_database"))
    assert marks[app] == "devenv:seeded:branch=b" and marks[f"{app}__branch_a"] == "devenv-branch:a"
    assert f"{app}__devenv_incoming" not in marks


def test_a_database_in_the_way_of_parking_is_never_touched(example: ExampleProject) -> None:
    example.env.update(DEVENV_DB_PER_BRANCH="true", GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.com",
                       GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@example.com")  # fmt: skip
    _git(example, "init", "-q", "-b", "a")
    _git(example, "add", "-A")
    _git(example, "commit", "-q", "-m", "example")
    example.devenv("up", "postgres", "redis", "migrate", check=True)
    app = example.env_values()["POSTGRES_DB"]
    _write(example, "written on a")
    with example.pg("postgres") as conn:
        conn.execute(f"create database {app}__branch_a")  # someone's own, without devenv's mark
    _git(example, "checkout", "-q", "-b", "b")
    done = example.devenv("db", "switch")
    assert done.returncode == 2, done.stderr
    assert f"'{app}__branch_a' exists and does not carry devenv's mark" in done.stderr and "Hint:" in done.stderr
    assert _rows(example) == ["written on a"]  # the previous database is still in place


def test_a_branch_with_a_new_migration_gets_a_database_migrated_for_it(example: ExampleProject) -> None:
    example.env.update(DEVENV_DB_PER_BRANCH="true", GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.com",
                       GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@example.com")  # fmt: skip
    _git(example, "init", "-q", "-b", "a")
    _git(example, "add", "-A")
    _git(example, "commit", "-q", "-m", "example")
    example.devenv("up", "postgres", "redis", "migrate", check=True)
    _write(example, "written on a")
    _git(example, "checkout", "-q", "-b", "b")
    migration = example.server_dir / "prisma" / "migrations" / "99990101000000_add_audit"
    migration.mkdir()
    (migration / "migration.sql").write_text('CREATE TABLE "Audit" ("id" SERIAL PRIMARY KEY, "what" TEXT);\n')
    _git(example, "add", "-A")
    _git(example, "commit", "-q", "-m", "audit")
    up = example.devenv("up", "postgres", "redis", "migrate", check=True)
    assert "'b' gets a new database" in up.stdout + up.stderr, up.stdout + up.stderr

    def audit() -> bool:
        with example.pg() as conn:
            row = conn.execute("select to_regclass('public.\"Audit\"') is not null").fetchone()
        return bool(row and row[0])

    assert audit() and _rows(example) == []  # migrated for b, and seeded
    with example.pg() as conn:
        seeded = conn.execute("select count(*) from quotes").fetchone()
    assert seeded is not None and seeded[0] > 0
    _git(example, "checkout", "-q", "a")
    example.devenv("up", "postgres", "redis", "migrate", check=True)
    assert not audit() and _rows(example) == ["written on a"]  # a's own, as a left it
