"""The server as a Node project: its package.json (scripts, dependencies, Prisma settings), read once."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REDIS_CLIENTS = ("ioredis", "redis", "@redis/client", "bullmq", "bull", "bee-queue", "@nestjs/bull", "@nestjs/bullmq")
WORKER_SCRIPTS = ("start:worker", "worker", "worker:start")
# Lockfiles by the package manager that writes them, in the order a project with one of each is read.
LOCKFILES = {
    "package-lock.json": "npm",
    "npm-shrinkwrap.json": "npm",
    "pnpm-lock.yaml": "pnpm",
    "yarn.lock": "yarn",
    ".yarnrc.yml": "yarn",
    "bun.lockb": "bun",
    "bun.lock": "bun",
}
RUNNERS = {"npm": ["npm", "run"], "pnpm": ["pnpm", "run"], "yarn": ["yarn"], "bun": ["bun", "run"]}


@dataclass(frozen=True)
class NodeApp:
    """What package.json says (empty when there is none or it is not JSON)."""

    path: Path | None  # the package.json, None when the server folder has none
    name: str = ""
    scripts: Mapping[str, str] = field(default_factory=dict)
    dependencies: Mapping[str, str] = field(default_factory=dict)  # dependencies and devDependencies
    prisma: Mapping[str, Any] = field(default_factory=dict)  # the "prisma" key (seed, schema)
    package_manager_field: str = ""  # "packageManager" (corepack's "pnpm@9.1.0")

    def uses(self, *packages: str) -> str | None:
        """The first of PACKAGES the app depends on, or None."""
        return next((p for p in packages if p in self.dependencies), None)

    @property
    def redis_client(self) -> str | None:
        """The Redis client (or queue library) the app depends on."""
        return self.uses(*REDIS_CLIENTS)

    def package_manager(self, root: Path, dockerfile_text: str = "") -> str:
        """npm, pnpm, yarn or bun: package.json's packageManager; else the lockfile (the server's folder, then ROOT).
        With several lockfiles, the manager the Dockerfile (DOCKERFILE_TEXT) runs, else npm when package-lock.json
        is one of them: npm comes with Node, the others need corepack or an install of their own."""
        named = self.package_manager_field.split("@", 1)[0].strip()
        if named in RUNNERS:
            return named
        found: list[str] = []
        for folder in dict.fromkeys([self.path.parent if self.path else root, root]):
            found += [m for lock, m in LOCKFILES.items() if (folder / lock).is_file() and m not in found]
            if found:
                break
        if len(found) > 1 and dockerfile_text:
            used = [m for m in found if re.search(rf"(?<![\w-]){m}\s+(ci|i|install|run|add)\b", dockerfile_text)]
            if len(used) == 1:
                return used[0]
        if len(found) > 1 and "npm" in found:
            return "npm"
        return found[0] if found else "npm"

    def install_command(self, root: Path) -> str:
        """How this project installs its dependencies (`npm install` when nothing says otherwise)."""
        return f"{self.package_manager(root)} install"

    def run_argv(self, script: str, root: Path, dockerfile_text: str = "") -> list[str]:
        """The command that runs package.json's SCRIPT with the project's package manager."""
        return [*RUNNERS[self.package_manager(root, dockerfile_text)], script]

    @property
    def worker_script(self) -> str | None:
        """A script that starts a second process (a queue worker)."""
        return next((s for s in WORKER_SCRIPTS if s in self.scripts), None)


def read_app(server_dir: Path) -> NodeApp:
    """The server folder's package.json."""
    path = server_dir / "package.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return NodeApp(path if path.exists() else None)
    if not isinstance(data, dict):
        return NodeApp(path)

    def table(key: str) -> dict[str, Any]:
        value = data.get(key)
        return value if isinstance(value, dict) else {}

    deps = {**table("devDependencies"), **table("dependencies")}
    return NodeApp(
        path=path,
        name=str(data.get("name") or ""),
        scripts={k: str(v) for k, v in table("scripts").items()},
        dependencies={k: str(v) for k, v in deps.items()},
        prisma=table("prisma"),
        package_manager_field=str(data.get("packageManager") or ""),
    )
