"""`devenv init`: look at the project as devenv would and write a commented devenv.toml with each choice and why.

It reads what devenv reads anyway (the template, the Dockerfile, package.json, the Prisma setup) plus what a user
would look at: the routes the server's source names for health, an existing compose file's postgres and redis
services, a worker script. Settings devenv finds by itself stay comments (so devenv keeps finding them); what it
cannot find, or what the project does differently, is written as a setting. It never overwrites a devenv.toml.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from devenv.core.errors import UsageError
from devenv.project.config import CONFIG_FILE, load_config
from devenv.project.context import Context

if TYPE_CHECKING:
    from devenv.project.config import ServerConfig
    from devenv.project.dockerfile import Dockerfile
    from devenv.project.extras import ExtraService
    from devenv.project.nodeapp import NodeApp
    from devenv.project.prisma import PrismaSetup
    from devenv.project.services import Stack

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


# What a detector yields: the choices it proposes and its findings (plain text), in order.
Part = Iterator[Choice | str]


def propose(ctx: Context) -> tuple[list[Choice], list[str]]:
    """The choices for this project, and findings that are not settings (worker scripts, notes)."""
    project, cfg, app, stack = ctx.project, ctx.config, ctx.app, ctx.stack
    template = project.env_template.name
    # The detectors in the order their lines appear; each runs before the next one's inputs are read.
    parts: list[Choice | str] = [
        *_server_folder(cfg.server, template, app),
        *_dockerfile(ctx.dockerfile, cfg.server),
        *_base_image(ctx.dockerfile),
        *_server_command(ctx.dockerfile, app),
        *_dev_stage(ctx.dockerfile),
        *_container_port(ctx.settings.values, cfg.server, template),
        *_health(health_routes(project.server_dir), cfg.server),
        *_migrate_command(ctx.prisma),
        *_seed(ctx.prisma, ctx.seed_command),
        *_redis(stack),
        *_compose(*compose_services(project.root)),
        *_worker(app, project.root, ctx.dockerfile, cfg.services, stack),
    ]
    return [p for p in parts if isinstance(p, Choice)], [p for p in parts if isinstance(p, str)]


def _server_folder(srv: ServerConfig, template: str, app: NodeApp) -> Part:
    """server.path (written when it is not the default) and the template found in it."""
    why = f"the env template {template} is there" + (" beside package.json" if app.path else "")
    yield Choice("server", "path", srv.path, why, active=srv.path != "apps/server")
    yield Choice(
        "server", "template", template, "the first of .env.template, .env.example, .env.sample, .env.dist", active=False
    )


def _dockerfile(dockerfile: Dockerfile | None, srv: ServerConfig) -> Part:
    """The Dockerfile and the build context (comments: devenv finds both)."""
    if dockerfile is None:
        why = "there is none: the server runs on the host (`npm run dev`) and only postgres and redis run in containers"
        yield Choice("server", "dockerfile", srv.dockerfile, why, active=False)
        return
    yield Choice("server", "dockerfile", srv.dockerfile, "found", active=False)
    where = "under the server folder: built from the root" if srv.context == "." else "of the server folder"
    yield Choice("server", "context", srv.context, "the Dockerfile copies paths " + where, active=False)


def _base_image(dockerfile: Dockerfile | None) -> Part:
    """The first image the Dockerfile pulls, as an [images] line to map it."""
    images = dockerfile.base_images() if dockerfile else []
    if dockerfile and images:
        why = (
            f"{dockerfile.path.name}:{dockerfile.froms[0].line} `FROM` pulls "
            f"{images[0]}; map it here to an image you have when it cannot be pulled"
        )
        yield Choice("images", images[0], images[0], why, active=False)


def _server_command(dockerfile: Dockerfile | None, app: NodeApp) -> Part:
    """server.command when the image's CMD migrates again (devenv runs the migrations itself)."""
    if dockerfile and dockerfile.cmd and re.search(r"migrate|db push", dockerfile.cmd):
        start = "npm start" if "start" in app.scripts else None
        why = f"the image's CMD ({dockerfile.cmd}) migrates again; devenv runs the migrations itself"
        yield Choice("server", "command", start.split() if start else ["node", "dist/main.js"], why)


def _dev_stage(dockerfile: Dockerfile | None) -> Part:
    """server.target, offered when the Dockerfile has a dev stage."""
    stages = dockerfile.stages if dockerfile else []
    dev_stage = next((s for s in stages if s.lower() in {"dev", "development", "develop"}), None)
    if dev_stage:
        yield Choice("server", "target", dev_stage, f"the Dockerfile has a `{dev_stage}` stage", active=False)


def _container_port(values: Mapping[str, str], srv: ServerConfig, template: str) -> Part:
    """server.container_port from the template's PORT (or HTTP_PORT, APP_PORT, SERVER_PORT)."""
    port_key = next((k for k in ("PORT", "HTTP_PORT", "APP_PORT", "SERVER_PORT") if k in values), None)
    if port_key and values[port_key].isdigit():
        port = int(values[port_key])
        why = f"{port_key}={port} in {template}"
        yield Choice("server", "container_port", port, why, active=port != srv.container_port)


def _health(routes: list[str], srv: ServerConfig) -> Part:
    """The readiness, liveness and status paths from the ROUTES the server's source registers."""
    ready = next((r for r in routes if "ready" in r), None) or next(iter(routes), None)
    if not ready:
        yield "no health route found in the source; readiness falls back to /health, /healthz, /api/health."
        return
    why = f"the server's source has a {ready} route"
    yield Choice("server", "ready_path", ready, why, active=ready not in {srv.ready_path})
    liveness = [r for r in routes if r != ready and ("live" in r or r.rstrip("/").endswith(("/health", "/healthz")))]
    live = min(liveness, key=lambda r: ("live" not in r, len(r)), default=None)
    if live:
        # A comment only: a health_path set in devenv.toml must answer 2xx, a found one may be wrong.
        yield Choice("server", "health_path", live, "a liveness route in the source", active=False)
    if not any("status" in r for r in routes):
        yield Choice("server", "status_path", "", "no detailed status route in the source", active=False)


def _migrate_command(setup: PrismaSetup) -> Part:
    """migrate.command as `db push` when there is a schema but no migrations."""
    if setup.schema is not None and not setup.migration_count:
        why = (
            "no prisma/migrations: `migrate deploy` would apply nothing (or create the first migration "
            "with `npx prisma migrate dev --name init` and remove this line)"
        )
        yield Choice("migrate", "command", ["npx", "prisma", "db", "push", "--skip-generate"], why)


def _seed(setup: PrismaSetup, seed_command: tuple[str, ...]) -> Part:
    """migrate.seed_command as devenv finds it (a comment)."""
    why = f"the seed is configured in {setup.seed}" if setup.seed else "no seed is configured"
    yield Choice("migrate", "seed_command", list(seed_command), why, active=False)


def _redis(stack: Stack) -> Part:
    """redis.enabled as devenv decides it (a comment), with why."""
    yield Choice("redis", "enabled", stack.redis, stack.redis_reason, active=False)


def _compose(compose: Path | None, services: dict[str, dict[str, Any]]) -> Part:
    """An existing compose file's postgres and redis images, the extras devenv knows, and what it leaves out."""
    if compose is None:
        return
    pg, rd = _image_of(services, "postgres"), _image_of(services, "redis")
    for table, found in (("postgres", pg), ("redis", rd)):
        if found and found[1].get("image"):
            why = f"{compose.name} service {found[0]!r} uses it"
            yield Choice(table, "image", str(found[1]["image"]), why, active=False)
    others = [n for n in services if n not in {pg[0] if pg else "", rd[0] if rd else ""}]
    extras = {n: _extra(n, services[n], compose.name) for n in others}
    yield from (choice for table in extras.values() for choice in table)
    proposed = [n for n in others if extras[n]]
    if proposed:
        yield f"{compose.name} has {', '.join(proposed)}: proposed as [services.*] tables below."
    left = [n for n in others if n not in proposed]
    if left:
        what = "it" if len(left) == 1 else "them"
        yield f"{compose.name} also has {', '.join(left)}: devenv does not run {what}."


def _worker(
    app: NodeApp, root: Path, dockerfile: Dockerfile | None, services: tuple[ExtraService, ...], stack: Stack
) -> Part:
    """package.json's worker script: already a [services.NAME], proposed as [services.worker], or a note."""
    script = app.worker_script
    if not script:
        return
    # It runs in the server's image: the package manager its Dockerfile uses, when the lockfiles leave a choice.
    dockerfile_text = "\n".join(i for _, i in dockerfile.instructions) if dockerfile else ""
    command = app.run_argv(script, root, dockerfile_text)
    runs_it = next((x.name for x in services if script in x.command), None)
    if runs_it:
        yield f"package.json's `{script}` script runs as [services.{runs_it}]."
    elif stack.server and not services:
        why = f"package.json has a `{script}` script: a second process (a queue worker)"
        yield Choice("services.worker", "from", "server", why + ", in the server's image")
        yield Choice("services.worker", "command", command, "with the same .env, after migrate")
        yield Choice("services.worker", "ready", "none", "nothing to ask: ready once it stays up for a second")
        yield f"package.json has a `{script}` script: proposed as [services.worker]."
    else:
        yield (
            f"package.json has a `{script}` script (a second process, e.g. a queue worker): run it "
            f"beside the server with `{' '.join(command)}`."
        )


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


def _extra(name: str, svc: dict[str, Any], compose: str) -> list[Choice]:
    """A compose service with an image devenv knows (mail catchers, object storage) as a [services.NAME] table."""
    from devenv.project.extras import NAME_RE, VAR_RE

    image = str(svc.get("image") or "")
    base = image.split("/")[-1].split(":")[0].split("@")[0]
    known = next((v for k, v in KNOWN_EXTRAS.items() if k in base), None)
    if known is None or not NAME_RE.fullmatch(name):
        return []
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
    choices = [
        Choice(table, "image", image, f"{compose} service {name!r} uses it"),
        Choice(table, "ports", ports, "host:container, as in " + compose),
        Choice(table, "ready", ready, f"what {base} answers when it is ready"),
    ]
    return choices + ([Choice(table, "environment", env, f"as in {compose}")] if env else [])


def render_toml(project_name: str, choices: list[Choice]) -> str:
    """The devenv.toml text: every choice with its reason; devenv's own findings stay comments."""
    lines = [
        "# devenv.toml, written by `devenv init`. Every key is optional: a commented line is what devenv finds by",
        "# itself (uncomment it to pin it). See docs/configuration.md in devenv.",
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
        from devenv.core.state import atomic_write

        atomic_write(path, text, 0o644)
        try:
            load_config(path, {})  # what init writes must load
        except BaseException:
            path.unlink(missing_ok=True)
            raise
    return InitResult(path, text, tuple(choices), write, tuple(findings))
