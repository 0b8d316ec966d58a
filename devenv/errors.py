"""The one error hierarchy of devenv; the CLI is the only place that catches it."""

from __future__ import annotations

from enum import IntEnum

LOG_TAIL = 30  # lines of a container's or command's output shown under an error


def tail(text: str, lines: int = LOG_TAIL) -> str:
    """The last LINES lines of TEXT (what an error shows of a command's output)."""
    return "\n".join(text.strip().splitlines()[-lines:])


class ExitCode(IntEnum):
    """Process exit codes, documented in the README."""

    OK = 0
    FAILURE = 1  # a check failed (drift, degraded stack, doctor found a problem)
    USAGE = 2  # bad input: arguments, .env.template, .env, devenv.toml
    ENGINE = 3  # Docker Engine unreachable
    UNHEALTHY = 4  # a service did not become ready, or the stack is not running
    MIGRATION = 5  # prisma migrate / seed failed
    INTERRUPTED = 130  # Ctrl-C


class DevenvError(Exception):
    """Base of every error devenv reports: a one-line message plus a hint."""

    exit_code: ExitCode = ExitCode.FAILURE

    def __init__(self, message: str, hint: str | None = None, *, details: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.details = details  # e.g. the last log lines; printed below the message

    def render(self) -> str:
        """The message as the CLI prints it: one line, then `Hint: ...`."""
        line = f"Error: {self.message}"
        if self.hint:
            line += f" Hint: {self.hint}"
        return line


class UsageError(DevenvError):
    """Bad input from the user: a file, a key, an argument."""

    exit_code = ExitCode.USAGE


class ConfigError(UsageError):
    """A problem in .env.template, .env or devenv.toml; the message names file:line or key."""


class ProjectNotFound(UsageError):
    """No devenv project around the current directory."""


class EngineUnreachable(DevenvError):
    """The Docker Engine (or compose v2) cannot be reached."""

    exit_code = ExitCode.ENGINE


class ServiceNotReady(DevenvError):
    """A service exited, turned unhealthy or missed its deadline."""

    exit_code = ExitCode.UNHEALTHY


class StackNotRunning(DevenvError):
    """The command needs a running stack and there is none."""

    exit_code = ExitCode.UNHEALTHY


class MigrationFailed(DevenvError):
    """prisma migrate deploy (or the seed) exited non-zero."""

    exit_code = ExitCode.MIGRATION


class PortInUse(UsageError):
    """A host port devenv wants to publish is taken."""


class Aborted(DevenvError):
    """The user declined a confirmation or interrupted."""

    exit_code = ExitCode.USAGE


class CheckFailed(DevenvError):
    """A --check found drift (`devenv env --check`, `devenv render --check`); nothing was changed."""

    exit_code = ExitCode.FAILURE


class ImageUnavailable(UsageError):
    """An image is not present locally and cannot be pulled."""
