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
from dataclasses import Field, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

from devenv.core.errors import ConfigError
from devenv.project.extras import ExtraService, parse_services

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T")
_D = TypeVar("_D", bound="DataclassInstance")

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


# Each devenv.toml key is a dataclass field whose metadata names its kind: what _CHECKS checks the value against and
# turns it into. A "table" field nests (its default factory is the table's dataclass); a field without a kind is no
# key. SCHEMA, the unknown-key check and load_config all read these fields.
_KIND = "devenv.kind"
_TABLE = {_KIND: "table"}


def _key(kind: str, default: T) -> T:
    """A devenv.toml key of KIND (a _CHECKS entry) with an immutable DEFAULT (a dict's is a field's default_factory)."""
    return field(default=default, metadata={_KIND: kind})


@dataclass(frozen=True)
class PostgresConfig:
    """[postgres]: image and host port (0 = Docker chooses a free one)."""

    image: str = _key("image", DEFAULT_POSTGRES_IMAGE)
    port: int = _key("port", 5432)


@dataclass(frozen=True)
class RedisConfig:
    """[redis]: image and host port (0 = Docker chooses a free one)."""

    image: str = _key("image", DEFAULT_REDIS_IMAGE)
    port: int = _key("port", 6379)
    enabled: bool | None = _key("bool", None)  # None: when the template or the server's dependencies use Redis


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

    sync: tuple[Mount, ...] | None = _key("mounts", None)  # SOURCE:TARGET synced into the container, then a restart
    rebuild: tuple[str, ...] | None = _key("relpaths", None)  # paths whose change rebuilds the image
    migrate: tuple[str, ...] | None = _key("relpaths", None)  # paths whose change rebuilds and re-runs the migrate job


@dataclass(frozen=True)
class ServerConfig:
    """[server]: where the app lives, how its image is built, its ports and health endpoints."""

    path: str = _key("relpath", DEFAULT_SERVER_PATH)  # relative to the project root
    dockerfile: str = _key("relpath", f"{DEFAULT_SERVER_PATH}/Dockerfile")  # relative to the project root
    context: str = _key("relpath", ".")  # relative to the project root
    build_args: dict[str, str] = field(default_factory=dict, metadata={_KIND: "build_args"})
    # secret id -> file (BuildKit --secret)
    build_secrets: dict[str, str] = field(default_factory=dict, metadata={_KIND: "build_secrets"})
    port: int = _key("port", 3000)  # host port; 0 = Docker chooses
    container_port: int = _key("container_port", 3000)
    health_path: str = _key("urlpath", "/health")
    ready_path: str = _key("urlpath", "/health/ready")
    status_path: str = _key("urlpath_or_empty", "/health/status")  # "" = no detailed status
    mounts: tuple[Mount, ...] = _key("mounts", ())
    template: str | None = _key("filename", None)  # the env template's file name in server.path (None: found by name)
    command: tuple[str, ...] = _key("argv_or_empty", ())  # the server container's command (empty: the image's CMD)
    target: str | None = _key("stage", None)  # the Dockerfile stage to build (None: the last one)
    mode: str | None = _key("mode", None)  # container | host (None: container when there is a Dockerfile, else host)
    dev_command: tuple[str, ...] = _key("argv_or_empty", ())  # `devenv dev` (empty: the package.json dev script)
    dev_dockerfile: str | None = _key("relpath", None)  # the image `devenv watch` builds (None: server.dockerfile)
    watch: WatchConfig = field(default_factory=WatchConfig, metadata=_TABLE)


@dataclass(frozen=True)
class MigrateConfig:
    """[migrate]: commands run in the server image (an empty seed_command disables seeding)."""

    command: tuple[str, ...] = _key("argv", ("npx", "prisma", "migrate", "deploy"))
    # None: `npx prisma db seed` when the project configures a seed
    seed_command: tuple[str, ...] | None = _key("argv_or_empty", None)
    status_command: tuple[str, ...] = _key("argv", ("npx", "prisma", "migrate", "status"))


@dataclass(frozen=True)
class ResetConfig:
    """[reset]: whether a copy of the template is kept ready, so a soft reset only renames it into place; how many
    migrations keys' templates are kept (the current one and the cache, see devenv.db.template_cache)."""

    spare: bool = _key("bool", True)
    keep: int = _key("keep", 4)


@dataclass(frozen=True)
class DbConfig:
    """[db]: a database per git branch (the app database is parked and swapped by rename when the branch changes)."""

    per_branch: bool = _key("bool", False)


@dataclass(frozen=True)
class Config:
    """devenv.toml merged with the DEVENV_* environment; `source` is the file it came from (None: defaults)."""

    name: str | None = _key("name", None)
    # where host ports are published; anything else only when asked for explicitly
    bind_address: str = _key("address", "127.0.0.1")
    postgres: PostgresConfig = field(default_factory=PostgresConfig, metadata=_TABLE)
    redis: RedisConfig = field(default_factory=RedisConfig, metadata=_TABLE)
    server: ServerConfig = field(default_factory=ServerConfig, metadata=_TABLE)
    migrate: MigrateConfig = field(default_factory=MigrateConfig, metadata=_TABLE)
    reset: ResetConfig = field(default_factory=ResetConfig, metadata=_TABLE)
    db: DbConfig = field(default_factory=DbConfig, metadata=_TABLE)
    # image reference -> the one used instead ([images])
    images: dict[str, str] = field(default_factory=dict, metadata={_KIND: "image_map"})
    # [services.NAME]: workers and extra services (devenv.project.extras)
    services: tuple[ExtraService, ...] = _key("services", ())
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


def _schema(cls: type[DataclassInstance], table: str = "") -> dict[str, dict[str, str]]:
    """table -> key -> kind for CLS and the tables below it, each table before the ones it holds."""
    keys = fields(cls)
    schema = {table: {f.name: f.metadata[_KIND] for f in keys if _KIND in f.metadata}}
    for f in keys:
        if f.metadata.get(_KIND) == "table":
            schema |= _schema(_table_class(f), _dotted(table, f.name))
    return schema


def _table_class(table: Field[Any]) -> type[DataclassInstance]:
    """The dataclass of a "table" field (its default factory)."""
    return cast("type[DataclassInstance]", table.default_factory)


def _dotted(table: str, key: str) -> str:
    return f"{table}.{key}" if table else key


# The schema: table -> key -> kind ("" is the top level), from the fields above.
SCHEMA: dict[str, dict[str, str]] = _schema(Config)


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


def _address(value: Any, dotted: str, where: _Where) -> str:
    import ipaddress

    try:
        return str(ipaddress.IPv4Address(str(value)))
    except ValueError:
        raise _fail(
            where, dotted, f"= {value!r} is not an IPv4 address.", "use 127.0.0.1 (default) or 0.0.0.0."
        ) from None


def _bool(value: Any, dotted: str, where: _Where) -> bool:
    if isinstance(value, str) and where.env_var:  # DEVENV_DB_PER_BRANCH=true: a variable is text
        value = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}.get(
            value.strip().lower(), value
        )
    if not isinstance(value, bool):
        raise _fail(
            where, dotted, f"= {value!r} is not true or false.", f"write {dotted.split('.')[-1]} = true or false."
        )
    return value


def _name(value: Any, dotted: str, where: _Where) -> str:
    if not isinstance(value, str) or not NAME_RE.fullmatch(value) or len(value) > 63:
        suggestion = sanitize_name(str(value))
        raise _fail(
            where,
            dotted,
            f"= {value!r} is not a valid compose project name.",
            f"use lowercase letters, digits, '-' and '_', starting with a letter or digit, e.g. {suggestion!r}.",
        )
    return value


def _port(value: Any, dotted: str, where: _Where, low: int) -> int:
    """A port from LOW (0: Docker chooses, for a host port; 1 for a container's) to 65535."""
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


def _image(value: Any, dotted: str, where: _Where) -> str:
    if not isinstance(value, str) or len(value) > 255 or not IMAGE_RE.fullmatch(value):
        raise _fail(
            where,
            dotted,
            f"= {value!r} is not a valid image reference.",
            "use [registry/]name[:tag][@digest] with a lowercase name, e.g. 'postgres:16-alpine'.",
        )
    return value


def _relpath(value: Any, dotted: str, where: _Where) -> str:
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


def _relpaths(value: Any, dotted: str, where: _Where) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise _fail(where, dotted, "must be a list of paths.", 'e.g. ["apps/server/package.json"].')
    return tuple(_relpath(item, dotted, where) for item in value)


def _filename(value: Any, dotted: str, where: _Where) -> str:
    if not isinstance(value, str) or not value or "/" in value or "\\" in value or value in {".", ".."}:
        raise _fail(where, dotted, f"= {value!r} is not a file name.", "give the file's name, e.g. '.env.example'.")
    return value


def _mode(value: Any, dotted: str, where: _Where) -> str:
    if not isinstance(value, str) or value not in {"container", "host"}:
        raise _fail(where, dotted, f"= {value!r} is not a server mode.", 'use "container" or "host".')
    return str(value)


def _stage(value: Any, dotted: str, where: _Where) -> str:
    if not isinstance(value, str) or not STAGE_RE.fullmatch(value):
        raise _fail(where, dotted, f"= {value!r} is not a build stage name.", "use the name after `FROM … AS`.")
    return value


def _keep(value: Any, dotted: str, where: _Where) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 100:
        raise _fail(
            where,
            dotted,
            f"= {value!r} is not a number of templates from 1 to 100.",
            "e.g. keep = 4 (the current migrations key's template and the last 3 others); 1 keeps no cache.",
        )
    return value


def _image_map(value: Any, dotted: str, where: _Where) -> dict[str, str]:
    if not isinstance(value, dict):
        raise _fail(where, dotted, 'must be a table of "IMAGE" = "IMAGE".', '[images] "node:18-alpine" = "node:20".')
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


def _services(value: Any, dotted: str, where: _Where) -> tuple[ExtraService, ...]:
    """[services.NAME] tables: checked by devenv.project.extras, with this file's lines."""
    return parse_services(value, where.of, lambda k, v, d: _convert(k, v, d, where))


def _urlpath(value: Any, dotted: str, where: _Where) -> str:
    if not isinstance(value, str) or not value.startswith("/") or any(c.isspace() for c in value):
        raise _fail(where, dotted, f"= {value!r} is not a URL path.", "use a path starting with '/', e.g. '/health'.")
    return value


def _build_secrets(value: Any, dotted: str, where: _Where) -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(v, str) and v for v in value.values()):
        raise _fail(
            where,
            dotted,
            'must be a table of id = "FILE".',
            'e.g. [server.build_secrets] npm_ca = "/etc/ssl/ca.pem".',
        )
    for sid in value:
        if not SECRET_ID_RE.fullmatch(sid):
            raise _fail(where, f"{dotted}.{sid}", "is not a valid secret id.", "use lowercase letters, digits, '_'.")
    return dict(value)


def _build_args(value: Any, dotted: str, where: _Where) -> dict[str, str]:
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


def _mounts(value: Any, dotted: str, where: _Where) -> tuple[Mount, ...]:
    if not isinstance(value, list):
        raise _fail(
            where,
            dotted,
            'must be a list of "SOURCE:TARGET[:ro]" strings.',
            'e.g. mounts = ["apps/server/src:/app/apps/server/src"].',
        )
    return tuple(_mount(item, dotted, where) for item in value)


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
    return Mount(source=_relpath(parts[0], dotted, where), target=parts[1], read_only=mode == "ro")


def _argv(value: Any, dotted: str, where: _Where, *, may_be_empty: bool) -> tuple[str, ...]:
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
    if not argv and not may_be_empty:
        raise _fail(where, dotted, "is empty.", "give the command to run, as a list of strings.")
    return tuple(argv)


_Check = Callable[[Any, str, _Where], Any]  # (raw value, dotted key, where it came from) -> the dataclass' value

# kind -> its check. devenv.project.extras checks its keys with these kinds too (through _convert).
_CHECKS: dict[str, _Check] = {
    "address": _address,
    "bool": _bool,
    "name": _name,
    "port": lambda value, dotted, where: _port(value, dotted, where, low=0),
    "container_port": lambda value, dotted, where: _port(value, dotted, where, low=1),
    "image": _image,
    "relpath": _relpath,
    "relpaths": _relpaths,
    "filename": _filename,
    "mode": _mode,
    "stage": _stage,
    "keep": _keep,
    "image_map": _image_map,
    "services": _services,
    "urlpath": _urlpath,
    "urlpath_or_empty": lambda value, dotted, where: "" if value == "" else _urlpath(value, dotted, where),
    "build_secrets": _build_secrets,
    "build_args": _build_args,
    "mounts": _mounts,
    "argv": lambda value, dotted, where: _argv(value, dotted, where, may_be_empty=False),
    "argv_or_empty": lambda value, dotted, where: _argv(value, dotted, where, may_be_empty=True),
}


def _convert(kind: str, value: Any, dotted: str, where: _Where) -> Any:
    """Check one value against its kind and return it in the dataclass' type."""
    return _CHECKS[kind](value, dotted, where)


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
            raise ConfigError(
                f"{where.of(dotted)} is not a devenv.toml key.", hint + " See docs/configuration.md in devenv."
            )
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
            'fix the line (strings need quotes: image = "postgres:16-alpine"); see docs/configuration.md in devenv.',
        ) from ex


def env_overrides() -> dict[str, str]:
    """DEVENV_* variable -> the dotted devenv.toml key it overrides (from the catalogue env/variables.toml)."""
    from devenv.core.resources import load_toml

    # DEVENV_PROJECT_NAME is applied by devenv.project.discovery: the project keeps its own name too (see
    # Project.state_dir).
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


_Values = dict[tuple[str, str], tuple[Any, _Where]]  # (table, key) -> the raw value and where it came from


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
    data, file_where = _read_file(path)
    values = _file_values(data, file_where) | _env_values(env)
    converted: dict[str, Any] = {}
    for (table, key), (raw, where) in values.items():
        dotted = _dotted(table, key)
        _set(converted, dotted, _convert(_kind_of(dotted), raw, dotted, where))
    server = converted.get("server", {})
    build_args, build_secrets = _env_build_args(server, env), _env_build_secrets(server, env)
    images = _env_images(converted, env)
    config = _instance(
        Config,
        converted,
        server=_server(server, build_args, build_secrets, server_path, context),
        images=images,
        source=path,
        pinned=frozenset(_dotted(t, k) for t, k in values) | frozenset(f"images.{i}" for i in images),
        origins={_dotted(t, k): where for (t, k), (_, where) in values.items()},
    )
    _check_port_clash(config, values)
    return config


def _read_file(path: Path | None) -> tuple[dict[str, Any], _Where]:
    """devenv.toml's tables, checked for unknown keys, and where its values come from (no file: none)."""
    if path is None:
        return {}, _Where()
    data, text = _read_toml(path)
    where = _Where(file=path, text=text)
    _check_unknown(data, "", where)
    return data, where


def _file_values(data: Mapping[str, Any], where: _Where) -> _Values:
    values: _Values = {}
    for table, keys in SCHEMA.items():
        section: Any = data
        for part in table.split(".") if table else []:
            section = section.get(part, {}) if isinstance(section, dict) else {}
        for key, kind in keys.items():
            if kind != "table" and key in section:
                values[(table, key)] = (section[key], where)
    return values


def _env_values(env: Mapping[str, str]) -> _Values:
    """The DEVENV_* variables that are set, as values of the keys they override."""
    values: _Values = {}
    for var, dotted in env_overrides().items():
        raw = env.get(var, "")
        if raw:
            table, _, key = dotted.rpartition(".")
            values[(table, key)] = (raw, _Where(env_var=var))
    return values


def _env_build_args(server: Mapping[str, Any], env: Mapping[str, str]) -> dict[str, str]:
    """[server.build_args] with the DEVENV_BUILD_ARG_NAME variables over them."""
    args = dict(server.get("build_args", {}))
    given = {
        var[len(BUILD_ARG_PREFIX) :]: value for var, value in env.items() if var.startswith(BUILD_ARG_PREFIX) and value
    }
    for name, value in sorted(given.items()):
        if not BUILD_ARG_RE.fullmatch(name):
            var = BUILD_ARG_PREFIX + name
            raise ConfigError(f"{var}: {name!r} is not a valid build argument name.", "use letters, digits and '_'.")
        args[name] = value
    return args


def _env_build_secrets(server: Mapping[str, Any], env: Mapping[str, str]) -> dict[str, str]:
    """[server.build_secrets] with the DEVENV_BUILD_SECRET_ID variables over them."""
    secrets = dict(server.get("build_secrets", {}))
    for var, value in sorted(env.items()):
        if var.startswith(BUILD_SECRET_PREFIX) and value:
            sid = var[len(BUILD_SECRET_PREFIX) :].lower()
            if not SECRET_ID_RE.fullmatch(sid):
                raise ConfigError(f"{var}: {sid!r} is not a valid build secret id.", "use letters, digits and '_'.")
            secrets[sid] = value
    return secrets


def _env_images(converted: Mapping[str, Any], env: Mapping[str, str]) -> dict[str, str]:
    """[images] with DEVENV_IMAGE_MAP's IMAGE=IMAGE pairs over them."""
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
    return images


def _server(
    server: Mapping[str, Any],
    build_args: Mapping[str, str],
    build_secrets: Mapping[str, str],
    server_path: str,
    context: Callable[[str, str], str] | None,
) -> ServerConfig:
    """[server], with what the file leaves out found from the server's folder (its Dockerfile, the build context)."""
    path = server.get("path", server_path)
    dockerfile = server.get("dockerfile", posixpath.normpath(f"{path}/Dockerfile"))
    return _instance(
        ServerConfig,
        server,
        path=path,
        dockerfile=dockerfile,
        context=server.get("context", context(path, dockerfile) if context else "."),
        build_args=dict(sorted(build_args.items())),
        build_secrets=dict(sorted(build_secrets.items())),
    )


def _instance(cls: type[_D], values: Mapping[str, Any], **given: Any) -> _D:
    """CLS from its checked VALUES (its tables' dataclasses too) and GIVEN; what neither has keeps its default."""
    kwargs: dict[str, Any] = {}
    for f in fields(cls):
        if f.name in given:
            kwargs[f.name] = given[f.name]
        elif f.metadata.get(_KIND) == "table":
            kwargs[f.name] = _instance(_table_class(f), values.get(f.name, {}))
        elif f.name in values:
            kwargs[f.name] = values[f.name]
    return cls(**kwargs)


def _check_port_clash(config: Config, values: _Values) -> None:
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
