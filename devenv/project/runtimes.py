"""Which runtime a command talks to: its project's (compose project, labels, secrets folder), or, without one,
the engine-wide one (`ls`, `gc`, `down --gone`, `doctor` outside a project). The CLI asks here and never builds a
runtime itself."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from devenv.engine.runtime import DockerRuntime, open_runtime
from devenv.engine.target import EngineTarget
from devenv.engine.target import resolve as resolve_engine

if TYPE_CHECKING:
    from devenv.project.discovery import Project


def runtime_for(
    project: Project | None = None, environ: Mapping[str, str] | None = None, target: EngineTarget | None = None
) -> DockerRuntime:
    """The real runtime of PROJECT (None: engine-wide calls only) on the engine TARGET (default: the one ENVIRON
    points at), with the command's ENVIRON (default: this process's)."""
    target = target or resolve_engine(environ)
    if project is None:
        return open_runtime(target=target, environ=environ)
    return open_runtime(
        project.name, project.compose_file, project.checkout, str(project.secrets_dir), target=target, environ=environ
    )
