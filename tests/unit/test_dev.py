"""The dev loop without an engine: the dev command, where the server runs, the watch rules, host binaries."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from devenv.commands.dev import dev_argv
from devenv.core import proc
from devenv.core.errors import ServiceNotReady, UsageError
from devenv.project.discovery import load_project
from devenv.stack.migrate import host_argv
from devenv.stack.render import watch_rules
from tests.conftest import EXAMPLE
from tests.fixtures.helpers import context_of, copy_project
from tests.poll import eventually


def _with_scripts(root: Path, scripts: dict[str, str]) -> None:
    (root / "package.json").write_text(json.dumps({"name": "x", "scripts": scripts}))


def test_the_dev_command_is_the_dev_script_with_the_projects_package_manager(tmp_path: Path) -> None:
    root = copy_project("ts-app", tmp_path / "app")
    ctx = context_of(load_project(root, environ={}))
    assert dev_argv(ctx) == ["npm", "run", "dev"]
    (root / "yarn.lock").write_text("")
    # Two lockfiles: npm, which comes with Node (yarn or pnpm would need corepack or an install of their own).
    assert dev_argv(context_of(load_project(root, environ={}))) == ["npm", "run", "dev"]
    (root / "package-lock.json").unlink()
    assert dev_argv(context_of(load_project(root, environ={}))) == ["yarn", "dev"]
    (root / "devenv.toml").write_text('[server]\ndev_command = "tsx watch src/server.ts"\n')
    assert dev_argv(context_of(load_project(root, environ={}))) == ["tsx", "watch", "src/server.ts"]


def test_a_missing_dev_script_is_one_clear_error(tmp_path: Path) -> None:
    root = copy_project("ts-app", tmp_path / "app")
    _with_scripts(root, {"start": "node dist/server.js"})
    with pytest.raises(UsageError, match=r"package\.json has no `dev` script") as err:
        dev_argv(context_of(load_project(root, environ={})))
    assert "server.dev_command" in (err.value.hint or "")


@pytest.mark.parametrize(
    ("fixture", "environ", "mode"),
    [
        ("host-app", {}, "host"),  # no Dockerfile
        ("ts-app", {}, "container"),
        ("ts-app", {"DEVENV_SERVER_MODE": "host"}, "host"),
    ],
)
def test_where_the_server_runs(tmp_path: Path, fixture: str, environ: dict[str, str], mode: str) -> None:
    project = load_project(copy_project(fixture, tmp_path / "p"), environ=environ)
    stack = context_of(project).stack
    assert stack.server_mode == mode
    assert ("server" in stack.services) is (mode == "container")


def test_a_ci_stack_always_runs_the_server_in_a_container(tmp_path: Path) -> None:
    from devenv.commands.ci import ci_project

    project = load_project(copy_project("ts-app", tmp_path / "p"), environ={"DEVENV_SERVER_MODE": "host"})
    assert context_of(ci_project(project, "ci-1")).stack.server_mode == "container"


def test_watch_rules_sync_sources_the_image_runs_and_rebuild_what_it_compiles(tmp_path: Path) -> None:
    mono = tmp_path / "mono"
    shutil.copytree(EXAMPLE, mono, ignore=shutil.ignore_patterns("node_modules", ".devenv", ".env"))
    ctx = context_of(load_project(mono, environ={}))
    rules = {(r.action, r.source): r for r in watch_rules(ctx.project, ctx.dockerfile)}
    assert rules[("sync+restart", "apps/server/src")].target == "/app/apps/server/src"
    assert ("rebuild", "package-lock.json") in rules and ("rebuild", "apps/server/Dockerfile") in rules
    assert rules[("rebuild", "apps/server/prisma")].migrates

    ts = copy_project("ts-app", tmp_path / "ts")
    ctx = context_of(load_project(ts, environ={}))
    actions = {(r.action, r.source) for r in watch_rules(ctx.project, ctx.dockerfile)}
    assert ("rebuild", "src") in actions  # compiled by tsc in a build stage: a change rebuilds
    assert not any(a == "sync+restart" for a, _ in actions)

    (ts / "devenv.toml").write_text(
        '[server.watch]\nsync = ["src:/app/src"]\nrebuild = ["package.json"]\nmigrate = []\n'
    )
    ctx = context_of(load_project(ts, environ={}))
    assert [(r.action, r.source, r.target) for r in watch_rules(ctx.project, ctx.dockerfile)] == [
        ("sync+restart", "src", "/app/src"),
        ("rebuild", "package.json", ""),
    ]


def test_host_prisma_is_the_projects_own_and_a_missing_one_says_how_to_install_it(tmp_path: Path) -> None:
    root = copy_project("ts-app", tmp_path / "app")
    ctx = context_of(load_project(root, environ={}))
    with pytest.raises(UsageError, match="prisma is not installed") as err:
        host_argv(ctx, ["npx", "prisma", "migrate", "deploy"])
    assert "npm install" in (err.value.hint or "")
    binary = root / "node_modules" / ".bin" / "prisma"
    binary.parent.mkdir(parents=True)
    binary.write_text("#!/bin/sh\n")
    assert host_argv(ctx, ["npx", "prisma", "migrate", "deploy"]) == [str(binary), "migrate", "deploy"]
    assert host_argv(ctx, ["npx", "tsx", "seed.ts"]) == ["npx", "--no-install", "tsx", "seed.ts"]


def test_a_supervised_command_whose_readiness_fails_takes_its_whole_group_down(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    script = f"sleep 60 & echo $! >> {pids}; sleep 60 & echo $! >> {pids}; wait"

    def never_ready(child: object) -> None:
        eventually(lambda: pids.exists() and len(pids.read_text().split()) == 2, timeout=10, interval=0.01)
        raise ServiceNotReady("never answered.", "test")

    with pytest.raises(ServiceNotReady):
        proc.supervised(["sh", "-c", script], on_start=never_ready, grace=2)
    for pid in (int(p) for p in pids.read_text().split()):
        try:
            os.kill(pid, 0)
            state = Path(f"/proc/{pid}/stat").read_text().split()[2]
        except (ProcessLookupError, FileNotFoundError):
            continue
        assert state == "Z", f"{pid} still runs"


def test_a_dev_command_that_cannot_start_is_one_error_with_the_callers_hint(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"cannot run 'no-such-tool-x'") as err:
        proc.supervised(["no-such-tool-x", "dev"], cwd=tmp_path, hint="is no-such-tool-x installed?")
    assert err.value.hint == "is no-such-tool-x installed?"
