"""The stack's settings: the one merge of template, .env and the environment, and the one builder of each URL.

Precedence: the real environment > .env > the template > devenv's defaults, for the credential keys
(POSTGRES_USER, POSTGRES_PASSWORD, POSTGRES_DB, REDIS_PASSWORD, REDIS_DB), everywhere devenv uses them: in the
containers, the probes, the URLs it writes and the ones it prints. Nothing here reads a file: the caller hands in
the parsed sources (devenv.project.envfile), so a command parses each dotenv file once.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import quote, unquote, urlsplit

from devenv.core.errors import ConfigError

POSTGRES_PORT = 5432  # the port each service listens on inside the stack's network
REDIS_PORT = 6379
CREDENTIAL_KEYS = ("POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB", "REDIS_PASSWORD", "REDIS_DB")
SECRET_BYTES = 32
# What a template's author writes instead of a secret: "", "changeme" / "change_me_to_something" / "change me",
# "your-super-secret-key" / "your_api_key", "<token>", "xxx…", and values naming what they stand for ("secret",
# "supersecret", "mysecretpassword", "password123", "example-key", "placeholder", "replace-me", "todo").
_PLACEHOLDER_RE = re.compile(
    r"^(?:|<[^<>]*>|[x*]{3,}|your[-_ ].*|.*change[-_ ]?me.*|.*(?:secret|password|passwd|example|placeholder|"
    r"replace[-_ ]?me|todo|dummy|sample).*)$",
    re.IGNORECASE,
)


def stack_catalogue() -> dict[str, dict[str, object]]:
    """The stack keys devenv manages in .env (env/stack.toml), in order, with their defaults."""
    from devenv.core.resources import load_toml

    return load_toml("env", "stack.toml")


def is_secret_key(key: str) -> bool:
    """`*SECRET*`, `*_KEY`, `*PASSWORD*`, `*TOKEN*` (case-insensitive)."""
    upper = key.upper()
    return "SECRET" in upper or upper.endswith("_KEY") or "PASSWORD" in upper or "TOKEN" in upper


def is_placeholder(value: str | None) -> bool:
    """A value that stands in for a secret (see _PLACEHOLDER_RE and docs/environment.md): devenv generates one."""
    return bool(_PLACEHOLDER_RE.match((value or "").strip()))


def url_parts(values: Mapping[str, str]) -> dict[str, str]:
    """The credentials a template's DATABASE_URL / REDIS_URL carry, as the stack keys they stand for.

    A template that has only `DATABASE_URL=postgresql://postgres:pw@localhost:5432/shop` means user postgres and
    database shop; devenv's stack then uses them.
    """
    out: dict[str, str] = {}
    db = urlsplit(values.get("DATABASE_URL", ""))
    if db.scheme.startswith("postgres"):
        if db.username:
            out["POSTGRES_USER"] = unquote(db.username)
        if db.password:
            out["POSTGRES_PASSWORD"] = unquote(db.password)
        if db.path.strip("/"):
            out["POSTGRES_DB"] = unquote(db.path.strip("/"))
    rd = urlsplit(values.get("REDIS_URL", ""))
    if rd.scheme in {"redis", "rediss"}:
        if rd.password:
            out["REDIS_PASSWORD"] = unquote(rd.password)
        if rd.path.strip("/").isdigit():
            out["REDIS_DB"] = rd.path.strip("/")
    return out


def new_secret() -> str:
    """A fresh random secret: 32 bytes from `secrets`, URL-safe (43 characters, no quoting needed anywhere)."""
    return secrets.token_urlsafe(SECRET_BYTES)


class Source(Protocol):
    """A parsed dotenv file as the merge sees it (devenv.project.envfile.DotenvFile)."""

    def values(self) -> dict[str, str]: ...
    def where(self, key: str) -> str: ...


@dataclass(frozen=True)
class Settings:
    """What the stack is configured with; the URL builders every part of devenv uses."""

    pg_user: str
    pg_password: str
    pg_db: str
    redis_password: str  # "" = no auth
    redis_db: int
    database_query: str = ""  # the query of the app's DATABASE_URL, e.g. "schema=public" (Prisma)
    values: Mapping[str, str] = field(default_factory=dict)  # every key of .env (over the template), for ${VAR}

    def database_url(self, host: str, port: int, *, query: bool = True, masked: bool = False) -> str:
        """postgresql:// URL for HOST:PORT, credentials percent-encoded (password *** when MASKED).

        The app's query (Prisma's `?schema=public`) is kept unless QUERY is False: libpq/psycopg reject it.
        """
        secret = "***" if masked else quote(self.pg_password, safe="")
        tail = f"?{self.database_query}" if self.database_query and query else ""
        return f"postgresql://{quote(self.pg_user, safe='')}:{secret}@{host}:{port}/{quote(self.pg_db, safe='')}{tail}"

    def redis_url(self, host: str, port: int, *, masked: bool = False) -> str:
        """redis:// URL for HOST:PORT on the app's db index, password percent-encoded (*** when MASKED).

        The user is `default` rather than empty: redis-cli 7.0 sends AUTH "" <password> for redis://:pw@ URLs and
        is refused, while every client (ioredis, node-redis, redis-py) and Redis >= 6 take `default`.
        """
        auth = ""
        if self.redis_password:
            auth = "default:***@" if masked else f"default:{quote(self.redis_password, safe='')}@"
        return f"redis://{auth}{host}:{port}/{self.redis_db}"


def _redis_db(raw: str, where: str) -> int:
    text = raw.strip() or "0"
    if not text.isdigit():
        raise ConfigError(f"{where}: REDIS_DB={raw!r} is not a database index.", "use a whole number such as 0.")
    return int(text)


def merge(
    sources: Sequence[Source | None],
    environ: Mapping[str, str],
    *,
    env_exists: bool,
    database_url: str | None = None,
) -> Settings:
    """Fold SOURCES (template, then .env; None = absent) and ENVIRON into Settings; later ones win.

    ENV_EXISTS: whether .env exists (a template placeholder is not a password until .env chose one).
    DATABASE_URL: the app's own URL as written (its query is kept in the URLs devenv builds).
    """
    defaults = {key: str(entry["default"]) for key, entry in stack_catalogue().items() if "default" in entry}
    values: dict[str, str] = {}
    origin: dict[str, str] = {}
    for source in sources:
        if source is None:
            continue
        for key, value in source.values().items():
            values[key] = value
            origin[key] = source.where(key)
    for key, value in url_parts(values).items():  # a URL's credentials stand in for keys the files lack
        if key not in values:
            values[key], origin[key] = value, "DATABASE_URL" if key.startswith("POSTGRES") else "REDIS_URL"
    for key in CREDENTIAL_KEYS:
        if environ.get(key):
            values[key], origin[key] = environ[key], f"environment variable {key}"

    def get(key: str) -> str:
        value = values.get(key, "")
        if key in {"POSTGRES_PASSWORD", "REDIS_PASSWORD"} and not env_exists and is_placeholder(value):
            return ""  # a template placeholder is not a password
        return value or defaults.get(key, "")

    return Settings(
        pg_user=get("POSTGRES_USER"),
        pg_password=get("POSTGRES_PASSWORD"),
        pg_db=get("POSTGRES_DB"),
        redis_password=get("REDIS_PASSWORD"),
        redis_db=_redis_db(get("REDIS_DB"), origin.get("REDIS_DB", "REDIS_DB")),
        database_query=urlsplit(database_url or "").query,
        values=dict(values),
    )


def masked(value: str) -> str:
    """VALUE with the password of a URL in it replaced by *** (for messages and listings)."""
    parts = urlsplit(value)
    if not parts.scheme or parts.password is None:
        return value
    user = f"{parts.username}:" if parts.username else ":"
    host = parts.netloc.rsplit("@", 1)[-1]
    return parts._replace(netloc=f"{user}***@{host}").geturl()
