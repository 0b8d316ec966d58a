#!/usr/bin/env python3
"""A small HTTP CONNECT proxy that lets through only the HOST:PORT pairs it is given.

The remote engine bed (scripts/remote-engine.sh) has no route out of its network namespace; image builds on it
that run `npm ci` reach the npm registry through this proxy, on the host side of the veth pair, and nothing else.

    connect-proxy.py --listen 10.213.47.1:3128 --allow registry.example:443 [--allow ...] [--pidfile FILE]

Anything but `CONNECT allowed-host:port` gets 403 (plain HTTP requests included); a refused or unreachable
upstream gets 502. Each tunnel is two threads copying bytes until either side closes.
"""

from __future__ import annotations

import argparse
import os
import socket
import socketserver
import sys

from relay import Server, join  # scripts/relay.py, beside this file

READ_LIMIT = 8192  # the request head; a CONNECT request is a line and a few headers


class Handler(socketserver.BaseRequestHandler):
    allowed: frozenset[tuple[str, int]] = frozenset()

    def _head(self) -> bytes:
        head = b""
        while b"\r\n\r\n" not in head and len(head) < READ_LIMIT:
            chunk = self.request.recv(1024)
            if not chunk:
                break
            head += chunk
        return head

    def _answer(self, status: str) -> None:
        self.request.sendall(f"HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode())

    def handle(self) -> None:
        self.request.settimeout(30)
        line = self._head().split(b"\r\n", 1)[0].decode("latin-1")
        method, _, rest = line.partition(" ")
        target = rest.partition(" ")[0]
        host, _, port = target.rpartition(":")
        if method != "CONNECT" or not port.isdigit() or (host.lower(), int(port)) not in self.allowed:
            print(f"connect-proxy: refused {line!r}", file=sys.stderr, flush=True)
            self._answer("403 Forbidden")
            return
        try:
            upstream = socket.create_connection((host, int(port)), timeout=30)
        except OSError as ex:
            print(f"connect-proxy: {target}: {ex}", file=sys.stderr, flush=True)
            self._answer("502 Bad Gateway")
            return
        self.request.settimeout(None)
        upstream.settimeout(None)
        self._answer("200 Connection Established")
        join(self.request, upstream)
        upstream.close()


def _pair(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT")
    return host.lower(), int(port)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", type=_pair, required=True)
    parser.add_argument("--allow", type=_pair, action="append", default=[])
    parser.add_argument("--pidfile")
    args = parser.parse_args()
    Handler.allowed = frozenset(args.allow)
    with Server(args.listen, Handler) as server:
        if args.pidfile:
            with open(args.pidfile + ".tmp", "w") as f:
                f.write(f"{os.getpid()}\n")
            os.replace(args.pidfile + ".tmp", args.pidfile)  # written once it listens: a waiter may connect
        server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
