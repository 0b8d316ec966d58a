"""The stack's lifecycle: `up` (complete .env, render, start, wait until every service really answers, migrate,
seed once, take the reset template), `down`, and `reset --hard` (down with the volumes, then up).

`up` in a few lines: the context's files complete .env (devenv.envfile) and render the compose files
(devenv.render); when their digest and the build inputs match the last successful `up` and the containers are
healthy, nothing is started; otherwise ports are checked and `compose up` runs in a thread while one wait per
service probes it (devenv.probes, retried by devenv.wait) and a watch fails fast on a dead container.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from devenv import marks
from devenv.context import Context
from devenv.endpoints import Endpoints, container_ports
from devenv.envfile import ensure_env
from devenv.errors import ComposeFailed, UsageError
from devenv.images import pull_failure
from devenv.migrate import failed_job, run_seed
from devenv.ports import check_ports
from devenv.probes import ConnectorProbe, ContainerWatch, HttpProbe, JobProbe, StateCache
from devenv.render import write_compose
from devenv.reset import ResetResult, start_spare, take_template
from devenv.runtime import ContainerState
from devenv.services import expand_services, port_claims
from devenv.state import load_state, save_state
from devenv.wait import Cancelled, Probe, wait_for


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
    env_warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class DownResult:
    """What `devenv down` did."""

    project: str
    volumes_removed: bool
    remaining_volumes: tuple[str, ...]


def build_fingerprint(root: Path, context: str) -> str:
    """Cheap fingerprint of the server's build inputs (paths, sizes, mtimes), to skip compose when nothing changed."""
    skip_dirs = {"node_modules", ".git", ".devenv", "dist", "coverage", ".turbo", ".next"}
    digest = hashlib.sha256()
    top = (root / context).resolve()
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames[:] = sorted(d for d in dirnames if d not in skip_dirs)
        for name in sorted(filenames):
            if name == ".env" or name.startswith(".env."):
                continue
            path = Path(dirpath) / name
            try:
                st = path.stat()
            except OSError:
                continue
            digest.update(f"{path.relative_to(top)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _stack_is_up(states: Sequence[ContainerState], services: Sequence[str]) -> bool:
    by_service = {c.service: c for c in states if not c.oneoff}
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


def _owned_ports(ctx: Context) -> set[int]:
    published = ctx.runtime.published_ports()
    return {published[key] for key in container_ports(ctx.config).items() if key in published}


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
    """The waits of one `up`: a probe per service, in parallel, each followed by what that service unlocks."""

    ctx: Context
    cache: StateCache
    timeout: float
    emit: Callable[[Event], None]
    t0: float
    cancel: threading.Event = field(default_factory=threading.Event)
    ready_at: dict[str, float] = field(default_factory=dict)
    seeded: bool = False
    templated: bool = False  # a new reset template was taken (the spare for the first reset is then due)

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def live(self) -> Context:
        """The context with the ports as the engine publishes them now (read off the shared states)."""
        return self.ctx.with_states(self.cache.get())

    def probes(self, services: Sequence[str]) -> dict[str, Probe]:
        ctx = self.ctx

        def published(service: str) -> Endpoints | None:
            ep = self.live().endpoints
            return ep if ep.port(service) is not None else None

        def pg() -> Probe | None:
            ep = published("postgres")
            return ConnectorProbe("postgres", ctx.with_endpoints(ep).postgres) if ep else None

        def rd() -> Probe | None:
            ep = published("redis")
            return ConnectorProbe("redis", ctx.with_endpoints(ep).redis) if ep else None

        def srv() -> Probe | None:
            ep = published("server")
            return HttpProbe(ctx.with_endpoints(ep).server, ctx.config.server.ready_path) if ep else None

        factories: dict[str, Callable[[], Probe]] = {
            "postgres": lambda: _LazyProbe("postgres", pg),
            "redis": lambda: _LazyProbe("redis", rd),
            "migrate": lambda: JobProbe(ctx.runtime, self.cache),
            "server": lambda: _LazyProbe("server", srv),
        }
        return {s: factories[s]() for s in services}

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
            with self.live().postgres.session(what="devenv's mark") as conn:
                marks.mark_cluster(conn, self.ctx.project.name)  # so reset can tell the stack's Postgres
        if service == "migrate":
            self.seed_if_new()

    def seed_if_new(self) -> None:
        """On a new database: run the seed once, mark the database seeded and take the reset template."""
        ctx = self.live()
        with ctx.postgres.session(what="the seed mark") as conn:
            if marks.is_seeded(conn):
                return
        seed = ctx.config.migrate.seed_command
        if seed:
            self.emit(Event("migrate", "seeding", self.elapsed()))
            run_seed(ctx.runtime, seed)
            self.seeded = True
            self.emit(Event("migrate", "seeded", self.elapsed()))
        db = ctx.settings.pg_db
        with ctx.postgres.session("postgres", what="the reset template") as conn:
            marks.mark_seeded(conn, db)
            take_template(conn, db, marks.migrations_key(ctx.project), ctx.project.state_dir)
        self.templated = True


def _summary_url(ctx: Context, service: str) -> str:
    """The summary's URL for SERVICE, passwords masked."""
    ep, settings = ctx.endpoints, ctx.settings
    if service == "postgres" and ep.postgres_port:
        return settings.database_url(ep.host, ep.postgres_port, query=False, masked=True)
    if service == "redis" and ep.redis_port:
        return settings.redis_url(ep.host, ep.redis_port, masked=True)
    if service == "server" and ep.server_port:
        return ep.server_url()
    if service == "migrate":
        return "prisma migrate deploy: applied"
    return "-"


def up(
    ctx: Context,
    services: Sequence[str] = (),
    *,
    timeout: float = 60.0,
    on_event: Callable[[Event], None] = lambda e: None,
) -> UpResult:
    """Render, start what is not running, and wait until every selected service really answers."""
    t0 = time.monotonic()
    project, runtime = ctx.project, ctx.runtime
    selected = expand_services(services)
    host = runtime.host_address()
    remote = host != "127.0.0.1"
    if remote and project.config.bind_address == "127.0.0.1":
        raise UsageError(
            f"the Docker Engine is remote ({host}): ports published on its 127.0.0.1 cannot be reached from here.",
            "publish them on the engine host's network with DEVENV_BIND_ADDRESS=0.0.0.0 (or bind_address in "
            "devenv.toml), or use a local engine.",
        )
    env_result = ensure_env(project, ctx.environ, files=ctx.files)
    ctx = ctx.with_files(env_result.files)
    rendered = write_compose(ctx)
    fingerprint = {"compose": rendered.digest}
    builds = "server" in selected or "migrate" in selected
    if builds:
        fingerprint["build"] = build_fingerprint(project.root, project.config.server.context)
    state = load_state(project.state_dir)

    cache = StateCache(runtime)
    unchanged = state.get("fingerprint") == fingerprint and _stack_is_up(cache.get(), selected)
    waiter = _Waiter(ctx, cache, timeout, on_event, t0)
    compose_error: list[BaseException] = []

    def compose_up() -> None:
        try:
            runtime.up(selected, build=builds)
        except BaseException as ex:
            compose_error.append(ex)
            waiter.cancel.set()

    compose_thread: threading.Thread | None = None
    if unchanged:
        for service in selected:
            on_event(Event(service, "unchanged", waiter.elapsed()))
    else:
        if not remote:  # a remote engine's ports are not ours to probe; Docker reports a clash itself
            check_ports(port_claims(project.config, selected), owned=lambda: _owned_ports(ctx))
        for service in selected:
            on_event(Event(service, "starting", waiter.elapsed()))
        compose_thread = threading.Thread(target=compose_up, name="compose-up", daemon=True)
        compose_thread.start()

    probes = waiter.probes(selected)
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
                raise pull_failure(project.config, err) or failed_job(runtime, err) or err
            raise err
        if failures:
            raise failures[0]  # type: ignore[misc]
    except BaseException:
        waiter.cancel.set()
        raise

    save_state(project.state_dir, {"fingerprint": fingerprint, "project": project.name})
    final = waiter.live()
    if waiter.templated:
        start_spare(final, marks.migrations_key(project))  # in the background: the first reset's copy
    reports = tuple(
        ServiceReport(
            service=s,
            state="ready" if s != "migrate" else "migrated",
            url=_summary_url(final, s),
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
        env_warnings=env_result.warnings,
    )


def down(ctx: Context, *, volumes: bool = False) -> DownResult:
    """Stop and remove the stack's containers and network; its volumes only when asked."""
    project = ctx.project
    ctx.runtime.down(volumes=volumes)  # a spare being made is cut off: unmarked, it is never used
    if load_state(project.state_dir).get("fingerprint"):  # forget it: the next `up` has compose work to do
        save_state(project.state_dir, {"project": project.name})
    left = ctx.runtime.resources().volumes
    return DownResult(project=project.name, volumes_removed=volumes, remaining_volumes=left)


def hard_reset(ctx: Context, *, timeout: float = 60.0) -> ResetResult:
    """`down --volumes` + `up`: new volumes, migrations, seed and template."""
    t0 = time.perf_counter()
    ctx.runtime.down(volumes=True)  # a spare being made is cut off: unmarked, it is never used
    up(ctx, timeout=timeout)
    db = ctx.settings.pg_db
    return ResetResult(
        mode="hard",
        database=db,
        template=marks.template_name(db),
        key=marks.migrations_key(ctx.project),
        seconds=round(time.perf_counter() - t0, 3),
        redis_flushed=True,
        reason="volumes dropped",
    )
