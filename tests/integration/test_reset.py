"""`devenv reset`: template restore, re-migrate on a new migration, --hard, and every safety rule."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import uuid

import pytest

from devenv.clients import pgwire
from devenv.core.machine import this_machine
from devenv.db.marks import cluster_mark
from tests.integration.helpers import ExampleProject, eventually, free_port

AUDIT = 'CREATE TABLE "Audit" ("id" SERIAL PRIMARY KEY, "what" TEXT);\n'


def test_soft_reset_restores_the_template_and_remigrates_on_a_new_migration(clean: ExampleProject) -> None:
    example = clean
    seeded = example.quotes()
    assert seeded
    status, _ = example.http("POST", "/v1/quotes", {"author": "Test", "text": "written before reset"})
    assert status == 201
    example.env_values()
    with example.pg() as conn:  # an open connection from the host, like a developer's psql
        assert conn.execute("select 1").fetchone() == (1,)
        done = example.devenv("reset", "--yes", "--json", check=True)
    result = json.loads(done.stdout)
    assert result["mode"] == "template" and result["redis_flushed"] is True
    assert result["from_spare"] is True  # `up` made the spare in the background; reset renamed it into place

    after = example.quotes()  # the running server reconnects
    assert "written before reset" not in after
    assert sorted(after) == sorted(seeded)
    with example.pg() as conn:
        applied = conn.execute("select count(*) from _prisma_migrations where finished_at is not null").fetchone()
        assert applied is not None and applied[0] >= 3

    migration = example.server_dir / "prisma" / "migrations" / "99990101000000_add_audit"
    migration.mkdir()
    try:
        (migration / "migration.sql").write_text(AUDIT)
        remigrated = example.devenv("reset", "--yes", "--json", check=True)
        assert json.loads(remigrated.stdout)["mode"] == "remigrated"
        with example.pg() as conn:
            assert conn.execute("select to_regclass('public.\"Audit\"') is not null").fetchone() == (True,)
        again = json.loads(example.devenv("reset", "--yes", "--json", check=True).stdout)
        assert again["mode"] == "template"  # re-templated with the new key
        assert again["from_spare"] is True and again["key"] != result["key"]  # a spare of the new template
        with example.pg() as conn:
            assert conn.execute("select to_regclass('public.\"Audit\"') is not null").fetchone() == (True,)
        assert sorted(example.quotes()) == sorted(seeded)
    finally:  # the module's stack goes back to the example's migrations (the next reset brings their template back)
        shutil.rmtree(migration)


def test_the_spare_is_the_templates_copy_and_only_devenvs_databases_are_touched(clean: ExampleProject) -> None:
    example = clean
    with example.pg("postgres") as conn:
        conn.execute("create database bystander")
    try:
        for _ in range(3):
            result = json.loads(example.devenv("reset", "--yes", "--json", check=True).stdout)
            assert result["from_spare"] is True
        dbs = example.databases()
        app = example.env_values()["POSTGRES_DB"]
        assert dbs["bystander"] is None  # untouched
        assert dbs[app] == "devenv:seeded"
        assert dbs[f"{app}__devenv_template"] == f"devenv-template:{result['key']}"
        # The next spare is being made (or made) from the template, marked with its key and the template's oid.
        example.wait_for_spare()
        with example.pg("postgres") as conn:
            rows = conn.execute(
                "select datname, oid, datallowconn, pg_get_userbyid(datdba) from pg_database where datname = any(%s)",
                ([app, f"{app}__devenv_template", f"{app}__devenv_spare"],),
            ).fetchall()
        info = {name: (oid, allow, owner) for name, oid, allow, owner in rows}
        template_oid = info[f"{app}__devenv_template"][0]
        assert example.databases()[f"{app}__devenv_spare"] == f"devenv-spare:{result['key']}:{template_oid}"
        assert info[f"{app}__devenv_spare"][1:] == (False, "app")  # nobody can connect to it (and hold up the rename)
        assert info[app][1:] == (True, "app")  # the swapped-in copy is open and the app user's
    finally:
        with example.pg("postgres") as conn:
            conn.execute("drop database if exists bystander")


def test_a_spare_that_is_not_the_current_templates_copy_is_never_used(clean: ExampleProject) -> None:
    example = clean
    example.wait_for_spare()
    app = example.env_values()["POSTGRES_DB"]
    with example.pg("postgres") as conn:  # as if made from an older template (or left unfinished)
        conn.execute(f"comment on database {app}__devenv_spare is 'devenv-spare:0123456789abcdef:1'")
    status, _ = example.http("POST", "/v1/quotes", {"author": "Test", "text": "gone after reset"})
    assert status == 201
    result = json.loads(example.devenv("reset", "--yes", "--json", check=True).stdout)
    assert result["mode"] == "template" and result["from_spare"] is False  # copied from the template instead
    assert "gone after reset" not in example.quotes()
    example.wait_for_spare()
    assert str(example.databases()[f"{app}__devenv_spare"]).startswith(f"devenv-spare:{result['key']}:")
    again = json.loads(example.devenv("reset", "--yes", "--json", check=True).stdout)
    assert again["from_spare"] is True


def test_reset_without_a_spare_copies_from_the_template(example: ExampleProject) -> None:
    (example.root / "devenv.toml").write_text("[reset]\nspare = false\n")
    example.devenv("up", check=True)
    status, _ = example.http("POST", "/v1/quotes", {"author": "Test", "text": "gone after reset"})
    assert status == 201
    result = json.loads(example.devenv("reset", "--yes", "--json", check=True).stdout)
    assert result["mode"] == "template" and result["from_spare"] is False
    assert "gone after reset" not in example.quotes()
    app = example.env_values()["POSTGRES_DB"]
    assert f"{app}__devenv_spare" not in example.databases()


def test_reset_needs_yes_without_a_terminal_and_changes_nothing(clean: ExampleProject) -> None:
    example = clean
    with example.pg() as conn:
        conn.execute("create table keepme (x int)")
    for args in (["reset"], ["reset", "--hard"], ["down", "--volumes"]):
        done = example.devenv(*args)
        assert done.returncode == 2, done.stderr
        assert "--yes" in done.stderr and "Hint:" in done.stderr
    with example.pg() as conn:
        assert conn.execute("select to_regclass('public.keepme') is not null").fetchone() == (True,)


def test_reset_refuses_a_database_that_is_not_the_stacks_own(clean: ExampleProject) -> None:
    example = clean
    env_file = example.server_dir / ".env"
    original = env_file.read_text()
    env_file.write_text(
        re.sub(r"(?m)^DATABASE_URL=.*$", "DATABASE_URL=postgresql://app:x@db.example.internal:5432/quotes", original)
    )
    done = example.devenv("reset", "--yes")
    assert done.returncode == 2
    assert "db.example.internal:5432" in done.stderr and "Hint:" in done.stderr
    env_file.write_text(original)

    # Another Postgres on the port devenv would use (same credentials): refused, because it lacks the stack's mark.
    env = example.env_values()
    other_port = free_port()
    other = f"devenv-other-{uuid.uuid4().hex[:6]}"
    subprocess.run(
        [
            "docker", "run", "-d", "--name", other, "-p", f"127.0.0.1:{other_port}:5432",
            "-e", f"POSTGRES_USER={env['POSTGRES_USER']}", "-e", f"POSTGRES_PASSWORD={env['POSTGRES_PASSWORD']}",
            "-e", f"POSTGRES_DB={env['POSTGRES_DB']}", example.env["DEVENV_POSTGRES_IMAGE"],
        ],
        check=True, capture_output=True,
    )  # fmt: skip
    try:
        example.env["DEVENV_POSTGRES_PORT"] = str(other_port)
        env_file.write_text(re.sub(r"127\.0\.0\.1:\d+/", f"127.0.0.1:{other_port}/", original))
        pg_isready = ["docker", "exec", other, "pg_isready", "-h", "127.0.0.1"]
        eventually(lambda: subprocess.run(pg_isready, capture_output=True).returncode == 0, interval=0.2)
        refused = example.devenv("reset", "--yes")
        assert refused.returncode == 2, refused.stderr
        assert "not the" in refused.stderr and "own container" in refused.stderr
    finally:
        env_file.write_text(original)  # the module's stack is the stack's own again
        subprocess.run(["docker", "rm", "-f", "-v", other], capture_output=True, check=False)


def test_pgwire_speaks_to_the_stacks_postgres(clean: ExampleProject) -> None:
    """reset's own client (devenv.clients.pgwire) against the real server: SCRAM login, quoting round trips, errors."""
    example = clean
    env = example.env_values()
    args = ("127.0.0.1", example.port("postgres"), env["POSTGRES_USER"])
    with pgwire.connect(*args, env["POSTGRES_PASSWORD"], env["POSTGRES_DB"]) as conn:
        assert conn.scalar("select current_setting('password_encryption')") == "scram-sha-256"
        for text in ("it's", 'a "quoted" name', "back\\slash", "ünïcødé", "two\nlines", "$$dollar$$"):
            assert conn.scalar(f"select {pgwire.quote_literal(text)}") == text
            conn.execute(f"create temp table {pgwire.quote_ident(text)} (x int)")
            assert conn.scalar(f"select relname from pg_class where relname = {pgwire.quote_literal(text)}") == text
        assert conn.execute("select 1, null::text union all select 2, 'x'") == [("1", None), ("2", "x")]
        with pytest.raises(pgwire.PgError) as err:
            conn.execute("select * from no_such_table")
        assert err.value.sqlstate == "42P01"
    with pytest.raises(pgwire.PgError) as refused:
        pgwire.connect(*args, "not-the-password", env["POSTGRES_DB"])
    assert refused.value.sqlstate == "28P01"


def test_hard_reset_recreates_only_the_stacks_volumes(clean: ExampleProject) -> None:
    example = clean
    bystander = f"devenv-bystander-{uuid.uuid4().hex[:6]}"
    subprocess.run(["docker", "volume", "create", bystander], check=True, capture_output=True)
    try:
        before = {
            v: subprocess.run(
                ["docker", "volume", "inspect", "-f", "{{.CreatedAt}}", v], capture_output=True, text=True, check=True
            ).stdout.strip()
            for v in example.resources()["volumes"]
        }
        assert len(before) == 2
        status, _ = example.http("POST", "/v1/quotes", {"author": "Test", "text": "gone after --hard"})
        assert status == 201
        done = example.devenv("reset", "--hard", "--yes", "--json", check=True)
        assert json.loads(done.stdout.splitlines()[-1])["mode"] == "hard"
        after = example.resources()["volumes"]
        assert sorted(after) == sorted(before)
        created = {
            v: subprocess.run(
                ["docker", "volume", "inspect", "-f", "{{.CreatedAt}}", v], capture_output=True, text=True, check=True
            ).stdout.strip()
            for v in after
        }
        assert all(created[v] != before[v] for v in after)  # new volumes under the same names
        assert "gone after --hard" not in example.quotes()
        assert subprocess.run(["docker", "volume", "inspect", bystander], capture_output=True).returncode == 0
    finally:
        subprocess.run(["docker", "volume", "rm", bystander], capture_output=True, check=False)


def test_an_app_database_named_postgres_is_reset_and_marked_on_template1(example: ExampleProject) -> None:
    template = example.server_dir / ".env.template"
    template.write_text(template.read_text().replace("POSTGRES_DB=quotes", "POSTGRES_DB=postgres"))
    example.devenv("up", check=True)
    assert example.env_values()["POSTGRES_DB"] == "postgres"
    seeded = example.quotes()
    status, _ = example.http("POST", "/v1/quotes", {"author": "Test", "text": "in the postgres database"})
    assert status == 201
    for _ in range(2):  # from the spare, then again with the spare `up` or the first reset left
        done = json.loads(example.devenv("reset", "--yes", "--json", check=True).stdout)
        assert done["mode"] == "template"
        assert sorted(example.quotes()) == sorted(seeded)
    with example.pg("template1") as conn:  # devenv's maintenance database when the app's is postgres
        names = [r[0] for r in conn.execute("select datname from pg_database order by datname").fetchall()]
        mark = conn.execute("select shobj_description(oid, 'pg_database') from pg_database where datname = 'template1'")
        machine = this_machine().id  # the mark names the stack, its checkout and the machine it is on
        assert (mark.fetchone() or ("",))[0] == cluster_mark(example.name, str(example.root.resolve()), machine)
    assert "postgres" in names
