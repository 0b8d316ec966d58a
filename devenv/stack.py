"""The stack's lifecycle: `up` (render, start, wait until every service really answers, migrate, seed) and `down`."""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devenv.endpoints import Endpoints, resolve_endpoints
from devenv.errors import LOG_TAIL, DevenvError, ImageUnavailable, MigrationFailed, UsageError
from devenv.pgwire import Connection, quote_ident, quote_literal
from devenv.ports import PortClaim, check_ports
from devenv.project import Project
from devenv.runtime import ComposeFailed, Runtime
from devenv.snapshot import SEEDED_MARK
from devenv.wait import (
    MIGRATE_HINT,
    Cancelled,
    ContainerWatch,
    HttpProbe,
    JobProbe,
    PostgresProbe,
    Probe,
    RedisProbe,
    StateCache,
    hint_from_logs,
    wait_for,
)

SERVICES = ("postgres", "redis", "migrate", "server")
DEPENDS: dict[str, tuple[str, ...]] = {
    "postgres": (),
    "redis": (),
    "migrate": ("postgres",),
    "server": ("postgres", "redis", "migrate"),
}


@dataclass(frozen=True)
class Event:
    """Progress of one service during `up` (for the live display and --json)."""

    service: str
    phase: str  # starting | waiting | ready | migrated | seeding | seeded | failed | unchanged
    elapsed: float
    detail: str = ""


@dataclass(frozen=True)
class ServiceReport:
    """One row of the summary."""

    service: str
    state: str
    url: str
    seconds: float | None


@dataclass(frozen=True)
class UpResult:
    """What `devenv up` did."""

    project: str
    services: tuple[ServiceReport, ...]
    compose_work: bool
    seeded: bool
    elapsed: float
    env_added: tuple[str, ...] = ()


@dataclass(frozen=True)
class DownResult:
    """What `devenv down` did."""

    project: str
    volumes_removed: bool
    remaining_volumes: tuple[str, ...]


def expand_services(requested: Sequence[str]) -> list[str]:
    """The requested services plus what they depend on, in start order; all when none are named."""
    unknown = [s for s in requested if s not in SERVICES]
    if unknown:
        raise UsageError(
            f"unknown service {unknown[0]!r}.", f"choose from {', '.join(SERVICES)} (or name none for all)."
        )
    wanted: set[str] = set()

    def add(name: str) -> None:
        if name not in wanted:
            wanted.add(name)
            for dep in DEPENDS[name]:
                add(dep)

    for name in requested or SERVICES:
        add(name)
    return [s for s in SERVICES if s in wanted]


def port_claims(project: Project, services: Sequence[str]) -> list[PortClaim]:
    """The host ports the selected services publish."""
    cfg = project.config
    claims = []
    if "postgres" in services:
        claims.append(PortClaim("postgres", cfg.postgres.port, "postgres.port in devenv.toml or DEVENV_POSTGRES_PORT"))
    if "redis" in services:
        claims.append(PortClaim("redis", cfg.redis.port, "redis.port in devenv.toml or DEVENV_REDIS_PORT"))
    if "server" in services:
        claims.append(PortClaim("server", cfg.server.port, "server.port in devenv.toml or DEVENV_SERVER_PORT"))
    return claims


def build_fingerprint(project: Project) -> str:
    """Cheap fingerprint of the server's build inputs (paths, sizes, mtimes), to skip compose when nothing changed."""
    skip_dirs = {"node_modules", ".git", ".devenv", "dist", "coverage", ".turbo", ".next"}
    digest = hashlib.sha256()
    context = (project.root / project.config.server.context).resolve()
    for dirpath, dirnames, filenames in os.walk(context):
        dirnames[:] = sorted(d for d in dirnames if d not in skip_dirs)
        for name in sorted(filenames):
            if name == ".env" or name.startswith(".env."):
                continue
            path = Path(dirpath) / name
            try:
                st = path.stat()
            except OSError:
                continue
            digest.update(f"{path.relative_to(context)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _state_path(project: Project) -> Path:
    return project.state_dir / "state.json"


def load_state(project: Project) -> dict[str, Any]:
    """devenv's memory of the last successful `up` (fingerprints), or {}."""
    try:
        data = json.loads(_state_path(project).read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def save_state(project: Project, state: dict[str, Any]) -> None:
    """Write the state atomically."""
    from devenv.envfile import atomic_write

    atomic_write(_state_path(project), json.dumps(state, indent=2, sort_keys=True) + "\n", 0o644)


def _stack_is_up(runtime: Runtime, services: Sequence[str]) -> bool:
    by_service = {c.service: c for c in runtime.containers() if not c.oneoff}
    for service in services:
        state = by_service.get(service)
        if state is None:
            return False
        if service == "migrate":
            if state.status != "exited" or state.exit_code != 0:
                return False
        elif state.status != "running" or state.health not in {None, "healthy"} or state.restart_count:
            return False
    return True


def _owned_ports(runtime: Runtime, project: Project) -> set[int]:
    published = runtime.published_ports()
    wanted = (("postgres", 5432), ("redis", 6379), ("server", project.config.server.container_port))
    return {published[key] for key in wanted if key in published}


class _LazyProbe:
    """A probe whose endpoint is known only once Docker has published the port."""

    def __init__(self, name: str, factory: Callable[[], Probe | None]) -> None:
        self.name = name
        self._factory = factory
        self._probe: Probe | None = None

    def check(self) -> bool:
        if self._probe is None:
            self._probe = self._factory()
            if self._probe is None:
                return False
        return self._probe.check()


@dataclass
class _Waiter:
    project: Project
    runtime: Runtime
    timeout: float
    emit: Callable[[Event], None]
    t0: float
    cancel: threading.Event = field(default_factory=threading.Event)
    ready_at: dict[str, float] = field(default_factory=dict)
    seeded: bool = False
    templated: bool = False  # a new reset template was taken (the spare for the first reset is then due)

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def probes(
        self, services: Sequence[str], endpoints: Callable[[], Endpoints], cache: StateCache
    ) -> dict[str, Probe]:
        from devenv.envfile import stack_settings

        settings = stack_settings(self.project)
        cfg = self.project.config
        probes: dict[str, Probe] = {}

        def pg() -> Probe | None:
            ep = endpoints()
            if ep.postgres_port is None:
                return None
            return PostgresProbe(ep.host, ep.postgres_port, settings.pg_user, settings.pg_password, settings.pg_db)

        def rd() -> Probe | None:
            ep = endpoints()
            if ep.redis_port is None:
                return None
            return RedisProbe(ep.host, ep.redis_port, settings.redis_password, settings.redis_db)

        def srv() -> Probe | None:
            ep = endpoints()
            if ep.server_port is None:
                return None
            return HttpProbe(f"http://{ep.host}:{ep.server_port}{cfg.server.ready_path}")

        if "postgres" in services:
            probes["postgres"] = _LazyProbe("postgres", pg)
        if "redis" in services:
            probes["redis"] = _LazyProbe("redis", rd)
        if "migrate" in services:
            probes["migrate"] = JobProbe(self.runtime, cache)
        if "server" in services:
            probes["server"] = _LazyProbe("server", srv)
        return probes

    def run_one(self, service: str, probe: Probe, watch: ContainerWatch) -> None:
        self.emit(Event(service, "waiting", self.elapsed()))
        try:
            wait_for(probe, timeout=self.timeout, watch=watch, cancel=self.cancel)
        except Cancelled:
            return
        except BaseException as ex:
            self.cancel.set()
            self.emit(Event(service, "failed", self.elapsed(), getattr(ex, "message", str(ex))))
            raise
        self.ready_at[service] = self.elapsed()
        self.emit(Event(service, "migrated" if service == "migrate" else "ready", self.elapsed()))
        if service == "postgres":
            self.mark_cluster()
        if service == "migrate":
            self.seed_if_new()

    def seed_if_new(self) -> None:
        """On a new database: run the seed once, mark the database seeded and take the reset template."""
        from devenv.snapshot import reset_key, take_template

        if is_seeded(self.project, self.runtime):
            return
        if self.project.config.migrate.seed_command:
            self.emit(Event("migrate", "seeding", self.elapsed()))
            run_seed(self.project, self.runtime)
            self.seeded = True
            self.emit(Event("migrate", "seeded", self.elapsed()))
        else:
            _mark_seeded(self.project, self.runtime)
        with _pg_connect(self.project, self.runtime, "postgres") as conn:
            take_template(conn, conn_db(self.project), reset_key(self.project), self.project.state_dir)
        self.templated = True

    def mark_cluster(self) -> None:
        """Tag the stack's own Postgres, so reset can tell it from any other."""
        from devenv.snapshot import mark_cluster

        with _pg_connect(self.project, self.runtime, "postgres") as conn:
            mark_cluster(conn, self.project.name)


def conn_db(project: Project) -> str:
    """The app database's name."""
    from devenv.envfile import stack_settings

    return stack_settings(project).pg_db


def start_spare_for(project: Project, ep: Endpoints) -> None:
    """After a new template: make the first reset's spare in the background (see devenv.spare)."""
    from devenv.envfile import stack_settings
    from devenv.snapshot import Target, reset_key, start_spare

    settings = stack_settings(project)
    if ep.postgres_port is not None:
        target = Target(ep.host, ep.postgres_port, settings.pg_user, settings.pg_password, settings.pg_db)
        start_spare(project, target, reset_key(project))


def _pg_connect(project: Project, runtime: Runtime, dbname: str | None = None) -> Connection:
    """A session on the stack's own Postgres for devenv's marks and the reset template (see devenv.pgwire)."""
    from devenv.envfile import stack_settings
    from devenv.pgwire import connect

    settings = stack_settings(project)
    ep = resolve_endpoints(project, runtime)
    if ep.postgres_port is None:
        raise DevenvError("postgres is not running.", "run `devenv up` first.")
    return connect(
        ep.host,
        ep.postgres_port,
        settings.pg_user,
        settings.pg_password,
        dbname or settings.pg_db,
        application_name="devenv",
    )


def is_seeded(project: Project, runtime: Runtime) -> bool:
    """Whether the app database carries devenv's seed mark."""
    with _pg_connect(project, runtime) as conn:
        mark = conn.scalar(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = current_database()"
        )
    return mark == SEEDED_MARK


def run_seed(project: Project, runtime: Runtime) -> None:
    """Run the seed command in a one-off container of the server image, then mark the database seeded."""
    from devenv.jobs import run_job

    run_job(
        runtime,
        project.config.migrate.seed_command,
        failure="the seed (`{argv}`) exited with code {code}.",
        hint="fix the seed script, then run `devenv reset` (or `devenv up` on a new database).",
    )
    _mark_seeded(project, runtime)


def _mark_seeded(project: Project, runtime: Runtime) -> None:
    with _pg_connect(project, runtime) as conn:
        conn.execute(f"COMMENT ON DATABASE {quote_ident(conn_db(project))} IS {quote_literal(SEEDED_MARK)}")


PULL_FAILURES = (
    "pull access denied",
    "manifest unknown",
    "failed to resolve",
    "no such host",
    "i/o timeout",
    "TLS handshake timeout",
    "repository does not exist",
)
IMAGE_SETTINGS = {
    "postgres": "postgres.image in devenv.toml or DEVENV_POSTGRES_IMAGE",
    "redis": "redis.image in devenv.toml or DEVENV_REDIS_IMAGE",
}


def _image_error(project: Project, err: ComposeFailed) -> DevenvError | None:
    """A pull that failed (no registry, unknown image): name the image and the setting that chooses it."""
    output = err.output
    if not any(marker in output for marker in PULL_FAILURES):
        return None
    last = output.strip().splitlines()[-1]
    base = re.search(r"failed to resolve source metadata for (\S+?):?\s", output)
    if base:  # the server's Dockerfile FROM, during the build
        image = base.group(1).removeprefix("docker.io/library/").removeprefix("docker.io/")
        args = [k for k, v in project.config.server.build_args.items() if v in (image, base.group(1))]
        setting = (
            f"server.build_args.{args[0]} / DEVENV_BUILD_ARG_{args[0]}"
            if args
            else "the FROM image's build argument (server.build_args or DEVENV_BUILD_ARG_<NAME>)"
        )
        return ImageUnavailable(
            f"the server's base image {image} is not present and cannot be pulled: {last}",
            f"pull it where a registry is reachable, or set {setting} to an image you have "
            "(offline: `make images`, README 'Offline / air-gapped').",
        )
    failing = re.findall(r"(?m)^\s*(postgres|redis)\s+Error\b", output)
    service = failing[0] if failing else next((s for s in IMAGE_SETTINGS if s in output), None)
    if service is None:
        return None
    image = project.config.postgres.image if service == "postgres" else project.config.redis.image
    return ImageUnavailable(
        f"image {image} for {service} is not present and cannot be pulled: {last}",
        f"pull it where a registry is reachable, or set {IMAGE_SETTINGS[service]} to an image you have "
        "(offline: `make images`, README 'Offline / air-gapped').",
    )


def _migration_error(project: Project, runtime: Runtime, err: ComposeFailed) -> DevenvError:
    if "migrate" in err.output and ("didn't complete successfully" in err.output or "exited with code" in err.output):
        logs = runtime.logs(["migrate"], tail=LOG_TAIL)
        return MigrationFailed(
            "the migrate job failed; the stack is left up for inspection.",
            hint_from_logs(logs) or MIGRATE_HINT,
            details=f"--- last {LOG_TAIL} log lines of migrate ---\n{logs}",
        )
    return err


def up(
    project: Project,
    runtime: Runtime,
    services: Sequence[str] = (),
    *,
    timeout: float = 60.0,
    on_event: Callable[[Event], None] = lambda e: None,
) -> UpResult:
    """Render, start what is not running, and wait until every selected service really answers."""
    from devenv.envfile import ensure_env
    from devenv.render import write_compose

    t0 = time.monotonic()
    selected = expand_services(services)
    remote = runtime.host_address() != "127.0.0.1"
    if remote and project.config.bind_address == "127.0.0.1":
        raise UsageError(
            f"the Docker Engine is remote ({runtime.host_address()}): ports published on its 127.0.0.1 "
            "cannot be reached from here.",
            "publish them on the engine host's network with DEVENV_BIND_ADDRESS=0.0.0.0 (or bind_address in "
            "devenv.toml), or use a local engine.",
        )
    env_result = ensure_env(project)
    rendered = write_compose(project)
    fingerprint = {"compose": rendered.digest}
    if "server" in selected or "migrate" in selected:
        fingerprint["build"] = build_fingerprint(project)
    state = load_state(project)

    unchanged = state.get("fingerprint") == fingerprint and _stack_is_up(runtime, selected)
    waiter = _Waiter(project, runtime, timeout, on_event, t0)
    cache = StateCache(runtime)
    compose_error: list[BaseException] = []

    def compose_up() -> None:
        try:
            runtime.up(selected, build="server" in selected or "migrate" in selected)
        except BaseException as ex:
            compose_error.append(ex)
            waiter.cancel.set()

    compose_thread: threading.Thread | None = None
    if unchanged:
        for service in selected:
            on_event(Event(service, "unchanged", waiter.elapsed()))
    else:
        if not remote:  # a remote engine's ports are not ours to probe; Docker reports a clash itself
            check_ports(port_claims(project, selected), owned=lambda: _owned_ports(runtime, project))
        for service in selected:
            on_event(Event(service, "starting", waiter.elapsed()))
        compose_thread = threading.Thread(target=compose_up, name="compose-up", daemon=True)
        compose_thread.start()

    def endpoints() -> Endpoints:
        # Read off the container states the wait loops share (one engine call per 0.1 s for all of them).
        return resolve_endpoints(project, runtime, states=cache.get())

    probes = waiter.probes(selected, endpoints, cache)
    watch = ContainerWatch(runtime, cache, selected)
    try:
        with ThreadPoolExecutor(max_workers=len(probes), thread_name_prefix="wait") as pool:
            futures: list[Future[None]] = [
                pool.submit(waiter.run_one, service, probe, watch) for service, probe in probes.items()
            ]
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            failures = [f.exception() for f in done if f.exception() is not None]
            if failures:
                waiter.cancel.set()
            wait(futures)
        if compose_thread is not None:
            compose_thread.join()
        if compose_error:
            err = compose_error[0]
            if isinstance(err, ComposeFailed):
                raise _image_error(project, err) or _migration_error(project, runtime, err)
            raise err
        if failures:
            raise failures[0]  # type: ignore[misc]
    except BaseException:
        waiter.cancel.set()
        raise

    save_state(project, {"fingerprint": fingerprint, "project": project.name})
    ep = resolve_endpoints(project, runtime)
    if waiter.templated and not project.ci:  # a CI stack is thrown away: a spare would only cost it CPU
        start_spare_for(project, ep)  # in the background, once everything is up: the first reset's copy
    reports = tuple(
        ServiceReport(
            service=s,
            state="ready" if s != "migrate" else "migrated",
            url=ep.masked_url(s, project),
            seconds=round(waiter.ready_at[s], 2) if s in waiter.ready_at else None,
        )
        for s in selected
    )
    return UpResult(
        project=project.name,
        services=reports,
        compose_work=not unchanged,
        seeded=waiter.seeded,
        elapsed=round(time.monotonic() - t0, 2),
        env_added=tuple(env_result.added),
    )


def down(project: Project, runtime: Runtime, *, volumes: bool = False) -> DownResult:
    """Stop and remove the stack's containers and network; its volumes only when asked."""
    runtime.down(volumes=volumes)  # a spare being made is cut off: unmarked, it is never used
    if load_state(project).get("fingerprint"):  # forget it: the next `up` has compose work to do
        save_state(project, {"project": project.name})
    left = runtime.resources().volumes
    return DownResult(project=project.name, volumes_removed=volumes, remaining_volumes=left)
