"""Projects as people have them, on the real engine, with zero configuration: a single TypeScript app with
.env.example, a literal FROM and /health only ({"status":"ok"}); a server without a Dockerfile; a build step that
fails; Docker-chosen ports that must reach .env; a rebuild after a failed migration; `devenv run`'s process group."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis
from dotenv import dotenv_values

from tests.fixtures.helpers import FIXTURES
from tests.integration.helpers import ExampleProject, eventually, labelled, make_project, remove
from tests.integration.helpers import events as _events


def _fixture(tmp_path: Path, name: str, server: str, images: dict[str, str]) -> ExampleProject:
    project = make_project(tmp_path, FIXTURES / name, server)
    if images["node"] != "node:20-bookworm-slim":  # offline: the literal FROM is mapped, the Dockerfile untouched
        project.env["DEVENV_IMAGE_MAP"] = f"node:20-bookworm-slim={images['node']}"
    return project


@pytest.fixture
def ts_app(tmp_path: Path, images: dict[str, str]) -> Iterator[ExampleProject]:
    project = _fixture(tmp_path, "ts-app", ".", images)
    try:
        yield project
    finally:
        remove(project)


@pytest.fixture
def host_app(tmp_path: Path, images: dict[str, str]) -> Iterator[ExampleProject]:
    project = _fixture(tmp_path, "host-app", "apps/server", images)
    try:
        yield project
    finally:
        remove(project)


def test_a_single_ts_app_comes_up_with_zero_configuration(ts_app: ExampleProject) -> None:
    done = ts_app.devenv("up", "--json")
    assert done.returncode == 0, done.stderr
    events = _events(done.stdout)
    summary = events[-1]
    assert [r["service"] for r in summary["services"]] == ["postgres", "redis", "server"]  # type: ignore[index]
    building = [e for e in events if e.get("phase") == "building" and str(e.get("detail", "")).startswith("[")]
    assert any("RUN npm run build" in str(e["detail"]) for e in building)  # the build's steps, as progress
    notes = " ".join(summary["notes"])  # type: ignore[arg-type]
    assert ".env is written from .env.example" in notes
    assert "GET /health/ready → 404, so readiness is read from /health" in notes
    assert set(summary["env_generated"]) == {"POSTGRES_PASSWORD", "JWT_SECRET"}  # type: ignore[arg-type]

    values = {k: v or "" for k, v in dotenv_values(ts_app.root / ".env").items()}
    assert values["JWT_SECRET"] != "your-super-secret-jwt-key-change-in-production"
    with psycopg.connect(values["DATABASE_URL"].split("?")[0], connect_timeout=5) as conn:
        assert conn.execute("select current_user, current_database()").fetchone() == ("postgres", "tsapp")
    assert redis.Redis.from_url(values["REDIS_URL"], socket_timeout=5).ping()
    with urllib.request.urlopen(f"http://127.0.0.1:{ts_app.port('server')}/health", timeout=5) as resp:
        assert json.loads(resp.read()) == {"status": "ok"}

    status = ts_app.devenv("status", "--json")
    assert status.returncode == 0, status.stdout + status.stderr
    assert json.loads(status.stdout)["status"] == "healthy"  # {"status":"ok"} is healthy
    reset = ts_app.devenv("reset", "--yes")
    assert reset.returncode == 0, reset.stderr
    run = ts_app.devenv("run", "--", sys.executable, "-c", "import os; print(os.environ['SERVER_URL'])")
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip().splitlines()[-1].startswith("http://127.0.0.1:")


def test_without_a_dockerfile_only_postgres_runs_and_env_reaches_it(host_app: ExampleProject) -> None:
    done = host_app.devenv("up")
    assert done.returncode == 0, done.stderr
    said = done.stdout + done.stderr  # the notes are said as up decides (stderr), the summary on stdout
    assert "server: no apps/server/Dockerfile: the server runs on the host" in said
    assert "redis: not in the stack" in said
    assert {c.split("-")[-2] for c in labelled(f"devenv.project={host_app.name}")["containers"]} == {"postgres"}
    values = {k: v or "" for k, v in dotenv_values(host_app.server_dir / ".env").items()}
    assert values["SESSION_SECRET"] != "change_me_to_a_long_random_string"
    with psycopg.connect(values["DATABASE_URL"], connect_timeout=5) as conn:
        assert conn.execute("select current_user, current_database()").fetchone() == ("postgres", "hostapp")
    refused = host_app.devenv("up", "server")
    assert refused.returncode == 2 and "has no server" in refused.stderr


def test_a_failed_build_step_is_its_own_error_naming_the_step(tmp_path: Path, images: dict[str, str]) -> None:
    project = _fixture(tmp_path, "broken-build", ".", images)
    try:
        done = project.devenv("up")
        assert done.returncode == 6, done.stdout + done.stderr
        [first] = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
        assert (
            first.startswith("Error: server image: build failed at step [3/3] RUN echo") and "(Dockerfile:4)" in first
        )
        assert "exit code: 3" in first and "Hint:" in first
        assert "npm ERR! 404" in done.stderr  # the step's own output, below the line
        assert labelled(f"devenv.project={project.name}")["containers"] == []  # nothing started
    finally:
        remove(project)


def test_docker_chosen_ports_reach_env_and_reset_works(example: ExampleProject) -> None:
    for service in ("POSTGRES", "REDIS", "SERVER"):
        example.env[f"DEVENV_{service}_PORT"] = "0"
    done = example.devenv("up")
    assert done.returncode == 0, done.stderr
    assert ".env now points at the ports in use" in done.stdout
    values = example.env_values()
    published = (
        subprocess.run(
            ["docker", "port", example.container("postgres"), "5432/tcp"], capture_output=True, text=True, check=True
        )
        .stdout.split(":")[-1]
        .strip()
    )
    assert values["POSTGRES_PORT"] == published and f":{published}/" in values["DATABASE_URL"]
    with psycopg.connect(values["DATABASE_URL"].split("?")[0], connect_timeout=5) as conn:
        assert conn.execute("select 1").fetchone() == (1,)
    assert example.devenv("reset", "--yes").returncode == 0
    check = example.devenv("env", "--check")
    assert check.returncode == 0, check.stdout + check.stderr


def test_only_this_ups_containers_count_after_a_failed_migrate_job(example: ExampleProject) -> None:
    toml = example.root / "devenv.toml"
    toml.write_text('[migrate]\ncommand = ["sh", "-c", "echo broken >&2; exit 1"]\n')
    failed = example.devenv("up")
    assert failed.returncode == 5, failed.stderr
    toml.unlink()  # back to `prisma migrate deploy`: compose replaces the migrate container that exited 1
    fixed = example.devenv("up", "--json")
    assert fixed.returncode == 0, fixed.stderr  # the new migrate container's exit 0 counts, not the old one's 1
    rows = {r["service"]: r for r in _events(fixed.stdout)[-1]["services"]}  # type: ignore[union-attr]
    assert rows["migrate"]["state"] == "migrated"
    status = example.devenv("status")
    assert status.returncode == 0, status.stdout


def test_logs_into_a_pipe_are_plain_text(example: ExampleProject) -> None:
    assert example.devenv("up", "postgres").returncode == 0
    logs = example.devenv("logs", "postgres", "--tail", "20")
    assert logs.returncode == 0 and "postgres" in logs.stdout
    assert "\x1b" not in logs.stdout


def test_run_ends_the_commands_whole_process_group_on_sigterm(example: ExampleProject, tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    script = f"sleep 300 & echo $! >> {pids}; sleep 300 & echo $! >> {pids}; wait"
    env = {k: v for k, v in example.env.items() if k != "DEVENV_PROJECT_NAME"}
    name = f"pg-{example.name}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "devenv", "-C", str(example.root), "run", "--name", name, "--", "sh", "-c", script],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        eventually(lambda: pids.exists() and len(pids.read_text().split()) == 2, timeout=240, interval=0.2)
        children = [int(p) for p in pids.read_text().split()]
        proc.send_signal(signal.SIGTERM)  # what a CI runner sends when it cancels a job
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err

    def alive(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"

    assert eventually(lambda: not any(alive(p) for p in children), timeout=10)
    assert labelled(f"devenv.project={name}") == {"containers": [], "networks": [], "volumes": []}
