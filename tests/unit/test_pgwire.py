"""devenv.clients.pgwire without an engine: SCRAM against RFC 7677's example, quoting, SASLprep, the message flow
against a scripted server (MD5, TLS, rows with NULLs, an error that leaves the session usable), and how the
readiness probe reads Postgres' answers."""

from __future__ import annotations

import socket
import ssl
import struct
import subprocess
import threading
from pathlib import Path

import pytest

from devenv.clients.connectors import PostgresConnector
from devenv.clients.pgwire import (
    PgError,
    ProtocolError,
    Scram,
    UnsupportedServer,
    connect,
    quote_ident,
    quote_literal,
    saslprep,
)
from devenv.core.errors import CREDENTIALS_HINT, ServiceNotReady
from devenv.stack.probes import ConnectorProbe
from tests.pgserver import CLOSE, COPY_IN, ScriptedServer, msg, row

# RFC 7677, section 3: user "user", password "pencil".
CLIENT_NONCE = "rOprNGfwEbeRWgbNEkqO"
SERVER_FIRST = b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
CLIENT_FINAL = (
    b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
)
SERVER_FINAL = b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="


def test_scram_matches_rfc_7677() -> None:
    scram = Scram("pencil", nonce=CLIENT_NONCE, user="user")
    assert scram.first() == b"n,,n=user,r=" + CLIENT_NONCE.encode()
    assert scram.final(SERVER_FIRST) == CLIENT_FINAL
    scram.verify(SERVER_FINAL)  # raises when the server's signature is wrong


def test_scram_rejects_a_server_that_does_not_know_the_password() -> None:
    scram = Scram("pencil", nonce=CLIENT_NONCE, user="user")
    scram.final(SERVER_FIRST)
    with pytest.raises(UnsupportedServer, match="signature"):
        scram.verify(b"v=" + b"A" * 43 + b"=")


def test_scram_rejects_a_nonce_that_does_not_extend_ours() -> None:
    with pytest.raises(UnsupportedServer, match="nonce"):
        Scram("pencil", nonce=CLIENT_NONCE).final(b"r=someoneelse,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")


def test_quoting() -> None:
    assert quote_ident('we"ird name') == '"we""ird name"'
    assert quote_literal("it's a \\ path") == "'it''s a \\ path'"
    for bad in (quote_ident, quote_literal):
        with pytest.raises(ValueError, match="NUL"):
            bad("a\0b")


def test_saslprep() -> None:
    assert saslprep("plain ascii!") == "plain ascii!"
    assert saslprep("I\u00adX") == "IX"  # mapped to nothing (soft hyphen)
    assert saslprep("\u2168") == "IX"  # NFKC
    assert saslprep("a\u00a0b") == "a b"  # non-ASCII space mapped to space
    # When SASLprep refuses a password, Postgres uses it as it is: prohibited characters, an empty result, and
    # right-to-left text mixed with left-to-right (RFC 3454 section 6).
    assert saslprep("bell\u0007é") == "bell\u0007é"
    assert saslprep("\u00ad") == "\u00ad"
    assert saslprep("\ufb01\u05d0") == "\ufb01\u05d0"
    assert saslprep("\u05d0\u05d1") == "\u05d0\u05d1"  # right-to-left only: fine (and unchanged by NFKC)


def test_md5_login_rows_and_errors_against_a_scripted_server() -> None:
    server = ScriptedServer(
        {
            "select rows": msg(b"T", b"") + row("1", None, "é") + row("2", "", "x") + msg(b"C", b"SELECT 2\0"),
            "select nope": msg(b"E", b'SERROR\0C42703\0Mcolumn "nope" does not exist\0\0'),
            "select none": msg(b"T", b"") + msg(b"C", b"SELECT 0\0"),
        }
    )
    with connect("127.0.0.1", server.port, "app", "s3cret", "quotes", application_name="t") as conn:
        assert conn.execute("select rows") == [("1", None, "é"), ("2", "", "x")]
        with pytest.raises(PgError) as err:
            conn.execute("select nope")
        assert err.value.sqlstate == "42703" and 'column "nope"' in err.value.message
        assert conn.scalar("select none") is None  # the session is still usable after the error
    server.thread.join(timeout=5)
    assert server.startup["database"] == "quotes" and server.startup["application_name"] == "t"
    assert server.startup["standard_conforming_strings"] == "on"  # asked for, not only checked
    assert server.queries == ["select rows", "select nope", "select none"]


@pytest.mark.parametrize("auth", ["md5", "scram"])
def test_a_refused_password_is_a_pg_error_with_its_sqlstate(auth: str) -> None:
    server = ScriptedServer({}, auth=auth)
    with pytest.raises(PgError) as err:
        connect("127.0.0.1", server.port, "app", "wrong", "quotes")
    assert err.value.sqlstate == "28P01"


def test_refuses_a_server_without_standard_conforming_strings() -> None:
    server = ScriptedServer({}, conforming="off")
    with pytest.raises(UnsupportedServer, match="standard_conforming_strings"):
        connect("127.0.0.1", server.port, "app", "s3cret", "quotes")


def test_uses_tls_when_the_server_offers_it(tmp_path: Path) -> None:
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-days", "1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = ScriptedServer({"select 1": row("1") + msg(b"C", b"SELECT 1\0")}, tls=context)
    with connect("127.0.0.1", server.port, "app", "s3cret", "quotes") as conn:
        assert conn.execute("select 1") == [("1",)]
    server.thread.join(timeout=5)
    assert server.encrypted


def _probe(port: int, password: str = "s3cret") -> ConnectorProbe:
    return ConnectorProbe("postgres", PostgresConnector("127.0.0.1", port, "app", password, "quotes"))


def test_probe_is_ready_after_select_1() -> None:
    server = ScriptedServer({"SELECT 1": row("1") + msg(b"C", b"SELECT 1\0")})
    assert _probe(server.port).check() is True


def test_probe_waits_while_postgres_starts_or_does_not_listen() -> None:
    starting = ScriptedServer({}, startup_error=b"SFATAL\0C57P03\0Mthe database system is starting up\0\0")
    assert _probe(starting.port).check() is False
    with socket.create_server(("127.0.0.1", 0)) as placeholder:
        port = placeholder.getsockname()[1]
    assert _probe(port).check() is False  # nothing listens there now: connection refused


@pytest.mark.parametrize(
    "error",
    [
        b'SFATAL\0C28P01\0Mpassword authentication failed for user "app"\0\0',
        b'SFATAL\0C28000\0Mrole "app" does not exist\0\0',
        b'SFATAL\0C3D000\0Mdatabase "quotes" does not exist\0\0',
    ],
)
def test_probe_fails_fast_with_the_reset_hard_hint_when_the_volume_has_other_credentials(error: bytes) -> None:
    server = ScriptedServer({}, startup_error=error)
    with pytest.raises(ServiceNotReady) as err:
        _probe(server.port).check()
    assert err.value.hint == CREDENTIALS_HINT and "app@quotes" in err.value.message


def test_scram_login_against_a_scripted_server() -> None:
    server = ScriptedServer({"select 1": row("1") + msg(b"C", b"SELECT 1\0")}, auth="scram")
    with connect("127.0.0.1", server.port, "app", "s3cret", "quotes") as conn:
        assert conn.scalar("select 1") == "1"


def test_a_server_that_skips_the_scram_proof_is_refused() -> None:
    server = ScriptedServer({}, auth="scram-no-final")
    with pytest.raises(UnsupportedServer, match="without proving"):
        connect("127.0.0.1", server.port, "app", "s3cret", "quotes")


def test_a_fatal_error_before_the_server_hangs_up_is_reported() -> None:
    fatal = msg(b"E", b"SFATAL\0C57P01\0Mterminating connection due to administrator command\0\0")
    server = ScriptedServer({"select pg_sleep(10)": fatal + CLOSE})
    with connect("127.0.0.1", server.port, "app", "s3cret", "quotes") as conn, pytest.raises(PgError) as err:
        conn.execute("select pg_sleep(10)")
    assert err.value.sqlstate == "57P01"


def test_copy_from_stdin_is_refused_instead_of_hanging() -> None:
    error = msg(b"E", b"SERROR\0C57014\0MCOPY from stdin failed: devenv.clients.pgwire does not do COPY\0\0")
    server = ScriptedServer({"copy t from stdin": COPY_IN + error})
    conn = connect("127.0.0.1", server.port, "app", "s3cret", "quotes")
    with conn, pytest.raises(PgError, match="COPY"):
        conn.execute("copy t from stdin")
    server.thread.join(timeout=5)
    assert server.client_messages == [b"f"]


def test_a_stalled_server_times_out_with_io_timeout() -> None:
    server = ScriptedServer({"select 1": None})
    try:
        conn = connect("127.0.0.1", server.port, "app", "s3cret", "quotes", io_timeout=0.2)
        with conn, pytest.raises(TimeoutError):
            conn.execute("select 1")
    finally:
        server.done.set()


def test_junk_instead_of_postgres_is_a_protocol_error() -> None:
    with socket.create_server(("127.0.0.1", 0)) as junk:

        def serve() -> None:
            conn, _ = junk.accept()
            with conn, conn.makefile("rb") as r:
                r.read(8)  # SSLRequest
                conn.sendall(b"N")
                r.read(struct.unpack("!i", r.read(4))[0] - 4)  # the startup message: read, so closing sends no RST
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")

        threading.Thread(target=serve, daemon=True).start()
        with pytest.raises(ProtocolError):
            connect("127.0.0.1", junk.getsockname()[1], "app", "s3cret", "quotes")


def test_probe_fails_fast_when_postgres_wants_an_unsupported_login() -> None:
    server = ScriptedServer({}, auth="gss")
    with pytest.raises(ServiceNotReady, match="cannot be checked"):
        _probe(server.port).check()
