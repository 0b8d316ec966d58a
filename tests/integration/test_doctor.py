"""`devenv doctor` on the real engine, and the unreachable-engine fault."""

from __future__ import annotations

import json

from tests.integration.helpers import ExampleProject, timed


def test_doctor_on_the_example_passes_and_reports_every_check(example: ExampleProject) -> None:
    done = example.devenv("doctor", "--json")
    report = json.loads(done.stdout)
    assert done.returncode == 0, done.stdout
    checks = {f["check"]: f for f in report["findings"]}
    assert {"engine", "compose", "socket", "disk", "port postgres", "port redis", "port server", ".env"} <= set(checks)
    assert checks["engine"]["level"] == "ok"
    assert checks[f"image {example.env['DEVENV_POSTGRES_IMAGE']}"]["level"] == "ok"


def test_dead_engine_is_reported_fast_with_exit_3(example: ExampleProject) -> None:
    example.env["DOCKER_HOST"] = "unix:///nonexistent/docker.sock"
    # Fast: no retry, no wait on the dead socket. Measured against a command that needs no engine at all (the same
    # Python start, project and .env), on the same machine at the same moment: a loaded machine slows both.
    _, baseline = timed(lambda: example.devenv("render", check=True))
    for command in (["up"], ["status"], ["down"]):
        done, elapsed = timed(lambda command=command: example.devenv(*command))  # type: ignore[misc]
        assert done.returncode == 3, (command, done.stderr)
        assert "Docker Engine not reachable at unix:///nonexistent/docker.sock" in done.stderr
        assert "Hint:" in done.stderr
        assert elapsed <= 3 * baseline + 0.5, (command, elapsed, baseline)
    doctor = example.devenv("doctor")
    assert doctor.returncode == 1 and "fail" in doctor.stdout


def test_docker_contexts_are_honoured(example: ExampleProject, tmp_path: object) -> None:
    import subprocess
    from pathlib import Path

    config = Path(str(tmp_path)) / "docker-config"
    config.mkdir()
    env = {**example.env, "DOCKER_CONFIG": str(config)}
    env.pop("DOCKER_HOST", None)
    for name, host in (
        ("devenv-dead", "unix:///nonexistent/other.sock"),
        ("devenv-live", "unix:///var/run/docker.sock"),
    ):
        subprocess.run(
            ["docker", "context", "create", name, "--docker", f"host={host}"], env=env, check=True, capture_output=True
        )
    example.env = {**env, "DOCKER_CONTEXT": "devenv-dead"}
    dead = example.devenv("status")
    assert dead.returncode == 3 and "unix:///nonexistent/other.sock" in dead.stderr
    example.env = {**env, "DOCKER_CONTEXT": "devenv-live"}
    example.devenv("up", "redis", check=True)
    live = example.devenv("status", "--json")
    assert json.loads(live.stdout)["checks"]["redis"]["status"] == "up"
