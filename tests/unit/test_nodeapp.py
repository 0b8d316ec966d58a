"""package.json as devenv reads it: the package manager a project uses, and the command that runs a script."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from devenv.project.nodeapp import read_app


def _app(root: Path, *locks: str, **package: object) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "package.json").write_text(
        json.dumps({"name": "app", "scripts": {"dev": "x", "start:worker": "y"}, **package})
    )
    for lock in locks:
        (root / lock).write_text("")
    return root


@pytest.mark.parametrize(
    ("locks", "manager"),
    [
        ((), "npm"),
        (("package-lock.json",), "npm"),
        (("pnpm-lock.yaml",), "pnpm"),
        (("yarn.lock",), "yarn"),
        (("bun.lockb",), "bun"),
        # Both: npm comes with Node, pnpm needs corepack or an install (Mkayzw/Express-prisma-Template has both).
        (("package-lock.json", "pnpm-lock.yaml"), "npm"),
        (("yarn.lock", "pnpm-lock.yaml"), "pnpm"),
    ],
)
def test_the_package_manager_follows_the_lockfiles(tmp_path: Path, locks: tuple[str, ...], manager: str) -> None:
    root = _app(tmp_path / "app", *locks)
    assert read_app(root).package_manager(root) == manager


def test_package_json_packagemanager_wins_and_the_dockerfile_breaks_a_tie(tmp_path: Path) -> None:
    root = _app(tmp_path / "a", "package-lock.json", packageManager="pnpm@9.12.0")
    assert read_app(root).package_manager(root) == "pnpm"
    root = _app(tmp_path / "b", "package-lock.json", "pnpm-lock.yaml")
    dockerfile = "FROM node:20\nRUN corepack enable && pnpm install --frozen-lockfile\n"
    assert read_app(root).package_manager(root, dockerfile) == "pnpm"
    assert read_app(root).package_manager(root, "FROM node:20\nRUN npm ci\n") == "npm"


def test_scripts_run_with_the_managers_own_runner(tmp_path: Path) -> None:
    assert read_app(r := _app(tmp_path / "n")).run_argv("dev", r) == ["npm", "run", "dev"]
    assert read_app(r := _app(tmp_path / "p", "pnpm-lock.yaml")).run_argv("dev", r) == ["pnpm", "run", "dev"]
    assert read_app(r := _app(tmp_path / "y", "yarn.lock")).run_argv("start:worker", r) == ["yarn", "start:worker"]
    assert read_app(r := _app(tmp_path / "i", "pnpm-lock.yaml")).install_command(r) == "pnpm install"


def test_a_server_folder_lockfile_comes_before_the_roots(tmp_path: Path) -> None:
    (tmp_path / "yarn.lock").write_text("")
    server = _app(tmp_path / "apps" / "api", "pnpm-lock.yaml")
    assert read_app(server).package_manager(tmp_path) == "pnpm"
    (server / "pnpm-lock.yaml").unlink()
    assert read_app(server).package_manager(tmp_path) == "yarn"
