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

from devenv.core.errors import DevenvError, ExitCode
from devenv.core.wait import Probe
from devenv.engine.runtime import ContainerState
from devenv.project import extras
from devenv.project.context import Context, Server, host_port
from devenv.project.extras import ExtraService
from devenv.stack.probes import NO_ROUTE, ConnectorProbe, HttpProbe, TcpProbe


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


HEALTHY = {"healthy", "ok", "up", "pass", "passed", "green", "ready", "alive", "available", "running", "success"}
DEGRADED = {"degraded", "warn", "warning", "yellow", "partial"}
UNHEALTHY = {"unhealthy", "down", "fail", "failed", "error", "red", "critical", "not_ready", "unavailable"}


def verdict(status_code: int, body: bytes) -> str:
    """healthy | degraded | unhealthy from a health endpoint's answer, in the shapes servers use.

    The review's {"status": "healthy|degraded|unhealthy"}, `ok`/`up`/`pass` in any case, terminus / NestJS
    ({"status": "ok", "info": ...}, also wrapped in {"data": ...}), {"success": true}, {"healthy": true}; anything
    else is decided by the HTTP status (2xx healthy, 5xx unhealthy).
    """
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        data = None
    for _ in range(3):  # {"data": {"status": ...}} and the like
        if not isinstance(data, dict):
            break
        raw = data.get("status")
        if isinstance(raw, str):
            word = raw.strip().lower().replace(" ", "_").replace("-", "_")
            if word in HEALTHY:
                return "healthy"
            if word in DEGRADED:
                return "degraded"
            if word in UNHEALTHY:
                return "unhealthy"
        for flag in ("success", "healthy", "ok"):
            if isinstance(data.get(flag), bool):
                return "healthy" if data[flag] else "unhealthy"
        data = data.get("data")
    if 200 <= status_code < 300:
        return "healthy"
    return "unhealthy" if status_code >= 500 else "degraded"


def server_status(server: Server, path: str) -> tuple[str, dict[str, Any] | None] | None:
    """The server's detailed status: (verdict, its JSON object if any); None when there is no such endpoint."""
    try:
        response = server.get(path)
    except (OSError, ValueError):
        return None
    if response.status in NO_ROUTE:
        return None
    try:
        data = json.loads(response.body)
    except (ValueError, UnicodeDecodeError):
        data = None
    return verdict(response.status, response.body), data if isinstance(data, dict) else None


@dataclass
class _Seen:
    """A readiness already known from the container's state (a healthcheck's verdict; ready = "none": running)."""

    name: str
    ready: bool

    def check(self) -> bool:
        return self.ready


def _extra_probe(ctx: Context, extra: ExtraService, state: ContainerState | None) -> Probe:
    """A [services.NAME] service's readiness, as `up` waits for it (devenv.project.extras.Readiness)."""
    kind = extra.ready.kind
    port = extras.published(extra, state.ports) if state is not None else None
    host = ctx.endpoints.host
    if kind == "http" and port:
        return HttpProbe(ctx.connectors.server(f"http://{host}:{port}"), extra.ready.path, name=extra.name)
    if kind == "tcp" and port:
        return TcpProbe(extra.name, host, port)
    return _Seen(extra.name, kind == "none" or (state is not None and state.health == "healthy"))


def stack_status(ctx: Context) -> StatusReport:
    """Probe every service in parallel and fold the results into healthy / degraded / unhealthy."""
    from devenv.core.state import load_state

    listed = ctx.runtime.containers(detail=False)
    states = {c.service: c for c in listed if not c.oneoff}
    ctx = ctx.with_states(listed)  # the published ports, off the same engine call
    cfg = ctx.config
    ready_path = load_state(ctx.project.state_dir).get("ready_path") or cfg.server.ready_path  # what `up` found
    probes: dict[str, Callable[[], Probe]] = {
        "postgres": lambda: ConnectorProbe("postgres", ctx.postgres),
        "redis": lambda: ConnectorProbe("redis", ctx.redis),
        "server": lambda: HttpProbe(ctx.server, ready_path),
    }
    for extra in ctx.stack.extras:
        probes[extra.name] = lambda e=extra: _extra_probe(ctx, e, states.get(e.name))  # type: ignore[misc]
    checked = ctx.stack.long_running()
    host_server = ctx.stack.server_on_host and ctx.app.path is not None
    if host_server:  # `devenv dev` runs it on this machine: is it answering on its port?
        checked = (*checked, "server")
        url = f"http://127.0.0.1:{host_port(ctx)[0]}"
        probes["server"] = lambda: HttpProbe(ctx.connectors.server(url), ready_path)

    def check(service: str) -> Check:
        if service == "server" and host_server:
            ok, ms, error = _timed(probes["server"])
            where = "host process (devenv dev)"
            if ok:
                return Check("up", True, True, where, ms)
            return Check("down", False, False, where, None, "not answering; `devenv dev` starts it")
        state = states.get(service)
        live = state is not None and state.status == "running"
        if not live:
            return Check("down", False, False, _container_text(state), None, "container not running")
        ok, ms, error = _timed(probes[service])
        details = None
        status = "up" if ok else "down"
        if service == "server" and cfg.server.status_path:
            found = server_status(ctx.server, cfg.server.status_path)
            if found is None and cfg.is_pinned("server.status_path"):
                status, error = "degraded", f"GET {cfg.server.status_path} did not answer (server.status_path)"
            elif found is not None:
                said, details = found
                if ok and said != "healthy":
                    status = "degraded"  # the process answers, but reports a dependency down
                    error = error or f"{cfg.server.status_path} says {said}"
        return Check(status, live, ok, _container_text(state), ms, error, details)

    with ThreadPoolExecutor(max_workers=len(checked)) as pool:
        checks = dict(zip(checked, pool.map(check, checked), strict=True))

    if all(c.status == "up" for c in checks.values()):
        overall = "healthy"
    elif any(
        checks[s].status == "down"
        for s in ("postgres", "server")
        if s in checks and not (s == "server" and host_server)
    ):
        overall = "unhealthy"  # a host server that is not running is not the stack's failure: degraded
    else:
        overall = "degraded"
    return StatusReport(
        status=overall,
        timestamp=datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        project=ctx.project.name,
        checks=checks,
    )
