"""Where the Docker Engine is, and where the ports it publishes answer: one notion for every command.

The endpoint is the one the docker CLI would use: DOCKER_HOST, else DOCKER_CONTEXT or the current context of
`~/.docker/config.json`, else the local socket. A local engine (a unix socket, a tcp one on loopback) publishes
its ports on this machine's loopback; a remote one (tcp, tcp+TLS or ssh to another host) publishes them on its own
host. That host is DEVENV_ENGINE_HOST when set (an engine reached through a tunnel or a bastion), else the
DOCKER_HOST's host name; an ssh alias (`ssh://dvbox`, defined in ssh_config) is resolved with `ssh -G`, as ssh
itself would, because the alias is no network name. Everything that points a host tool at the stack (.env, the
summary, `ci` exports, probes, reset's "is this my stack" check, doctor) asks `EngineTarget.address`.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from devenv.core import proc
from devenv.core.errors import DevenvError

LOCAL_SOCKET = "unix:///var/run/docker.sock"
LOOPBACK = "127.0.0.1"
LOCAL_NAMES = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
ENGINE_HOST_VAR = "DEVENV_ENGINE_HOST"


@dataclass(frozen=True)
class EngineTarget:
    """The engine's endpoint (URL as the docker CLI takes it), where its published ports answer, and how."""

    url: str  # unix:///var/run/docker.sock, tcp://box:2376, ssh://me@box
    address: str  # where published ports answer from here: 127.0.0.1, or the engine's host
    source: str  # what chose the endpoint: DOCKER_HOST, the context NAME, or the default socket
    context: str = ""  # the docker context in use ("" for DOCKER_HOST or the default)

    @property
    def remote(self) -> bool:
        """Whether the engine publishes its ports on another host than this one's loopback."""
        return not is_loopback(self.address)

    @property
    def scheme(self) -> str:
        return urlparse(self.url).scheme

    @property
    def ssh_target(self) -> str:
        """For an ssh engine, the host as written in DOCKER_HOST (an alias stays an alias), else ""."""
        url = urlparse(self.url)
        return str(url.hostname or "") if url.scheme == "ssh" else ""


def ssh_destination(url: str) -> list[str]:
    """ssh's arguments naming the host of an ssh:// engine URL: `-l USER`, `-p PORT` when the URL says, `--`, HOST
    (an alias stays an alias: ssh applies its config, devenv adds nothing to the host)."""
    parsed = urlparse(url)
    return [
        *(["-l", parsed.username] if parsed.username else []),
        *(["-p", str(parsed.port)] if parsed.port else []),
        "--",
        str(parsed.hostname or ""),
    ]


def ssh_login(url: str) -> str:
    """How a person would ssh to the host of an ssh:// engine URL by hand: `me@box`, `-p 2222 box`, `dvbox`."""
    parsed = urlparse(url)
    login = f"{parsed.username}@{parsed.hostname}" if parsed.username else str(parsed.hostname or "")
    return f"-p {parsed.port} {login}" if parsed.port else login


def is_loopback(host: str) -> bool:
    """Whether HOST names this machine's loopback (127.0.0.0/8, ::1, localhost)."""
    name = host.strip("[]")
    if name in LOCAL_NAMES or name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def endpoint(environ: Mapping[str, str]) -> tuple[str, str, str]:
    """(url, source, context) of the engine the docker CLI would use, read from ENVIRON and the CLI's config."""
    if environ.get("DOCKER_HOST"):
        return environ["DOCKER_HOST"], "DOCKER_HOST", ""
    config_dir = Path(environ.get("DOCKER_CONFIG") or Path.home() / ".docker")
    context = environ.get("DOCKER_CONTEXT") or ""
    if not context:
        try:
            context = str(json.loads((config_dir / "config.json").read_text()).get("currentContext") or "")
        except (OSError, ValueError, AttributeError):
            context = ""
    if context and context != "default":
        meta = config_dir / "contexts" / "meta" / hashlib.sha256(context.encode()).hexdigest() / "meta.json"
        try:
            host = json.loads(meta.read_text())["Endpoints"]["docker"]["Host"]
        except (OSError, ValueError, KeyError, TypeError):
            host = ""
        if isinstance(host, str) and host:
            return host, f"the docker context {context!r}", context
    return LOCAL_SOCKET, "the default socket", ""


def ssh_hostname(alias: str, environ: Mapping[str, str]) -> str:
    """The network name ssh connects to for ALIAS (its ssh_config HostName), as `ssh -G` says; ALIAS itself when
    ssh cannot say."""
    if alias in _SSH_NAMES:
        return _SSH_NAMES[alias]
    _SSH_NAMES[alias] = _ask_ssh(alias, environ)
    return _SSH_NAMES[alias]


_SSH_NAMES: dict[str, str] = {}  # alias -> HostName: asked once per process


def _ask_ssh(alias: str, environ: Mapping[str, str]) -> str:
    try:
        done = proc.run(["ssh", "-G", "--", alias], env=environ, timeout=10)
    except DevenvError:  # no ssh here, or it hung: the name as written is all there is
        return alias
    if done.ok:
        for line in done.stdout.splitlines():
            key, _, value = line.partition(" ")
            if key.lower() == "hostname" and value.strip():
                return value.strip()
    return alias


def address_of(url: str, environ: Mapping[str, str]) -> str:
    """Where an engine at URL publishes its ports, as seen from here (see the module's docstring)."""
    override = (environ.get(ENGINE_HOST_VAR) or "").strip()
    if override:
        return override
    parsed = urlparse(url)
    if parsed.scheme in {"tcp", "http", "https"} and parsed.hostname:
        return LOOPBACK if is_loopback(parsed.hostname) else parsed.hostname
    if parsed.scheme == "ssh" and parsed.hostname:
        name = ssh_hostname(parsed.hostname, environ)
        return LOOPBACK if is_loopback(name) else name
    return LOOPBACK


def resolve(environ: Mapping[str, str] | None = None) -> EngineTarget:
    """The engine this command talks to and where its ports answer (computed once, at the top of a command)."""
    env = os.environ if environ is None else environ
    url, source, context = endpoint(env)
    return EngineTarget(url=url, address=address_of(url, env), source=source, context=context)
