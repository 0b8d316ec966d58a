"""Faults on the real engine: each reported with its cause and a hint, fast, with nothing lost."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

from tests.integration.helpers import ExampleProject, events, timed


def test_a_taken_host_port_is_refused_before_anything_starts(example: ExampleProject) -> None:
    holder = socket.socket()
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    holder.bind(("127.0.0.1", example.port("redis")))
    holder.listen()
    try:
        done = example.devenv("up", "--json")
    finally:
        holder.close()
    assert done.returncode == 2, done.stderr
    assert f"host port {example.port('redis')} for redis is already in use" in done.stderr
    assert "DEVENV_REDIS_PORT" in done.stderr and "Hint:" in done.stderr
    assert [e for e in events(done.stdout) if e.get("event") == "progress"] == []  # refused before any build or start
    assert example.resources()["containers"] == []  # nothing started


def test_an_old_volume_with_other_credentials_says_to_put_them_back_and_drops_nothing(example: ExampleProject) -> None:
    example.devenv("up", "postgres", check=True)
    example.devenv("down", check=True)
    env_file = example.server_dir / ".env"
    original = env_file.read_text()
    env_file.write_text(re.sub(r"(?m)^POSTGRES_PASSWORD=.*$", "POSTGRES_PASSWORD=a-new-password", original))
    done = example.devenv("up", "postgres")
    assert done.returncode == 4, done.stderr
    assert "password authentication failed" in done.stderr
    hint = done.stderr.split("Hint:")[-1]
    assert "back in .env" in hint and "reset --hard" not in hint and "--volumes" not in hint  # no data-dropping advice
    assert len(example.resources()["volumes"]) == 2  # the data is still there: nothing dropped without asking

    # The whole stack: the migrate job may meet the refusal first (Prisma's P1000); the hint is the same.
    full = example.devenv("up")
    assert full.returncode in (4, 5), full.stderr
    assert "back in .env" in full.stderr and "fix the migration" not in full.stderr
    soft = example.devenv("reset", "--yes")
    assert soft.returncode == 4, soft.stderr
    assert "refused the credentials" in soft.stderr and "back in .env" in soft.stderr
    assert len(example.resources()["volumes"]) == 2

    env_file.write_text(original)  # what the hint says: the volume's own credentials again
    example.devenv("up", "postgres", check=True)


def test_an_image_that_cannot_be_pulled_names_the_image_and_the_setting(example: ExampleProject) -> None:
    example.env["DEVENV_REDIS_IMAGE"] = "devenv-local/no-such-redis:7"
    done, elapsed = timed(lambda: example.devenv("up", "redis"))
    assert done.returncode == 2, done.stderr
    assert "devenv-local/no-such-redis:7" in done.stderr and "cannot be pulled" in done.stderr
    assert "DEVENV_REDIS_IMAGE" in done.stderr
    # Said as soon as the pull fails (DNS fails at once on a machine with no registry): no retries around it. Against
    # the pull itself and devenv's own start, on the same machine at the same moment.
    pull = ["docker", "pull", "devenv-local/no-such-redis:7"]
    _, pulling = timed(lambda: subprocess.run(pull, capture_output=True))
    _, start = timed(lambda: example.devenv("render", check=True))
    assert elapsed <= 3 * (pulling + start) + 2, (elapsed, pulling, start)


def test_sigint_during_up_aborts_cleanly_and_the_next_up_succeeds(example: ExampleProject) -> None:
    example.devenv("env", check=True)
    before = {p: p.read_bytes() for p in (example.server_dir / ".env",)}
    # A migrate job that takes 60 s: the SIGINT below lands while `up` is still waiting, however loaded the
    # machine is, and `up` must not wait for that job (or any service) to finish before it aborts.
    toml = example.root / "devenv.toml"
    toml.write_text('[migrate]\ncommand = ["sh", "-c", "sleep 60 && npx prisma migrate deploy"]\n')
    proc = subprocess.Popen(
        [sys.executable, "-m", "devenv", "-C", str(example.root), "up", "--json"],
        env=example.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        for line in proc.stdout:  # wait until devenv is waiting on the services
            if '"phase": "waiting"' in line:
                break
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "Aborting." in err
    assert '"phase": "migrated"' not in out and '"event": "summary"' not in out  # it did not wait for the job
    assert {p: p.read_bytes() for p in before} == before  # .env untouched
    leftovers = [p for p in (example.root / ".devenv").rglob("*") if p.name.endswith(".tmp") or ".tmp." in p.name]
    assert leftovers == []  # no half-written file
    toml.unlink()
    example.devenv("up", check=True)


def test_two_ups_at_once_serialise_on_the_lock(example: ExampleProject) -> None:
    with ThreadPoolExecutor(2) as pool:
        runs = list(pool.map(lambda _: example.devenv("up", "--json"), range(2)))
    assert [r.returncode for r in runs] == [0, 0], [r.stderr for r in runs]
    work = sorted('"compose_work": true' in r.stdout for r in runs)
    assert work == [False, True]  # the second waited, then found nothing to do
    status = example.devenv("status")
    assert status.returncode == 0, status.stdout
