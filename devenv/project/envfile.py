"""`.env` from the server's template: parse with python-dotenv, complete what is missing, report drift.

Rules: an existing value in .env is never changed; missing keys are added with the template's line and comment;
secret-like keys whose template value is empty or a placeholder get a fresh secret; the stack keys (env/stack.toml)
point host tools at 127.0.0.1 and the published ports. The files are read with python-dotenv's parser only (never
loaded into os.environ), each once per command (`read_env_files`); devenv.project.settings merges them with the
environment.
"""

from __future__ import annotations

import functools
import io
import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from devenv.core.errors import ConfigError
from devenv.engine.target import is_loopback
from devenv.project.config import display_path
from devenv.project.discovery import Project
from devenv.project.settings import (
    CREDENTIAL_KEYS,
    POSTGRES_PORT,
    REDIS_PORT,
    Settings,
    is_placeholder,
    is_secret_key,
    masked,
    merge,
    new_secret,
    stack_catalogue,
    url_parts,
)

URL_KEYS = ("DATABASE_URL", "REDIS_URL")

KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
SAFE_VALUE_RE = re.compile(r"[A-Za-z0-9_./:@%?=&+,-]*")
_ASSIGNMENT_RE = re.compile(r"^\s*(?:export\s+)?[A-Za-z_][A-Za-z0-9_]*\s*=", re.MULTILINE)
_OPENING_QUOTE_RE = re.compile(r"^\s*(?:export\s+)?[^=\s]+\s*=\s*([\"'])")


# -- parsing -------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Entry:
    """One statement of a dotenv file: a binding, or a comment / blank line (key None)."""

    key: str | None
    value: str | None  # unquoted, not interpolated
    text: str  # the statement as written (no leading blank lines; may span lines)
    line: int  # line number of its first line
    blank_before: int = 0  # blank lines before it (python-dotenv attaches them to the next statement)


@dataclass(frozen=True)
class DotenvFile:
    """A parsed dotenv file: its statements in order and the text they came from."""

    path: Path
    text: str
    entries: tuple[Entry, ...]

    @property
    def bindings(self) -> dict[str, Entry]:
        """KEY -> its entry, in file order."""
        return {e.key: e for e in self.entries if e.key is not None}

    def values(self) -> dict[str, str]:
        """KEY -> value as python-dotenv reads it (quotes removed, ${VAR} interpolated)."""
        return dict(self._values)

    @functools.cached_property
    def _values(self) -> dict[str, str]:
        from dotenv import dotenv_values

        return {k: v or "" for k, v in dotenv_values(stream=io.StringIO(self.text), interpolate=True).items()}

    def where(self, key: str) -> str:
        """file:line of KEY."""
        return f"{display_path(self.path)}:{self.bindings[key].line}"


def read_text(path: Path, what: str) -> str:
    """The text of dotenv file PATH (UTF-8, BOM and CR line ends accepted); a ConfigError naming it otherwise."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError as ex:
        raise ConfigError(f"{display_path(path)}: {what} not found.", "check server.path in devenv.toml.") from ex
    except OSError as ex:
        raise ConfigError(
            f"{display_path(path)}: cannot read the {what}: {ex.strerror or ex}.",
            f"make it a readable file (chmod 600 {display_path(path)}), or delete it and run `devenv env`.",
        ) from ex
    try:
        text = raw.decode("utf-8-sig")  # a UTF-8 BOM is fine
    except UnicodeDecodeError as ex:
        raise ConfigError(
            f"{display_path(path)}: the {what} is not UTF-8 text (byte {ex.start}: {ex.reason}).",
            "save it as UTF-8.",
        ) from ex
    return text.replace("\r\n", "\n").replace("\r", "\n")  # CRLF and old-Mac endings


def parse_dotenv(path: Path, text: str) -> DotenvFile:
    """Parse dotenv TEXT with python-dotenv's parser; any malformed statement is a ConfigError naming file:line."""
    from dotenv.parser import parse_stream

    where = display_path(path)
    entries: list[Entry] = []
    seen: dict[str, int] = {}
    for binding in parse_stream(io.StringIO(text)):
        original = binding.original.string
        lead = re.match(r"(?:[ \t]*\n)*", original)
        leading = lead.group(0) if lead else ""
        body = original[len(leading) :]
        line = binding.original.line + leading.count("\n")
        first = body.split("\n", 1)[0].strip()
        if binding.error:
            quote_match = _OPENING_QUOTE_RE.match(body)
            if quote_match:
                raise ConfigError(
                    f"{where}:{line}: unterminated {quote_match.group(1)} quote in `{first[:60]}`.",
                    f"close the quote on the same line, e.g. KEY={quote_match.group(1)}value{quote_match.group(1)}.",
                )
            raise ConfigError(
                f"{where}:{line}: cannot parse `{first[:60]}`.",
                "each line is KEY=value, `export KEY=value` or a # comment; quote values that contain spaces.",
            )
        key = binding.key
        if key is None:
            entries.append(Entry(None, None, body, line, leading.count("\n")))
            continue
        if not KEY_RE.fullmatch(key):
            raise ConfigError(
                f"{where}:{line}: {key!r} is not a valid variable name.",
                "use letters, digits and '_', not starting with a digit (e.g. DATABASE_URL).",
            )
        if binding.value is None:
            raise ConfigError(f"{where}:{line}: {key} has no '='.", f"write {key}= (empty) or {key}=value.")
        if key in seen:
            raise ConfigError(
                f"{where}:{line}: {key} is defined twice (first on line {seen[key]}).", "keep one of the two lines."
            )
        quote_match = _OPENING_QUOTE_RE.match(body)
        if quote_match and "\n" in body.rstrip("\n"):
            swallowed = _ASSIGNMENT_RE.search(body.split("\n", 1)[1])
            if swallowed:
                inner = swallowed.group(0).strip().removeprefix("export").strip().rstrip("=").strip()
                end = line + body.rstrip("\n").count("\n")
                raise ConfigError(
                    f"{where}:{line}: unterminated {quote_match.group(1)} quote: the value of {key} runs to line "
                    f"{end} and swallows {inner}.",
                    f"close the quote on line {line}.",
                )
        seen[key] = line
        entries.append(Entry(key, binding.value, body, line, leading.count("\n")))
    return DotenvFile(path=path, text=text, entries=tuple(entries))


def read_template(project: Project) -> DotenvFile:
    """The project's .env.template, parsed and checked."""
    path = project.env_template
    if not path.is_file() and not path.exists():
        raise ConfigError(
            f"{display_path(path)}: the template is missing.",
            f"create {path.name} in {display_path(project.server_dir)} (one KEY=value per line), "
            "or point server.path in devenv.toml at the folder that has it.",
        )
    return parse_dotenv(path, read_text(path, "template"))


def read_env_file(project: Project) -> DotenvFile | None:
    """The project's .env, parsed and checked; None when it does not exist yet."""
    path = project.env_file
    if not path.exists() and not path.is_symlink():
        return None
    return parse_dotenv(path, read_text(path, ".env file"))


def read_env(project: Project) -> dict[str, str]:
    """The values in the project's .env as python-dotenv reads them ({} when there is no .env)."""
    current = read_env_file(project)
    return current.values() if current else {}


@dataclass(frozen=True)
class EnvFiles:
    """The server's template and its .env, each parsed once per command (None: the file does not exist)."""

    template: DotenvFile | None
    current: DotenvFile | None

    def settings(self, environ: Mapping[str, str]) -> Settings:
        """The stack's settings: ENVIRON > .env > template > defaults (see devenv.project.settings)."""
        url = self.current.bindings.get("DATABASE_URL") if self.current else None
        url = url or (self.template.bindings.get("DATABASE_URL") if self.template else None)
        return merge(
            (self.template, self.current),
            environ,
            env_exists=self.current is not None,
            database_url=url.value if url else None,
        )


def read_env_files(project: Project) -> EnvFiles:
    """Parse the template (when it exists) and .env (when it exists), once."""
    template = read_template(project) if project.env_template.is_file() else None
    return EnvFiles(template, read_env_file(project))


# -- quoting --------------------------------------------------------------------------------------------------------
def dotenv_quote(value: str) -> str:
    """VALUE spelled for a .env read by python-dotenv, Node's dotenv and Prisma (single quotes are literal)."""
    if SAFE_VALUE_RE.fullmatch(value):
        return value
    if not any(c in value for c in "'\\\n"):
        return f"'{value}'"
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


# -- devenv env -----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class EnvResult:
    """What `devenv env` did: the file, the keys it added, which of them got generated secrets, warnings.

    FILES are the template and .env as they stand afterwards (the text just written, parsed; not read again).
    """

    path: Path
    added: tuple[str, ...]
    generated: tuple[str, ...]  # names only, never values
    warnings: tuple[str, ...]
    written: bool
    files: EnvFiles
    values: Mapping[str, str] = field(default_factory=dict)  # what devenv wrote for the keys it added


@dataclass(frozen=True)
class _Decided:
    """Values about to be written, as a merge source."""

    decided: Mapping[str, str]

    def values(self) -> dict[str, str]:
        return dict(self.decided)

    def where(self, key: str) -> str:
        return key


def _comment_block(template: DotenvFile, key: str) -> list[str]:
    """The comment lines directly above KEY in the template, after a blank line when the template has one."""
    entries = template.entries
    index = next(i for i, e in enumerate(entries) if e.key == key)
    block: list[str] = []
    current = entries[index]
    while current.blank_before == 0 and index > 0 and entries[index - 1].key is None:
        index -= 1
        current = entries[index]
        if not current.text.strip():
            break
        block.insert(0, current.text.rstrip("\n"))
    return ([""] if current.blank_before else []) + block


def tracked_by_git(path: Path) -> bool:
    """Whether PATH is committed (tracked) in a git repository; False when git is missing or it is no repo."""
    from devenv.core import proc
    from devenv.core.errors import CommandFailed, UsageError

    try:
        done = proc.run(["git", "-C", str(path.parent), "ls-files", "--error-unmatch", "--", path.name], timeout=10)
    except (UsageError, CommandFailed):  # no git, or it hung
        return False
    return done.ok


@dataclass(frozen=True)
class HostPorts:
    """The host ports the stack publishes (what .env's URLs and *_PORT keys point at)."""

    postgres: int = POSTGRES_PORT
    redis: int = REDIS_PORT
    host: str = "127.0.0.1"  # where they answer: loopback, or a remote engine's host (devenv.engine.target)


def _host_value(
    key: str,
    template_value: str | None,
    environ: Mapping[str, str],
    ports: HostPorts,
    from_urls: Mapping[str, tuple[str, bool]],
) -> tuple[str | None, bool]:
    """The value devenv writes for a key it adds: (value, generated); value None = copy the template's line.

    FROM_URLS: credentials found in a DATABASE_URL / REDIS_URL (and whether they came from .env, which wins as it
    is, or from the template, whose placeholders are replaced).
    """
    if key in CREDENTIAL_KEYS and environ.get(key):
        return environ[key], False
    fixed = {
        "POSTGRES_HOST": ports.host,
        "REDIS_HOST": ports.host,
        "POSTGRES_PORT": str(ports.postgres),
        "REDIS_PORT": str(ports.redis),
    }
    if key in fixed:
        return fixed[key], False
    if template_value is None and key in from_urls:
        value, from_env = from_urls[key]
        if from_env or not (is_secret_key(key) and is_placeholder(value)):
            return value, False
    if is_secret_key(key) and is_placeholder(template_value):
        return new_secret(), True
    if template_value is None or template_value == "":
        default = stack_catalogue().get(key, {}).get("default")
        if default is not None:
            return str(default), False
    return None, False


@dataclass
class _Additions:
    """What completing .env adds: the template's keys .env lacks, the stack's own, and the value of each.

    DECIDED: key -> value to write (None: the template's line as is); GENERATED: the keys given a new secret.
    """

    template: DotenvFile
    current: DotenvFile | None
    missing: list[str]  # in the template, not in .env
    stack: list[str]  # devenv's own keys (env/variables.toml `always`) in neither
    decided: dict[str, str | None] = field(default_factory=dict)
    generated: list[str] = field(default_factory=list)

    @property
    def keys(self) -> list[str]:
        return [*self.missing, *self.stack]


def ensure_env(
    project: Project,
    environ: Mapping[str, str] | None = None,
    *,
    files: EnvFiles | None = None,
    redis: bool = True,
    ports: HostPorts | None = None,
    host: str = "127.0.0.1",
) -> EnvResult:
    """Create or complete the .env beside the template; never change a value that is already there.

    FILES: the template and .env already parsed by the caller (else they are read here). REDIS: whether the stack
    has Redis (its keys are added only then). PORTS: the host ports to write (default: the configured ones); HOST:
    where they answer (a remote engine's host; default loopback).
    """
    env = os.environ if environ is None else environ
    files = files or read_env_files(project)
    template = files.template or read_template(project)  # a missing template is the error read_template raises
    current = files.current
    cfg = project.config
    ports = ports or HostPorts(cfg.postgres.port or POSTGRES_PORT, cfg.redis.port or REDIS_PORT, host)
    adds = _additions(template, current, redis)
    _decide_values(adds, env, ports)
    _decide_urls(adds, env, ports)
    added = tuple(adds.keys)
    written = bool(added) or current is None
    after = EnvFiles(template, current)
    if written:
        from devenv.core.state import atomic_write

        text = _completed_text(adds)
        atomic_write(project.env_file, text)
        after = EnvFiles(template, parse_dotenv(project.env_file, text))
    ours = {k: v for k, v in (after.current.values() if after.current else {}).items() if k in added}
    warnings = _warnings(project, current, written)
    return EnvResult(project.env_file, added, tuple(adds.generated), tuple(warnings), written, after, ours)


def _additions(template: DotenvFile, current: DotenvFile | None, redis: bool) -> _Additions:
    """The keys to add: the template's that .env lacks, then the stack's own (Redis's only with Redis)."""
    have = current.bindings if current else {}
    tpl = template.bindings
    missing = [k for k in tpl if k not in have]
    stack = [
        k
        for k, e in stack_catalogue().items()
        if e.get("always") and k not in tpl and k not in have and (redis or not k.startswith("REDIS"))
    ]
    return _Additions(template, current, missing, stack)


def _decide_values(adds: _Additions, env: Mapping[str, str], ports: HostPorts) -> None:
    """A value for every key to add but the URLs (built from the final credentials by _decide_urls)."""
    tpl = adds.template.bindings
    from_urls = {k: (v, False) for k, v in url_parts(adds.template.values()).items()}
    from_urls.update({k: (v, True) for k, v in url_parts(adds.current.values() if adds.current else {}).items()})
    for key in adds.keys:
        if key in URL_KEYS:
            continue
        value, was_generated = _host_value(key, tpl[key].value if key in tpl else None, env, ports, from_urls)
        adds.decided[key] = value
        if was_generated:
            adds.generated.append(key)


def _decide_urls(adds: _Additions, env: Mapping[str, str], ports: HostPorts) -> None:
    """DATABASE_URL / REDIS_URL, when added, from the credentials as they will stand in .env (existing values win
    over the ones just decided)."""
    tpl = adds.template.bindings
    written_values = {k: v for k, v in adds.decided.items() if v is not None}
    written_values.update({k: tpl[k].value or "" for k, v in adds.decided.items() if v is None and k in tpl})
    url = tpl.get("DATABASE_URL")
    settings = merge(
        (_Decided(written_values), adds.current), env, env_exists=True, database_url=url.value if url else None
    )
    built = {
        "DATABASE_URL": settings.database_url(ports.host, ports.postgres),
        "REDIS_URL": settings.redis_url(ports.host, ports.redis),
    }
    for key, url_value in built.items():
        if key in adds.keys:
            # Written out, never as the template's ${VAR} references: Node's dotenv does not expand them.
            adds.decided[key] = url_value


def _completed_text(adds: _Additions) -> str:
    """The new .env: the template's shape for a new file, else the current text with the additions below it."""
    template, current, tpl = adds.template, adds.current, adds.template.bindings

    def line(key: str) -> str:
        value = adds.decided.get(key)
        return tpl[key].text.rstrip("\n") if value is None else f"{key}={dotenv_quote(value)}"

    out: list[str] = []
    if current is None:
        for entry in template.entries:
            out += [""] * entry.blank_before
            if entry.key is None:
                if entry.text.strip():
                    out.append(entry.text.rstrip("\n"))
            else:
                out.append(line(entry.key))
    else:
        out.append(current.text.rstrip("\n"))
        if adds.missing:
            out += ["", f"# --- Added by devenv from {template.path.name} ---"]
            for key in adds.missing:
                out += [*_comment_block(template, key), line(key)]
    if adds.stack:
        catalogue = stack_catalogue()
        out += ["", f"# --- Stack settings added by devenv (not in {template.path.name}) ---"]
        for key in adds.stack:
            out += [f"# {catalogue[key].get('description', '')}".rstrip(), line(key)]
    return "\n".join(out).lstrip("\n") + "\n"


def written_marks(values: Mapping[str, str]) -> dict[str, str]:
    """What devenv keeps of the port-carrying values it wrote into .env: a digest of each, never the value (a URL
    holds the password; state.json is inside the project)."""
    import hashlib

    return {k: hashlib.sha256(v.encode()).hexdigest()[:16] for k, v in values.items() if k in PORT_KEYS}


def remember(project: Project, result: EnvResult) -> None:
    """Keep which values devenv wrote into .env itself (.devenv/state.json, as digests): `up` may later point
    those values, and only those, at the ports the stack really uses (sync_ports)."""
    marks = written_marks(result.values)
    if not marks or project.ci:
        return
    from devenv.core.state import load_state, save_state

    state = load_state(project.state_dir)
    save_state(project.state_dir, {**state, "env_written": {**state.get("env_written", {}), **marks}})


def _warnings(project: Project, current: DotenvFile | None, written: bool) -> list[str]:
    path = project.env_file
    shown = display_path(path)
    out: list[str] = []
    if tracked_by_git(path):
        out.append(f"{shown} is tracked by git; it holds secrets. Run `git rm --cached {shown}` and ignore it.")
    if current is None:
        return out
    if not written:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            out.append(f"{shown} is readable by other users (mode {mode:o}); run `chmod 600 {shown}`.")
    for entry in current.entries:
        if entry.key is None:
            continue
        if is_secret_key(entry.key) and is_placeholder(entry.value):
            out.append(
                f"{entry.key} ({shown}:{entry.line}) is empty or a placeholder; delete the line and run "
                "`devenv env` to generate a secret."
            )
        raw = entry.text.split("=", 1)[1].strip() if "=" in entry.text else ""
        if not raw.startswith("'") and re.search(r"\$(?!\{)", entry.value or ""):
            out.append(
                f"{entry.key} ({shown}:{entry.line}) has a '$' outside single quotes; docker compose would expand "
                "it. Put the value in single quotes."
            )
    return out


# -- the ports in use ----------------------------------------------------------------------------------------------
PORT_KEYS = {
    "POSTGRES_PORT": "postgres",
    "REDIS_PORT": "redis",
    "DATABASE_URL": "postgres",
    "REDIS_URL": "redis",
    "POSTGRES_HOST": "postgres",
    "REDIS_HOST": "redis",
}


@dataclass(frozen=True)
class PortSync:
    """What `sync_ports` did: the files after it, the keys it rewrote, and what it left alone (warnings)."""

    files: EnvFiles
    updated: dict[str, str]  # key -> the value written
    warnings: tuple[str, ...]


def _with_host_port(url: str, new_host: str | None, port: int) -> str:
    """URL pointing at NEW_HOST (None: its own host) and PORT, credentials, path and query kept."""
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)
    host = netloc[-1].rsplit(":", 1)[0] if not netloc[-1].startswith("[") else netloc[-1].split("]")[0] + "]"
    auth = netloc[0] + "@" if len(netloc) == 2 else ""
    return parts._replace(netloc=f"{auth}{new_host or host}:{port}").geturl()


def port_mismatches(files: EnvFiles, ports: HostPorts) -> list[tuple[Entry, str]]:
    """The .env values that point host tools at another port (or host) than the stack's: (entry, the value that
    would be right). A URL to a host that is neither this machine nor the engine's is the user's own choice (a
    managed database) and left out; on a remote engine, one to this machine's loopback is not."""
    out: list[tuple[Entry, str]] = []
    if files.current is None:
        return out
    wanted = {"postgres": ports.postgres, "redis": ports.redis}
    remote = not is_loopback(ports.host)
    for key, entry in files.current.bindings.items():
        service = PORT_KEYS.get(key)
        raw = entry.value or ""
        if service is None or not raw or "${" in raw:
            continue  # unset, or made of other keys (it follows them)
        port = wanted[service]
        if key.endswith("_HOST"):
            if remote and raw.strip() != ports.host and is_loopback(raw.strip()):
                out.append((entry, ports.host))
            continue
        if key.endswith("_PORT"):
            if raw.strip() != str(port):
                out.append((entry, str(port)))
            continue
        url = urlsplit(raw)
        try:
            url_port = url.port or (POSTGRES_PORT if service == "postgres" else REDIS_PORT)
        except ValueError:
            continue
        host = url.hostname or ""
        if remote and is_loopback(host):
            out.append((entry, _with_host_port(raw, ports.host, port)))
        elif (is_loopback(host) or host == ports.host) and url_port != port:
            out.append((entry, _with_host_port(raw, None, port)))
    return out


def sync_ports(project: Project, files: EnvFiles, ports: HostPorts, ours: Mapping[str, str]) -> PortSync:
    """Point .env at the ports the stack really publishes (Docker-chosen, or a fallback devenv picked).

    Only values devenv wrote itself (OURS: written_marks of what it wrote, still unchanged) are rewritten; a value
    the user wrote is left alone with a warning (`devenv env --check` and `doctor` report it too).
    """
    current = files.current
    mismatches = port_mismatches(files, ports)
    if current is None or not mismatches:
        return PortSync(files, {}, ())
    lines = current.text.split("\n")
    updated: dict[str, str] = {}
    warnings: list[str] = []
    for entry, value in sorted(mismatches, key=lambda m: -m[0].line):  # bottom up: line numbers stay right
        assert entry.key is not None
        if ours.get(entry.key) == written_marks({entry.key: entry.value or ""})[entry.key]:
            prefix = "export " if entry.text.lstrip().startswith("export ") else ""
            span = entry.text.rstrip("\n").count("\n") + 1
            lines[entry.line - 1 : entry.line - 1 + span] = [f"{prefix}{entry.key}={dotenv_quote(value)}"]
            updated[entry.key] = value
        else:
            warnings.append(
                f"{entry.key} ({current.where(entry.key)}) points at {masked(entry.value or '')!r}, but the stack's "
                f"{PORT_KEYS[entry.key]} answers at {_answers_at(entry.key, value, ports)}; devenv leaves a value "
                "you wrote alone: change it, or delete the line and run `devenv env`."
            )
    warnings.reverse()
    if not updated:
        return PortSync(files, {}, tuple(warnings))
    from devenv.core.state import atomic_write

    text = "\n".join(lines)
    atomic_write(project.env_file, text)
    return PortSync(EnvFiles(files.template, parse_dotenv(project.env_file, text)), updated, tuple(warnings))


def _answers_at(key: str, value: str, ports: HostPorts) -> str:
    if key.endswith("_HOST"):
        return f"{value} (the remote Docker Engine's host)"
    if key.endswith("_PORT"):
        return f"port {value}"
    url = urlsplit(value)
    return f"{url.hostname}:{url.port}" + (" (the remote Docker Engine's host)" if not is_loopback(ports.host) else "")


# -- devenv env --check ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DriftItem:
    """A key that differs between template and .env, with the file and line that has it."""

    key: str
    path: Path
    line: int

    def where(self) -> str:
        """file:line."""
        return f"{display_path(self.path)}:{self.line}"


@dataclass(frozen=True)
class DriftReport:
    """Keys the template has and .env lacks (missing), and keys .env has that the template dropped (extra)."""

    template: Path
    env_file: Path
    env_exists: bool
    missing: tuple[DriftItem, ...]
    extra: tuple[DriftItem, ...]
    ports: tuple[tuple[DriftItem, str], ...] = ()  # values pointing at another port than the stack's, and the right one

    @property
    def drift(self) -> bool:
        """True when .env is missing keys, has stale ones, or points at ports the stack does not use."""
        return bool(self.missing or self.extra or self.ports)


def check_env(project: Project, files: EnvFiles | None = None, ports: HostPorts | None = None) -> DriftReport:
    """Compare .env with the template (and, given PORTS, with the ports the stack uses); writes nothing."""
    files = files or read_env_files(project)
    template = files.template or read_template(project)
    current = files.current
    have = current.bindings if current else {}
    managed = {k for k, e in stack_catalogue().items() if e.get("always")}
    missing = tuple(DriftItem(k, template.path, e.line) for k, e in template.bindings.items() if k not in have)
    extra = tuple(
        DriftItem(k, project.env_file, e.line)
        for k, e in have.items()
        if k not in template.bindings and k not in managed
    )
    wrong = tuple(
        (DriftItem(entry.key or "", project.env_file, entry.line), value)
        for entry, value in (port_mismatches(files, ports) if ports else [])
    )
    return DriftReport(template.path, project.env_file, current is not None, missing, extra, wrong)
