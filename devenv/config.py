"""devenv.toml: where the server lives, images, host ports, build args, mounts, migrate commands.

Every key is optional and has a default matching the monorepo layout (server in apps/server). The DEVENV_*
environment variables of the catalogue (env/variables.toml) override the file; that is how CI and the tests pick
images and ports without editing anything. Unknown keys are errors with a did-you-mean.
"""

from __future__ import annotations

import difflib
import os
import posixpath
import re
import shlex
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devenv.errors import ConfigError
from devenv.extras import ExtraService, parse_services

CONFIG_FILE = "devenv.toml"
DEFAULT_POSTGRES_IMAGE = "postgres:16-alpine"
DEFAULT_REDIS_IMAGE = "redis:7-alpine"
DEFAULT_SERVER_PATH = "apps/server"
BUILD_ARG_PREFIX = "DEVENV_BUILD_ARG_"
BUILD_SECRET_PREFIX = "DEVENV_BUILD_SECRET_"
SECRET_ID_RE = re.compile(r"[a-z0-9][a-z0-9_.-]*")
NAME_RE = re.compile(r"[a-z0-9][a-z0-9_-]*")
BUILD_ARG_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
STAGE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
IMAGE_MAP_VAR = "DEVENV_IMAGE_MAP"

# Docker's reference grammar (distribution/reference), without the 255-character limit check.
_DOMAIN = r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]+)?"
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
IMAGE_RE = re.compile(rf"(?:{_DOMAIN}/)?{_COMPONENT}(?:/{_COMPONENT})*(?::{_TAG})?(?:@{_DIGEST})?")


@dataclass(frozen=True)
class PostgresConfig:
    """[postgres]: image and host port (0 = Docker chooses a free one)."""

    image: str = DEFAULT_POSTGRES_IMAGE
    port: int = 5432


@dataclass(frozen=True)
class RedisConfig:
    """[redis]: image and host port (0 = Docker chooses a free one)."""

    image: str = DEFAULT_REDIS_IMAGE
    port: int = 6379
    enabled: bool | None = None  # None: when the template or the server's dependencies use Redis


@dataclass(frozen=True)
class Mount:
    """A dev bind mount into the server (and migrate) container: SOURCE (relative to the root) : TARGET."""

    source: str
    target: str
    read_only: bool = False

    def spec(self) -> str:
        """The devenv.toml spelling, SOURCE:TARGET[:ro]."""
        return f"{self.source}:{self.target}" + (":ro" if self.read_only else "")


@dataclass(frozen=True)
class WatchConfig:
    """[server.watch]: compose `develop.watch` rules for `devenv watch` (None: devenv's defaults)."""

    sync: tuple[Mount, ...] | None = None  # SOURCE:TARGET synced into the container, then a restart
    rebuild: tuple[str, ...] | None = None  # paths whose change rebuilds the image
    migrate: tuple[str, ...] | None = None  # paths whose change rebuilds and re-runs the migrate job


@dataclass(frozen=True)
class ServerConfig:
    """[server]: where the app lives, how its image is built, its ports and health endpoints."""

    path: str = DEFAULT_SERVER_PATH  # relative to the project root
    dockerfile: str = f"{DEFAULT_SERVER_PATH}/Dockerfile"  # relative to the project root
    context: str = "."  # relative to the project root
    build_args: dict[str, str] = field(default_factory=dict)
    build_secrets: dict[str, str] = field(default_factory=dict)  # secret id -> file (BuildKit --secret)
    port: int = 3000  # host port; 0 = Docker chooses
    container_port: int = 3000
    health_path: str = "/health"
    ready_path: str = "/health/ready"
    status_path: str = "/health/status"  # "" = no detailed status
    mounts: tuple[Mount, ...] = ()
    template: str | None = None  # the env template's file name in server.path (None: found by name)
    command: tuple[str, ...] = ()  # the server container's command (empty: the image's CMD)
    target: str | None = None  # the Dockerfile stage to build (None: the last one)
    mode: str | None = None  # container | host (None: container when there is a Dockerfile, else host)
    dev_command: tuple[str, ...] = ()  # `devenv dev` (empty: the package.json dev script)
    dev_dockerfile: str | None = None  # the image `devenv watch` builds (None: server.dockerfile)
    watch: WatchConfig = field(default_factory=lambda: WatchConfig())


@dataclass(frozen=True)
class MigrateConfig:
    """[migrate]: commands run in the server image (an empty seed_command disables seeding)."""

    command: tuple[str, ...] = ("npx", "prisma", "migrate", "deploy")
    seed_command: tuple[str, ...] | None = None  # None: `npx prisma db seed` when the project configures a seed
    status_command: tuple[str, ...] = ("npx", "prisma", "migrate", "status")


@dataclass(frozen=True)
class ResetConfig:
    """[reset]: whether a copy of the template is kept ready, so a soft reset only renames it into place; how many
    migrations keys' templates are kept (the current one and the cache, see devenv.template_cache)."""

    spare: bool = True
    keep: int = 4


@dataclass(frozen=True)
class DbConfig:
    """[db]: a database per git branch (the app database is parked and swapped by rename when the branch changes)."""

    per_branch: bool = False


@dataclass(frozen=True)
class Config:
    """devenv.toml merged with the DEVENV_* environment; `source` is the file it came from (None: defaults)."""

    name: str | None = None
    bind_address: str = "127.0.0.1"  # where host ports are published; anything else only when asked for explicitly
    postgres: PostgresConfig = field(default_factory=PostgresConfig)
    redis: RedisConfig = field(default_factory=RedisConfig)
    server: ServerConfig = field(default_factory=ServerConfig)
    migrate: MigrateConfig = field(default_factory=MigrateConfig)
    reset: ResetConfig = field(default_factory=ResetConfig)
    db: DbConfig = field(default_factory=DbConfig)
    images: dict[str, str] = field(default_factory=dict)  # image reference -> the one used instead ([images])
    services: tuple[ExtraService, ...] = ()  # [services.NAME]: workers and extra services (devenv.extras)
    source: Path | None = None
    pinned: frozenset[str] = frozenset()  # dotted keys set in devenv.toml or by a DEVENV_* variable
    origins: Mapping[str, _Where] = field(default_factory=dict, compare=False, repr=False)  # dotted key -> source

    def is_pinned(self, dotted: str) -> bool:
        """Whether KEY was set by the user (devenv.toml or environment) rather than left to its default."""
        return dotted in self.pinned

    def where(self, dotted: str) -> str:
        """Where KEY was set, for messages: `devenv.toml:LINE: KEY`, `DEVENV_… (overrides KEY)`, or KEY."""
        origin = self.origins.get("services") if dotted.startswith("services.") else None
        return (origin or self.origins.get(dotted, _Where())).of(dotted)

    def image(self, reference: str) -> str:
        """REFERENCE after [images] / DEVENV_IMAGE_MAP."""
        return self.images.get(reference, reference)


# The schema: table -> key -> kind. "table" keys nest; the kinds are checked by _convert.
SCHEMA: dict[str, dict[str, str]] = {
    "": {
        "name": "name",
        "bind_address": "address",
        "postgres": "table",
        "redis": "table",
        "server": "table",
        "migrate": "table",
        "reset": "table",
        "db": "table",
        "images": "image_map",
        "services": "services",
    },
    "postgres": {"image": "image", "port": "port"},
    "redis": {"image": "image", "port": "port", "enabled": "bool"},
    "server": {
        "path": "relpath",
        "dockerfile": "relpath",
        "context": "relpath",
        "build_args": "build_args",
        "build_secrets": "build_secrets",
        "port": "port",
        "container_port": "container_port",
        "health_path": "urlpath",
        "ready_path": "urlpath",
        "status_path": "urlpath_or_empty",
        "mounts": "mounts",
        "template": "filename",
        "command": "argv_or_empty",
        "target": "stage",
        "mode": "mode",
        "dev_command": "argv_or_empty",
        "dev_dockerfile": "relpath",
        "watch": "table",
    },
    "server.watch": {"sync": "mounts", "rebuild": "relpaths", "migrate": "relpaths"},
    "migrate": {"command": "argv", "seed_command": "argv_or_empty", "status_command": "argv"},
    "reset": {"spare": "bool", "keep": "keep"},
    "db": {"per_branch": "bool"},
}


@dataclass(frozen=True)
class _Where:
    """Where a value came from, for messages: devenv.toml (with its text, to find lines) or an env var."""

    file: Path | None = None
    text: str = ""
    env_var: str | None = None

    def of(self, dotted: str) -> str:
        if self.env_var:
            return f"{self.env_var} (overrides {dotted})"
        if self.file is None:
            return dotted
        line = find_key_line(self.text, dotted)
        parts = dotted.split(".")
        while not line and parts[0] == "services" and len(parts) > 2:  # a key of an inline table: its table's line
            parts.pop()
            line = find_key_line(self.text, ".".join(parts))
        return f"{display_path(self.file)}:{line}: {dotted}" if line else f"{display_path(self.file)}: {dotted}"


def display_path(path: Path) -> str:
    """PATH relative to the current directory when it is below it (shorter messages), else as given."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def find_key_line(text: str, dotted: str) -> int | None:
    """Best-effort line of a dotted key in TOML text (tomllib does not report positions)."""
    parts = dotted.split(".")
    table, key = ".".join(parts[:-1]), parts[-1]
    current = ""
    header = re.compile(r"^\s*\[\s*([A-Za-z0-9_.\s\"-]+?)\s*\]\s*(?:#.*)?$")
    for number, line in enumerate(text.splitlines(), start=1):
        m = header.match(line)
        if m:
            current = re.sub(r"\s+", "", m.group(1)).replace('"', "")
            if current == dotted or current.startswith(dotted + "."):  # [a.b] is where table a appears first
                return number
            continue
        m = re.match(r"^\s*([A-Za-z0-9_.\"-]+)\s*=", line)
        if m:
            name = m.group(1).replace('"', "")
            full = f"{current}.{name}" if current else name
            if full == dotted or (current == table and name == key):
                return number
    return None


def sanitize_name(raw: str, fallback: str = "devenv") -> str:
    """A compose project name from any text: lowercase letters, digits, '-' and '_', starting alphanumeric."""
    name = re.sub(r"[^a-z0-9_-]+", "-", raw.lower()).strip("-_")
    return name[:63] or fallback


def _fail(where: _Where, dotted: str, problem: str, hint: str) -> ConfigError:
    return ConfigError(f"{where.of(dotted)} {problem}", hint)


def _convert(kind: str, value: Any, dotted: str, where: _Where) -> Any:
    """Check one value against its kind and return it in the dataclass' type."""
    if kind == "address":
        import ipaddress

        try:
            return str(ipaddress.IPv4Address(str(value)))
        except ValueError:
            raise _fail(
                where, dotted, f"= {value!r} is not an IPv4 address.", "use 127.0.0.1 (default) or 0.0.0.0."
            ) from None
    if kind == "bool":
        if isinstance(value, str) and where.env_var:  # DEVENV_DB_PER_BRANCH=true: a variable is text
            value = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}.get(
                value.strip().lower(), value
            )
        if not isinstance(value, bool):
            raise _fail(
                where, dotted, f"= {value!r} is not true or false.", f"write {dotted.split('.')[-1]} = true or false."
            )
        return value
    if kind == "name":
        if not isinstance(value, str) or not NAME_RE.fullmatch(value) or len(value) > 63:
            suggestion = sanitize_name(str(value))
            raise _fail(
                where,
                dotted,
                f"= {value!r} is not a valid compose project name.",
                f"use lowercase letters, digits, '-' and '_', starting with a letter or digit, e.g. {suggestion!r}.",
            )
        return value
    if kind in {"port", "container_port"}:
        low = 0 if kind == "port" else 1
        number: int | None = None
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        elif isinstance(value, str) and value.strip().isdigit():
            number = int(value.strip())
        if number is None:
            raise _fail(where, dotted, f"= {value!r} is not a port number.", f"use a whole number from {low} to 65535.")
        if not low <= number <= 65535:
            extra = " (0 lets Docker choose a free port)" if low == 0 else ""
            raise _fail(where, dotted, f"= {number} is out of range.", f"use a port from {low} to 65535{extra}.")
        return number
    if kind == "image":
        if not isinstance(value, str) or len(value) > 255 or not IMAGE_RE.fullmatch(value):
            raise _fail(
                where,
                dotted,
                f"= {value!r} is not a valid image reference.",
                "use [registry/]name[:tag][@digest] with a lowercase name, e.g. 'postgres:16-alpine'.",
            )
        return value
    if kind == "relpath":
        if not isinstance(value, str) or not value.strip():
            raise _fail(where, dotted, f"= {value!r} is not a path.", "use a path relative to the project root.")
        if Path(value).is_absolute() or ".." in Path(value).parts:
            raise _fail(
                where,
                dotted,
                f"= {value!r} leaves the project.",
                "use a path inside the project, relative to its root.",
            )
        return posixpath.normpath(value.replace("\\", "/"))
    if kind == "filename":
        if not isinstance(value, str) or not value or "/" in value or "\\" in value or value in {".", ".."}:
            raise _fail(where, dotted, f"= {value!r} is not a file name.", "give the file's name, e.g. '.env.example'.")
        return value
    if kind == "mode":
        if value not in {"container", "host"}:
            raise _fail(where, dotted, f"= {value!r} is not a server mode.", 'use "container" or "host".')
        return value
    if kind == "relpaths":
        if not isinstance(value, list):
            raise _fail(where, dotted, "must be a list of paths.", 'e.g. ["apps/server/package.json"].')
        return tuple(_convert("relpath", item, dotted, where) for item in value)
    if kind == "stage":
        if not isinstance(value, str) or not STAGE_RE.fullmatch(value):
            raise _fail(where, dotted, f"= {value!r} is not a build stage name.", "use the name after `FROM … AS`.")
        return value
    if kind == "keep":
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 100:
            raise _fail(
                where,
                dotted,
                f"= {value!r} is not a number of templates from 1 to 100.",
                "e.g. keep = 4 (the current migrations key's template and the last 3 others); 1 keeps no cache.",
            )
        return value
    if kind == "image_map":
        if not isinstance(value, dict):
            raise _fail(
                where, dotted, 'must be a table of "IMAGE" = "IMAGE".', '[images] "node:18-alpine" = "node:20".'
            )
        mapped: dict[str, str] = {}
        for source, target in value.items():
            for ref in (source, target):
                if not isinstance(ref, str) or not IMAGE_RE.fullmatch(ref):
                    raise _fail(
                        where,
                        f"{dotted}.{source}",
                        f"maps {source!r} to {target!r}: {ref!r} is not an image reference.",
                        'use [registry/]name[:tag] on both sides, e.g. "node:18-alpine" = "node:20-bookworm".',
                    )
            mapped[source] = target
        return mapped
    if kind == "services":  # [services.NAME] tables: checked by devenv.extras, with this file's lines
        return parse_services(value, where.of, lambda k, v, d: _convert(k, v, d, where))
    if kind == "urlpath_or_empty" and value == "":
        return ""
    if kind in {"urlpath", "urlpath_or_empty"}:
        if not isinstance(value, str) or not value.startswith("/") or any(c.isspace() for c in value):
            raise _fail(
                where, dotted, f"= {value!r} is not a URL path.", "use a path starting with '/', e.g. '/health'."
            )
        return value
    if kind == "build_secrets":
        if not isinstance(value, dict) or not all(isinstance(v, str) and v for v in value.values()):
            raise _fail(
                where,
                dotted,
                'must be a table of id = "FILE".',
                'e.g. [server.build_secrets] npm_ca = "/etc/ssl/ca.pem".',
            )
        for sid in value:
            if not SECRET_ID_RE.fullmatch(sid):
                raise _fail(
                    where, f"{dotted}.{sid}", "is not a valid secret id.", "use lowercase letters, digits, '_'."
                )
        return dict(value)
    if kind == "build_args":
        if not isinstance(value, dict):
            raise _fail(
                where, dotted, 'must be a table of NAME = "value".', 'e.g. [server.build_args] NODE_IMAGE = "node:20".'
            )
        args: dict[str, str] = {}
        for name, arg in value.items():
            if not BUILD_ARG_RE.fullmatch(name):
                raise _fail(
                    where, f"{dotted}.{name}", "is not a valid build argument name.", "use letters, digits and '_'."
                )
            if isinstance(arg, bool) or not isinstance(arg, str | int | float):
                raise _fail(where, f"{dotted}.{name}", f"= {arg!r} must be a string.", 'quote it: NAME = "value".')
            args[name] = str(arg)
        return args
    if kind == "mounts":
        if not isinstance(value, list):
            raise _fail(
                where,
                dotted,
                'must be a list of "SOURCE:TARGET[:ro]" strings.',
                'e.g. mounts = ["apps/server/src:/app/apps/server/src"].',
            )
        return tuple(_mount(item, dotted, where) for item in value)
    if kind in {"argv", "argv_or_empty"}:
        argv: list[str]
        if isinstance(value, str):
            argv = shlex.split(value)
        elif isinstance(value, list) and all(isinstance(a, str) for a in value):
            argv = list(value)
        else:
            raise _fail(
                where,
                dotted,
                f"= {value!r} is not a command.",
                'use a list of strings, e.g. ["npx", "prisma", "migrate", "deploy"].',
            )
        if not argv and kind == "argv":
            raise _fail(where, dotted, "is empty.", "give the command to run, as a list of strings.")
        return tuple(argv)
    raise AssertionError(f"unknown schema kind {kind}")  # pragma: no cover


def _mount(item: Any, dotted: str, where: _Where) -> Mount:
    parts = item.split(":") if isinstance(item, str) else []
    mode = "rw"
    if len(parts) == 3:
        mode = parts.pop()
    if len(parts) != 2 or mode not in {"ro", "rw"} or not parts[0] or not parts[1].startswith("/"):
        raise _fail(
            where,
            dotted,
            f"has {item!r}, not SOURCE:TARGET[:ro].",
            "SOURCE is relative to the project root, TARGET an absolute path in the container.",
        )
    source = _convert("relpath", parts[0], dotted, where)
    return Mount(source=source, target=parts[1], read_only=mode == "ro")


def _check_unknown(data: Mapping[str, Any], table: str, where: _Where) -> None:
    known = SCHEMA[table]
    for key, value in data.items():
        dotted = f"{table}.{key}" if table else key
        if key not in known:
            candidates = [f"{table}.{k}" if table else k for k in known]
            # The same key in another table first (`port` at the top level, `image` under [server]), then a typo.
            others = [f"{t}.{k}" if t else k for t, keys in SCHEMA.items() for k in keys if k == key]
            close = others[:1] or difflib.get_close_matches(dotted, candidates, n=1, cutoff=0.6)
            hint = f"did you mean {close[0]!r}?" if close else f"known keys here: {', '.join(sorted(candidates))}."
            raise ConfigError(f"{where.of(dotted)} is not a devenv.toml key.", hint + " See README, Configuration.")
        if known[key] == "table":
            if not isinstance(value, dict):
                raise _fail(where, dotted, "must be a table.", f"write it as a [{dotted}] section.")
            _check_unknown(value, dotted, where)


def _read_toml(path: Path) -> tuple[dict[str, Any], str]:
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as ex:
        raise ConfigError(
            f"{display_path(path)}: cannot read it: {ex.strerror or ex}.", "check its permissions."
        ) from ex
    except UnicodeDecodeError as ex:
        raise ConfigError(f"{display_path(path)}: not UTF-8 text ({ex.reason}).", "save it as UTF-8.") from ex
    try:
        return tomllib.loads(text), text
    except tomllib.TOMLDecodeError as ex:
        msg = str(ex)
        m = re.search(r"\(at line (\d+), column (\d+)\)", msg)
        where = f"{display_path(path)}:{m.group(1)}:{m.group(2)}" if m else display_path(path)
        reason = re.sub(r"\s*\(at (line \d+, column \d+|end of document)\)", "", msg)
        raise ConfigError(
            f"{where}: TOML syntax error: {reason}.",
            'fix the line (strings need quotes: image = "postgres:16-alpine"); see README, Configuration.',
        ) from ex


def env_overrides() -> dict[str, str]:
    """DEVENV_* variable -> the dotted devenv.toml key it overrides (from the catalogue env/variables.toml)."""
    from devenv.resources import load_toml

    # DEVENV_PROJECT_NAME is applied by devenv.project: the project keeps its own name too (see Project.state_dir).
    return {
        var: str(entry["key"])
        for var, entry in load_toml("env", "variables.toml").items()
        if "pattern" not in entry and entry["key"] not in {"name", "images"}
    }


def check_name_override(value: str, env_var: str) -> str:
    """Validate a compose project name given through an environment variable."""
    checked: str = _convert("name", value, "name", _Where(env_var=env_var))
    return checked


def _set(data: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = data
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value


def _kind_of(dotted: str) -> str:
    parts = dotted.split(".")
    return SCHEMA[".".join(parts[:-1])][parts[-1]]


def load_config(
    path: Path | None,
    environ: Mapping[str, str] | None = None,
    *,
    server_path: str = DEFAULT_SERVER_PATH,
    context: Callable[[str, str], str] | None = None,
) -> Config:
    """Read devenv.toml at PATH (None: defaults only), apply the DEVENV_* environment, validate everything.

    SERVER_PATH: the server folder discovery found (when devenv.toml does not say); CONTEXT(server path,
    dockerfile) -> the build context to use when devenv.toml does not say (default: the project root).
    """
    env = os.environ if environ is None else environ
    data: dict[str, Any] = {}
    file_where = _Where()
    if path is not None:
        data, text = _read_toml(path)
        file_where = _Where(file=path, text=text)
        _check_unknown(data, "", file_where)

    values: dict[tuple[str, str], tuple[Any, _Where]] = {}  # (table, key) -> raw value, origin
    for table, keys in SCHEMA.items():
        section: Any = data
        for part in table.split(".") if table else []:
            section = section.get(part, {}) if isinstance(section, dict) else {}
        for key, kind in keys.items():
            if kind != "table" and key in section:
                values[(table, key)] = (section[key], file_where)

    for var, dotted in env_overrides().items():
        raw = env.get(var, "")
        if raw:
            table, _, key = dotted.rpartition(".")
            values[(table, key)] = (raw, _Where(env_var=var))
    env_args = {
        var[len(BUILD_ARG_PREFIX) :]: value for var, value in env.items() if var.startswith(BUILD_ARG_PREFIX) and value
    }

    converted: dict[str, Any] = {}
    for (table, key), (raw, where) in values.items():
        dotted = f"{table}.{key}" if table else key
        _set(converted, dotted, _convert(_kind_of(dotted), raw, dotted, where))
    build_args = dict(converted.get("server", {}).get("build_args", {}))
    for name, value in sorted(env_args.items()):
        var = BUILD_ARG_PREFIX + name
        if not BUILD_ARG_RE.fullmatch(name):
            raise ConfigError(f"{var}: {name!r} is not a valid build argument name.", "use letters, digits and '_'.")
        build_args[name] = value

    build_secrets = dict(converted.get("server", {}).get("build_secrets", {}))
    for var, value in sorted(env.items()):
        if var.startswith(BUILD_SECRET_PREFIX) and value:
            sid = var[len(BUILD_SECRET_PREFIX) :].lower()
            if not SECRET_ID_RE.fullmatch(sid):
                raise ConfigError(f"{var}: {sid!r} is not a valid build secret id.", "use letters, digits and '_'.")
            build_secrets[sid] = value

    images = dict(converted.get("images", {}))
    raw_map = env.get(IMAGE_MAP_VAR, "")
    if raw_map:
        for item in (part.strip() for part in raw_map.split(",")):
            source, sep, target = item.partition("=")
            if not sep or not IMAGE_RE.fullmatch(source.strip()) or not IMAGE_RE.fullmatch(target.strip()):
                raise ConfigError(
                    f"{IMAGE_MAP_VAR}: {item!r} is not IMAGE=IMAGE.",
                    f"e.g. {IMAGE_MAP_VAR}=node:18-alpine=node:20-bookworm,postgres:15=postgres:16 (comma-separated).",
                )
            images[source.strip()] = target.strip()

    srv = converted.get("server", {})
    spath = srv.get("path", server_path)
    dockerfile = srv.get("dockerfile", posixpath.normpath(f"{spath}/Dockerfile"))
    server = ServerConfig(
        path=spath,
        dockerfile=dockerfile,
        context=srv.get("context", context(spath, dockerfile) if context else "."),
        build_args=dict(sorted(build_args.items())),
        build_secrets=dict(sorted(build_secrets.items())),
        watch=WatchConfig(**srv.get("watch", {})),
        **{
            k: v
            for k, v in srv.items()
            if k not in {"path", "dockerfile", "context", "build_args", "build_secrets", "watch"}
        },
    )
    migrate = converted.get("migrate", {})
    config = Config(
        name=converted.get("name"),
        bind_address=converted.get("bind_address", "127.0.0.1"),
        postgres=PostgresConfig(**converted.get("postgres", {})),
        redis=RedisConfig(**converted.get("redis", {})),
        server=server,
        migrate=MigrateConfig(**migrate),
        reset=ResetConfig(**converted.get("reset", {})),
        db=DbConfig(**converted.get("db", {})),
        images=images,
        services=converted.get("services", ()),
        source=path,
        pinned=frozenset(f"{t}.{k}" if t else k for t, k in values) | frozenset(f"images.{i}" for i in images),
        origins={f"{t}.{k}" if t else k: where for (t, k), (_, where) in values.items()},
    )
    _check_port_clash(config, values)
    return config


def _check_port_clash(config: Config, values: Mapping[tuple[str, str], tuple[Any, _Where]]) -> None:
    """Two services cannot publish on one host port (0, chosen by Docker, never clashes)."""
    claims = [("postgres", config.postgres.port), ("redis", config.redis.port), ("server", config.server.port)]
    claims += [(extra.name, p.host) for extra in config.services for p in extra.ports]
    extras = {extra.name for extra in config.services}
    seen: dict[int, str] = {}
    for service, port in claims:
        if port == 0:
            continue
        if port in seen:
            other = seen[port]

            def origin(svc: str) -> str:
                if svc in extras:
                    return values[("", "services")][1].of(f"services.{svc}.ports")
                where = values.get((svc, "port"), (None, _Where()))[1]
                return where.of(f"{svc}.port")

            setting = (
                f"services.{service}.ports in devenv.toml"
                if service in extras
                else f"{service}.port in devenv.toml or DEVENV_{service.upper()}_PORT"
            )
            raise ConfigError(
                f"{origin(other)} and {origin(service)} both publish host port {port}.",
                f"give {service} another port ({setting}), or 0 to let Docker choose.",
            )
        seen[port] = service
