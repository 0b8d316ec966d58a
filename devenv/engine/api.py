"""The Docker Engine API client: HTTP on the engine's socket (unix, tcp, tcp+TLS, or ssh through
`docker system dial-stdio`), spoken here, and what its failures mean.

Why no docker SDK or python-on-whales: importing them costs more than `devenv status` may take in all
(docs/benchmarks.md), and devenv needs a dozen GET/DELETE calls whose JSON `devenv.engine.models` reads.
"""

from __future__ import annotations

import json
import os
import re
import socket
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import ParseResult, quote, urlencode, urlparse

from devenv.core import proc
from devenv.core.errors import CommandFailed, DevenvError, EngineUnreachable
from devenv.engine import ssh
from devenv.engine.target import endpoint, is_loopback, ssh_destination, ssh_login

API_TIMEOUT = 30.0


def docker_host(environ: Mapping[str, str] | None = None) -> str:
    """The engine endpoint the docker CLI would use: DOCKER_HOST, else the current context's, else the local socket."""
    return endpoint(os.environ if environ is None else environ)[0]


# -- what a failure to reach the engine means -----------------------------------------------------------------------
def unreachable(detail: str, host: str) -> EngineUnreachable:
    """EngineUnreachable for the engine at HOST from what was seen (an exception's text, ssh's stderr, compose's
    output), with the hint that fits: for a remote engine never "start Docker here"."""
    parsed = urlparse(host)
    if parsed.scheme == "ssh":
        found = ssh.failure(detail, ssh_login(host))
        if found is not None:
            return EngineUnreachable(f"Docker Engine not reachable at {host}: {found.seen}", found.hint)
    lines = detail.strip().splitlines()
    first = (lines[-1] if parsed.scheme == "ssh" else lines[0]).strip() if lines else "no answer"
    if "FileNotFoundError" in first or "No such file or directory" in first:
        first = "the socket does not exist"
    elif "ConnectionRefusedError" in first or "Connection refused" in first:
        first = "connection refused"
    return EngineUnreachable(f"Docker Engine not reachable at {host}: {first}", _unreachable_hint(host, parsed))


def _unreachable_hint(host: str, parsed: ParseResult) -> str:
    if parsed.scheme == "ssh":
        return (
            f"check that `ssh {ssh_login(host)} docker version` works from this shell, or point DOCKER_HOST / "
            "`docker context use` at a running engine."
        )
    if parsed.scheme == "unix" or is_loopback(parsed.hostname or "localhost"):
        return (
            "start Docker (Docker Desktop, `sudo systemctl start docker`, or `make engine` on Debian), "
            "or point DOCKER_HOST / `docker context use` at a running engine."
        )
    return (
        f"check that the engine on {parsed.hostname} runs and listens on that port, and that this machine can "
        "reach it; or point DOCKER_HOST / `docker context use` at a running engine."
    )


def is_connection_error(text: str) -> bool:
    """Whether a docker CLI's output says it could not reach the engine (not a registry, not a failed command)."""
    # Only the engine's own words: "no such host" or "connection refused" alone may be a registry's (a failed pull).
    # Over ssh the docker CLI says "error during connect: … command [ssh …] has exited …: stderr=<ssh's words>".
    needles = ("Cannot connect to the Docker daemon", "error during connect", "dial unix", "docker system dial-stdio")
    return any(n.lower() in text.lower() for n in needles)


# -- the API ---------------------------------------------------------------------------------------------------------
class EngineAPI(Protocol):
    """The engine's HTTP API as devenv uses it: JSON in, JSON out (None: 404, no such object)."""

    def request(self, method: str, path: str, query: dict[str, Any] | None = None) -> Any: ...


class ApiError(DevenvError):
    """The engine answered an API call with an error status."""


def filters(**labels: Sequence[str] | str) -> dict[str, str]:
    """The `filters` query parameter selecting by LABELS (e.g. `label=["devenv.project=x", "devenv.ci=true"]`)."""
    return {"filters": json.dumps({k: [v] if isinstance(v, str) else list(v) for k, v in labels.items()})}


class HttpEngine:
    """The Engine API over the engine's socket (unix, tcp, tcp+TLS, or ssh through `docker system dial-stdio`).

    One HTTP/1.0 request per connection: the engine answers with the whole body and closes, so there is no
    chunked encoding or keep-alive to handle. Over ssh each request is one `ssh HOST docker system dial-stdio`
    riding on one shared master connection (devenv.engine.ssh); the first one makes the master, so it runs alone.
    ENVIRON (default: this process's) says how to reach it: DOCKER_TLS_VERIFY, DOCKER_CERT_PATH, the ssh folder.
    """

    def __init__(
        self, host: str | None = None, timeout: float = API_TIMEOUT, environ: Mapping[str, str] | None = None
    ) -> None:
        self.environ: Mapping[str, str] = os.environ if environ is None else environ
        self.host = host or docker_host(self.environ)
        self.timeout = timeout
        self._first = threading.Lock()  # held by the first ssh request: it makes the master the others reuse
        self._ssh_argv: list[str] | None = None  # set once the first ssh request went through

    def request(self, method: str, path: str, query: dict[str, Any] | None = None) -> Any:
        """One API call: its JSON answer, None for 404 or an empty body; ApiError for a refusal."""
        target = quote(path) + (f"?{urlencode(query)}" if query else "")
        data = f"{method} {target} HTTP/1.0\r\nHost: docker\r\nUser-Agent: devenv\r\n\r\n".encode()
        try:
            raw = self._exchange(data)
        except OSError as ex:
            raise unreachable(f"{type(ex).__name__}: {ex}", self.host) from ex
        return self._answer(method, path, raw)

    def _answer(self, method: str, path: str, raw: bytes) -> Any:
        head, _, body = raw.partition(b"\r\n\r\n")
        status_line = head.split(b"\r\n", 1)[0].decode(errors="replace")
        match = re.match(r"HTTP/\d\.\d (\d{3})", status_line)
        if not match:
            raise unreachable(f"not an Engine API answer: {status_line[:80]!r}", self.host)
        status = int(match.group(1))
        if status == 404:
            return None
        if status >= 400 and b"\r\napi-version:" not in head.lower():  # the engine names its API version, always
            raise unreachable(f"something answered HTTP {status} there, but not a Docker Engine", self.host)
        if status >= 400:
            try:
                message = json.loads(body).get("message", "")
            except (ValueError, AttributeError):
                message = body.decode(errors="replace")[:200]
            raise ApiError(f"the Docker Engine refused {method} {path}: {message} (HTTP {status})")
        if not body.strip():
            return None
        return json.loads(body)

    # -- the connection ------------------------------------------------------------------------------------------
    def _exchange(self, data: bytes) -> bytes:
        url = urlparse(self.host)
        if url.scheme == "ssh":
            return self._over_ssh(data)
        with self._connect(url) as sock:
            sock.sendall(data)
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks)

    def _connect(self, url: ParseResult) -> socket.socket:
        if url.scheme == "unix":
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(self.timeout)
            try:
                sock.connect(url.path)
            except BaseException:
                sock.close()
                raise
            return sock
        if url.scheme in {"tcp", "http", "https"}:
            tls = url.scheme == "https" or bool(
                self.environ.get("DOCKER_TLS_VERIFY") or self.environ.get("DOCKER_CERT_PATH")
            )
            default_port = 2376 if tls else 2375
            sock = socket.create_connection((url.hostname or "localhost", url.port or default_port), self.timeout)
            return self._tls(sock, url.hostname or "localhost") if tls else sock
        raise unreachable(f"unsupported DOCKER_HOST scheme {url.scheme!r}", self.host)

    def _tls(self, sock: socket.socket, hostname: str) -> socket.socket:
        import ssl

        certs = Path(self.environ.get("DOCKER_CERT_PATH") or Path.home() / ".docker")
        context = ssl.create_default_context(cafile=str(certs / "ca.pem") if (certs / "ca.pem").exists() else None)
        if (certs / "cert.pem").exists():
            context.load_cert_chain(str(certs / "cert.pem"), str(certs / "key.pem"))
        if not self.environ.get("DOCKER_TLS_VERIFY"):
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context.wrap_socket(sock, server_hostname=hostname)

    def _over_ssh(self, data: bytes) -> bytes:
        argv = self._ssh_argv
        if argv is not None:
            return self._dial(argv, data)
        with self._first:  # concurrent first calls (remove_labelled's pool) would each make a master
            argv = self._ssh_argv or ssh.argv(
                ssh_destination(self.host), ["docker", "system", "dial-stdio"], ssh.control_dir(self.environ)
            )
            answer = self._dial(argv, data)
            self._ssh_argv = argv
            return answer

    def _dial(self, argv: list[str], data: bytes) -> bytes:
        try:
            done = proc.exchange(argv, data, timeout=self.timeout, env=self.environ)
        except CommandFailed as ex:  # killed at the deadline
            raise EngineUnreachable(
                f"Docker Engine not reachable at {self.host}: no answer over ssh within {self.timeout:g} s",
                f"sshd on the engine host did not answer in time: check that `ssh {ssh_login(self.host)} docker "
                "version` works from this shell.",
            ) from ex
        except DevenvError as ex:  # no ssh client at all
            raise EngineUnreachable(
                f"Docker Engine not reachable at {self.host}: {ex.message}",
                "install an OpenSSH client (the engine is reached over ssh).",
            ) from ex
        if not done.stdout:
            raise unreachable(done.stderr or f"ssh exited {done.returncode} without an answer", self.host)
        return done.stdout
