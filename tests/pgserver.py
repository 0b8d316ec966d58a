"""A scripted PostgreSQL server for unit tests of devenv.clients.pgwire and its users: it checks the startup and the
password
(MD5 or SCRAM-SHA-256, done as Postgres does them), then answers each query from a script."""

from __future__ import annotations

import base64
import hashlib
import hmac
import socket
import ssl
import struct
import threading
from typing import BinaryIO


def msg(kind: bytes, payload: bytes) -> bytes:
    return kind + struct.pack("!i", len(payload) + 4) + payload


def row(*values: str | None) -> bytes:
    body = struct.pack("!h", len(values))
    for v in values:
        body += struct.pack("!i", -1) if v is None else struct.pack("!i", len(v.encode())) + v.encode()
    return msg(b"D", body)


READY = msg(b"Z", b"I")


class ScriptedServer:
    """Accepts one connection, checks the startup and the password (MD5 or SCRAM-SHA-256, done as Postgres does
    them), then answers each query from a script. An answer that starts with COPY_IN waits for the client's reply
    first; a None answer stalls; CLOSE ends the session after the answer (as Postgres after a FATAL)."""

    def __init__(
        self,
        answers: dict[str, bytes | None],
        *,
        auth: str = "md5",
        conforming: str = "on",
        tls: ssl.SSLContext | None = None,
        startup_error: bytes = b"",
    ) -> None:
        self.answers = answers
        self.auth = auth
        self.conforming = conforming
        self.tls = tls
        self.encrypted = False
        self.startup_error = startup_error
        self.queries: list[str] = []
        self.client_messages: list[bytes] = []
        self.startup: dict[str, str] = {}
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        conn, _ = self.sock.accept()
        assert struct.unpack("!ii", conn.recv(8)) == (8, 80877103)  # SSLRequest first, as libpq's sslmode=prefer
        if self.tls:
            conn.sendall(b"S")
            conn = self.tls.wrap_socket(conn, server_side=True)
            self.encrypted = True
        else:
            conn.sendall(b"N")
        with conn, conn.makefile("rb") as r:
            (length,) = struct.unpack("!i", r.read(4))
            body = r.read(length - 4)[4:].split(b"\0")
            self.startup = {k.decode(): v.decode() for k, v in zip(body[::2], body[1::2], strict=False) if k}
            if self.startup_error:
                conn.sendall(msg(b"E", self.startup_error))
                return
            if not self.authenticate(conn, r):
                conn.sendall(msg(b"E", b"SFATAL\0C28P01\0Mpassword authentication failed\0\0"))
                return
            conn.sendall(
                msg(b"R", struct.pack("!i", 0))
                + msg(b"S", b"standard_conforming_strings\0" + self.conforming.encode() + b"\0")
                + msg(b"K", struct.pack("!ii", 1, 2))
                + READY
            )
            while True:
                kind = r.read(1)
                if kind in (b"X", b""):
                    return
                size = struct.unpack("!i", r.read(4))[0]
                query = r.read(size - 4).rstrip(b"\0").decode()
                self.queries.append(query)
                answer = self.answers[query]
                if answer is None:
                    self.done.wait(10)  # stall until the test is over
                    return
                if answer.startswith(COPY_IN):
                    conn.sendall(COPY_IN)
                    self.client_messages.append(self._message(r)[0])
                    answer = answer[len(COPY_IN) :]
                if answer.endswith(CLOSE):
                    conn.sendall(answer[: -len(CLOSE)])
                    return
                conn.sendall(answer + READY)

    @staticmethod
    def _message(r: BinaryIO) -> tuple[bytes, bytes]:
        kind, size = r.read(1), struct.unpack("!i", r.read(4))[0]
        return kind, r.read(size - 4)

    def authenticate(self, conn: socket.socket, r: BinaryIO) -> bool:
        if self.auth == "md5":
            conn.sendall(msg(b"R", struct.pack("!i", 5) + b"salt"))
            kind, password = self._message(r)
            inner = hashlib.md5(b"s3cret" + self.startup["user"].encode()).hexdigest().encode()
            return kind == b"p" and password.rstrip(b"\0") == b"md5" + hashlib.md5(inner + b"salt").hexdigest().encode()
        if self.auth == "gss":
            conn.sendall(msg(b"R", struct.pack("!i", 7)))
            return False
        # SCRAM-SHA-256, the server's side (RFC 5802): salt and iterations of our choosing, password "s3cret".
        conn.sendall(msg(b"R", struct.pack("!i", 10) + b"SCRAM-SHA-256\0\0"))
        _, initial = self._message(r)
        mechanism, rest = initial.split(b"\0", 1)
        client_first = rest[4:].decode()
        assert mechanism == b"SCRAM-SHA-256" and client_first.startswith("n,,")
        client_first_bare = client_first[3:]
        nonce = dict(a.split("=", 1) for a in client_first_bare.split(","))["r"] + "srv"
        salt = b"pepper"
        server_first = f"r={nonce},s={base64.b64encode(salt).decode()},i=4096"
        conn.sendall(msg(b"R", struct.pack("!i", 11) + server_first.encode()))
        _, final = self._message(r)
        without_proof, proof = final.decode().rsplit(",p=", 1)
        salted = hashlib.pbkdf2_hmac("sha256", b"s3cret", salt, 4096)
        auth_message = f"{client_first_bare},{server_first},{without_proof}".encode()
        client_key = hmac.digest(salted, b"Client Key", "sha256")
        signature = hmac.digest(hashlib.sha256(client_key).digest(), auth_message, "sha256")
        if base64.b64decode(proof) != bytes(a ^ b for a, b in zip(client_key, signature, strict=True)):
            return False
        if self.auth == "scram":  # "scram-no-final" skips the server's proof
            server_sig = hmac.digest(hmac.digest(salted, b"Server Key", "sha256"), auth_message, "sha256")
            conn.sendall(msg(b"R", struct.pack("!i", 12) + b"v=" + base64.b64encode(server_sig)))
        return True


COPY_IN = msg(b"G", b"\0\0\0")
CLOSE = b"<close>"
