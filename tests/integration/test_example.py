"""The example monorepo end to end: build its server image, run Postgres + Redis + server with plain docker compose,
migrate and seed in a one-shot container, probe the health endpoints, stop Redis, and tear down leaving nothing."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal, TypeVar

import psycopg
import pytest
import redis
from python_on_whales import DockerClient
from tenacity import Retrying, retry_if_not_result, stop_after_delay, wait_fixed

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "monorepo"
DOCKERFILE = EXAMPLE / "apps" / "server" / "Dockerfile"
FIXTURE = Path(__file__).resolve().parent / "fixtures" / "example-compose.yml"
SERVER_IMAGE = "devenv-example-server:test"
# Throw-away credentials, the same as in the fixture compose file.
PG_PASSWORD = "app-test-pw"
REDIS_PASSWORD = "redis-test-pw"
REDIS_DB_OF_SERVER = 2
MIGRATIONS = sorted(p.name for p in (EXAMPLE / "apps" / "server" / "prisma" / "migrations").iterdir() if p.is_dir())
Json = dict[str, Any]
T = TypeVar("T")


def _npm_ca_bundle() -> Path | None:
    """The CA bundle the build passes as the `npm_ca` secret, for registries behind a TLS-intercepting proxy."""
    for candidate in (os.environ.get("NODE_EXTRA_CA_CERTS"), "/etc/ssl/certs/ca-certificates.crt"):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


def _build(node_image: str) -> tuple[str, str, float]:
    """Build the server image; return its id, BuildKit's plain log and the wall time."""
    argv = ["docker", "build", "--progress=plain", "-f", str(DOCKERFILE), "-t", SERVER_IMAGE]
    argv += ["--build-arg", f"NODE_IMAGE={node_image}"]
    if (ca := _npm_ca_bundle()) is not None:
        argv += ["--secret", f"id=npm_ca,src={ca}"]
    argv.append(str(EXAMPLE))
    # subprocess rather than python-on-whales: the cache check below reads BuildKit's plain progress log.
    started = time.monotonic()
    done = subprocess.run(
        argv, capture_output=True, text=True, timeout=600, env={**os.environ, "DOCKER_BUILDKIT": "1"}, check=False
    )
    elapsed = time.monotonic() - started
    if done.returncode != 0:
        pytest.fail(f"{' '.join(argv)} exited {done.returncode}:\n{done.stderr[-3000:]}", pytrace=False)
    image_id = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{.Id}}", SERVER_IMAGE], capture_output=True, text=True, check=True
    ).stdout.strip()
    return image_id, done.stderr, elapsed


def _uncached_steps(log: str) -> list[str]:
    """The RUN/COPY steps BuildKit executed instead of taking from its cache."""
    steps = dict(re.findall(r"^#(\d+) (\[[^\]]+\] (?:RUN|COPY) .*)$", log, re.MULTILINE))
    cached = set(re.findall(r"^#(\d+) CACHED$", log, re.MULTILINE))
    return [text for number, text in steps.items() if number not in cached]


@pytest.fixture(scope="module")
def server_image(images: dict[str, str]) -> Iterator[str]:
    """The example server image, built once per module (from cache when nothing changed)."""
    image_id, _, elapsed = _build(images["node"])
    print(f"server image {image_id[:19]} built in {elapsed:.1f} s")
    yield image_id
    subprocess.run(["docker", "image", "rm", "-f", SERVER_IMAGE], capture_output=True, check=False)  # its cache stays


def _http(port: int, method: str, path: str, body: Json | None = None) -> tuple[int, Json]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method)
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _poll(probe: Callable[[], T], until: Callable[[T], bool], seconds: float = 10) -> T:
    """Call probe every 250 ms until `until` holds or time is up; return the last answer either way."""
    retrying = Retrying(
        stop=stop_after_delay(seconds),
        wait=wait_fixed(0.25),
        retry=retry_if_not_result(until),
        retry_error_callback=lambda state: state.outcome.result() if state.outcome else None,
    )
    return retrying(probe)


def _host_port(client: DockerClient, service: str, private_port: int) -> int:
    host, port = client.compose.port(service, private_port)
    assert host == "127.0.0.1", f"{service}:{private_port} is published on {host}, not on loopback only"
    assert port is not None
    return port


def _leftovers(client: DockerClient, project: str) -> dict[str, list[str]]:
    filters: list[tuple[Literal["label"], str]] = [("label", f"devenv.project={project}")]
    return {
        "containers": [c.name for c in client.container.list(all=True, filters=filters)],
        "networks": [n.name for n in client.network.list(filters=filters)],
        "volumes": [v.name for v in client.volume.list(filters=filters)],
    }


@pytest.fixture
def stack(tmp_path: Path, images: dict[str, str], server_image: str) -> Iterator[tuple[DockerClient, str]]:
    """A compose client for a fresh project name; `down -v` always runs, then nothing labelled may remain."""
    project = f"devenv-example-{uuid.uuid4().hex[:8]}"
    env_file = tmp_path / "compose.env"
    env_file.write_text(
        f"DEVENV_PROJECT={project}\n"
        f"DEVENV_POSTGRES_IMAGE={images['postgres']}\n"
        f"DEVENV_REDIS_IMAGE={images['redis']}\n"
        f"DEVENV_EXAMPLE_SERVER_IMAGE={SERVER_IMAGE}\n"
    )
    client = DockerClient(compose_files=[FIXTURE], compose_project_name=project, compose_env_files=[env_file])
    try:
        yield client, project
    finally:
        try:
            print(client.compose.logs(tail="40"))
        finally:
            client.compose.down(volumes=True, remove_orphans=True, timeout=5, quiet=True)
    assert _leftovers(client, project) == {"containers": [], "networks": [], "volumes": []}


def test_second_build_comes_from_cache(images: dict[str, str], server_image: str) -> None:
    image_id, log, _ = _build(images["node"])
    assert image_id == server_image
    assert _uncached_steps(log) == []  # every RUN and COPY step came from BuildKit's cache (its own log says so)


def test_image_runs_as_non_root_without_healthcheck(server_image: str) -> None:
    config = json.loads(
        subprocess.run(
            ["docker", "image", "inspect", "--format", "{{json .Config}}", server_image],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    assert config["User"] not in ("", "root", "0")
    assert config.get("Healthcheck") is None
    assert config["WorkingDir"] == "/app/apps/server"


def test_stack_migrates_serves_and_reports_redis_outage(stack: tuple[DockerClient, str]) -> None:
    client, project = stack
    client.compose.up(["postgres", "redis"], detach=True, wait=True, wait_timeout=60, quiet=True)

    # One-shot jobs in the server image, working dir /app/apps/server (the image's WORKDIR).
    client.compose.run("migrate", ["npx", "prisma", "migrate", "deploy"], remove=True, tty=False)
    seeded = client.compose.run("migrate", ["npx", "prisma", "db", "seed"], remove=True, tty=False)
    assert "seeded 3 quotes" in str(seeded)
    status = client.compose.run("migrate", ["npx", "prisma", "migrate", "status"], remove=True, tty=False)
    assert "Database schema is up to date" in str(status)

    client.compose.up(["server"], detach=True, wait=True, wait_timeout=60, quiet=True)
    server_port = _host_port(client, "server", 3000)
    pg_port = _host_port(client, "postgres", 5432)
    redis_port = _host_port(client, "redis", 6379)

    code, body = _http(server_port, "GET", "/health")
    assert code == 200 and body["status"] == "ok" and body["timestamp"]
    assert _http(server_port, "GET", "/health/ready") == (200, {"ready": True})
    code, body = _http(server_port, "GET", "/health/status")
    assert code == 200 and body["status"] == "healthy"
    assert {"timestamp", "uptime", "version", "checks"} <= body.keys()
    for name in ("database", "redis", "memory"):
        assert body["checks"][name]["status"] == "up"
        assert {"responseTime", "error"} <= body["checks"][name].keys()

    quote = {"author": "integration test", "text": f"run {project}"}
    code, created = _http(server_port, "POST", "/v1/quotes", quote)
    assert code == 201 and created["text"] == quote["text"]
    assert _http(server_port, "GET", f"/v1/quotes/{created['id']}") == (200, created)
    code, listing = _http(server_port, "GET", "/v1/quotes")
    assert code == 200 and created in listing["quotes"]

    conninfo = f"host=127.0.0.1 port={pg_port} user=app password={PG_PASSWORD} dbname=quotes connect_timeout=5"
    with psycopg.connect(conninfo) as conn:
        applied = conn.execute(
            "SELECT migration_name FROM _prisma_migrations WHERE finished_at IS NOT NULL AND rolled_back_at IS NULL"
            " ORDER BY migration_name"
        ).fetchall()
        assert [name for (name,) in applied] == MIGRATIONS and len(MIGRATIONS) >= 3
        assert conn.execute("SELECT count(*) FROM quotes WHERE source = 'seed'").fetchone() == (3,)
        row = conn.execute("SELECT author FROM quotes WHERE id = %s", (created["id"],)).fetchone()
        assert row == (quote["author"],)

    # REDIS_URL's password and /2 are honoured: the server's connection sits on db 2.
    host_redis = redis.Redis(host="127.0.0.1", port=redis_port, password=REDIS_PASSWORD, socket_timeout=5)
    assert any(int(c["db"]) == REDIS_DB_OF_SERVER for c in host_redis.client_list())
    host_redis.close()

    client.compose.stop(["redis"], timeout=1)
    code, body = _poll(lambda: _http(server_port, "GET", "/health/ready"), until=lambda answer: answer[0] == 503)
    assert code == 503 and body["ready"] is False and body["checks"]["redis"]["status"] == "down"
    code, body = _http(server_port, "GET", "/health/status")
    assert code == 200 and body["status"] == "degraded"
    assert body["checks"]["redis"]["status"] == "down" and body["checks"]["redis"]["error"]
    assert body["checks"]["database"]["status"] == "up"

    # SIGTERM: the server closes HTTP, Prisma and Redis and exits 0 on its own, within its shutdown grace and well
    # before compose's 10 s kill (a kill would be 137, the grace running out 1).
    client.compose.stop(["server"], timeout=10)
    (container,) = client.compose.ps(["server"], all=True)
    assert container.state.exit_code == 0
    logs = client.compose.logs(["server"])
    assert "shutting down" in logs and "SIGTERM" in logs and "took too long" not in logs
