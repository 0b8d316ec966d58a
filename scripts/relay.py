"""What the bed's two relays share (scripts/connect-proxy.py, scripts/tls-front.py): a threaded TCP server and the
byte copy that joins two sockets until either side closes."""

from __future__ import annotations

import contextlib
import socket
import socketserver
import threading


def pipe(src: socket.socket, dst: socket.socket) -> None:
    """Copy SRC to DST until SRC ends, then shut both down (the other direction's copy ends with them)."""
    try:
        while chunk := src.recv(65536):
            dst.sendall(chunk)
    except OSError:
        pass
    finally:
        for sock in (src, dst):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


def join(a: socket.socket, b: socket.socket) -> None:
    """Relay between A and B both ways until either side closes."""
    back = threading.Thread(target=pipe, args=(b, a), daemon=True)
    back.start()
    pipe(a, b)
    back.join()


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
    request_queue_size = 64
