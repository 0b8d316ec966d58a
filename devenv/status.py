"""`devenv status`: the readiness review's health shape for the whole stack.

Liveness (is the container running) is kept apart from readiness (does the service answer a real query).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from devenv.context import Context, Server
from devenv.errors import DevenvError, ExitCode
from devenv.probes import ConnectorProbe, HttpProbe
from devenv.runtime import ContainerState
from devenv.wait import Probe

CHECKED = ("postgres", "redis", "server")


@dataclass(frozen=True)
class Check:
    """One service: liveness, readiness and how long the readiness query took."""

    status: str  # up | down | degraded
    live: bool
    ready: bool
    container: str  # the container's state (running, exited (1), missing, ...)
    responseTime: float | None
    error: str | None = None
    details: dict[str, Any] | None = None  # the server's own /health/status, passed through


@dataclass(frozen=True)
class StatusReport:
    """The whole stack."""

    status: str  # healthy | degraded | unhealthy
    timestamp: str
    project: str
    checks: dict[str, Check] = field(default_factory=dict)

    @property
    def exit_code(self) -> ExitCode:
        return {"healthy": ExitCode.OK, "degraded": ExitCode.FAILURE}.get(self.status, ExitCode.UNHEALTHY)

    def as_dict(self) -> dict[str, Any]:
        """The JSON shape."""
        return {
            "status": self.status,
            "timestamp": self.timestamp,
            "project": self.project,
            "checks": {name: vars(check) for name, check in self.checks.items()},
        }


def _container_text(state: ContainerState | None) -> str:
    if state is None:
        return "missing"
    if state.status == "exited":
        return f"exited ({state.exit_code})"
    if state.health:
        return f"{state.status} ({state.health})"
    return state.status


def _timed(make: Callable[[], Probe]) -> tuple[bool, float, str | None]:
    start = time.perf_counter()
    try:
        ok = make().check()
        error = None if ok else "not answering"
    except DevenvError as ex:
        ok, error = False, ex.message
    return ok, round((time.perf_counter() - start) * 1000, 1), error


def server_status(server: Server, path: str) -> dict[str, Any] | None:
    """The server's detailed status (its JSON object, whatever the HTTP status); None when there is none."""
    try:
        body = server.get(path).body
    except (OSError, ValueError):
        return None
    try:
        data = json.loads(body)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def stack_status(ctx: Context) -> StatusReport:
    """Probe every service in parallel and fold the results into healthy / degraded / unhealthy."""
    listed = ctx.runtime.containers(detail=False)
    states = {c.service: c for c in listed if not c.oneoff}
    ctx = ctx.with_states(listed)  # the published ports, off the same engine call
    cfg = ctx.config
    probes: dict[str, Callable[[], Probe]] = {
        "postgres": lambda: ConnectorProbe("postgres", ctx.postgres),
        "redis": lambda: ConnectorProbe("redis", ctx.redis),
        "server": lambda: HttpProbe(ctx.server, cfg.server.ready_path),
    }

    def check(service: str) -> Check:
        state = states.get(service)
        live = state is not None and state.status == "running"
        if not live:
            return Check("down", False, False, _container_text(state), None, "container not running")
        ok, ms, error = _timed(probes[service])
        details = None
        if service == "server":
            details = server_status(ctx.server, cfg.server.status_path)
        status = "up" if ok else "down"
        if service == "server" and details is not None and (not ok or details.get("status") != "healthy"):
            status = "degraded"  # the process answers, but reports a dependency down
        return Check(status, live, ok, _container_text(state), ms, error, details)

    with ThreadPoolExecutor(max_workers=len(CHECKED)) as pool:
        checks = dict(zip(CHECKED, pool.map(check, CHECKED), strict=True))

    if all(c.status == "up" for c in checks.values()):
        overall = "healthy"
    elif checks["postgres"].status == "down" or checks["server"].status == "down":
        overall = "unhealthy"
    else:
        overall = "degraded"
    return StatusReport(
        status=overall,
        timestamp=datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        project=ctx.project.name,
        checks=checks,
    )
