"""`devenv doctor`: every check that explains why a stack would not come up, each ok / warn / fail with a hint."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlparse

from devenv.core.errors import DevenvError
from devenv.engine.runtime import EngineFacts, Runtime
from devenv.engine.target import is_loopback
from devenv.project.discovery import Project
from devenv.project.envfile import HostPorts

MIN_COMPOSE = (2, 20)  # healthcheck start_interval
DISK_WARN_GB = 5.0
DISK_FAIL_GB = 1.0


@dataclass(frozen=True)
class Finding:
    """One check's verdict."""

    check: str
    level: str  # ok | warn | fail
    detail: str
    hint: str = ""


@dataclass(frozen=True)
class DoctorReport:
    """All findings; failed when any is `fail`."""

    findings: tuple[Finding, ...]

    @property
    def failed(self) -> bool:
        return any(f.level == "fail" for f in self.findings)


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", text)[:3])


def check_engine(facts: EngineFacts | DevenvError) -> list[Finding]:
    """Engine reachable and its version; compose v2 present and recent enough."""
    if isinstance(facts, DevenvError):
        return [Finding("engine", "fail", facts.message, facts.hint or "")]
    via = f" (from {facts.source})" if facts.source else ""
    out = [Finding("engine", "ok", f"Docker Engine {facts.server_version} at {facts.host}{via}")]
    if not is_loopback(facts.address):
        out.append(
            Finding(
                "engine host",
                "ok",
                f"remote: the stack's ports answer at {facts.address} (.env, the summary and the probes use it; "
                "DEVENV_ENGINE_HOST overrides it)",
            )
        )
    if not facts.compose_version:
        out.append(
            Finding("compose", "fail", "docker compose (v2) is missing", "install the compose plugin (>= 2.20).")
        )
    elif _version(facts.compose_version) < MIN_COMPOSE:
        out.append(
            Finding(
                "compose",
                "fail",
                f"compose {facts.compose_version} is older than 2.20 (no healthcheck start_interval)",
                "upgrade the compose plugin.",
            )
        )
    else:
        out.append(Finding("compose", "ok", f"compose {facts.compose_version}"))
    return out


def check_socket(host: str) -> Finding:
    """Permission on the engine's unix socket."""
    url = urlparse(host)
    if url.scheme != "unix":
        return Finding("socket", "ok", f"engine over {url.scheme}://")
    path = url.path
    if not os.path.exists(path):
        return Finding("socket", "fail", f"{path} does not exist", "start Docker, or set DOCKER_HOST.")
    if not os.access(path, os.R_OK | os.W_OK):
        return Finding(
            "socket", "fail", f"no permission on {path}", "add yourself to the docker group (then log in again)."
        )
    return Finding("socket", "ok", f"{path} is usable")


def check_disk(root_dir: str, host: str) -> Finding:
    """Free space where Docker keeps its data (local engines only)."""
    if urlparse(host).scheme != "unix" or not root_dir or not os.path.isdir(root_dir):
        return Finding("disk", "ok", "engine is remote or its data dir is not visible here; not checked")
    free_gb = shutil.disk_usage(root_dir).free / 1e9
    detail = f"{free_gb:.1f} GB free in {root_dir}"
    if free_gb < DISK_FAIL_GB:
        return Finding("disk", "fail", detail, "free space: `docker system prune` removes unused images and caches.")
    if free_gb < DISK_WARN_GB:
        return Finding("disk", "warn", detail, "builds and volumes need room; consider `docker system prune`.")
    return Finding("disk", "ok", detail)


def check_ports(project: Project, runtime: Runtime | None) -> list[Finding]:
    """The stack's host ports: free, or held by this stack; a taken default is a warning (up picks another one),
    a taken pinned one a failure naming who holds it."""
    from devenv.engine.ports import LocalPorts
    from devenv.project.endpoints import container_ports
    from devenv.project.services import port_claims, server_mode
    from devenv.stack.checkouts import holder, port_space

    out = []
    space = port_space(runtime) if runtime is not None else LocalPorts()  # this machine, or the engine's host
    published: dict[tuple[str, int], int] | None = None  # looked up once, and only when a port is taken
    inside = container_ports(project.config)
    host = server_mode(project.config, project.dockerfile.is_file(), project.ci) == "host"
    extra_ports = {(e.name, p.host): p.container for e in project.config.services for p in e.ports}
    names = ["postgres", "redis", "server", *(e.name for e in project.config.services)]
    for claim in port_claims(project.config, names):
        inside_port = extra_ports.get((claim.service, claim.port)) or inside.get(claim.service)
        if claim.port == 0:
            out.append(Finding(f"port {claim.service}", "ok", "chosen by Docker"))
            continue
        here = LocalPorts() if claim.service == "server" and host else space  # `devenv dev` listens here
        if here.is_free(claim.port):
            out.append(Finding(f"port {claim.service}", "ok", f"{claim.port} is free on {here.where}"))
            continue
        if runtime is not None and published is None:
            published = runtime.published_ports()
        if published and published.get((claim.service, inside_port or 0)) == claim.port:
            out.append(Finding(f"port {claim.service}", "ok", f"{claim.port} is held by this stack"))
        elif claim.service == "server" and host:
            out.append(Finding("port server", "ok", f"{claim.port} is in use: the server on the host (devenv dev)?"))
        elif project.config.is_pinned(f"{claim.service}.port") or (claim.service, claim.port) in extra_ports:
            out.append(
                Finding(
                    f"port {claim.service}",
                    "fail",
                    f"{claim.port} is taken by {holder(runtime, claim.port)}",
                    f"stop it (`ss -ltnp 'sport = :{claim.port}'`, `devenv ls`) or set {claim.setting} to a free port.",
                )
            )
        else:
            out.append(
                Finding(
                    f"port {claim.service}",
                    "warn",
                    f"{claim.port} is taken by {holder(runtime, claim.port)}; `devenv up` uses a free one instead",
                    f"{claim.setting} pins one.",
                )
            )
    return out


def check_env(project: Project, ports: HostPorts | None = None) -> list[Finding]:
    """.env drift against the template (and against the ports the stack uses), and .env not tracked by git."""
    from devenv.project.envfile import check_env as drift

    out = []
    try:
        report = drift(project, ports=ports)
    except DevenvError as ex:
        return [Finding(".env", "fail", ex.message, ex.hint or "")]
    if not report.env_exists:
        out.append(
            Finding(".env", "warn", f"{project.env_file} does not exist yet", "`devenv env` (or `up`) writes it.")
        )
    elif report.missing or report.extra:
        keys = ", ".join(i.key for i in (*report.missing, *report.extra))
        out.append(Finding(".env", "warn", f"out of step with the template: {keys}", "`devenv env` adds missing keys."))
    else:
        out.append(Finding(".env", "ok", f"in step with {report.template.name}"))
    from devenv.project.settings import masked

    for item, value in report.ports:
        port = value if item.key.endswith("_PORT") else urlparse(value).port
        out.append(
            Finding(
                ".env ports",
                "warn",
                f"{item.key} ({item.where()}) points at another port than the stack's ({port})",
                f"make it {masked(value)}, or delete the line and run `devenv env`.",
            )
        )
    if report.env_exists:
        from devenv.project.envfile import tracked_by_git

        if tracked_by_git(project.env_file):
            out.append(
                Finding(
                    ".env in git",
                    "fail",
                    f"{project.env_file} is tracked by git (it holds secrets)",
                    "`git rm --cached` it and add `.env` to .gitignore.",
                )
            )
        else:
            out.append(Finding(".env in git", "ok", "not tracked"))
    return out


def _host_ports(project: Project, runtime: Runtime | None) -> HostPorts | None:
    """The ports the stack uses: configured, or published by the running stack."""
    from devenv.project.endpoints import container_ports

    cfg = project.config
    published = runtime.published_ports() if runtime is not None and not (cfg.postgres.port and cfg.redis.port) else {}
    inside = container_ports(cfg)
    pg = cfg.postgres.port or published.get(("postgres", inside["postgres"]))
    if not pg:
        return None
    redis = cfg.redis.port or published.get(("redis", inside["redis"])) or 6379
    return HostPorts(pg, redis, runtime.host_address() if runtime is not None else "127.0.0.1")


def check_images(project: Project, facts: EngineFacts | DevenvError) -> list[Finding]:
    """Images present locally (or, when missing, whether devenv would have to pull them)."""
    if isinstance(facts, DevenvError):
        return []
    from devenv.project import dockerfile

    cfg = project.config
    wanted = {"postgres.image": cfg.image(cfg.postgres.image), "redis.image": cfg.image(cfg.redis.image)}
    wanted.update({f"services.{e.name}.image": cfg.image(e.image) for e in cfg.services if e.image})
    parsed = dockerfile.read(project.dockerfile, cfg.server.build_args)
    if parsed is not None:
        bases = parsed.base_images()
        named = set(wanted.values())
        for line in (f for f in parsed.froms if f.resolved in bases):
            mapped = cfg.images.get(line.resolved)
            image = mapped or line.resolved
            if image in named:  # a second stage FROM the same image (deps and runtime): one line, its first FROM
                continue
            named.add(image)
            wanted[f"images.{line.resolved}" if mapped else f"{parsed.path.name}:{line.line}"] = image
    out = []
    for key, image in wanted.items():
        ref = image if ":" in image.rsplit("/", 1)[-1] or "@" in image else f"{image}:latest"
        if ref in facts.local_images:
            out.append(Finding(f"image {image}", "ok", "present"))
        else:
            out.append(
                Finding(
                    f"image {image}",
                    "warn",
                    f"not present; `devenv up` will pull it ({key})",
                    "offline? devenv's `scripts/build-images.sh` builds stand-ins; see docs/offline.md.",
                )
            )
    return out


def check_spare(project: Project) -> Finding:
    """Whether the last background copy for `reset` failed (spare.log holds the failures since the last good one)."""
    from devenv.db.spare import LOG
    from devenv.project.config import display_path

    if not project.config.reset.spare:
        return Finding("reset spare", "ok", "off ([reset] spare = false): reset copies from the template")
    log = project.state_dir / LOG
    try:
        lines = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    except OSError:
        return Finding("reset spare", "ok", "no failed copies")
    last = lines[-1] if lines else "(empty log)"
    return Finding(
        "reset spare",
        "warn",
        f"the last ready copy for reset failed: {last}",
        f"reset still works (it copies from the template itself); details in {display_path(log)}, which is "
        "removed by the next good copy.",
    )


def diagnose(
    project: Project | DevenvError,
    runtime: Runtime | None,
    facts: Callable[[], EngineFacts],
) -> DoctorReport:
    """Run every check; a check that cannot run is a finding, never an exception."""
    from devenv.engine.runtime import docker_host

    try:
        engine: EngineFacts | DevenvError = facts()
    except DevenvError as ex:
        engine = ex
    findings = check_engine(engine)
    findings.append(check_socket(engine.host if isinstance(engine, EngineFacts) else docker_host()))
    if isinstance(engine, EngineFacts):
        findings.append(check_disk(engine.root_dir, engine.host))
    if isinstance(project, DevenvError):
        findings.append(Finding("project", "fail", project.message, project.hint or ""))
        return DoctorReport(tuple(findings))
    findings += check_ports(project, runtime if isinstance(engine, EngineFacts) else None)
    findings += check_env(project, _host_ports(project, runtime if isinstance(engine, EngineFacts) else None))
    findings += check_images(project, engine)
    findings.append(check_spare(project))
    return DoctorReport(tuple(findings))
