"""The stack's lifecycle: `up` (complete .env, render, build the server image, start, wait until every service
really answers, migrate, seed once, take the reset template), `down`, and `reset --hard` (down with the volumes,
then up).

`up` is four steps, each a function of its own:
- plan (`_plan`): this checkout's stack (devenv.stack.checkouts), .env completed (devenv.project.envfile), the compose
files
  written (devenv.stack.render), and whether their digest and the build inputs match the last successful `up` with the
  containers healthy, in which case nothing is started;
- start and wait (`_start_and_wait`): the server image is built first (devenv.stack.build: progress as steps, a failed
  step as its own error), and only then do the per-service deadlines start: `compose up` runs while one wait per
  service probes it from a thread of its own (devenv.stack.probes, made for this `up`'s containers, retried by
  devenv.core.wait), and a watch fails fast on a dead container. What a service being ready unlocks on the database
  (the cluster's mark, the seed, the reset template) is devenv.db.seeding's;
- after ready (`_after_ready`): the fingerprints kept, .env pointed at the ports in use, the first reset's spare
  started in the background;
- report (`_report`): the summary.
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
from typing import Any

from devenv.commands.reset import ResetResult
from devenv.core.errors import ComposeFailed, DevenvError, PortInUse, UsageError
from devenv.core.state import STATE_DIR, load_state, read_record, save_state, write_record
from devenv.core.wait import Cancelled, Probe, wait_for
from devenv.db import marks, seeding
from devenv.db.seeding import Seeding
from devenv.db.templates import start_spare
from devenv.engine.runtime import ContainerState
from devenv.engine.target import is_loopback
from devenv.project import extras
from devenv.project.context import Context
from devenv.project.envfile import EnvResult, HostPorts, PortSync, ensure_env, remember, sync_ports, written_marks
from devenv.project.services import expand_services, port_claims
from devenv.stack import checkouts
from devenv.stack.build import BuildLog, BuildStep
from devenv.stack.images import pull_failure
from devenv.stack.migrate import failed_job, migrate_outcome
from devenv.stack.probes import ContainerWatch, HttpReady, StateCache, Target, for_services
from devenv.stack.render import write_compose

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
    default one is taken (devenv.stack.checkouts); both are kept in .devenv/checkout.json."""
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


@dataclass
class _Waits:
    """The waits of one `up`: a probe per service, in parallel, each followed by what its service being ready
    unlocks (on the database side, devenv.db.seeding does it)."""

    ctx: Context
    target: Target
    timeout: float
    emit: Callable[[Event], None]
    t0: float
    unchanged: bool = False  # nothing changed since the last up: the migrate job's exit is the last up's
    cancel: threading.Event = field(default_factory=threading.Event)
    failing: threading.Lock = field(default_factory=threading.Lock)
    ready_at: dict[str, float] = field(default_factory=dict)
    database: Seeding = field(default_factory=Seeding)
    readiness: HttpReady | None = None  # the server's: which path answered

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def live(self) -> Context:
        """The context with the ports as the engine publishes them now (read off the shared states)."""
        return self.ctx.with_states(self.target.cache.current())

    def progress(self, service: str, phase: str, detail: str = "") -> None:
        self.emit(Event(service, phase, self.elapsed(), detail))

    def run_one(self, service: str, probe: Probe, watch: ContainerWatch) -> None:
        """Wait until SERVICE answers, then do what that unlocks; a failure stops every other wait."""
        self.progress(service, "waiting")
        try:
            wait_for(probe, timeout=self.timeout, watch=watch, cancel=self.cancel)
        except Cancelled:
            return
        except BaseException as ex:
            self._failed(service, ex)
            raise
        self.ready_at[service] = self.elapsed()
        done = ("unchanged" if self.unchanged else "migrated") if service == "migrate" else "ready"
        self.progress(service, done)  # a no-op up did not run the migrate job: it says so
        if service == "postgres":
            seeding.mark_cluster(self.live())
        # The database is ready once migrated, or at once when nothing migrates it in the stack.
        if service == "migrate" or (service == "postgres" and not self.ctx.stack.migrates):
            self.database = seeding.seed_if_new(self.live(), self.progress)

    def _failed(self, service: str, ex: BaseException) -> None:
        with self.failing:  # the shared watch raises one dead container's error in every wait: say it once
            first = not self.cancel.is_set()
            self.cancel.set()
        if first:
            message = getattr(ex, "message", str(ex))
            # The watch's errors name the dead container's service first ("worker exited with code 3.").
            about = next((s for s in self.ctx.stack.services if message.startswith(f"{s} ")), service)
            self.progress(about, "failed", message)


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
    if stack.server_on_host and ctx.app.path is not None:
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
        from devenv.project.dockerignore import image_warnings

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


@dataclass(frozen=True)
class _Plan:
    """What one `up` is to do, decided before anything starts."""

    ctx: Context  # this checkout's stack, with the .env this `up` completed
    selected: tuple[str, ...]
    before: list[ContainerState]  # the stack's containers before this `up`
    env: EnvResult
    fingerprint: dict[str, str]
    last: dict[str, Any]  # the state the last successful `up` left
    unchanged: bool  # same fingerprint as the last `up`, and the stack is up: nothing to start
    builds: bool
    notes: tuple[str, ...]
    warnings: tuple[str, ...]


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
    before anything migrates it (devenv.commands.branches).
    """
    t0 = time.monotonic()
    plan = _plan(ctx, services, timeout, on_event, follow_branch)
    for note in plan.notes:  # said now: a failing `up` still tells what it decided
        on_event(Event("up", "note", time.monotonic() - t0, note))
    for warning in plan.warnings:
        on_event(Event("up", "warning", time.monotonic() - t0, warning))
    waits = _start_and_wait(plan, timeout, on_event, t0)
    final, notes, warnings = _after_ready(plan, waits, follow_branch)
    return _report(plan, waits, final, notes, warnings, t0)


def _plan(
    ctx: Context, services: Sequence[str], timeout: float, on_event: Callable[[Event], None], follow_branch: bool
) -> _Plan:
    """This checkout's stack, .env completed, the compose files written, and whether anything changed since the
    last successful `up`."""
    selected = tuple(expand_services(services, ctx.stack))
    host = ctx.runtime.host_address()
    _refuse_unreachable(ctx.config.bind_address, host)
    before = ctx.runtime.containers(detail=False)
    notes: list[str] = []
    if not ctx.project.ci:  # a CI stack has a name of its own and Docker-chosen ports
        ctx, before, notes = _claim(ctx, before, selected)
    project = ctx.project
    env = ensure_env(project, ctx.environ, files=ctx.files, redis=ctx.stack.redis, host=host)
    remember(project, env)  # now, not with the final state: a failing `up` still knows these are its own
    ctx = ctx.with_files(env.files)
    if _follows_branch(ctx, selected, follow_branch):
        notes += _follow_branch(ctx, before, timeout, on_event)
    builds = ctx.stack.uses_server_image(selected)
    fingerprint = {"compose": write_compose(ctx).digest}
    if builds:
        fingerprint["build"] = build_fingerprint(project.root, project.config.server.context)
    if ctx.stack.server_on_host:  # migrations run from the host: new ones are work for `up`
        fingerprint["migrations"] = ctx.migrations_key
    last = load_state(project.state_dir)
    unchanged = last.get("fingerprint") == fingerprint and _stack_is_up(before, selected)
    about, warnings = _notes(ctx, selected, env.written) if not unchanged else ([], [])
    return _Plan(
        ctx, selected, before, env, fingerprint, last, unchanged, builds, tuple(notes + about), tuple(warnings)
    )


def _refuse_unreachable(bind_address: str, host: str) -> None:
    """A remote engine publishing on its own loopback: nothing would answer from here."""
    if not is_loopback(host) and is_loopback(bind_address):
        raise UsageError(
            f"the Docker Engine is remote ({host}): ports published on its 127.0.0.1 cannot be reached from here.",
            "publish them on the engine host's network: DEVENV_BIND_ADDRESS=0.0.0.0 (every interface; or "
            "bind_address in devenv.toml)"
            + (f" or DEVENV_BIND_ADDRESS={host} (that interface only)" if _is_ip(host) else "")
            + ", or use a local engine.",
        )


def _follows_branch(ctx: Context, selected: Sequence[str], follow_branch: bool) -> bool:
    return follow_branch and ctx.config.db.per_branch and not ctx.project.ci and "postgres" in selected


def _start_and_wait(plan: _Plan, timeout: float, on_event: Callable[[Event], None], t0: float) -> _Waits:
    """Build and `compose up` what changed (nothing when nothing did) while one wait per service runs; the waits,
    once every service answers."""
    ctx, runtime, existing = plan.ctx, plan.ctx.runtime, frozenset(s.id for s in plan.before)
    if plan.unchanged:
        for service in plan.selected:
            on_event(Event(service, "unchanged", time.monotonic() - t0))
        cache = StateCache(runtime)
        cache.prime(plan.before)
    else:
        for service in plan.selected:
            on_event(Event(service, "starting", time.monotonic() - t0))
        if plan.builds:
            _build(ctx, on_event, t0)  # the deadlines below start once the image exists
        cache = StateCache(runtime, stale=existing)  # only containers of this `up` count until compose is done
    target = Target(runtime, cache, runtime.host_address())
    waits = _Waits(ctx, target, timeout, on_event, t0, unchanged=plan.unchanged)  # deadlines start after the build
    settle = 0.0 if plan.unchanged else extras.SETTLE_SECONDS  # up, unchanged and never restarted: settled
    probes = for_services(ctx, target, plan.selected, settle=settle, existing=existing)
    server = probes.get("server")
    waits.readiness = server if isinstance(server, HttpReady) else None
    _wait_all(plan, waits, probes)
    return waits


def _wait_all(plan: _Plan, waits: _Waits, probes: dict[str, Probe]) -> None:
    """Every probe in a thread of its own, `compose up` in this one; the first failure ends every wait."""
    watch = ContainerWatch(plan.ctx.runtime, waits.target.cache, plan.selected)
    pool = ThreadPoolExecutor(max_workers=len(probes), thread_name_prefix="wait")
    try:
        futures: list[Future[None]] = [
            pool.submit(waits.run_one, service, probe, watch) for service, probe in probes.items()
        ]
        # In this thread, not one of its own: Ctrl-C ends compose's process too (proc.run).
        compose_error = None if plan.unchanged else _compose_up(plan, waits)
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        failures = [f.exception() for f in done if f.exception() is not None]
        if failures:
            waits.cancel.set()
        wait(futures)
        if compose_error is not None:
            raise _compose_failure(plan.ctx, compose_error)
        if failures:
            raise failures[0]  # type: ignore[misc]
    except BaseException:
        waits.cancel.set()  # Ctrl-C included: the waits stop at their next look, not once their services answer
        raise
    finally:
        pool.shutdown(wait=True)  # after the cancel (a `with` would wait for every service before it)


def _compose_up(plan: _Plan, waits: _Waits) -> DevenvError | None:
    """`compose up` of what was built above; its error (which ends every wait), if any."""
    try:
        plan.ctx.runtime.up(plan.selected, build=False)
        return None
    except DevenvError as ex:
        waits.cancel.set()
        return ex
    finally:
        waits.target.cache.settled.set()


def _compose_failure(ctx: Context, err: DevenvError) -> DevenvError:
    """What a failed `compose up` means: an image that cannot be pulled, a host port taken, the migrate job."""
    if not isinstance(err, ComposeFailed):
        return err
    runtime = ctx.runtime
    return (
        pull_failure(ctx.config, err, ctx.dockerfile)
        or checkouts.port_clash(runtime, err.output)
        or failed_job(runtime, err)
        or err
    )


def _after_ready(plan: _Plan, waits: _Waits, follow_branch: bool) -> tuple[Context, list[str], list[str]]:
    """Remember this `up` (fingerprints, readiness path, the .env values devenv wrote, .env pointed at the ports
    in use), then hand the database to the branch and start the first reset's spare; (final context, notes,
    warnings)."""
    ctx, project, last = plan.ctx, plan.ctx.project, plan.last
    final = waits.live()
    notes, warnings = list(plan.notes), list(plan.warnings)
    new_state: dict[str, Any] = {"fingerprint": plan.fingerprint, "project": project.name}
    readiness = waits.readiness
    ready_path = readiness.chosen if readiness else last.get("ready_path")
    if ready_path:
        new_state["ready_path"] = ready_path
        if readiness and ready_path != project.config.server.ready_path:
            notes.append(
                f"server: GET {project.config.server.ready_path} → 404, so readiness is read from {ready_path} "
                "(server.ready_path in devenv.toml chooses)."
            )
    notes += [n for n in (waits.database.host_note, waits.database.note) if n]
    ours = {**last.get("env_written", {}), **written_marks(plan.env.values)}
    if not project.ci:  # a CI stack exports its URLs; the checkout's .env stays the developer's
        synced = _sync_env(final, ours)
        if synced.updated:
            ours.update(written_marks(synced.updated))
            notes.append(f".env now points at the ports in use: {', '.join(sorted(synced.updated))}.")
        warnings += synced.warnings
    current = final.files.current
    new_state["env_written"] = {k: v for k, v in ours.items() if k in current.bindings} if current else {}
    save_state(project.state_dir, new_state)
    if _follows_branch(ctx, plan.selected, follow_branch):
        from devenv.commands import branches

        branches.switch(final)  # a database seeded by this `up` becomes the checked-out branch's
    if waits.database.templated:
        start_spare(final, ctx.migrations_key)  # in the background: the first reset's copy
    return final, notes, warnings


def _sync_env(final: Context, ours: dict[str, str]) -> PortSync:
    """Point the .env values devenv wrote (OURS) at the ports the stack publishes."""
    ep = final.endpoints
    ports = (
        HostPorts(ep.postgres_port or 0, ep.redis_port or 0, ep.host) if ep.postgres_port else HostPorts(host=ep.host)
    )
    return sync_ports(final.project, final.files, ports, ours)


def _report(plan: _Plan, waits: _Waits, final: Context, notes: list[str], warnings: list[str], t0: float) -> UpResult:
    """The summary: each service's state, URL and time to ready, and what `up` wants the user to know."""
    unchanged, selected = plan.unchanged, plan.selected
    outcome = "not run, nothing changed since the last up" if unchanged else ""
    if "migrate" in selected and not unchanged:
        try:
            outcome = migrate_outcome(plan.ctx.runtime.logs(["migrate"], tail=40))
        except DevenvError:
            outcome = ""
    ports = {c.service: c.ports for c in waits.target.cache.current() if not c.oneoff}
    extra_urls = extras.urls(plan.ctx.stack.extras, ports, final.endpoints.host)
    reports = tuple(
        ServiceReport(
            service=s,
            state="ready" if s != "migrate" else "up to date" if unchanged else "migrated",
            url=_summary_url(final, s, outcome, extra_urls),
            seconds=round(waits.ready_at[s], 2) if s in waits.ready_at else None,
        )
        for s in selected
    )
    return UpResult(
        project=plan.ctx.project.name,
        services=reports,
        compose_work=not unchanged,
        seeded=waits.database.seeded,
        elapsed=round(time.monotonic() - t0, 2),
        env_added=tuple(plan.env.added),
        env_warnings=plan.env.warnings,
        env_generated=plan.env.generated,
        notes=tuple(notes),
        warnings=tuple(warnings),
    )


def _follow_branch(
    ctx: Context, before: Sequence[ContainerState], timeout: float, on_event: Callable[[Event], None]
) -> list[str]:
    """[db] per_branch: make the app database the checked-out branch's before anything migrates it; Postgres is
    started first when it is not running. A new, empty database makes this `up` migrate and seed it."""
    from devenv.commands import branches

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
    checkout's stack: devenv.stack.checkouts)."""
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
