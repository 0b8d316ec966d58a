"""The one place where devenv starts processes (the Engine API's socket, no process, is devenv.engine.api's).

argv is data: every command is built as a list, logged (`DEVENV_DEBUG=1` shows each one on stderr), run, and its
output captured; a failure is a typed CommandFailed carrying argv, exit code and the tail of the output. Besides
`run` there are the other ways devenv starts a process: `interactive` (the user's terminal: psql, logs -f),
`supervised` (a command with its own process group that devenv's signals reach: `devenv run`, `devenv dev`),
`detached` (a background job that outlives the CLI: the reset spare) and `exchange` (one request on a process's
stdin, its whole answer from stdout: the Engine API over `ssh … docker system dial-stdio`).
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, BinaryIO

from devenv.core.errors import CommandFailed, UsageError

GRACE = 10.0  # seconds a supervised command gets to exit after SIGINT/SIGTERM before it is killed


@dataclass(frozen=True)
class Completed:
    """A finished command: what ran, its exit code, its output (stdout then stderr) and how long it took."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def output(self) -> str:
        """stdout and stderr together (what an error shows the tail of)."""
        return self.stdout + self.stderr

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def _log(argv: Sequence[str], cwd: Path | str | None) -> None:
    if os.environ.get("DEVENV_DEBUG"):  # logging is slow to import: only when someone reads it
        import logging
        import shlex

        where = f" (in {cwd})" if cwd else ""
        logging.getLogger("devenv.core.proc").debug("run %s%s", shlex.join(argv), where)


def _not_found(argv: Sequence[str], ex: OSError) -> UsageError:
    return UsageError(
        f"cannot run {argv[0]!r}: {ex.strerror or ex}.", f"install {argv[0]} or check the command's spelling."
    )


def run(
    argv: Sequence[str],
    *,
    cwd: Path | str | None = None,
    env: Mapping[str, str] | None = None,
    input: str | None = None,
    timeout: float | None = None,
    check: bool = False,
    hint: str | None = None,
) -> Completed:
    """Run ARGV to completion with its output captured; with CHECK a non-zero exit raises CommandFailed."""
    _log(argv, cwd)
    t0 = time.perf_counter()
    try:
        done = subprocess.run(
            list(argv),
            cwd=cwd,
            env=dict(env) if env is not None else None,
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL if input is None else None,
        )
    except FileNotFoundError as ex:
        raise _not_found(argv, ex) from ex
    except subprocess.TimeoutExpired as ex:
        out = (ex.stdout or b"").decode(errors="replace") if isinstance(ex.stdout, bytes) else (ex.stdout or "")
        raise CommandFailed(argv, -1, out + f"\n(killed after {timeout:g} s)", hint) from ex
    result = Completed(tuple(argv), done.returncode, done.stdout, done.stderr, time.perf_counter() - t0)
    if check and not result.ok:
        raise CommandFailed(argv, result.returncode, result.output, hint)
    return result


def stream(
    argv: Sequence[str],
    on_line: Callable[[str], None],
    *,
    cwd: Path | str | None = None,
    env: Mapping[str, str] | None = None,
) -> Completed:
    """Run ARGV, handing each line of its combined output to ON_LINE as it comes (e.g. a build's progress)."""
    _log(argv, cwd)
    t0 = time.perf_counter()
    lines: list[str] = []
    try:
        proc = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=dict(env) if env is not None else None,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        )
    except FileNotFoundError as ex:
        raise _not_found(argv, ex) from ex
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            lines.append(line)
            on_line(line.rstrip("\n"))
    finally:
        if proc.poll() is None and sys.exc_info()[0] is not None:
            proc.terminate()
        code = proc.wait()
    return Completed(tuple(argv), code, "".join(lines), "", time.perf_counter() - t0)


def interactive(argv: Sequence[str], *, cwd: Path | str | None = None, env: Mapping[str, str] | None = None) -> int:
    """Run ARGV on the user's terminal (stdin, stdout and stderr inherited) and return its exit code."""
    _log(argv, cwd)
    try:
        return subprocess.run(list(argv), cwd=cwd, env=dict(env) if env is not None else None, check=False).returncode
    except FileNotFoundError as ex:
        raise _not_found(argv, ex) from ex


def supervised(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | str | None = None,
    grace: float = GRACE,
    on_start: Callable[[subprocess.Popen[bytes]], None] | None = None,
    hint: str = "check the command after `--`.",
) -> int:
    """Run ARGV in a process group of its own and return its exit code; nothing of the group outlives it.

    On a terminal the group becomes the foreground job (as a shell does), so Ctrl-C and the keyboard reach the
    command and everything it started, and devenv waits. Off a terminal, SIGINT/SIGTERM sent to devenv (a CI
    runner cancelling the job) are passed on to the whole group, devenv waits up to GRACE seconds, SIGKILLs what
    is left, and raises KeyboardInterrupt so the caller's cleanup runs. When the command ends, what it left
    running in its group (test workers, watchers) is stopped too. ON_START gets the process once it runs; HINT
    is the caller's advice when ARGV cannot start at all.
    """
    _log(argv, cwd)
    try:
        proc = subprocess.Popen(list(argv), env=dict(env) if env is not None else None, cwd=cwd, process_group=0)
    except OSError as ex:
        raise UsageError(f"cannot run {argv[0]!r}: {ex.strerror or ex}.", hint) from ex
    terminal = _foreground(proc.pid)
    received: list[int] = []

    def forward(signum: int, frame: object) -> None:
        _signal_group(proc.pid, signum)
        if not received:  # the first one ends the wait; later ones are only passed on
            received.append(signum)
            raise KeyboardInterrupt(signum)  # the signal's number, for an exit code of 128 + it

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        if on_start is not None:
            on_start(proc)
        code = proc.wait()
        end_group(proc, grace=min(grace, 2.0))
        return code
    except BaseException:  # a signal, or ON_START failed (a deadline, the command died): the group goes too
        if not received:
            _signal_group(proc.pid, signal.SIGTERM)
        end_group(proc, grace)
        raise
    finally:
        if terminal:
            _foreground(os.getpgrp())
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _foreground(pgid: int) -> bool:
    """Make PGID the terminal's foreground process group when stdin is devenv's terminal; False otherwise."""
    try:
        if not os.isatty(0) or os.tcgetpgrp(0) not in {os.getpgrp(), pgid}:
            return False
        old = signal.signal(signal.SIGTTOU, signal.SIG_IGN)  # a background group may not take the terminal
        try:
            os.tcsetpgrp(0, pgid)
        finally:
            signal.signal(signal.SIGTTOU, old)
    except OSError:
        return False
    if pgid != os.getpgrp():
        _signal_group(pgid, signal.SIGCONT)  # it may have read the terminal before it was its own
    return True


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def end_group(proc: subprocess.Popen[bytes], grace: float = GRACE) -> None:
    """Wait up to GRACE seconds for PROC (a group leader) and its group, then SIGKILL whatever is left."""
    from devenv.core.wait import poll_until

    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace)
    if _group_alive(proc.pid):
        if proc.poll() is not None:  # the leader is gone but left its group running: ask them first
            _signal_group(proc.pid, signal.SIGTERM)
            poll_until(lambda: not _group_alive(proc.pid), timeout=min(grace, 2.0), interval=0.02)
        _signal_group(proc.pid, signal.SIGKILL)
    proc.wait()


class Background:
    """A command running beside devenv (`compose watch`), its lines handed to ON_LINE from a thread of its own."""

    def __init__(self, argv: Sequence[str], on_line: Callable[[str], None], *, env: Mapping[str, str] | None) -> None:
        import threading

        _log(argv, None)
        self.argv = tuple(argv)
        self.proc = subprocess.Popen(
            list(argv),
            env=dict(env) if env is not None else None,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            start_new_session=True,  # Ctrl-C is devenv's to handle: it stops this one itself
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, args=(on_line,), name="background", daemon=True)
        self._reader.start()

    def _read(self, on_line: Callable[[str], None]) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)
            on_line(line.rstrip("\n"))

    def running(self) -> bool:
        return self.proc.poll() is None

    def stop(self, grace: float = 5.0) -> int:
        """SIGINT to its group, then (after GRACE s) SIGKILL; its exit code."""
        if self.proc.poll() is None:
            _signal_group(self.proc.pid, signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=grace)
            _signal_group(self.proc.pid, signal.SIGKILL)
        code = self.proc.wait()
        self._reader.join(timeout=grace)
        return code


def detached(argv: Sequence[str], *, stdin_data: bytes, cwd: Path, pass_fds: Sequence[int] = ()) -> None:
    """Start ARGV in a new session that outlives devenv: STDIN_DATA on its stdin, nothing on devenv's stdio.

    A caller capturing devenv's output must never wait for it, and Ctrl-C on the terminal is not for it.
    """
    _log(argv, cwd)
    proc = subprocess.Popen(
        list(argv),
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=cwd,
        start_new_session=True,
        pass_fds=tuple(pass_fds),
    )
    assert proc.stdin is not None
    with proc.stdin:
        proc.stdin.write(stdin_data)


CHUNK = 1 << 20  # bytes handed on at a time by pipe_out / pipe_in


def pipe_out(
    argv: Sequence[str], sink: BinaryIO, on_bytes: Callable[[int], None], *, env: Mapping[str, str] | None = None
) -> Completed:
    """Run ARGV with its stdout written to SINK as it comes (ON_BYTES gets the total so far); stderr is captured
    (in a temporary file, so a chatty stderr cannot stall the stdout pipe)."""
    import tempfile

    _log(argv, None)
    t0 = time.perf_counter()
    with tempfile.TemporaryFile() as errors:
        try:
            proc = subprocess.Popen(
                list(argv), env=dict(env) if env is not None else None, stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=errors,
            )  # fmt: skip
        except FileNotFoundError as ex:
            raise _not_found(argv, ex) from ex
        assert proc.stdout is not None
        total = 0
        try:
            while chunk := proc.stdout.read(CHUNK):
                sink.write(chunk)
                total += len(chunk)
                on_bytes(total)
        finally:
            if proc.poll() is None and sys.exc_info()[0] is not None:
                proc.terminate()
            code = proc.wait()
        errors.seek(0)
        stderr = errors.read().decode(errors="replace")
    return Completed(tuple(argv), code, "", stderr, time.perf_counter() - t0)


def pipe_in(
    argv: Sequence[str], source: BinaryIO, on_bytes: Callable[[int], None], *, env: Mapping[str, str] | None = None
) -> Completed:
    """Run ARGV with SOURCE streamed to its stdin (ON_BYTES gets the total so far); its output is captured."""
    import tempfile

    _log(argv, None)
    t0 = time.perf_counter()
    with tempfile.TemporaryFile() as output:
        try:
            proc = subprocess.Popen(
                list(argv), env=dict(env) if env is not None else None, stdin=subprocess.PIPE,
                stdout=output, stderr=subprocess.STDOUT,
            )  # fmt: skip
        except FileNotFoundError as ex:
            raise _not_found(argv, ex) from ex
        assert proc.stdin is not None
        total = 0
        try:
            with proc.stdin:
                while chunk := source.read(CHUNK):
                    proc.stdin.write(chunk)
                    total += len(chunk)
                    on_bytes(total)
        except BrokenPipeError:
            pass  # it stopped reading (it failed): its exit code and output say why
        finally:
            if proc.poll() is None and sys.exc_info()[0] is not None:
                proc.terminate()
            code = proc.wait()
        output.seek(0)
        text = output.read().decode(errors="replace")
    return Completed(tuple(argv), code, text, "", time.perf_counter() - t0)


@dataclass(frozen=True)
class Exchanged:
    """A finished `exchange`: what ran, its exit code, the bytes it answered on stdout, its stderr, how long."""

    argv: tuple[str, ...]
    returncode: int
    stdout: bytes
    stderr: str
    seconds: float

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def exchange(argv: Sequence[str], data: bytes, *, timeout: float, env: Mapping[str, str] | None = None) -> Exchanged:
    """Start ARGV, write DATA to its stdin and read its stdout to the end; only then close stdin and reap it.

    For a process that relays a connection (`ssh HOST docker system dial-stdio`): the far end closes the connection
    once it has answered, so stdout's end is the answer's end. Closing stdin right after the request (what
    `subprocess.run(input=...)` does) makes the relay close the connection early, and the engine cancels the
    request. The whole exchange is bounded by TIMEOUT seconds; past it the process is killed and CommandFailed
    raised. stderr is read alongside, so a chatty process cannot stall.
    """
    _log(argv, None)
    t0 = time.perf_counter()
    deadline = time.monotonic() + timeout
    try:
        proc = subprocess.Popen(
            list(argv), env=dict(env) if env is not None else None, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
    except FileNotFoundError as ex:
        raise _not_found(argv, ex) from ex
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    out: list[bytes] = []
    err: list[bytes] = []
    try:
        _relay(proc, data, deadline, out, err)
        _close(proc.stdin)
        code = proc.wait(timeout=max(deadline - time.monotonic(), 0.01))
    except (TimeoutError, subprocess.TimeoutExpired) as ex:
        proc.kill()
        proc.wait()
        shown = b"".join(err).decode(errors="replace")
        raise CommandFailed(argv, -1, shown + f"\n(killed after {timeout:g} s)") from ex
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    finally:
        _close(proc.stdin)
        proc.stdout.close()
        proc.stderr.close()
    return Exchanged(tuple(argv), code, b"".join(out), b"".join(err).decode(errors="replace"), time.perf_counter() - t0)


def _relay(proc: subprocess.Popen[bytes], data: bytes, deadline: float, out: list[bytes], err: list[bytes]) -> None:
    """`exchange`'s loop: DATA to PROC's stdin while its stdout goes to OUT and its stderr to ERR, until both end or
    the process is gone; TimeoutError past DEADLINE (a `time.monotonic()`)."""
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    pending = memoryview(data)
    with selectors.DefaultSelector() as sel:
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            os.set_blocking(pipe.fileno(), False)
        sel.register(proc.stdout, selectors.EVENT_READ, out)
        sel.register(proc.stderr, selectors.EVENT_READ, err)
        if pending:
            sel.register(proc.stdin, selectors.EVENT_WRITE)
        exited = _exit_watch(proc.pid)  # a pidfd: readable once the process is gone (Linux)
        if exited is not None:
            sel.register(exited, selectors.EVENT_READ, "exited")
        try:
            while proc.stdout in _readers(sel) or proc.stderr in _readers(sel):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError
                for key, _ in sel.select(left):
                    pending = _on_ready(sel, key, proc, pending)
        finally:
            if exited is not None:
                os.close(exited)


def _on_ready(
    sel: selectors.BaseSelector, key: selectors.SelectorKey, proc: subprocess.Popen[bytes], pending: memoryview
) -> memoryview:
    """One ready end of `exchange`'s relay: write to stdin, read stdout or stderr, or the process's exit; returns
    what is left of the request to write."""
    assert proc.stdin is not None
    if key.data == "exited":
        # gone: what its pipes still hold is read now; a child it left holding them (an ssh master started with
        # debug logging) must not keep us waiting
        sel.unregister(key.fileobj)
        _drain(sel, proc)
        return pending
    if key.fileobj is proc.stdin:
        try:
            pending = pending[os.write(proc.stdin.fileno(), pending) :]
        except BrokenPipeError:
            pending = pending[:0]  # it stopped reading: its exit code and stderr say why
        if not pending:
            sel.unregister(proc.stdin)
        return pending
    chunk = os.read(key.fd, CHUNK)
    if chunk:
        key.data.append(chunk)
        return pending
    sel.unregister(key.fileobj)
    if key.fileobj is proc.stdout:  # the answer is complete: now the request side may end
        if proc.stdin in _writers(sel):
            sel.unregister(proc.stdin)
        _close(proc.stdin)
    return pending


def _exit_watch(pid: int) -> int | None:
    pidfd_open = getattr(os, "pidfd_open", None)
    if pidfd_open is None:
        return None
    try:
        return int(pidfd_open(pid))
    except OSError:
        return None


def _readers(sel: selectors.BaseSelector) -> set[object]:
    return {k.fileobj for k in sel.get_map().values() if k.events & selectors.EVENT_READ and k.data != "exited"}


def _writers(sel: selectors.BaseSelector) -> set[object]:
    return {k.fileobj for k in sel.get_map().values() if k.events & selectors.EVENT_WRITE}


def _drain(sel: selectors.BaseSelector, proc: subprocess.Popen[bytes]) -> None:
    """Read what an exited process left in its stdout and stderr pipes, and stop watching them."""
    for key in list(sel.get_map().values()):
        if key.fileobj is proc.stdin:
            sel.unregister(key.fileobj)
            continue
        while True:
            try:
                chunk = os.read(key.fd, CHUNK)
            except BlockingIOError:
                break  # empty, but held open by someone else
            if not chunk:
                break
            key.data.append(chunk)
        sel.unregister(key.fileobj)


def _close(pipe: IO[bytes] | None) -> None:
    if pipe is not None and not pipe.closed:
        with contextlib.suppress(BrokenPipeError, OSError):
            pipe.close()
