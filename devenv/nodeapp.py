"""The server as a Node project: its package.json (scripts, dependencies, Prisma settings), read once."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REDIS_CLIENTS = ("ioredis", "redis", "@redis/client", "bullmq", "bull", "bee-queue", "@nestjs/bull", "@nestjs/bullmq")
WORKER_SCRIPTS = ("start:worker", "worker", "worker:start")


@dataclass(frozen=True)
class NodeApp:
    """What package.json says (empty when there is none or it is not JSON)."""

    path: Path | None  # the package.json, None when the server folder has none
    name: str = ""
    scripts: Mapping[str, str] = field(default_factory=dict)
    dependencies: Mapping[str, str] = field(default_factory=dict)  # dependencies and devDependencies
    prisma: Mapping[str, Any] = field(default_factory=dict)  # the "prisma" key (seed, schema)

    def uses(self, *packages: str) -> str | None:
        """The first of PACKAGES the app depends on, or None."""
        return next((p for p in packages if p in self.dependencies), None)

    @property
    def redis_client(self) -> str | None:
        """The Redis client (or queue library) the app depends on."""
        return self.uses(*REDIS_CLIENTS)

    def install_command(self, root: Path) -> str:
        """How this project installs its dependencies: by its lockfile or packageManager (npm install otherwise)."""
        for folder in dict.fromkeys([self.path.parent if self.path else root, root]):
            if (folder / "yarn.lock").is_file() or (folder / ".yarnrc.yml").is_file():
                return "yarn install"
            if (folder / "pnpm-lock.yaml").is_file():
                return "pnpm install"
            if (folder / "bun.lockb").is_file():
                return "bun install"
        return "npm install"

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
    )
