"""The spare: a copy of the reset template kept ready, so a soft reset renames it into place instead of copying.

`CREATE DATABASE … TEMPLATE` copies every file of the template, so its time grows with the seed and depends on the
filesystem: the same copy can take many times longer in one volume than in another (ext4 block allocation in the
volume's directory; a plain `cp -r` shows the same), and a big seed takes seconds. With a spare ready, a reset drops
the app database and renames the spare (a rename costs the same whatever its size); the copy for the next reset is
made after this one has returned.

The copy runs in a process of its own (new session, settings on stdin, nothing on stdout/stderr, so a caller that
captures devenv's output is not kept waiting). It holds the lock "spare" from before it starts until it exits: a
reset waits for that lock before it looks at the spare, so it never takes a half-made one, and two copies never
run at once. A failure is written to spare.log in the stack's state folder (`.devenv/`; a good copy removes it,
and `devenv doctor` shows its last line); the next reset then copies from the template itself.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from devenv.clients.pgwire import PgError, connect, quote_ident, quote_literal
from devenv.core.errors import Busy
from devenv.core.lock import project_lock, try_lock
from devenv.db.copies import create_copy
from devenv.db.marks import spare_mark

APPLICATION_NAME = "devenv-spare"
LOG = "spare.log"
INSUFFICIENT_PRIVILEGE = "42501"
COPY_TIMEOUT = 600.0  # seconds the copy may wait for a reply from Postgres before it gives up


def log_failure(state_dir: Path, what: str, ex: BaseException) -> None:
    with contextlib.suppress(OSError), open(state_dir / LOG, "a", encoding="utf-8") as log:
        log.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {what} failed: {type(ex).__name__}: {ex}\n")


def start(state_dir: Path, settings: dict[str, Any], lock: str = "spare") -> bool:
    """Start making the spare in the background; False when a copy is already being made or it could not start.

    Best effort: the reset that calls this has done its work, so a failure here is logged, not raised. LOCK: the
    lock of this copy (a snapshot's ready copy has its own, see devenv.commands.snapshots).
    """
    fd = try_lock(state_dir, lock)
    if fd is None:
        return False
    from devenv.core import proc

    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        proc.detached(
            # -P: not the user's current folder first on sys.path (a json.py there must not shadow ours).
            [sys.executable, "-P", "-c", "from devenv.db.spare import main; main()"],
            stdin_data=json.dumps({**settings, "log": str(state_dir / LOG)}).encode(),
            cwd=state_dir,
            pass_fds=(fd,),  # the child holds the lock until it exits
        )
    except OSError as ex:
        log_failure(state_dir, "starting the spare copy", ex)
        return False
    finally:
        os.close(fd)
    return True


def wait(
    state_dir: Path, timeout: float = 120.0, on_wait: Callable[[], None] = lambda: None, lock: str = "spare"
) -> None:
    """Wait until no spare is being made (polling every 5 ms; ON_WAIT first when it has to); after TIMEOUT go on."""
    fd = try_lock(state_dir, lock)
    if fd is not None:  # the usual case: nothing running
        os.close(fd)
        return
    on_wait()
    with contextlib.suppress(Busy), project_lock(state_dir, lock, timeout=timeout, poll=0.005):
        pass


def make(settings: dict[str, Any]) -> None:
    """Copy the template into the spare and mark it with the template's key and oid (the mark is written last)."""
    spare = quote_ident(settings["spare"])
    with connect(
        settings["host"],
        settings["port"],
        settings["user"],
        settings["password"],
        settings.get("maintenance_db", "postgres"),
        timeout=settings.get("connect_timeout", 5.0),
        io_timeout=COPY_TIMEOUT,
        application_name=APPLICATION_NAME,
    ) as conn:
        if settings.get("trash"):  # the database the last reset replaced (its drop is off the reset's time)
            conn.execute(f"DROP DATABASE IF EXISTS {quote_ident(settings['trash'])} WITH (FORCE)")
        template_found = conn.database(settings["template"])
        if not template_found or template_found[1] != settings["template_mark"]:
            raise RuntimeError(f"the template {settings['template']!r} is gone or was replaced")
        mark = spare_mark(settings["key"], template_found[0])
        found = conn.database(settings["spare"])
        if found and found[1] == mark:
            return
        if found:
            conn.execute(f"DROP DATABASE {spare} WITH (FORCE)")
        create_copy(conn, settings["spare"], settings["template"], settings["user"])
        conn.execute(f"ALTER DATABASE {spare} WITH ALLOW_CONNECTIONS false")
        try:  # write the copy's pages now: otherwise the checkpoint in the next reset's DROP DATABASE does it
            conn.execute("CHECKPOINT")
        except PgError as ex:
            if ex.sqlstate != INSUFFICIENT_PRIVILEGE:
                raise
        conn.execute(f"COMMENT ON DATABASE {spare} IS {quote_literal(mark)}")


def main() -> None:
    """The background process: settings as JSON on stdin; a failure goes to the log, not to anyone's terminal."""
    settings = json.load(sys.stdin)
    try:
        make(settings)
        Path(settings["log"]).unlink(missing_ok=True)  # the log holds the failures since the last good copy
    except Exception as ex:  # nobody is waiting for this process; the next reset copies from the template itself
        log_failure(Path(settings["log"]).parent, f"making the spare {settings['spare']!r}", ex)
