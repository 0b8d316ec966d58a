"""The stack's lifecycle: `up` (complete .env, render, build the server image, start, wait until every service
really answers, migrate, seed once, take the reset template), `down`, and `reset --hard` (down with the volumes,
then up).

`up` in a few lines: the context's files complete .env (devenv.envfile) and render the compose files
(devenv.render); when their digest and the build inputs match the last successful `up` and the containers are
healthy, nothing is started. Otherwise ports are checked, the server image is built first (devenv.build: progress
as steps, a failed step as its own error), and only then do the per-service deadlines start: `compose up` runs
while one wait per service probes it from a thread of its own (devenv.probes, retried by devenv.wait), bound to the
containers of this `up`, and a watch fails fast on a dead container. Afterwards .env is pointed at the ports in use.
Ctrl-C ends compose's process and every wait at once.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from pathlib import Path

from devenv import checkouts, extras, marks
from devenv.build import BuildLog, BuildStep
from devenv.context import Context
from devenv.endpoints import Endpoints
from devenv.engine import is_loopback
from devenv.envfile import HostPorts, ensure_env, remember, sync_ports, written_marks
from devenv.errors import ComposeFailed, DevenvError, PortInUse, UsageError
from devenv.images import pull_failure
from devenv.migrate import failed_job, migrate_on_host, migrate_outcome, run_seed
from devenv.probes import (
    FALLBACK_PATHS,
    ConnectorProbe,
    ContainerWatch,
    HealthProbe,
    HttpProbe,
    JobProbe,
    SettleProbe,
    StateCache,
    TcpProbe,
)
from devenv.render import write_compose
from devenv.reset import ResetResult, start_spare, take_template
from devenv.runtime import ContainerState
from devenv.services import expand_services, port_claims
from devenv.state import STATE_DIR, load_state, read_record, save_state, write_record
from devenv.wait import Cancelled, Probe, wait_for

COMPOSE_FILES = ("compose.yaml", "compose.yml", "docker-compose.yml", "docker-compose.yaml")


@dataclass(frozen=True)
class Event:
    """Progress of one service during `up` (for the live display and --json)."""

    service: str
    phase: str  # starting | building | built | waiting | ready | migrated | seeding | seeded | failed | unchanged
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
    """What `devenv up` did, and what it wants the user to know (`notes`: facts, `warnings`: something to fix)."""

    project: str
    services: tuple[ServiceReport, ...]
    compose_work: bool
    seeded: bool
    elapsed: float
    env_added: tuple[str, ...] = ()
    env_warnings: tuple[str, ...] = ()
    env_generated: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()


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


def _is_ip(host: str) -> bool:
    import ipaddress

    try:
        return ipaddress.ip_address(host).version == 4
    except ValueError:
        return False


def _claim(
    ctx: Context, states: list[ContainerState], selected: Sequence[str]
) -> tuple[Context, list[ContainerState], list[str]]:
    """This checkout's stack: its own name when another checkout holds this one, and host ports of its own when a
    default one is taken (devenv.checkouts); both are kept in .devenv/checkout.json."""
    project, runtime = ctx.project, ctx.runtime
    notes: list[str] = []
    claim = checkouts.claim_name(
        runtime, project.name, project.root, pinned=project.name_pinned, known=[s.labels for s in states]
    )
    if claim.name != project.name:
        write_record(project.root, name=claim.name)
        project = replace(project, name=claim.name, base_name=claim.name)
        ctx = ctx.for_project(project)
        states = ctx.runtime.containers(detail=False)
        notes.append(claim.note)
    space = checkouts.port_space(ctx.runtime)  # this machine's loopback, or the remote engine's host
    cfg = project.config
    owned = {port for s in states if not s.oneoff for port in s.ports.values()}  # this stack's published ports
    recorded = read_record(project.root).get("ports") or {}
    seen: dict[int, str] = {}
    changes: dict[str, int] = {}
    for claim_ in port_claims(cfg, selected):
        service, port = claim_.service, claim_.port
        if port and port in seen:
            raise PortInUse(
                f"host port {port} is claimed by both {seen[port]} and {service}.",
                f"give {service} another port ({claim_.setting}).",
            )
        seen[port] = service
        if cfg.is_pinned(f"{service}.port") or ctx.stack.extra(service) is not None:  # [services.*] ports: pinned
            if port and port not in owned and not space.is_free(port):
                raise checkouts.pinned_port_error(service, port, ctx.runtime, claim_.setting, space.where)
            continue
        chosen = checkouts.choose_port(space, port, owned, recorded.get(service))
        if chosen is not None:
            notes.append(
                f"{service}: host port {port} is taken (by {checkouts.holder(ctx.runtime, port)}); this stack uses "
                f"{chosen} (kept in .devenv/checkout.json; {claim_.setting} pins one)."
            )
            changes[service] = chosen
    if changes:
        write_record(project.root, ports={**recorded, **changes})
        config = replace(cfg, **{svc: replace(getattr(cfg, svc), port=port) for svc, port in changes.items()})
        ctx = ctx.for_project(replace(project, config=config), runtime=ctx.runtime)
    return ctx, states, notes


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
    failing: threading.Lock = field(default_factory=threading.Lock)
    ready_at: dict[str, float] = field(default_factory=dict)
    seeded: bool = False
    seed_note: str = ""  # what happened about the seed on a new database
    host_note: str = ""  # what the migrations from the host did (server.mode = host)
    templated: bool = False  # a new reset template was taken (the spare for the first reset is then due)
    readiness: HttpProbe | None = None
    settle: float = extras.SETTLE_SECONDS  # ready = "none": 0 when the stack was up already and nothing changed
    unchanged: bool = False  # nothing changed since the last up: the migrate job's exit is the last up's
    existing: frozenset[str] = frozenset()  # the containers there before this `up` (their old restarts don't count)

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def live(self) -> Context:
        """The context with the ports as the engine publishes them now (read off the shared states)."""
        return self.ctx.with_states(self.cache.current())

    def probes(self, services: Sequence[str]) -> dict[str, Probe]:
        ctx = self.ctx

        def published(service: str) -> Endpoints | None:
            # Only a running container of this `up` counts: with a fixed host port the container compose is about
            # to replace still answers there, and must not be taken for the new one.
            state = self.cache.service(service)
            if state is None or state.status != "running":
                return None
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
            if ep is None:
                return None
            cfg = ctx.config
            fallbacks = () if cfg.is_pinned("server.ready_path") else (cfg.server.health_path, *FALLBACK_PATHS)
            self.readiness = HttpProbe(ctx.with_endpoints(ep).server, cfg.server.ready_path, fallbacks)
            return self.readiness

        factories: dict[str, Callable[[], Probe]] = {
            "postgres": lambda: _LazyProbe("postgres", pg),
            "redis": lambda: _LazyProbe("redis", rd),
            "migrate": lambda: JobProbe(ctx.runtime, self.cache),
            "server": lambda: _LazyProbe("server", srv),
        }
        return {s: factories[s]() if s in factories else self.extra_probe(s) for s in services}

    def extra_probe(self, service: str) -> Probe:
        """A [services.NAME] service's own readiness (devenv.extras.Readiness), on this `up`'s container."""
        spec = self.ctx.stack.extra(service)
        assert spec is not None
        if spec.ready.kind == "health":
            return HealthProbe(service, self.cache)
        if spec.ready.kind == "none":
            return SettleProbe(service, self.ctx.runtime, self.cache, self.settle, existing=self.existing)

        def make() -> Probe | None:
            state = self.cache.service(service)
            port = extras.published(spec, state.ports) if state is not None and state.status == "running" else None
            if port is None:
                return None
            host = self.ctx.runtime.host_address()
            if spec.ready.kind == "http":
                base = f"http://{host}:{port}"
                setting = f"services.{service}.ready"
                return HttpProbe(self.ctx.connectors.server(base), spec.ready.path, name=service, setting=setting)
            return TcpProbe(service, host, port)

        return _LazyProbe(service, make)

    def run_one(self, service: str, probe: Probe, watch: ContainerWatch) -> None:
        self.emit(Event(service, "waiting", self.elapsed()))
        try:
            wait_for(probe, timeout=self.timeout, watch=watch, cancel=self.cancel)
        except Cancelled:
            return
        except BaseException as ex:
            with self.failing:  # the shared watch raises one dead container's error in every wait: say it once
                first = not self.cancel.is_set()
                self.cancel.set()
            if first:
                message = getattr(ex, "message", str(ex))
                # The watch's errors name the dead container's service first ("worker exited with code 3.").
                about = next((s for s in self.ctx.stack.services if message.startswith(f"{s} ")), service)
                self.emit(Event(about, "failed", self.elapsed(), message))
            raise
        self.ready_at[service] = self.elapsed()
        done = ("unchanged" if self.unchanged else "migrated") if service == "migrate" else "ready"
        self.emit(Event(service, done, self.elapsed()))  # a no-op up did not run the migrate job: it says so
        if service == "postgres":
            with self.live().postgres.session(what="devenv's mark") as conn:
                # so reset knows its own
                ctx = self.ctx
                marks.mark_cluster(
                    conn, ctx.project.name, ctx.project.checkout, ctx.settings.pg_db, ctx.runtime.machine[0]
                )
        # The database is ready once migrated, or at once when nothing migrates it in the stack.
        if service == "migrate" or (service == "postgres" and not self.ctx.stack.migrates):
            self.seed_if_new()

    def migrate_on_host(self, ctx: Context) -> None:
        """server.mode = host: `prisma migrate deploy` from the host (the project's own prisma, the .env values),
        on every `up` that has work to do, as the migrate job would in a container."""
        self.emit(Event("postgres", "migrating", self.elapsed(), "on the host"))
        outcome = migrate_outcome(migrate_on_host(ctx, ()))
        self.host_note = f"migrated from the host: `{' '.join(ctx.config.migrate.command)}`" + (
            f" ({outcome})" if outcome else ""
        )
        self.emit(Event("postgres", "migrated", self.elapsed(), "on the host"))

    def seed_if_new(self) -> None:
        """On a new database: run the seed once, mark the database seeded and take the reset template."""
        ctx = self.live()
        if ctx.stack.host and ctx.prisma.schema is not None:
            self.migrate_on_host(ctx)
        with ctx.postgres.session(what="the seed mark") as conn:
            if marks.is_seeded(conn):
                return
        seed = ctx.seed_command if ctx.stack.migrates or ctx.stack.host else ()
        if seed:
            job = "postgres" if ctx.stack.host else "migrate"
            self.emit(Event(job, "seeding", self.elapsed()))
            if ctx.stack.host:
                from devenv.migrate import run_on_host

                run_on_host(
                    ctx,
                    seed,
                    failure="the seed (`{argv}`) exited with code {code} (run on the host).",
                    hint="fix the seed script, then run `devenv reset` (or `devenv up` on a new database).",
                )
            else:
                run_seed(ctx.runtime, seed)
            self.seeded = True
            self.seed_note = f"seeded the new database: `{' '.join(seed)}`" + (
                " (on the host)." if ctx.stack.host else "."
            )
            self.emit(Event(job, "seeded", self.elapsed()))
        elif ctx.stack.migrates or (ctx.stack.host and ctx.prisma.schema is not None):
            self.seed_note = (
                "no seed configured (no prisma.seed in package.json, no seed in prisma.config.*, no "
                "migrate.seed_command): the new database has the schema only."
            )
        elif ctx.prisma.schema is not None:
            self.seed_note = (
                "the new database is empty: nothing in the stack migrates it (the server has no Dockerfile); "
                f"run `npx prisma migrate deploy` in {ctx.project.server_dir} with the .env devenv wrote."
            )
        db = ctx.settings.pg_db
        with ctx.postgres.session(marks.maintenance_db(db), what="the reset template") as conn:
            marks.mark_seeded(conn, db)
            take_template(conn, db, ctx.migrations_key, ctx.project.state_dir)
        self.templated = True


def _summary_url(ctx: Context, service: str, migrate_outcome: str = "", others: dict[str, str] | None = None) -> str:
    """The summary's URL for SERVICE (passwords masked); for migrate, the command that ran and what it said;
    OTHERS: the extra services' URLs."""
    if others and service in others:
        return others[service]
    ep, settings = ctx.endpoints, ctx.settings
    if service == "postgres" and ep.postgres_port:
        return settings.database_url(ep.host, ep.postgres_port, query=False, masked=True)
    if service == "redis" and ep.redis_port:
        return settings.redis_url(ep.host, ep.redis_port, masked=True)
    if service == "server" and ep.server_port:
        return ep.server_url()
    if service == "migrate":
        return f"`{' '.join(ctx.config.migrate.command)}`" + (f": {migrate_outcome}" if migrate_outcome else "")
    return "-"


def _notes(ctx: Context, selected: Sequence[str], env_written: bool = False) -> tuple[list[str], list[str]]:
    """What `up` tells the user about this project's shape: (notes, warnings)."""
    project, stack, cfg = ctx.project, ctx.stack, ctx.config
    notes: list[str] = []
    warnings: list[str] = []
    if project.env_template.name != ".env.template" and env_written:  # said when this up wrote .env
        notes.append(f"{project.env_file.name} is written from {project.env_template.name} (the env template).")
    if not stack.redis:
        notes.append(f"redis: not in the stack ({stack.redis_reason}; [redis] enabled = true adds it).")
    if stack.host and ctx.app.path is not None:
        folder = cfg.server.path if cfg.server.path != "." else "the project root"
        notes.append(
            f"server: {stack.server_reason}. Start it with `devenv dev` (its dev script in {folder}, with the .env "
            "devenv wrote, until Ctrl-C; the stack stays up)."
        )
    elif not stack.server:
        notes.append(f"server: not in the stack ({stack.server_reason}).")
    setup = ctx.prisma
    pinned = cfg.is_pinned("migrate.command")
    if "migrate" in selected and not pinned and setup.schema is not None and not setup.migration_count:
        warnings.append(
            "no Prisma migrations (prisma/migrations is missing or empty): `prisma migrate deploy` applies "
            "nothing and the database stays empty. Create one with `npx prisma migrate dev --name init`, or "
            'set migrate.command = "npx prisma db push" in devenv.toml to sync the schema without migrations.'
        )
    if stack.server and ctx.dockerfile is not None:
        from devenv.dockerignore import image_warnings

        migrations = setup.migrations if "migrate" in selected and not pinned else None
        context = project.root / cfg.server.context
        warnings.extend(image_warnings(ctx.dockerfile, context, migrations, project.env_file, project.root / STATE_DIR))
    compose_file = next((project.root / f for f in COMPOSE_FILES if (project.root / f).is_file()), None)
    if compose_file is not None:
        notes.append(
            f"{compose_file.name} is not used: devenv runs its own stack (see `devenv render`); `devenv init` offers "
            "its postgres and redis settings."
        )
    return notes, warnings


def _build(ctx: Context, emit: Callable[[Event], None], t0: float) -> None:
    """Build the server image before anything starts, its steps as progress; a failure is one error."""

    def on_step(step: BuildStep) -> None:
        emit(Event("server", "building", time.monotonic() - t0, step.label()))

    log = BuildLog(on_step=on_step)
    emit(Event("server", "building", time.monotonic() - t0))
    try:
        ctx.runtime.build(["server"], on_line=log.feed)
    except ComposeFailed as err:
        raise log.failure(ctx.config, ctx.dockerfile, err) from err
    emit(Event("server", "built", time.monotonic() - t0, f"{len(log.steps)} steps, {log.cached} cached"))


def up(
    ctx: Context,
    services: Sequence[str] = (),
    *,
    timeout: float = 60.0,
    on_event: Callable[[Event], None] = lambda e: None,
    follow_branch: bool = True,
) -> UpResult:
    """Render, build, start what is not running, and wait until every selected service really answers.

    With per-branch databases (FOLLOW_BRANCH and [db] per_branch), the app database is the checked-out branch's
    before anything migrates it (devenv.branches).
    """
    t0 = time.monotonic()
    project, runtime = ctx.project, ctx.runtime
    selected = expand_services(services, ctx.stack)
    host = runtime.host_address()
    if not is_loopback(host) and is_loopback(project.config.bind_address):
        raise UsageError(
            f"the Docker Engine is remote ({host}): ports published on its 127.0.0.1 cannot be reached from here.",
            "publish them on the engine host's network: DEVENV_BIND_ADDRESS=0.0.0.0 (every interface; or "
            "bind_address in devenv.toml)"
            + (f" or DEVENV_BIND_ADDRESS={host} (that interface only)" if _is_ip(host) else "")
            + ", or use a local engine.",
        )
    before = runtime.containers(detail=False)
    claim_notes: list[str] = []
    if not project.ci:  # a CI stack has a name of its own and Docker-chosen ports
        ctx, before, claim_notes = _claim(ctx, before, selected)
        project, runtime = ctx.project, ctx.runtime
    env_result = ensure_env(project, ctx.environ, files=ctx.files, redis=ctx.stack.redis, host=host)
    remember(project, env_result)  # now, not with the final state: a failing `up` still knows these are its own
    ctx = ctx.with_files(env_result.files)
    if follow_branch and project.config.db.per_branch and not project.ci and "postgres" in selected:
        claim_notes += _follow_branch(ctx, before, timeout, on_event)
    rendered = write_compose(ctx)
    fingerprint = {"compose": rendered.digest}
    builds = ctx.stack.uses_server_image(selected)
    if builds:
        fingerprint["build"] = build_fingerprint(project.root, project.config.server.context)
    if ctx.stack.host:  # migrations run from the host: new ones are work for `up`
        fingerprint["migrations"] = ctx.migrations_key
    state = load_state(project.state_dir)

    cache = StateCache(runtime)
    cache.prime(before)
    unchanged = state.get("fingerprint") == fingerprint and _stack_is_up(before, selected)
    notes, warnings = _notes(ctx, selected, env_result.written) if not unchanged else ([], [])
    notes = claim_notes + notes
    for note in notes:  # said now: a failing `up` still tells what it decided
        on_event(Event("up", "note", time.monotonic() - t0, note))
    for warning in warnings:
        on_event(Event("up", "warning", time.monotonic() - t0, warning))
    compose_error: list[DevenvError] = []
    if unchanged:
        for service in selected:
            on_event(Event(service, "unchanged", time.monotonic() - t0))
    else:
        for service in selected:
            on_event(Event(service, "starting", time.monotonic() - t0))
        if builds:
            _build(ctx, on_event, t0)  # the deadlines below start once the image exists
        # Only containers of this `up` count until compose is done (see StateCache).
        cache = StateCache(runtime, stale=frozenset(s.id for s in before))
    waiter = _Waiter(ctx, cache, timeout, on_event, t0)  # each wait's deadline starts when it does: after the build
    waiter.settle = 0.0 if unchanged else extras.SETTLE_SECONDS  # up, unchanged and never restarted: settled
    waiter.unchanged = unchanged
    waiter.existing = frozenset(s.id for s in before)

    def compose_up() -> None:
        try:
            runtime.up(selected, build=False)  # built above
        except DevenvError as ex:
            compose_error.append(ex)
            waiter.cancel.set()
        finally:
            cache.settled.set()

    probes = waiter.probes(selected)
    watch = ContainerWatch(runtime, cache, selected)
    pool = ThreadPoolExecutor(max_workers=len(probes), thread_name_prefix="wait")
    try:
        futures: list[Future[None]] = [
            pool.submit(waiter.run_one, service, probe, watch) for service, probe in probes.items()
        ]
        if not unchanged:  # in this thread, not one of its own: Ctrl-C ends compose's process too (proc.run)
            compose_up()
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        failures = [f.exception() for f in done if f.exception() is not None]
        if failures:
            waiter.cancel.set()
        wait(futures)
        if compose_error:
            err = compose_error[0]
            if isinstance(err, ComposeFailed):
                raise (
                    pull_failure(project.config, err, ctx.dockerfile)
                    or checkouts.port_clash(runtime, err.output)
                    or failed_job(runtime, err)
                    or err
                )
            raise err
        if failures:
            raise failures[0]  # type: ignore[misc]
    except BaseException:
        waiter.cancel.set()  # Ctrl-C included: the waits stop at their next look, not once their services answer
        raise
    finally:
        pool.shutdown(wait=True)  # after the cancel (a `with` would wait for every service before it)

    final = waiter.live()
    new_state = {"fingerprint": fingerprint, "project": project.name}
    ready_path = waiter.readiness.chosen if waiter.readiness else state.get("ready_path")
    if ready_path:
        new_state["ready_path"] = ready_path
        if waiter.readiness and ready_path != project.config.server.ready_path:
            notes.append(
                f"server: GET {project.config.server.ready_path} → 404, so readiness is read from {ready_path} "
                "(server.ready_path in devenv.toml chooses)."
            )
    notes += [n for n in (waiter.host_note, waiter.seed_note) if n]
    ours = {**state.get("env_written", {}), **written_marks(env_result.values)}
    if not project.ci:  # a CI stack exports its URLs; the checkout's .env stays the developer's
        ep = final.endpoints
        synced = sync_ports(
            project,
            final.files,
            HostPorts(ep.postgres_port or 0, ep.redis_port or 0, ep.host)
            if ep.postgres_port
            else HostPorts(host=ep.host),
            ours,
        )
        if synced.updated:
            ours.update(written_marks(synced.updated))
            notes.append(f".env now points at the ports in use: {', '.join(sorted(synced.updated))}.")
        warnings += synced.warnings
    new_state["env_written"] = (
        {k: v for k, v in ours.items() if k in final.files.current.bindings} if final.files.current else {}
    )
    save_state(project.state_dir, new_state)
    if follow_branch and project.config.db.per_branch and not project.ci and "postgres" in selected:
        from devenv import branches

        branches.switch(final)  # a database seeded by this `up` becomes the checked-out branch's
    if waiter.templated:
        start_spare(final, ctx.migrations_key)  # in the background: the first reset's copy
    outcome = "not run, nothing changed since the last up" if unchanged else ""
    if "migrate" in selected and not unchanged:
        try:
            outcome = migrate_outcome(runtime.logs(["migrate"], tail=40))
        except DevenvError:
            outcome = ""
    states = waiter.cache.current()
    ports = {c.service: c.ports for c in states if not c.oneoff}
    extra_urls = extras.urls(ctx.stack.extras, ports, final.endpoints.host)
    reports = tuple(
        ServiceReport(
            service=s,
            state="ready" if s != "migrate" else "up to date" if unchanged else "migrated",
            url=_summary_url(final, s, outcome, extra_urls),
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
        env_generated=env_result.generated,
        notes=tuple(notes),
        warnings=tuple(warnings),
    )


def _follow_branch(
    ctx: Context, before: Sequence[ContainerState], timeout: float, on_event: Callable[[Event], None]
) -> list[str]:
    """[db] per_branch: make the app database the checked-out branch's before anything migrates it; Postgres is
    started first when it is not running. A new, empty database makes this `up` migrate and seed it."""
    from devenv import branches

    postgres = next((s for s in before if s.service == "postgres" and not s.oneoff), None)
    if postgres is None or postgres.status != "running" or postgres.health not in {None, "healthy"}:
        up(ctx, ["postgres"], timeout=timeout, on_event=on_event, follow_branch=False)
    result = branches.switch(ctx)
    if result.needs_migrations:  # forget the fingerprint: the migrate job must run for the new database
        _forget_fingerprint(ctx.project.state_dir, ctx.project.name)
    return [result.note] if result.switched or result.how == "adopted" else []


def _forget_fingerprint(state_dir: Path, name: str) -> None:
    """Make the next `up` do its compose work; which .env values devenv wrote stays known (env_written)."""
    written = load_state(state_dir).get("env_written")
    save_state(state_dir, {"project": name, **({"env_written": written} if written else {})})


def down(ctx: Context, *, volumes: bool = False) -> DownResult:
    """Stop and remove the stack's containers and network; its volumes only when asked (never another
    checkout's stack: devenv.checkouts)."""
    project = ctx.project
    if not project.ci:
        checkouts.guard(ctx.runtime, project.name, project.root, "stops or removes")
    ctx.runtime.down(volumes=volumes)  # a spare being made is cut off: unmarked, it is never used
    if load_state(project.state_dir).get("fingerprint"):  # forget it: the next `up` has compose work to do
        _forget_fingerprint(project.state_dir, project.name)
    if volumes:  # the data went: its env files and its server image go too (`up` makes them again)
        import shutil

        shutil.rmtree(project.secrets_dir, ignore_errors=True)
        ctx.runtime.remove_images(project.name, project.checkout)
    left = ctx.runtime.resources().volumes
    return DownResult(project=project.name, volumes_removed=volumes, remaining_volumes=left)


def hard_reset(ctx: Context, *, timeout: float = 60.0) -> ResetResult:
    """`down --volumes` + `up`: new volumes, migrations, seed and template."""
    t0 = time.perf_counter()
    checkouts.guard(ctx.runtime, ctx.project.name, ctx.project.root, "drops the volumes of")
    ctx.runtime.down(volumes=True)  # a spare being made is cut off: unmarked, it is never used
    up(ctx, timeout=timeout)
    db = ctx.settings.pg_db
    return ResetResult(
        mode="hard",
        database=db,
        template=marks.template_name(db),
        key=ctx.migrations_key,
        seconds=round(time.perf_counter() - t0, 3),
        redis_flushed=True,
        reason="volumes dropped",
    )
