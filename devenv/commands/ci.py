"""CI stacks: isolated, parallel-safe copies of the stack with Docker-chosen ports and exported connection URLs."""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from devenv.core.errors import DevenvError, ServiceNotReady, UsageError
from devenv.core.state import STATE_DIR, secrets_dir
from devenv.engine.runtime import CHECKOUT_LABEL, MACHINE_LABEL, Runtime, parse_created
from devenv.project import extras
from devenv.project.config import sanitize_name as _sanitize
from devenv.project.context import Context, Server
from devenv.project.discovery import Project


@dataclass(frozen=True)
class CiStack:
    """A running CI stack and how to reach it."""

    name: str
    database_url: str
    redis_url: str
    server_url: str
    seconds: float
    extra_urls: dict[str, str] = field(default_factory=dict)  # NAME_URL -> URL of a [services.NAME] with a port

    def variables(self) -> dict[str, str]:
        """The connection settings exported to the CI job."""
        found = {
            "DEVENV_PROJECT_NAME": self.name,
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis_url,
            "SERVER_URL": self.server_url,
            **self.extra_urls,
        }
        return {k: v for k, v in found.items() if v}  # a stack without Redis or a server exports no URL for it


def sanitize_name(raw: str) -> str:
    """A compose project name: lowercase letters, digits, '-' and '_', starting with a letter or digit."""
    return _sanitize(raw, fallback="ci")


def ci_name(environ: Mapping[str, str] | None = None) -> str:
    """The stack name for this CI job: GitHub run/job/attempt, GitLab job id, or random."""
    env = os.environ if environ is None else environ
    if env.get("GITHUB_RUN_ID"):
        parts = ["gh", env["GITHUB_RUN_ID"], env.get("GITHUB_JOB", "job"), env.get("GITHUB_RUN_ATTEMPT", "1")]
        return sanitize_name("-".join(parts))
    if env.get("CI_JOB_ID"):
        return sanitize_name(f"gl-{env['CI_JOB_ID']}")
    return sanitize_name(f"ci-{secrets.token_hex(4)}")


def validate_name(name: str) -> str:
    """Check a user-given --name."""
    clean = sanitize_name(name)
    if clean != name:
        raise UsageError(
            f"--name {name!r} is not a valid compose project name.",
            f"use lowercase letters, digits, '-' and '_', e.g. {clean!r}.",
        )
    return name


def smoke_test(server: Server, ready_path: str, status_path: str, *, status_pinned: bool = False) -> None:
    """The server must answer READY_PATH with 200, and STATUS_PATH (when it has one) with a healthy body.

    An empty STATUS_PATH turns the second check off; a default one the server does not have (404) is skipped.
    """
    from devenv.commands.status import verdict

    checks = [ready_path] + ([status_path] if status_path else [])
    for path in checks:
        url = server.base_url + path
        try:
            response = server.get(path, timeout=5)
        except (OSError, ValueError) as ex:
            raise ServiceNotReady(f"smoke test: GET {url} failed: {ex}", "see `devenv logs server`.") from ex
        if path == status_path and path != ready_path and response.status in {404, 405} and not status_pinned:
            continue  # no detailed status endpoint: readiness is the whole check
        if path == ready_path and response.status != 200:
            raise ServiceNotReady(
                f"smoke test: GET {url} returned {response.status}: {response.body[:200]!r}",
                "see `devenv logs server`.",
            )
        if path == status_path:
            said = verdict(response.status, response.body)
            if said != "healthy":
                raise ServiceNotReady(
                    f"smoke test: GET {url} says {said} ({response.status}: {response.body[:200]!r}).",
                    'see `devenv status`; server.status_path = "" turns this check off.',
                )


def dotenv_lines(variables: Mapping[str, str]) -> str:
    """KEY='value' lines that dotenv, `set -a; . FILE` and docker's --env-file all read the same way."""
    out = []
    for key, value in variables.items():
        if "'" in value or "\n" in value:
            raise DevenvError(f"{key} contains a quote or newline and cannot be exported safely.")
        out.append(f"{key}={value}")
    return "\n".join(out) + "\n"


def write_env_file(path: Path, variables: Mapping[str, str]) -> None:
    """Write the variables atomically, mode 0600."""
    from devenv.core.state import atomic_write

    atomic_write(path, dotenv_lines(variables), 0o600)


def append_github_env(variables: Mapping[str, str], environ: Mapping[str, str] | None = None) -> bool:
    """Append to $GITHUB_ENV when it is set (GitHub Actions passes them to later steps)."""
    env = os.environ if environ is None else environ
    target = env.get("GITHUB_ENV")
    if not target:
        return False
    with open(target, "a") as fh:
        fh.write(dotenv_lines(variables))
    return True


def mask_for_github(variables: Mapping[str, str], environ: Mapping[str, str] | None = None) -> list[str]:
    """On GitHub Actions, `::add-mask::` lines for every secret, so the runner hides them in all later logs."""
    from urllib.parse import urlparse

    env = os.environ if environ is None else environ
    if env.get("GITHUB_ACTIONS") != "true":
        return []
    secrets_seen = []
    for value in variables.values():
        password = urlparse(value).password if "://" in value else None
        if password:
            secrets_seen.append(password)
    return [f"::add-mask::{s}" for s in secrets_seen]


@dataclass(frozen=True)
class StackAge:
    """A labelled stack and when its oldest container was created."""

    name: str
    created: datetime | None
    containers: int
    volumes: int


def parse_duration(text: str) -> timedelta:
    """'90m', '2h', '1d', '30s' -> timedelta."""
    match = re.fullmatch(r"\s*(\d+)\s*([smhd])\s*", text)
    if not match:
        raise UsageError(f"--older-than {text!r} is not a duration.", "use a number and a unit: 30m, 2h, 1d.")
    amount, unit = int(match.group(1)), match.group(2)
    return timedelta(**{{"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[unit]: amount})


def old_stacks(stacks: list[StackAge], older_than: timedelta, now: datetime | None = None) -> list[StackAge]:
    """The stacks whose oldest container is older than the limit (stacks with only volumes count as old)."""
    now = now or datetime.now(UTC)
    return [s for s in stacks if s.created is None or now - s.created > older_than]


def ci_project(project: Project, name: str) -> Project:
    """The same project as a CI stack: its own compose project name, ports chosen by Docker, its own state dir."""
    cfg = project.config
    config = replace(
        cfg,
        postgres=replace(cfg.postgres, port=0),
        redis=replace(cfg.redis, port=0),
        server=replace(cfg.server, port=0),
        services=tuple(
            replace(e, ports=tuple(replace(p, host=0) for p in e.ports)) for e in cfg.services
        ),  # Docker picks every host port
    )
    return replace(project, name=name, config=config, ci=True)


def _with_shared_env(ctx: Context) -> Context:
    """Create/complete .env once, under a lock shared by every stack of this checkout (parallel `ci up`).

    The files are read again inside the lock: another stack may have written .env since this command started.
    """
    from devenv.core.lock import project_lock
    from devenv.project.envfile import ensure_env, read_env_files

    with project_lock(ctx.project.root / ".devenv", name="env"):
        done = ensure_env(
            ctx.project,
            ctx.environ,
            files=read_env_files(ctx.project),
            redis=ctx.stack.redis,
            host=ctx.runtime.host_address(),
        )
        return ctx.with_files(done.files)


def ci_up(ctx: Context, name: str | None, *, timeout: float = 120.0) -> CiStack:
    """Start an isolated stack under NAME, wait for it, smoke-test it, and return its connection settings."""
    return ci_up_context(ctx, name, timeout=timeout)[0]


def ci_up_context(ctx: Context, name: str | None, *, timeout: float = 120.0) -> tuple[CiStack, Context]:
    """`ci_up`, and the CI stack's own context (its .env as written, its ports)."""
    from devenv.commands.lifecycle import up

    stack_name = validate_name(name) if name else ci_name(ctx.environ)
    ci = _with_shared_env(ctx.for_project(ci_project(ctx.project, stack_name)))
    result = up(ci, timeout=timeout)
    listed = ci.runtime.containers(detail=False)
    ci = ci.with_states(listed)
    ep, settings = ci.endpoints, ci.settings
    assert ep.postgres_port
    ports = {c.service: c.ports for c in listed if not c.oneoff}
    found = extras.urls(ci.stack.extras, ports, ep.host)
    stack = CiStack(
        name=stack_name,
        database_url=settings.database_url(ep.host, ep.postgres_port),  # with the app's query (Prisma's ?schema=)
        redis_url=settings.redis_url(ep.host, ep.redis_port) if ep.redis_port else "",
        server_url=ep.server_url() if ep.server_port else "",
        seconds=result.elapsed,
        extra_urls={e.url_variable: found[e.name] for e in ci.stack.extras if e.name in found},
    )
    if not stack.server_url:  # no Dockerfile: the server runs on the host, there is nothing to smoke-test
        return stack, ci
    from devenv.core.state import load_state

    srv = ci.config.server
    ready_path = load_state(ci.project.state_dir).get("ready_path") or srv.ready_path  # what up found
    smoke_test(ci.server, ready_path, srv.status_path, status_pinned=ci.config.is_pinned("server.status_path"))
    return stack, ci


def export(stack: CiStack, *, env_file: Path | None, environ: Mapping[str, str] | None = None) -> None:
    """Write the settings to --env-file and $GITHUB_ENV."""
    if env_file is not None:
        write_env_file(env_file, stack.variables())
    append_github_env(stack.variables(), environ)


def ci_down(
    runtime: Runtime, name: str | None, environ: Mapping[str, str] | None = None, project: Project | None = None
) -> str:
    """Remove the stack NAME's containers, network and volumes, and its generated files (PROJECT's
    .devenv/stacks/NAME and its env files); fine when it is already gone."""
    import shutil

    stack_name = validate_name(name) if name else ci_name(environ)
    runtime.remove_labelled(stack_name)
    if project is not None:
        ci = ci_project(project, stack_name)
        for folder in (ci.state_dir, ci.secrets_dir):
            if folder != project.root / ".devenv":  # only a CI stack's own folders
                shutil.rmtree(folder, ignore_errors=True)
        runtime.remove_images(stack_name, ci.checkout)  # the image it built (one another CI stack runs on stays)
    return stack_name


def run_with_stack(
    ctx: Context,
    cmd: Sequence[str],
    *,
    name: str | None,
    keep: bool,
    timeout: float,
    on_ready: Callable[[CiStack], None] = lambda stack: None,
    workers: int = 0,
) -> int:
    """`ci up`, run CMD with the stack's settings in its environment, always tear down; CMD's exit code.

    WORKERS > 0: a clone of the template per test worker (devenv.commands.clones), exported as DATABASE_URL_1…N with
    DEVENV_WORKERS=N, and dropped when CMD is done, whatever its exit code (also with --keep).

    CMD runs in a process group of its own (devenv.core.proc.supervised): Ctrl-C, or SIGTERM from a CI runner, reaches
    it and everything it started; devenv waits for them (bounded), then removes the stack.
    """
    import signal

    from devenv.core import proc

    stack_name = validate_name(name) if name else ci_name(ctx.environ)
    ci: Context | None = None

    def on_term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_term)  # a runner's SIGTERM during `ci up` tears down too
    try:
        stack, ci = ci_up_context(ctx, stack_name, timeout=timeout)
        variables = stack.variables()
        if workers:
            from devenv.commands.clones import make_clones

            variables.update(make_clones(ci, workers).variables())
        on_ready(stack)
        return proc.supervised(cmd, env={**ctx.environ, **variables})
    finally:
        signal.signal(signal.SIGTERM, previous)
        if workers and ci is not None:
            from devenv.commands.clones import drop_clones

            try:
                drop_clones(ci)
            except DevenvError:
                if keep:  # the stack stays: its clones must not (without --keep the stack goes with them)
                    raise
        if not keep:
            # Teardown must finish even if a second Ctrl-C arrives.
            old_int = signal.signal(signal.SIGINT, signal.SIG_IGN)
            try:
                ci_down(ctx.runtime, stack_name, project=ctx.project)
            finally:
                signal.signal(signal.SIGINT, old_int)


def gc(runtime: Runtime, older_than: timedelta, *, dry_run: bool) -> list[StackAge]:
    """Remove (or list, with dry_run) this machine's devenv-labelled CI stacks older than the limit, with what they
    left outside the engine's volumes: their server image and their env files.

    On a shared engine another machine's CI stack is that machine's job (it may still be running its tests); a
    stack made before devenv labelled machines is taken, as it was then."""
    import shutil

    mine = runtime.machine[0]
    listed = [s for s in runtime.labelled_stacks(ci_only=True) if s.labels.get(MACHINE_LABEL, mine) == mine]
    checkout = {s.name: s.labels.get(CHECKOUT_LABEL, "") for s in listed}
    old = old_stacks([StackAge(s.name, parse_created(s.created), s.containers, s.volumes) for s in listed], older_than)
    if not dry_run:
        for stack in old:
            runtime.remove_labelled(stack.name)
            if checkout[stack.name]:  # a CI stack's state is <checkout>/.devenv/stacks/<name> (ci_project)
                runtime.remove_images(stack.name, checkout[stack.name])
                state_dir = Path(checkout[stack.name]) / STATE_DIR / "stacks" / stack.name
                shutil.rmtree(secrets_dir(state_dir), ignore_errors=True)
    return old
