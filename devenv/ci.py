"""CI stacks: isolated, parallel-safe copies of the stack with Docker-chosen ports and exported connection URLs."""

from __future__ import annotations

import json
import os
import re
import secrets
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from devenv.errors import DevenvError, ServiceNotReady, UsageError
from devenv.project import Project
from devenv.runtime import Runtime


@dataclass(frozen=True)
class CiStack:
    """A running CI stack and how to reach it."""

    name: str
    database_url: str
    redis_url: str
    server_url: str
    seconds: float

    def variables(self) -> dict[str, str]:
        """The connection settings exported to the CI job."""
        return {
            "DEVENV_PROJECT_NAME": self.name,
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis_url,
            "SERVER_URL": self.server_url,
        }


def sanitize_name(raw: str) -> str:
    """A compose project name: lowercase letters, digits, '-' and '_', starting with a letter or digit."""
    name = re.sub(r"[^a-z0-9_-]+", "-", raw.lower()).strip("-_")
    return name[:63] or "ci"


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


def smoke_test(server_url: str, ready_path: str, status_path: str) -> None:
    """The server must answer /health/ready with 200 and /health/status with a healthy body."""
    for path in (ready_path, status_path):
        url = server_url + path
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                body = resp.read()
                code = int(resp.status)
        except urllib.error.HTTPError as ex:
            body, code = ex.read(), ex.code
        except (urllib.error.URLError, OSError) as ex:
            raise ServiceNotReady(f"smoke test: GET {url} failed: {ex}", "see `devenv logs server`.") from ex
        if code != 200:
            raise ServiceNotReady(f"smoke test: GET {url} returned {code}: {body[:200]!r}", "see `devenv logs server`.")
        if path == status_path:
            try:
                status = json.loads(body).get("status")
            except (ValueError, AttributeError):
                status = None
            if status != "healthy":
                raise ServiceNotReady(
                    f"smoke test: {url} says status={status!r}, expected 'healthy'.", "see `devenv status`."
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
    from devenv.envfile import atomic_write

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


def parse_created(text: str) -> datetime | None:
    """Docker's RFC 3339 timestamps (nanoseconds trimmed)."""
    if not text:
        return None
    text = re.sub(r"(\.\d{6})\d+", r"\1", text.replace("Z", "+00:00"))
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


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
    )
    return replace(project, name=name, config=config, ci=True)


def _runtime_for(project: Project) -> Runtime:
    from devenv.runtime import DockerRuntime

    return DockerRuntime(project.name, project.compose_file, project.compose_file.parent)


def _shared_env(project: Project) -> None:
    """Create/complete .env once, under a lock shared by every stack of this checkout (parallel `ci up`)."""
    from devenv.envfile import ensure_env
    from devenv.lock import project_lock

    with project_lock(project.root / ".devenv", name="env"):
        ensure_env(project)


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


def ci_up(project: Project, name: str | None, *, timeout: float = 120.0) -> CiStack:
    """Start an isolated stack under NAME, wait for it, smoke-test it, and return its connection settings."""
    from devenv.endpoints import resolve_endpoints
    from devenv.envfile import stack_settings
    from devenv.stack import up

    stack_name = validate_name(name) if name else ci_name()
    ci = ci_project(project, stack_name)
    _shared_env(ci)
    runtime = _runtime_for(ci)
    result = up(ci, runtime, timeout=timeout)
    ep = resolve_endpoints(ci, runtime)
    settings = stack_settings(ci)
    stack = CiStack(
        name=stack_name,
        database_url=ep.database_url(settings.pg_user, settings.pg_password, settings.pg_db),
        redis_url=ep.redis_url(settings.redis_password, settings.redis_db),
        server_url=ep.server_url(),
        seconds=result.elapsed,
    )
    smoke_test(stack.server_url, ci.config.server.ready_path, ci.config.server.status_path)
    return stack


def export(stack: CiStack, *, env_file: Path | None) -> None:
    """Write the settings to --env-file and $GITHUB_ENV (masking the secrets on GitHub first)."""
    for line in mask_for_github(stack.variables()):
        print(line, flush=True)
    if env_file is not None:
        write_env_file(env_file, stack.variables())
    append_github_env(stack.variables())


def ci_down(project: Project, name: str | None) -> str:
    """Remove the stack NAME's containers, network and volumes; fine when it is already gone."""
    from devenv.runtime import remove_labelled

    stack_name = validate_name(name) if name else ci_name()
    remove_labelled(stack_name)
    return stack_name


def run_with_stack(project: Project, cmd: list[str], *, name: str | None, keep: bool, timeout: float) -> int:
    """`ci up`, run CMD with the stack's settings in its environment, always tear down; CMD's exit code."""
    import signal
    import subprocess

    stack_name = validate_name(name) if name else ci_name()

    def on_term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_term)
    proc: subprocess.Popen[bytes] | None = None
    try:
        stack = ci_up(project, stack_name, timeout=timeout)
        for line in mask_for_github(stack.variables()):
            print(line, flush=True)
        env = {**os.environ, **stack.variables()}
        try:
            proc = subprocess.Popen(cmd, env=env)
        except OSError as ex:
            raise UsageError(f"cannot run {cmd[0]!r}: {ex.strerror or ex}.", "check the command after `--`.") from ex
        return proc.wait()
    except KeyboardInterrupt:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
        if not keep:
            # Teardown must finish even if a second Ctrl-C arrives.
            old_int = signal.signal(signal.SIGINT, signal.SIG_IGN)
            try:
                ci_down(project, stack_name)
            finally:
                signal.signal(signal.SIGINT, old_int)


def gc(older_than: timedelta, *, dry_run: bool) -> list[StackAge]:
    """Remove (or list, with dry_run) devenv-labelled stacks older than the limit."""
    from devenv.runtime import labelled_stacks, remove_labelled

    stacks = [StackAge(s.name, parse_created(s.created), s.containers, s.volumes) for s in labelled_stacks()]
    old = old_stacks(stacks, older_than)
    if not dry_run:
        for stack in old:
            remove_labelled(stack.name)
    return old
