"""`devenv init`: look at the project as devenv would and write a commented devenv.toml with each choice and why.

It reads what devenv reads anyway (the template, the Dockerfile, package.json, the Prisma setup) plus what a user
would look at: the routes the server's source names for health, an existing compose file's postgres and redis
services, a worker script. Settings devenv finds by itself stay comments (so devenv keeps finding them); what it
cannot find, or what the project does differently, is written as a setting. It never overwrites a devenv.toml.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devenv.config import CONFIG_FILE, load_config
from devenv.context import Context
from devenv.errors import UsageError

# A route as the code registers it: `app.get("/health"`, `router.route('/ready'`, `fastify.get('/api/health'`,
# `@Get('health')` / `@Controller("health")` (NestJS), `{ method: 'GET', url: '/health' }`; not any string.
ROUTE_RE = re.compile(
    r"""(?:\.(?:get|all|route|head|use)\s*\(\s*|@(?:Get|Controller|All)\s*\(\s*|\b(?:path|url)\s*:\s*)"""
    r"""['"`](/?(?:[\w.-]+/)*(?:health|healthz|ready|readyz|live|livez|ping|status)[\w/-]*)['"`]"""
)
SOURCE_SUFFIXES = {".ts", ".js", ".mjs", ".cjs", ".mts"}
MAX_SOURCE_FILES = 400
COMPOSE_FILES = ("compose.yaml", "compose.yml", "docker-compose.yml", "docker-compose.yaml", "docker-compose.dev.yml")


@dataclass(frozen=True)
class Choice:
    """One line of the proposal: a key, its value (None: a comment only), and why."""

    table: str
    key: str
    value: Any
    why: str
    active: bool = True


@dataclass(frozen=True)
class InitResult:
    """What `devenv init` proposes (and wrote, unless only printed)."""

    path: Path
    text: str
    choices: tuple[Choice, ...]
    written: bool
    findings: tuple[str, ...] = field(default_factory=tuple)


def _toml(value: Any) -> str:
    if isinstance(value, dict):  # an inline table ([services.NAME] environment)
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def health_routes(server_dir: Path) -> list[str]:
    """Route strings in the server's source that look like health endpoints, most specific first."""
    found: dict[str, int] = {}
    files = 0
    for folder in ("src", "app", "lib", "server", "."):
        base = server_dir / folder
        if not base.is_dir():
            continue
        paths = [base / p.name for p in base.iterdir() if p.is_file()] if folder == "." else sorted(base.rglob("*"))
        for path in paths:
            if "node_modules" in path.parts or path.suffix not in SOURCE_SUFFIXES or not path.is_file():
                continue
            files += 1
            if files > MAX_SOURCE_FILES:
                break
            try:
                text = path.read_text(encoding="utf-8", errors="replace")
            except OSError:
                continue
            for match in ROUTE_RE.finditer(text):
                route = "/" + match.group(1).lstrip("/")
                found[route] = found.get(route, 0) + 1
        if folder != "." and found:
            break
    return sorted(found, key=lambda r: (not any(w in r for w in ("ready", "readyz")), r.count("/") * -1, r))


def compose_services(root: Path) -> tuple[Path | None, dict[str, dict[str, Any]]]:
    """An existing compose file's services (name -> definition)."""
    import yaml

    for name in COMPOSE_FILES:
        path = root / name
        if path.is_file():
            try:
                data = yaml.safe_load(path.read_text(encoding="utf-8"))
            except (OSError, yaml.YAMLError):
                return path, {}
            services = data.get("services") if isinstance(data, dict) else None
            return path, {k: v for k, v in (services or {}).items() if isinstance(v, dict)}
    return None, {}


def _image_of(services: dict[str, dict[str, Any]], word: str) -> tuple[str, dict[str, Any]] | None:
    for name, svc in services.items():
        image = str(svc.get("image") or "")
        if word in image.split("/")[-1].split(":")[0] or (not image and word in name):
            return name, svc
    return None


def propose(ctx: Context) -> tuple[list[Choice], list[str]]:
    """The choices for this project, and findings that are not settings (worker scripts, notes)."""
    project, cfg, app, stack = ctx.project, ctx.config, ctx.app, ctx.stack
    choices: list[Choice] = []
    findings: list[str] = []
    srv = cfg.server
    choices.append(
        Choice(
            "server",
            "path",
            srv.path,
            f"the env template {project.env_template.name} is there" + (" beside package.json" if app.path else ""),
            active=srv.path != "apps/server",
        )
    )
    choices.append(
        Choice(
            "server",
            "template",
            project.env_template.name,
            "the first of .env.template, .env.example, .env.sample, .env.dist",
            active=False,
        )
    )
    dockerfile = ctx.dockerfile
    if dockerfile is None:
        choices.append(
            Choice(
                "server",
                "dockerfile",
                srv.dockerfile,
                "there is none: the server runs on the host (`npm run dev`) "
                "and only postgres and redis run in containers",
                active=False,
            )
        )
    else:
        choices.append(Choice("server", "dockerfile", srv.dockerfile, "found", active=False))
        choices.append(
            Choice(
                "server",
                "context",
                srv.context,
                "the Dockerfile copies paths "
                + ("under the server folder: built from the root" if srv.context == "." else "of the server folder"),
                active=False,
            )
        )
        images = dockerfile.base_images()
        if images:
            choices.append(
                Choice(
                    "images",
                    images[0],
                    images[0],
                    f"{dockerfile.path.name}:{dockerfile.froms[0].line} `FROM` pulls "
                    f"{images[0]}; map it here to an image you have when it cannot be pulled",
                    active=False,
                )
            )
        if dockerfile.cmd and re.search(r"migrate|db push", dockerfile.cmd):
            start = "npm start" if "start" in app.scripts else None
            choices.append(
                Choice(
                    "server",
                    "command",
                    start.split() if start else ["node", "dist/main.js"],
                    f"the image's CMD ({dockerfile.cmd}) migrates again; devenv runs the migrations itself",
                )
            )
        dev_stage = next((s for s in dockerfile.stages if s.lower() in {"dev", "development", "develop"}), None)
        if dev_stage:
            choices.append(
                Choice("server", "target", dev_stage, f"the Dockerfile has a `{dev_stage}` stage", active=False)
            )
    port_key = next((k for k in ("PORT", "HTTP_PORT", "APP_PORT", "SERVER_PORT") if k in ctx.settings.values), None)
    if port_key and ctx.settings.values[port_key].isdigit():
        port = int(ctx.settings.values[port_key])
        choices.append(
            Choice(
                "server",
                "container_port",
                port,
                f"{port_key}={port} in {project.env_template.name}",
                active=port != srv.container_port,
            )
        )
    routes = health_routes(project.server_dir)
    ready = next((r for r in routes if "ready" in r), None) or next(iter(routes), None)
    if ready:
        choices.append(
            Choice(
                "server",
                "ready_path",
                ready,
                f"the server's source has a {ready} route",
                active=ready not in {srv.ready_path},
            )
        )
        liveness = [
            r for r in routes if r != ready and ("live" in r or r.rstrip("/").endswith(("/health", "/healthz")))
        ]
        live = min(liveness, key=lambda r: ("live" not in r, len(r)), default=None)
        if live:
            choices.append(
                # A comment only: a health_path set in devenv.toml must answer 2xx, a found one may be wrong.
                Choice("server", "health_path", live, "a liveness route in the source", active=False)
            )
        if not any("status" in r for r in routes):
            choices.append(Choice("server", "status_path", "", "no detailed status route in the source", active=False))
    else:
        findings.append("no health route found in the source; readiness falls back to /health, /healthz, /api/health.")
    setup = ctx.prisma
    if setup.schema is not None and not setup.migration_count:
        choices.append(
            Choice(
                "migrate",
                "command",
                ["npx", "prisma", "db", "push", "--skip-generate"],
                "no prisma/migrations: `migrate deploy` would apply nothing (or create the first migration "
                "with `npx prisma migrate dev --name init` and remove this line)",
            )
        )
    choices.append(
        Choice(
            "migrate",
            "seed_command",
            list(ctx.seed_command),
            f"the seed is configured in {setup.seed}" if setup.seed else "no seed is configured",
            active=False,
        )
    )
    choices.append(Choice("redis", "enabled", stack.redis, stack.redis_reason, active=False))
    compose, services = compose_services(project.root)
    if compose is not None:
        pg = _image_of(services, "postgres")
        if pg:
            image = str(pg[1].get("image") or "")
            if image:
                choices.append(
                    Choice("postgres", "image", image, f"{compose.name} service {pg[0]!r} uses it", active=False)
                )
        rd = _image_of(services, "redis")
        if rd and rd[1].get("image"):
            choices.append(
                Choice("redis", "image", str(rd[1]["image"]), f"{compose.name} service {rd[0]!r} uses it", active=False)
            )
        others = [n for n in services if n not in {pg[0] if pg else "", rd[0] if rd else ""}]
        proposed = [n for n in others if _propose_extra(n, services[n], compose.name, choices)]
        if proposed:
            findings.append(f"{compose.name} has {', '.join(proposed)}: proposed as [services.*] tables below.")
        left = [n for n in others if n not in proposed]
        if left:
            what = "it" if len(left) == 1 else "them"
            findings.append(f"{compose.name} also has {', '.join(left)}: devenv does not run {what}.")
    if app.worker_script:
        runner = next((argv[:-1] for lock, argv in WORKER_RUNNERS.items() if (project.root / lock).is_file()), None)
        command = [*(runner or ["npm", "run"]), app.worker_script]
        if stack.server and not cfg.services:
            why = f"package.json has a `{app.worker_script}` script: a second process (a queue worker)"
            choices.append(Choice("services.worker", "from", "server", why + ", in the server's image"))
            choices.append(Choice("services.worker", "command", command, "with the same .env, after migrate"))
            choices.append(
                Choice("services.worker", "ready", "none", "nothing to ask: ready once it stays up for a second")
            )
            findings.append(f"package.json has a `{app.worker_script}` script: proposed as [services.worker].")
        else:
            findings.append(
                f"package.json has a `{app.worker_script}` script (a second process, e.g. a queue worker): run it "
                f"beside the server with `{' '.join(command)}`."
            )
    return choices, findings


WORKER_RUNNERS = {"yarn.lock": ["yarn", "_"], "pnpm-lock.yaml": ["pnpm", "run", "_"], "bun.lockb": ["bun", "run", "_"]}
# Images of the services projects keep beside their app in a compose file, and how to know each is ready.
KNOWN_EXTRAS = {
    "mailpit": (8025, "http:/livez"),
    "mailhog": (8025, "http:/"),
    "maildev": (1080, "http:/"),
    "smtp4dev": (80, "http:/"),
    "minio": (9000, "http:/minio/health/live"),
    "localstack": (4566, "http:/_localstack/health"),
    "azurite": (10000, "tcp:10000"),
}


def _propose_extra(name: str, svc: dict[str, Any], compose: str, choices: list[Choice]) -> bool:
    """A compose service with an image devenv knows (mail catchers, object storage) as a [services.NAME] table."""
    from devenv.extras import NAME_RE, VAR_RE

    image = str(svc.get("image") or "")
    base = image.split("/")[-1].split(":")[0].split("@")[0]
    known = next((v for k, v in KNOWN_EXTRAS.items() if k in base), None)
    if known is None or not NAME_RE.fullmatch(name):
        return False
    table = f"services.{name}"
    main, ready = known
    ports: list[str] = []
    for item in svc.get("ports") or []:
        parts = str(item).split("/")[0].split(":")[-2:]  # [IP:]HOST:CONTAINER[/tcp]
        if all(p.isdigit() for p in parts):
            ports.append(":".join(parts) if len(parts) == 2 else f"{parts[0]}:{parts[0]}")
    if not any(p.split(":")[-1] == str(main) for p in ports):
        ports.insert(0, f"{main}:{main}")
    raw_env = svc.get("environment") or {}
    if isinstance(raw_env, list):
        raw_env = dict(str(e).partition("=")[::2] for e in raw_env)
    env = {str(k): str(v) for k, v in raw_env.items() if v is not None and "$" not in VAR_RE.sub("", str(v))}
    choices.append(Choice(table, "image", image, f"{compose} service {name!r} uses it"))
    choices.append(Choice(table, "ports", ports, "host:container, as in " + compose))
    choices.append(Choice(table, "ready", ready, f"what {base} answers when it is ready"))
    if env:
        choices.append(Choice(table, "environment", env, f"as in {compose}"))
    return True


def render_toml(project_name: str, choices: list[Choice]) -> str:
    """The devenv.toml text: every choice with its reason; devenv's own findings stay comments."""
    lines = [
        "# devenv.toml, written by `devenv init`. Every key is optional: a commented line is what devenv finds by",
        "# itself (uncomment it to pin it). See README, Configuration.",
        "",
        f"# name = {_toml(project_name)}  # the compose project name (default: the folder's name)",
    ]
    extras = list(dict.fromkeys(c.table for c in choices if c.table.startswith("services.")))
    for table in ("server", "migrate", "postgres", "redis", "images", *extras):
        rows = [c for c in choices if c.table == table]
        if not rows:
            continue
        lines += ["", f"[{table}]"]
        for c in rows:
            key = _toml(c.key) if table == "images" else c.key
            lines.append(f"# {c.why}")
            lines.append(f"{'' if c.active else '# '}{key} = {_toml(c.value)}")
    return "\n".join(lines) + "\n"


def init(ctx: Context, *, write: bool = True) -> InitResult:
    """Propose a devenv.toml for CTX's project and write it (never over an existing one)."""
    path = ctx.project.root / CONFIG_FILE
    if write and path.exists():
        raise UsageError(
            f"{path} exists; `devenv init` never overwrites it.",
            "edit it, or `devenv init --print` to see what init would propose now.",
        )
    choices, findings = propose(ctx)
    text = render_toml(ctx.project.name, choices)
    if write:
        from devenv.state import atomic_write

        atomic_write(path, text, 0o644)
        try:
            load_config(path, {})  # what init writes must load
        except BaseException:
            path.unlink(missing_ok=True)
            raise
    return InitResult(path, text, tuple(choices), write, tuple(findings))
