"""A devenv project: its root, its server folder, its env template and its compose project name, found the way
a user would point at them.

Discovery, from `-C DIR` or the current directory:
1. the nearest devenv.toml upward: its folder is the root (server.path, or found as below);
2. else, going upward (not past the repository's top, or outside one the nearest package.json), the first folder
   that is a server folder (it holds an env template) or holds one: `apps/server`, `apps/api`, `apps/backend`,
   `packages/server`, `packages/api`, `server`, `api`, or the folder itself; one with a package.json beside the
   template wins over one without.
The template is the first of `.env.template`, `.env.example`, `.env.sample`, `.env.dist` (`server.template` picks
one); `.env` is written beside it. Finding nothing is one ProjectNotFound error.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from devenv.core.errors import ProjectNotFound
from devenv.core.state import STATE_DIR, read_record, secrets_dir
from devenv.project.config import (
    CONFIG_FILE,
    DEFAULT_SERVER_PATH,
    Config,
    check_name_override,
    load_config,
    sanitize_name,
)

TEMPLATE_NAMES = (".env.template", ".env.example", ".env.sample", ".env.dist")
TEMPLATE_NAME = TEMPLATE_NAMES[0]
SERVER_DIRS = ("apps/server", "apps/api", "apps/backend", "packages/server", "packages/api", "server", "api")
ENV_NAME = ".env"


@dataclass(frozen=True)
class Project:
    """The project devenv works on; every path devenv reads or writes hangs off it."""

    root: Path  # dir of devenv.toml, else the folder holding the server folder (or the server folder itself)
    config: Config
    name: str  # compose project name
    base_name: str = ""  # the name without DEVENV_PROJECT_NAME / CI override; "" means the same as name
    ci: bool = False  # a throwaway CI stack (`devenv ci up` / `run`): labelled devenv.ci, so `devenv gc` may remove it
    name_pinned: bool = False  # set in devenv.toml or DEVENV_PROJECT_NAME (else derived, or chosen by `up`)

    @property
    def checkout(self) -> str:
        """This checkout's path, labelled on everything its stack has."""
        return str(self.root)

    @property
    def server_dir(self) -> Path:
        """The server's folder (server.path)."""
        return self.root / self.config.server.path if self.config.server.path != "." else self.root

    @property
    def env_template(self) -> Path:
        """The server's env template: server.template, else the first of TEMPLATE_NAMES there."""
        return self.server_dir / (self.config.server.template or template_in(self.server_dir) or TEMPLATE_NAME)

    @property
    def env_file(self) -> Path:
        """The .env devenv writes, beside the template."""
        return self.server_dir / ENV_NAME

    @property
    def dockerfile(self) -> Path:
        """The server's Dockerfile (it may not exist: the server then runs on the host)."""
        return self.root / self.config.server.dockerfile

    @property
    def state_dir(self) -> Path:
        """root/.devenv for the project's own stack; root/.devenv/stacks/NAME for a stack under another name."""
        base = self.root / STATE_DIR
        if self.base_name and self.name != self.base_name:
            return base / "stacks" / self.name
        return base

    @property
    def secrets_dir(self) -> Path:
        """The private folder outside the project holding the stack's generated env files (devenv.core.state)."""
        return secrets_dir(self.state_dir)

    @property
    def compose_file(self) -> Path:
        """The compose file devenv renders and runs."""
        return self.state_dir / "compose.yml"


def template_in(folder: Path) -> str | None:
    """The name of the first env template in FOLDER."""
    return next((name for name in TEMPLATE_NAMES if (folder / name).is_file()), None)


def _find_upward(start: Path, name: str) -> Path | None:
    for folder in (start, *start.parents):
        candidate = folder / name
        if candidate.is_file():
            return candidate
    return None


def _top(start: Path) -> Path:
    """How far up discovery looks: the repository's top (the folder with .git); outside a repository, the nearest
    folder with a package.json (a Node project's own top), else START itself."""
    for folder in (start, *start.parents):
        if (folder / ".git").exists():
            return folder
    return next((f for f in (start, *start.parents) if (f / "package.json").is_file()), start)


def _server_in(root: Path) -> str | None:
    """The server folder under ROOT, relative to it ("." for ROOT itself); with a package.json first."""
    candidates = [*SERVER_DIRS, "."]
    found = [c for c in candidates if template_in(root / c)]
    with_package = [c for c in found if (root / c / "package.json").is_file()]
    return next(iter(with_package or found), None)


def _as_server_dir(folder: Path) -> tuple[Path, str] | None:
    """(root, server path) when FOLDER is a server folder: a template in it, the root above for apps/api & co."""
    if not template_in(folder):
        return None
    for rel in SERVER_DIRS:
        parts = rel.split("/")
        if list(folder.parts[-len(parts) :]) == parts:
            return folder.parents[len(parts) - 1], rel
    return folder, "."


def _context_default(root: Path) -> Callable[[str, str], str]:
    def context(server_path: str, dockerfile: str) -> str:
        """The build context when devenv.toml does not say: the server folder for a Dockerfile in it that copies
        the folder's own files (a single app's `COPY package.json .`), else the root (a monorepo's
        `COPY apps/api/package.json …`, a Dockerfile outside the server folder, one that copies nothing)."""
        from devenv.project import dockerfile as parser

        if server_path == "." or posixpath.dirname(dockerfile) != server_path:
            return "."
        parsed = parser.read(root / dockerfile)
        if parsed is None or not parsed.copies:
            return "."
        prefix = server_path.rstrip("/") + "/"
        if any(posixpath.normpath(c.removeprefix("./")).startswith(prefix) for c in parsed.copies):
            return "."
        return server_path

    return context


def load_project(
    project_dir: Path | None, cwd: Path | None = None, environ: Mapping[str, str] | None = None
) -> Project:
    """Find the project from PROJECT_DIR (the -C option) or CWD and load its configuration."""
    env = os.environ if environ is None else environ
    here = (cwd or Path.cwd()).absolute()
    start = (here / project_dir) if project_dir is not None else here
    if not start.is_dir():
        raise ProjectNotFound(
            f"-C {project_dir}: {start} is not a directory.", "pass the project root or any folder inside it."
        )
    start = start.resolve()

    config_file = _find_upward(start, CONFIG_FILE)
    if config_file is not None:
        root = config_file.parent
        server_path = _server_in(root) or DEFAULT_SERVER_PATH
    else:
        top = _top(start)
        found: tuple[Path, str] | None = None
        for folder in (start, *start.parents):
            found = _as_server_dir(folder)
            if found is None and (inner := _server_in(folder)) is not None:
                found = (folder, inner)
            if found is not None or folder == top:
                break
        if found is None:
            raise ProjectNotFound(
                f"no devenv project at {start}: no {CONFIG_FILE} there or above, and no env template "
                f"({', '.join(TEMPLATE_NAMES)}) in it, in {', '.join(SERVER_DIRS)}, or above it in this repository.",
                f"run devenv inside the project (or pass -C DIR), or create {CONFIG_FILE} at the project root "
                "(see docs/configuration.md).",
            )
        root, server_path = found
    config = load_config(config_file, env, server_path=server_path, context=_context_default(root))
    record = read_record(root)  # what `up` chose for this checkout before: its name, ports it fell back to
    config = _recorded_ports(config, record.get("ports"))
    base_name = config.name or str(record.get("name") or "") or sanitize_name(root.name)
    override = env.get("DEVENV_PROJECT_NAME", "")
    name = check_name_override(override, "DEVENV_PROJECT_NAME") if override else base_name
    pinned = bool(override) or config.name is not None
    return Project(root=root, config=config, name=name, base_name=base_name, name_pinned=pinned)


def _recorded_ports(config: Config, recorded: object) -> Config:
    """CONFIG with the host ports `up` fell back to for this checkout, where none is pinned."""
    if not isinstance(recorded, dict):
        return config
    changes = {}
    for table in ("postgres", "redis", "server"):
        port = recorded.get(table)
        if isinstance(port, int) and 0 < port < 65536 and not config.is_pinned(f"{table}.port"):
            changes[table] = replace(getattr(config, table), port=port)
    return replace(config, **changes) if changes else config
