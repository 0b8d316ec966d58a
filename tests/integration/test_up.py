"""`devenv up` / `down` / `status` / `logs` / `psql` on the real engine with the example project."""

from __future__ import annotations

import json
import re
import subprocess

from tests.integration.helpers import ExampleProject, eventually
from tests.integration.helpers import events as _events


def test_fresh_up_data_survives_down_up_and_second_up_is_a_no_op(example: ExampleProject) -> None:
    done = example.devenv("up", "--json", check=True)
    events = _events(done.stdout)
    summary = events[-1]
    assert summary["event"] == "summary"
    assert summary["compose_work"] is True and summary["seeded"] is True
    rows = {row["service"]: row for row in summary["services"]}  # type: ignore[union-attr]
    assert set(rows) == {"postgres", "redis", "migrate", "server"}
    assert rows["postgres"]["url"].startswith("postgresql://") and "***" in rows["postgres"]["url"]
    assert {e["service"] for e in events if e.get("phase") == "ready"} == {"postgres", "redis", "server"}
    env = example.env_values()
    for secret in ("POSTGRES_PASSWORD", "REDIS_PASSWORD", "JWT_SECRET", "SESSION_SECRET"):
        assert env[secret] and env[secret] not in done.stdout + done.stderr

    # The engine's own healthchecks (in-container retry loops) agree: every long-running service turns healthy.
    def health(service: str) -> str:
        args = ["docker", "inspect", "-f", "{{.State.Health.Status}}", example.container(service)]
        return subprocess.run(args, capture_output=True, text=True, check=True).stdout.strip()

    services = ("postgres", "redis", "server")
    healthy = dict.fromkeys(services, "healthy")
    assert eventually(lambda: {s: health(s) for s in services}, lambda seen: seen == healthy, interval=0.2) == healthy

    status, quote = example.http("POST", "/v1/quotes", {"author": "Ada", "text": "survives down/up"})
    assert status == 201, quote

    second = example.devenv("up", "--json", check=True)
    assert _events(second.stdout)[-1]["compose_work"] is False
    migrate = next(r for r in _events(second.stdout)[-1]["services"] if r["service"] == "migrate")
    assert migrate["state"] == "up to date" and "not run" in migrate["url"]  # truthful: nothing ran this time
    said = [e["phase"] for e in _events(second.stdout) if e.get("event") == "progress" and e["service"] == "migrate"]
    assert "migrated" not in said and said[-1] == "unchanged", said  # the progress agrees with the summary

    example.devenv("down", check=True)
    assert example.resources()["containers"] == []
    assert len(example.resources()["volumes"]) == 2  # data volumes stay

    again = example.devenv("up", "--json", check=True)
    assert _events(again.stdout)[-1]["seeded"] is False  # the seed runs once, on a new database
    status, quotes = example.http("GET", "/v1/quotes")
    assert status == 200
    assert "survives down/up" in json.dumps(quotes)

    logs = example.devenv("logs", "--tail", "5", "postgres", check=True)
    assert "postgres" in logs.stdout
    psql = example.devenv("psql", "-c", "select 1 as one", check=True)
    assert "one" in psql.stdout and "1" in psql.stdout
    rcli = example.devenv("redis-cli", "ping", check=True)
    assert "PONG" in rcli.stdout

    from devenv.project.discovery import load_project

    secrets = load_project(example.root, environ=example.env).secrets_dir  # outside the project, this user's only
    assert not secrets.is_relative_to(example.root) and (secrets / "server.env").stat().st_mode & 0o077 == 0
    assert "DATABASE_URL=" in (secrets / "server.env").read_text()
    example.devenv("down", "--volumes", "--yes", check=True)
    assert example.resources() == {"containers": [], "networks": [], "volumes": []}
    assert not secrets.exists()  # gone with the data


def test_status_healthy_then_degraded_when_redis_stops(example: ExampleProject) -> None:
    example.devenv("up", check=True)
    healthy = example.devenv("status", "--json")
    report = json.loads(healthy.stdout)
    assert healthy.returncode == 0, healthy.stderr
    assert report["status"] == "healthy"
    assert {"postgres", "redis", "server"} <= set(report["checks"])
    assert report["checks"]["postgres"]["responseTime"] is not None
    assert report["checks"]["server"]["details"]["status"] == "healthy"

    subprocess.run(["docker", "stop", "-t", "1", example.container("redis")], check=True, capture_output=True)
    degraded = example.devenv("status", "--json")
    report = json.loads(degraded.stdout)
    assert report["status"] in {"degraded", "unhealthy"}
    assert degraded.returncode in {1, 4}
    assert report["checks"]["redis"]["status"] == "down"
    assert report["checks"]["redis"]["live"] is False

    example.devenv("down", check=True)
    gone = example.devenv("status", "--json")
    assert gone.returncode == 4
    assert json.loads(gone.stdout)["status"] == "unhealthy"


def test_broken_migration_exits_5_and_leaves_stack_up(example: ExampleProject) -> None:
    broken = example.server_dir / "prisma" / "migrations" / "99990101000000_broken"
    broken.mkdir()
    (broken / "migration.sql").write_text("ALTER TABLE no_such_table ADD COLUMN x int;\n")
    done = example.devenv("up")
    assert done.returncode == 5, done.stdout + done.stderr
    assert "migrat" in done.stderr
    assert "no_such_table" in done.stderr  # prisma's own message is passed through
    running = subprocess.run(
        ["docker", "inspect", "-f", "{{.State.Running}}", example.container("postgres")],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert running.stdout.strip() == "true"  # left up for inspection


def test_crash_looping_server_is_reported_within_two_seconds(example: ExampleProject) -> None:
    example.devenv("env", check=True)
    env_file = example.server_dir / ".env"
    text = re.sub(r"(?m)^HEALTH_CHECK_TIMEOUT_MS=.*$", "", env_file.read_text())
    env_file.write_text(text + "HEALTH_CHECK_TIMEOUT_MS=not-a-number\n")
    timeout = 120
    done = example.devenv("up", "--timeout", str(timeout), "--json")
    assert done.returncode == 4, done.stdout + done.stderr
    assert "server" in done.stderr and ("exited" in done.stderr or "crash" in done.stderr)
    assert "HEALTH_CHECK_TIMEOUT_MS" in done.stderr  # the container's own last log lines
    assert "Hint:" in done.stderr
    # By devenv's own clock (its events' `elapsed`): from the moment the server could first run (its migrate job
    # done: compose starts it only then) to reporting it failed, a small part of the deadline, not the deadline.
    # Postgres and the job starting are not the server's time: a loaded machine stretches those, not the watch.
    events = _events(done.stdout)
    server = {e["phase"]: float(e["elapsed"]) for e in events if e.get("service") == "server"}
    migrate = {e["phase"]: float(e["elapsed"]) for e in events if e.get("service") == "migrate"}
    assert "waiting" in server and "failed" in server and "migrated" in migrate, done.stdout
    could_run = max(server["waiting"], migrate["migrated"])  # the job's container done (the seed runs after, apart)
    assert server["failed"] - could_run <= timeout / 20, (server, migrate)
