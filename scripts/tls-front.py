#!/usr/bin/env python3
"""A TLS front for a Docker Engine's unix socket: mutual TLS on a tcp address, bytes passed through unchanged.

The remote engine bed (scripts/remote-engine.sh) serves plain tcp on :2375 for DOCKER_HOST=tcp://…; dockerd's TLS
settings apply to every tcp listener it has, so the bed's TLS route (DOCKER_HOST=tcp://…:2376 with
DOCKER_TLS_VERIFY=1 and DOCKER_CERT_PATH) is this front, the way a TLS-terminating proxy stands in front of a
shared engine. It requires a client certificate signed by the bed's CA, as `dockerd --tlsverify` does.

    tls-front.py --listen 10.213.47.2:2376 --socket /run/devenv-remote/docker.sock --certs DIR [--pidfile FILE]

DIR holds ca.pem, server-cert.pem and server-key.pem.
"""

from __future__ import annotations

import argparse
import os
import socket
import socketserver
import ssl
import sys
from pathlib import Path

from relay import Server, join  # scripts/relay.py, beside this file


class Handler(socketserver.BaseRequestHandler):
    context: ssl.SSLContext
    engine_socket: str

    def handle(self) -> None:
        try:
            client = self.context.wrap_socket(self.request, server_side=True)
        except (ssl.SSLError, OSError) as ex:
            print(f"tls-front: handshake with {self.client_address[0]} refused: {ex}", file=sys.stderr, flush=True)
            return
        engine = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            engine.connect(self.engine_socket)
        except OSError as ex:
            print(f"tls-front: {self.engine_socket}: {ex}", file=sys.stderr, flush=True)
            client.close()
            engine.close()
            return
        join(client, engine)
        client.close()
        engine.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--listen", required=True)
    parser.add_argument("--socket", required=True)
    parser.add_argument("--certs", type=Path, required=True)
    parser.add_argument("--pidfile")
    args = parser.parse_args()
    host, _, port = args.listen.rpartition(":")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(args.certs / "ca.pem"))
    context.load_cert_chain(str(args.certs / "server-cert.pem"), str(args.certs / "server-key.pem"))
    context.verify_mode = ssl.CERT_REQUIRED
    Handler.context = context
    Handler.engine_socket = args.socket
    with Server((host, int(port)), Handler) as server:
        if args.pidfile:
            Path(args.pidfile + ".tmp").write_text(f"{os.getpid()}\n")
            os.replace(args.pidfile + ".tmp", args.pidfile)  # written once it listens: a waiter may connect
        server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
