"""Extra services on the real engine: the example's worker processes a job enqueued through the server; an image
service with an http readiness path is waited for and exported by `ci up`; a worker that exits at once fails `up`
fast with its log tail and a Hint; `down --volumes` removes the extra services' labelled volumes and nothing else."""

from __future__ import annotations

import json
import subprocess
import urllib.request
import uuid
from pathlib import Path

import pytest

from tests.integration.helpers import ExampleProject, eventually
from tests.integration.helpers import events as _events

pytestmark = pytest.mark.docker

WORKER = """
[services.worker]
from = "server"
command = ["npm", "run", "start:worker"]
"""

# A stand-in for Mailpit from a local image: its HTTP port answers only after 1.5 s (Docker's proxy accepts before).
MAIL_SERVER = (
    "setTimeout(() => require('http').createServer((q, s) => { s.statusCode = q.url === '/livez' ? 200 : 404; "
    "s.end('mail ok'); }).listen(8025), 1500)"
)
MAIL = f"""
[services.mail]
image = "devenv-local/node:20"
command = ["node", "-e", "{MAIL_SERVER}"]
ports = ["0:8025"]
ready = "http:/livez"
volumes = ["mail-data:/data"]
depends_on = ["postgres"]
"""


def test_the_examples_worker_processes_a_job_enqueued_through_the_server(example: ExampleProject) -> None:
    proposal = example.devenv("init", "--print", check=True).stdout
    assert "[services.worker]" in proposal and '"start:worker"' in proposal  # init proposes it
    (example.root / "devenv.toml").write_text(WORKER)
    up = example.devenv("up", check=True)
    assert "worker" in up.stdout and "ready" in up.stdout, up.stdout

    status, quote = example.http("POST", "/v1/quotes", {"author": "Ada", "text": "one two three four"})
    assert status == 201, quote
    with example.redis() as client:
        done = eventually(lambda: client.hget("quotes:done", str(quote["id"])), lambda got: got is not None)
        assert done == b"4"  # the worker counted the words

    report = json.loads(example.devenv("status", "--json").stdout)
    assert report["checks"]["worker"]["status"] == "up" and report["checks"]["worker"]["container"] == "running"
    logs = example.devenv("logs", "worker", check=True).stdout
    assert "job done" in logs
    done = example.devenv("exec", "worker", "--", "node", "-e", "process.exit(0)")
    assert done.returncode == 0, done.stderr


def test_an_image_service_is_waited_for_on_its_http_path_and_exported_by_ci_up(
    example: ExampleProject, tmp_path: Path
) -> None:
    (example.root / "devenv.toml").write_text(MAIL)
    name = f"ci-{uuid.uuid4().hex[:6]}"
    exported = tmp_path / "ci.env"
    try:
        done = example.devenv("ci", "up", "--name", name, "--env-file", str(exported))
        assert done.returncode == 0, done.stdout + done.stderr
        values = dict(line.split("=", 1) for line in exported.read_text().splitlines() if "=" in line)
        url = values["MAIL_URL"].strip("'\"")
        assert url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(f"{url}/livez", timeout=5) as answer:  # up waited until it answered
            assert answer.status == 200 and answer.read() == b"mail ok"
    finally:
        example.devenv("ci", "down", "--name", name)


def test_a_worker_that_exits_at_once_fails_up_within_2_s_with_its_log_tail_and_a_hint(
    example: ExampleProject,
) -> None:
    (example.root / "devenv.toml").write_text(
        """
[services.worker]
from = "server"
command = ["node", "-e", "console.error('worker: cannot reach the queue'); process.exit(3)"]
depends_on = ["postgres"]
"""
    )
    example.devenv("up", "postgres", check=True)  # the database is up: the worker's start is what is timed
    timeout = 120
    done = example.devenv("up", "worker", "--json", "--timeout", str(timeout))
    assert done.returncode == 4, done.stdout + done.stderr
    # By devenv's own clock (its events' `elapsed`): from starting to wait for the worker to reporting it failed,
    # a small part of the deadline, not the deadline (a loaded machine stretches both the same way).
    worker = {e["phase"]: float(e["elapsed"]) for e in _events(done.stdout) if e.get("service") == "worker"}
    assert "waiting" in worker and "failed" in worker, done.stdout
    assert worker["failed"] - worker["waiting"] <= timeout / 10, worker
    error = done.stdout + done.stderr
    assert "worker exited with code 3" in error or "worker is crash-looping" in error, error
    assert "worker: cannot reach the queue" in error  # its log tail
    assert "Hint:" in error


def test_down_volumes_removes_the_extra_services_volumes_and_nothing_else(example: ExampleProject) -> None:
    (example.root / "devenv.toml").write_text(MAIL)
    bystander = f"bystander-{uuid.uuid4().hex[:6]}"
    subprocess.run(["docker", "volume", "create", bystander], check=True, capture_output=True)
    try:
        example.devenv("up", "mail", check=True)
        volumes = example.resources()["volumes"]
        assert f"{example.name}_mail-data" in volumes and f"{example.name}_pgdata" in volumes, volumes
        example.devenv("down", "--volumes", "--yes", check=True)
        assert example.resources() == {"containers": [], "networks": [], "volumes": []}
        listed = subprocess.run(
            ["docker", "volume", "ls", "-q", "--filter", f"name={bystander}"], capture_output=True, text=True
        )
        assert bystander in listed.stdout.split()
    finally:
        subprocess.run(["docker", "volume", "rm", bystander], capture_output=True)
