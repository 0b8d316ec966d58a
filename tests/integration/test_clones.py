"""A clone per test worker on the real engine: `devenv db clones N` and `devenv run --workers N`."""

from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path

import psycopg
from dotenv import dotenv_values

from tests.integration.helpers import ExampleProject

# Each worker writes a row of its own into the database its URL names and reports what it saw there.
WORKER = """
import json, os, sys, psycopg
out = {}
for i in range(1, int(os.environ["DEVENV_WORKERS"]) + 1):
    with psycopg.connect(os.environ[f"DATABASE_URL_{i}"].split("?")[0], autocommit=True) as conn:
        conn.execute("insert into quotes (author, text) values (%s, %s)", (f"worker {i}", f"row of worker {i}"))
        db = conn.execute("select current_database()").fetchone()[0]
        rows = [r[0] for r in conn.execute("select author from quotes where author like 'worker %'")]
        out[str(i)] = {"db": db, "workers": rows}
out["workers"] = os.environ["DEVENV_WORKERS"]
out["url"] = os.environ["DATABASE_URL"]
json.dump(out, open(sys.argv[1], "w"))
sys.exit(int(sys.argv[2]))
"""


def _seen(url: str) -> tuple[str, int]:
    with psycopg.connect(url.split("?")[0]) as conn:
        db = conn.execute("select current_database()").fetchone()
        count = conn.execute("select count(*) from quotes").fetchone()
    assert db is not None and count is not None
    return str(db[0]), int(count[0])


def test_db_clones_gives_each_worker_its_own_copy_of_the_template(clean: ExampleProject, tmp_path: Path) -> None:
    example = clean
    app = example.env_values()["POSTGRES_DB"]
    env_file = tmp_path / "workers.env"
    done = example.devenv("db", "clones", "3", "--json", "--env-file", str(env_file), check=True)
    result = json.loads(done.stdout)
    urls = [c["url"] for c in result["clones"]]
    assert [c["database"] for c in result["clones"]] == [f"{app}_w1", f"{app}_w2", f"{app}_w3"]
    assert {k: v for k, v in dotenv_values(env_file).items()} == {**result["variables"], "DEVENV_WORKERS": "3"}
    seeded = _seen(urls[0])[1]
    assert seeded > 0  # a copy of the migrated, seeded template
    with psycopg.connect(urls[0].split("?")[0], autocommit=True) as conn:
        conn.execute("insert into quotes (author, text) values ('w1', 'only in the first clone')")
    assert [_seen(u) for u in urls] == [(f"{app}_w1", seeded + 1), (f"{app}_w2", seeded), (f"{app}_w3", seeded)]
    dbs = example.databases()
    assert dbs[f"{app}_w2"] == f"devenv-clone:2:{result['key']}"

    again = json.loads(example.devenv("db", "clones", "1", "--json", check=True).stdout)  # fresh, fewer
    assert _seen(again["clones"][0]["url"]) == (f"{app}_w1", seeded)
    assert sorted(again["dropped"]) == [f"{app}_w2", f"{app}_w3"]
    example.devenv("db", "clones", "0", check=True)
    assert not [n for n in example.databases() if n.startswith(f"{app}_w")]


def test_db_clones_refuses_a_database_of_that_name_that_is_not_a_clone(clean: ExampleProject) -> None:
    example = clean
    env = example.env_values()
    app = env["POSTGRES_DB"]
    with example.pg("postgres") as conn:
        conn.execute(f"create database {app}_w2")
    try:
        done = example.devenv("db", "clones", "2")
        assert done.returncode == 2, done.stderr
        assert f"'{app}_w2' exists and is not one of devenv's clones" in done.stderr and "Hint:" in done.stderr
        dbs = example.databases()
        assert f"{app}_w2" in dbs and f"{app}_w1" not in dbs  # nothing made, nothing dropped
    finally:  # someone's own database: the module's stack does without it
        with example.pg("postgres") as conn:
            conn.execute(f"drop database if exists {app}_w2")


def test_run_workers_exports_a_url_per_worker_and_drops_the_clones_even_when_cmd_fails(
    clean: ExampleProject, tmp_path: Path
) -> None:
    example = clean
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    out = tmp_path / "seen.json"
    name = f"workers-{uuid.uuid4().hex[:6]}"
    try:
        done = example.ci(
            "run", "--name", name, "--workers", "3", "--keep", "--", sys.executable, str(script), str(out), "7"
        )
        assert done.returncode == 7, done.stderr  # CMD's exit code, passed through
        seen = json.loads(out.read_text())
        app = example.env_values()["POSTGRES_DB"]
        assert seen.pop("workers") == "3"
        assert {k: v["db"] for k, v in seen.items() if k.isdigit()} == {
            "1": f"{app}_w1", "2": f"{app}_w2", "3": f"{app}_w3",
        }  # fmt: skip
        for worker in ("1", "2", "3"):  # each saw its own row only: its own database
            assert seen[worker]["workers"] == [f"worker {worker}"]
        # --keep leaves the CI stack up: its clones are gone all the same.
        with psycopg.connect(seen["url"].split("?")[0]) as conn:
            names = [str(r[0]) for r in conn.execute("select datname from pg_database")]
        assert app in names and not [n for n in names if n.startswith(f"{app}_w")]
    finally:
        example.ci("ci", "down", "--name", name)


def test_the_examples_worker_tests_each_get_their_own_clone(clean: ExampleProject) -> None:
    """The example's workers-*.test.js run at once under `devenv run --workers 3`, in the stack's server image
    (which has node_modules) on the host's network, where the exported URLs point."""
    example = clean
    script = (
        'img=$(docker ps --filter "label=com.docker.compose.project=$DEVENV_PROJECT_NAME" '
        '--filter label=com.docker.compose.service=server --format "{{.Image}}" | head -n1) && '
        "exec docker run --rm --network host -e DEVENV_WORKERS -e DATABASE_URL_1 -e DATABASE_URL_2 "
        '-e DATABASE_URL_3 "$img" npm run --silent test:workers'
    )
    name = f"wtests-{uuid.uuid4().hex[:6]}"
    done = example.ci("run", "--name", name, "--workers", "3", "--", "sh", "-c", script)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    app = example.env_values()["POSTGRES_DB"]
    seen = sorted(line.split(" on ")[-1].strip() for line in out.splitlines() if ": worker " in line and " on " in line)
    assert seen == [f"{app}_w1", f"{app}_w2", f"{app}_w3"], out  # three files, three databases
    assert "pass 6" in out and "fail 0" in out, out
