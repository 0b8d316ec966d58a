"""The small PostgreSQL client devenv talks to the stack's own Postgres with (probes, marks, reset and its template).

Why not psycopg: importing it loads libpq, OpenSSL and asyncio (its binary wheel), which would be a large part of
what a soft reset, `status` and a warm `up` may take in all (docs/benchmarks.md). devenv only ever talks to the
stack's own container, so the protocol it needs is small: protocol 3.0 startup (TLS when the server offers it, as
libpq's sslmode=prefer), password / MD5 / SCRAM-SHA-256 authentication, simple queries with text results. The tests
check devenv's work with psycopg, an independent client.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import socket
import struct
from types import TracebackType
from typing import BinaryIO

PROTOCOL_3_0 = 196608
SSL_REQUEST = 80877103

Row = tuple[str | None, ...]


class PgError(Exception):
    """An ErrorResponse from the server: SQLSTATE, message and what else it said."""

    def __init__(self, fields: dict[str, str]) -> None:
        self.sqlstate = fields.get("C", "")
        self.message = fields.get("M", "unknown error")
        self.detail = fields.get("D", "")
        self.hint = fields.get("H", "")
        super().__init__(f"{fields.get('S', 'ERROR')}: {self.message}")


def credentials_refused(err: PgError) -> bool:
    """Whether Postgres refused the user or the password (not, say, a pg_hba rule or a missing database)."""
    return err.sqlstate == "28P01" or (err.sqlstate == "28000" and "role" in err.message)


class ProtocolError(OSError):
    """The connection broke or carried something that is not the protocol (an OSError: a transport failure)."""


class UnsupportedServer(Exception):
    """The server wants something this client does not do, or failed SCRAM's proof: retrying will not help."""


def quote_ident(name: str) -> str:
    """NAME as an SQL identifier."""
    if "\0" in name:
        raise ValueError("an identifier cannot contain NUL")
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    """VALUE as an SQL string literal (standard_conforming_strings is on: checked at connect)."""
    if "\0" in value:
        raise ValueError("a string literal cannot contain NUL")
    return "'" + value.replace("'", "''") + "'"


def saslprep(password: str) -> str:
    """RFC 4013 SASLprep as Postgres applies it: when the password is not valid for it, the raw one is used."""
    if password.isascii():
        return password
    import stringprep
    import unicodedata

    mapped = "".join(" " if stringprep.in_table_c12(c) else c for c in password if not stringprep.in_table_b1(c))
    prepared = unicodedata.normalize("NFKC", mapped)
    prohibited = (
        stringprep.in_table_c12,
        stringprep.in_table_c21,
        stringprep.in_table_c22,
        stringprep.in_table_c3,
        stringprep.in_table_c4,
        stringprep.in_table_c5,
        stringprep.in_table_c6,
        stringprep.in_table_c7,
        stringprep.in_table_c8,
        stringprep.in_table_c9,
        stringprep.in_table_a1,
    )
    if not prepared or any(check(c) for c in prepared for check in prohibited):
        return password
    # RFC 3454 section 6: a string with right-to-left characters must not mix in left-to-right ones, and must
    # start and end with one.
    if any(stringprep.in_table_d1(c) for c in prepared) and (
        any(stringprep.in_table_d2(c) for c in prepared)
        or not (stringprep.in_table_d1(prepared[0]) and stringprep.in_table_d1(prepared[-1]))
    ):
        return password
    return prepared


class Scram:
    """SCRAM-SHA-256 (RFC 7677) as Postgres does it: no channel binding, the user name comes from the startup."""

    def __init__(self, password: str, *, nonce: str | None = None, user: str = "") -> None:
        import secrets

        self.password = saslprep(password).encode()
        self.nonce = nonce or base64.b64encode(secrets.token_bytes(18)).decode()
        self.client_first_bare = f"n={user},r={self.nonce}"  # Postgres ignores the name here (RFC 7677 tests use one)
        self.auth_message = b""
        self.salted = b""

    def first(self) -> bytes:
        return ("n,," + self.client_first_bare).encode()

    def final(self, server_first: bytes) -> bytes:
        attrs = dict(part.split("=", 1) for part in server_first.decode().split(","))
        if not attrs.get("r", "").startswith(self.nonce):
            raise UnsupportedServer("SCRAM: the server's nonce does not extend ours")
        self.salted = hashlib.pbkdf2_hmac("sha256", self.password, base64.b64decode(attrs["s"]), int(attrs["i"]))
        without_proof = f"c=biws,r={attrs['r']}"
        self.auth_message = f"{self.client_first_bare},{server_first.decode()},{without_proof}".encode()
        client_key = hmac.digest(self.salted, b"Client Key", "sha256")
        signature = hmac.digest(hashlib.sha256(client_key).digest(), self.auth_message, "sha256")
        proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
        return f"{without_proof},p={base64.b64encode(proof).decode()}".encode()

    def verify(self, server_final: bytes) -> None:
        attrs = dict(part.split("=", 1) for part in server_final.decode().split(","))
        server_key = hmac.digest(self.salted, b"Server Key", "sha256")
        expected = hmac.digest(server_key, self.auth_message, "sha256")
        if not hmac.compare_digest(base64.b64decode(attrs.get("v", "")), expected):
            raise UnsupportedServer("SCRAM: the server's signature does not match (not the server we talked to?)")


def _message(kind: bytes, payload: bytes) -> bytes:
    return kind + struct.pack("!i", len(payload) + 4) + payload


def _error_fields(payload: bytes) -> dict[str, str]:
    fields = {}
    for part in payload.split(b"\0"):
        if part:
            fields[chr(part[0])] = part[1:].decode(errors="replace")
    return fields


class Connection:
    """One session: `execute` runs a simple query and returns its rows as text (None for NULL)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.stream: BinaryIO = sock.makefile("rb")
        self.parameters: dict[str, str] = {}

    def __enter__(self) -> Connection:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        with contextlib.suppress(OSError):  # already gone: nothing to say goodbye to
            self.sock.sendall(_message(b"X", b""))
        self.stream.close()
        self.sock.close()

    def _read(self) -> tuple[bytes, bytes]:
        header = self.stream.read(5)
        if len(header) < 5:
            raise ProtocolError("the server closed the connection")
        (length,) = struct.unpack("!i", header[1:])
        if length < 4:
            raise ProtocolError(f"a message of length {length} (not a Postgres server?)")
        payload = self.stream.read(length - 4)
        if len(payload) < length - 4:
            raise ProtocolError("the server closed the connection")
        return header[:1], payload

    def startup(self, user: str, password: str, dbname: str, application_name: str) -> None:
        try:
            self._startup(user, password, dbname, application_name)
        except (struct.error, ValueError, KeyError, IndexError) as ex:  # UnicodeDecodeError is a ValueError
            raise ProtocolError(f"malformed startup reply: {ex}") from ex

    def _startup(self, user: str, password: str, dbname: str, application_name: str) -> None:
        params = {
            "user": user,
            "database": dbname,
            "application_name": application_name,
            "client_encoding": "UTF8",
            "standard_conforming_strings": "on",  # quote_literal relies on it; a startup setting beats ALTER ROLE
        }
        body = struct.pack("!i", PROTOCOL_3_0) + b"".join(
            k.encode() + b"\0" + v.encode() + b"\0" for k, v in params.items()
        )
        self.sock.sendall(struct.pack("!i", len(body) + 5) + body + b"\0")
        scram: Scram | None = None
        verified = False
        while True:
            kind, payload = self._read()
            if kind == b"R":
                (code,) = struct.unpack("!i", payload[:4])
                if code == 0:
                    if scram and not verified:
                        raise UnsupportedServer("SCRAM: the server accepted us without proving it knows the password")
                    continue
                if code == 3:  # cleartext
                    self.sock.sendall(_message(b"p", password.encode() + b"\0"))
                elif code == 5:  # md5
                    inner = hashlib.md5(password.encode() + user.encode()).hexdigest().encode()
                    outer = "md5" + hashlib.md5(inner + payload[4:8]).hexdigest()
                    self.sock.sendall(_message(b"p", outer.encode() + b"\0"))
                elif code == 10:  # SASL
                    if b"SCRAM-SHA-256" not in payload[4:].split(b"\0"):
                        raise UnsupportedServer(f"unsupported SASL mechanisms {payload[4:]!r}")
                    scram = Scram(password)
                    first = scram.first()
                    self.sock.sendall(_message(b"p", b"SCRAM-SHA-256\0" + struct.pack("!i", len(first)) + first))
                elif code == 11 and scram:
                    self.sock.sendall(_message(b"p", scram.final(payload[4:])))
                elif code == 12 and scram:
                    scram.verify(payload[4:])
                    verified = True
                else:
                    raise UnsupportedServer(f"unsupported authentication request {code} (devenv does password/SCRAM)")
            elif kind == b"S":
                name, value = payload.split(b"\0")[:2]
                self.parameters[name.decode()] = value.decode()
            elif kind == b"E":
                raise PgError(_error_fields(payload))
            elif kind == b"Z":
                break
            # K (backend key), N (notice): nothing to do
        if self.parameters.get("standard_conforming_strings", "on") != "on":
            raise UnsupportedServer("standard_conforming_strings is off: devenv's quoting needs it on")

    def execute(self, query: str) -> list[Row]:
        """Run QUERY (one or more statements) and return the rows it returned; raise PgError when it failed."""
        try:
            return self._execute(query)
        except (struct.error, ValueError) as ex:  # UnicodeDecodeError is a ValueError
            raise ProtocolError(f"malformed reply: {ex}") from ex

    def _execute(self, query: str) -> list[Row]:
        self.sock.sendall(_message(b"Q", query.encode() + b"\0"))
        rows: list[Row] = []
        error: PgError | None = None
        while True:
            try:
                kind, payload = self._read()
            except ProtocolError:
                if error:  # a FATAL (shutdown, terminated) arrives as E and then the server closes: say why
                    raise error from None
                raise
            if kind == b"D":
                count = struct.unpack("!h", payload[:2])[0] if len(payload) >= 2 else -1
                if count < 0:
                    raise ProtocolError("a malformed data row")
                pos = 2
                row: list[str | None] = []
                for _ in range(count):
                    (size,) = struct.unpack("!i", payload[pos : pos + 4])
                    pos += 4
                    if size < 0:
                        row.append(None)
                    else:
                        row.append(payload[pos : pos + size].decode())
                        pos += size
                rows.append(tuple(row))
            elif kind == b"E":
                error = PgError(_error_fields(payload))
            elif kind == b"G":  # COPY ... FROM STDIN: refuse it, the server then reports an error and is ready
                self.sock.sendall(_message(b"f", b"devenv.clients.pgwire does not do COPY\0"))
            elif kind == b"Z":
                break
            # T (row description), C (complete), I (empty), N (notice), S (parameter), A (notification),
            # H/d/c (COPY TO STDOUT: its data is dropped)
        if error:
            raise error
        return rows

    def scalar(self, query: str) -> str | None:
        """The first column of the first row QUERY returns (None when there is no row)."""
        rows = self.execute(query)
        return rows[0][0] if rows else None

    def database(self, name: str) -> tuple[str, str | None] | None:
        """The oid and the comment (devenv's marks live there) of database NAME; None when there is none."""
        rows = self.execute(
            f"SELECT oid, shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = {quote_literal(name)}"
        )
        return (str(rows[0][0]), rows[0][1]) if rows else None


def _keepalive(sock: socket.socket) -> None:
    """Notice a server that vanished (a killed or paused container) within about a minute, as libpq's keepalives do."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for option, value in (("TCP_KEEPIDLE", 30), ("TCP_KEEPINTVL", 10), ("TCP_KEEPCNT", 3)):
        if hasattr(socket, option):  # Linux; macOS has TCP_KEEPALIVE for the first
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, option), value)


def _prefer_tls(sock: socket.socket, host: str) -> socket.socket:
    """libpq's sslmode=prefer: ask for TLS, use it when the server agrees, go on in plain text when it does not.

    As with libpq's `prefer`, the certificate is not verified: the point is a server whose pg_hba.conf accepts
    only `hostssl` connections, not authenticating the stack's own container on loopback.
    """
    sock.sendall(struct.pack("!ii", 8, SSL_REQUEST))
    answer = sock.recv(1)
    if answer == b"N":
        return sock
    if answer != b"S":
        raise ProtocolError(f"unexpected answer {answer!r} to the TLS request (not a Postgres server?)")
    import ssl

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context.wrap_socket(sock, server_hostname=host)


def connect(
    host: str,
    port: int,
    user: str,
    password: str,
    dbname: str,
    *,
    timeout: float = 5.0,
    io_timeout: float | None = None,
    application_name: str = "devenv",
) -> Connection:
    """Open a session (TLS when the server offers it) and authenticate, each step within TIMEOUT seconds.

    Statements then wait IO_TIMEOUT seconds for each reply (None: as long as they take, as libpq does: a
    CREATE DATABASE of a big template takes a while); a probe passes a short one so a stalled server cannot hang it.
    """
    sock = socket.create_connection((host, port), timeout=timeout)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        _keepalive(sock)
        sock = _prefer_tls(sock, host)
    except BaseException:
        sock.close()
        raise
    conn = Connection(sock)
    try:
        conn.startup(user, password, dbname, application_name)
    except BaseException:
        conn.close()
        raise
    sock.settimeout(io_timeout)
    return conn
