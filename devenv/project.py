"""A devenv project: its root, its configuration and its compose project name, found like git finds a repo.

Discovery order: `-C DIR` (or the current directory), then the nearest devenv.toml upward, else a .env.template in
that directory or in its apps/server/. Finding nothing is one ProjectNotFound error.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from devenv.config import CONFIG_FILE, DEFAULT_SERVER_PATH, Config, check_name_override, load_config, sanitize_name
from devenv.errors import ProjectNotFound
from devenv.state import STATE_DIR

TEMPLATE_NAME = ".env.template"
ENV_NAME = ".env"


@dataclass(frozen=True)
class Project:
    """The project devenv works on; every path devenv reads or writes hangs off it."""

    root: Path  # dir of devenv.toml, else where the template was found (the monorepo root for apps/server/)
    config: Config
    name: str  # compose project name
    base_name: str = ""  # the name without DEVENV_PROJECT_NAME / CI override; "" means the same as name
    ci: bool = False  # a throwaway CI stack (`devenv ci up` / `run`): labelled devenv.ci, so `devenv gc` may remove it

    @property
    def server_dir(self) -> Path:
        """The server's folder (server.path)."""
        return self.root / self.config.server.path if self.config.server.path != "." else self.root

    @property
    def env_template(self) -> Path:
        """The server's .env.template."""
        return self.server_dir / TEMPLATE_NAME

    @property
    def env_file(self) -> Path:
        """The .env devenv writes, beside the template."""
        return self.server_dir / ENV_NAME

    @property
    def state_dir(self) -> Path:
        """root/.devenv for the project's own stack; root/.devenv/stacks/NAME for a stack under another name."""
        base = self.root / STATE_DIR
        if self.base_name and self.name != self.base_name:
            return base / "stacks" / self.name
        return base

    @property
    def compose_file(self) -> Path:
        """The compose file devenv renders and runs."""
        return self.state_dir / "compose.yml"


def _find_upward(start: Path, name: str) -> Path | None:
    for folder in (start, *start.parents):
        candidate = folder / name
        if candidate.is_file():
            return candidate
    return None


def _server_path_default(root: Path) -> str:
    """apps/server in a monorepo; '.' for a single app whose .env.template sits at the root."""
    if not (root / DEFAULT_SERVER_PATH).is_dir() and (root / TEMPLATE_NAME).is_file():
        return "."
    return DEFAULT_SERVER_PATH


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
        config = load_config(config_file, env, server_path=_server_path_default(root))
    elif (start / TEMPLATE_NAME).is_file():
        # In apps/server of a monorepo the root is two levels up (that is where the Dockerfile's context is).
        if start.parent.name == "apps" and start.name == "server":
            root, server_path = start.parent.parent, DEFAULT_SERVER_PATH
        else:
            root, server_path = start, "."
        config = load_config(None, env, server_path=server_path)
    elif (start / DEFAULT_SERVER_PATH / TEMPLATE_NAME).is_file():
        root = start
        config = load_config(None, env)
    else:
        raise ProjectNotFound(
            f"no devenv project at {start}: no {CONFIG_FILE} there or above, and no {TEMPLATE_NAME} "
            f"in it or in its {DEFAULT_SERVER_PATH}/.",
            f"run devenv inside the project (or pass -C DIR), or create {CONFIG_FILE} at the project root "
            "(see README, Configuration).",
        )

    base_name = config.name or sanitize_name(root.name)
    override = env.get("DEVENV_PROJECT_NAME", "")
    name = check_name_override(override, "DEVENV_PROJECT_NAME") if override else base_name
    return Project(root=root, config=config, name=name, base_name=base_name)
