"""CI stacks: parallel `ci up`, exported settings, `run` with guaranteed teardown, `gc`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from dotenv import dotenv_values

from tests.integration.helpers import ExampleProject, eventually, labelled


def test_two_parallel_ci_stacks_are_isolated_and_export_working_settings(
    example: ExampleProject, tmp_path: Path
) -> None:
    names = [f"ci-a-{uuid.uuid4().hex[:6]}", f"ci-b-{uuid.uuid4().hex[:6]}"]
    github_env = tmp_path / "github_env"
    env = {**example.ci_env(), "GITHUB_ENV": str(github_env), "GITHUB_ACTIONS": "true"}
    try:
        with ThreadPoolExecutor(2) as pool:
            runs = list(pool.map(
                lambda n: example.ci("ci", "up", "--name", n, "--json", "--env-file", str(tmp_path / f"{n}.env"),
                                  env=env),
                names,
            ))  # fmt: skip
        for done in runs:
            assert done.returncode == 0, done.stderr
        settings = [json.loads(done.stdout.splitlines()[-1]) for done in runs]
        ports = {s["DATABASE_URL"].rsplit(":", 1)[1] for s in settings} | {s["SERVER_URL"] for s in settings}
        assert len(ports) == 4  # distinct Postgres ports and distinct server URLs
        for done, s in zip(runs, settings, strict=True):
            password = s["DATABASE_URL"].split(":")[2].split("@")[0]
            assert f"::add-mask::{password}" in done.stdout  # GitHub hides it in every later log line
        for name in names:
            values = dotenv_values(tmp_path / f"{name}.env")
            assert values["DEVENV_PROJECT_NAME"] == name
            psql = subprocess.run(
                ["psql", (values["DATABASE_URL"] or "").split("?")[0], "-tAc", "select count(*) from quotes"],
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            assert psql.returncode == 0, psql.stderr
            assert int(psql.stdout.strip()) >= 1  # seeded
            rcli = subprocess.run(
                ["docker", "run", "--rm", "--network", "host", example.env["DEVENV_REDIS_IMAGE"],
                 "redis-cli", "-u", values["REDIS_URL"] or "", "ping"],
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            assert "PONG" in rcli.stdout, rcli.stderr
        assert github_env.read_text().count("DATABASE_URL=") == 2
        for name in names:
            assert labelled(f"devenv.project={name}")["containers"]
    finally:
        for name in names:
            down = example.ci("ci", "down", "--name", name)
            assert down.returncode == 0, down.stderr
    for name in names:
        assert labelled(f"devenv.project={name}") == {"containers": [], "networks": [], "volumes": []}
    again = example.ci("ci", "down", "--name", names[0])
    assert again.returncode == 0  # already gone is fine


def test_run_returns_the_commands_exit_code_and_leaves_nothing(example: ExampleProject) -> None:
    probe = (
        "import os, sys, psycopg, redis; "
        "psycopg.connect(os.environ['DATABASE_URL'].split('?')[0]).execute('select 1'); "
        "redis.Redis.from_url(os.environ['REDIS_URL']).ping(); "
        "sys.exit(int(os.environ.get('WANT', '0')))"
    )
    for want in (0, 3):
        name = f"run-{want}-{uuid.uuid4().hex[:6]}"
        env = {**example.ci_env(), "WANT": str(want)}
        done = example.ci("run", "--name", name, "--", sys.executable, "-c", probe, env=env)
        assert done.returncode == want, done.stderr
        assert labelled(f"devenv.project={name}") == {"containers": [], "networks": [], "volumes": []}
        secrets = [v for k, v in example.env_values().items() if "PASSWORD" in k or "SECRET" in k]
        assert secrets and not any(s and s in done.stdout + done.stderr for s in secrets)


def test_run_interrupted_by_sigint_still_tears_down(example: ExampleProject, tmp_path: Path) -> None:
    name = f"run-int-{uuid.uuid4().hex[:6]}"
    marker = tmp_path / "started"
    cmd = [sys.executable, "-c", f"import pathlib, time; pathlib.Path({str(marker)!r}).touch(); time.sleep(120)"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "devenv", "-C", str(example.root), "run", "--name", name, "--", *cmd],
        env=example.ci_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        started = eventually(lambda: marker.exists() or proc.poll() is not None, timeout=240)
        assert started and marker.exists(), proc.stderr.read() if proc.stderr else ""
        assert labelled(f"devenv.project={name}")["containers"]
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "Aborting." in err
    assert labelled(f"devenv.project={name}") == {"containers": [], "networks": [], "volumes": []}


def test_gc_lists_then_removes_an_abandoned_stack_but_never_a_developers_stack(
    example: ExampleProject, tmp_path: Path
) -> None:
    # A machine of its own (another devenv state folder, so another machine id): gc removes only this machine's CI
    # stacks, and the CI stacks that tests in other workers run meanwhile on this engine are not this gc's to remove.
    example.env["XDG_STATE_HOME"] = str(tmp_path / "state")
    example.devenv("up", "postgres", check=True)  # a developer's own stack: not a CI stack
    name = f"abandoned-{uuid.uuid4().hex[:6]}"
    up = example.ci("ci", "up", "--name", name)
    assert up.returncode == 0, up.stderr
    dry = example.ci("gc", "--older-than", "0s", "--dry-run")
    assert dry.returncode == 0
    assert f"would remove {name}" in dry.stdout
    assert example.name not in dry.stdout
    assert labelled(f"devenv.project={name}")["containers"]  # dry run removed nothing
    young = example.ci("gc", "--older-than", "2h")
    assert name not in young.stdout
    gone = example.ci("gc", "--older-than", "0s")
    assert f"removed {name}" in gone.stdout
    assert labelled(f"devenv.project={name}") == {"containers": [], "networks": [], "volumes": []}
    assert labelled(f"devenv.project={example.name}")["volumes"]  # the developer's data is untouched
    assert os.environ.get("CI") != "false"
