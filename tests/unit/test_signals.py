"""SIGINT reaches devenv however it was started: a shell without job control starts background commands with SIGINT
ignored, and devenv must still stop on `kill -INT` (a CI runner cancelling, a test)."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap


def test_devenv_takes_sigint_even_when_started_with_it_ignored() -> None:
    probe = textwrap.dedent(
        """
        import signal, sys
        from devenv.cli import main as cli
        cli._interruptible()
        print(signal.getsignal(signal.SIGINT) is signal.default_int_handler)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),  # what `cmd &` without job control does
        timeout=30,
    )
    assert done.stdout.strip() == "True", done.stderr


def test_a_handler_someone_installed_is_left_alone() -> None:
    from devenv.cli import main as cli

    def mine(signum: int, frame: object) -> None:
        pass

    previous = signal.signal(signal.SIGINT, mine)
    try:
        cli._interruptible()
        assert signal.getsignal(signal.SIGINT) is mine
    finally:
        signal.signal(signal.SIGINT, previous)
