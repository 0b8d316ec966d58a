"""The one error hierarchy of devenv and its exit codes; the CLI is the only place that catches it.

Every error is one line (what ran, what was seen) and a `Hint:` (what to do); `details` (a log tail) is printed
below it. The wire clients (devenv.clients.pgwire, devenv.clients.resp) raise their own protocol errors;
devenv.clients.connectors maps
them into this hierarchy once.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import IntEnum

LOG_TAIL = 30  # lines of a container's or command's output shown under an error
CREDENTIALS_HINT = (
    "the data volume was made with other credentials (a .env written anew gets new passwords): put the "
    "POSTGRES_USER / POSTGRES_PASSWORD / POSTGRES_DB it was made with back in .env; docs/troubleshooting.md "
    "says how to start over instead."
)


def tail(text: str, lines: int = LOG_TAIL) -> str:
    """The last LINES lines of TEXT (what an error shows of a command's output)."""
    return "\n".join(text.strip().splitlines()[-lines:])


class ExitCode(IntEnum):
    """Process exit codes, documented in docs/exit-codes.md."""

    OK = 0
    FAILURE = 1  # a check failed (drift, degraded stack, doctor found a problem)
    USAGE = 2  # bad input: arguments, .env.template, .env, devenv.toml
    ENGINE = 3  # Docker Engine unreachable
    UNHEALTHY = 4  # a service did not become ready, or the stack is not running
    MIGRATION = 5  # prisma migrate / seed failed
    BUILD = 6  # the server image did not build
    DATABASE = 7  # a database command (dump, load) failed; the app database was left as it was
    INTERRUPTED = 130  # Ctrl-C
    PIPE_CLOSED = 141  # stdout closed early (`devenv ... | head`): 128 + SIGPIPE, as a shell reports it


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

    def as_dict(self) -> dict[str, str | int | None]:
        """A JSON-friendly view (for --json output)."""
        return {"error": self.message, "hint": self.hint, "exit_code": int(self.exit_code)}


class UsageError(DevenvError):
    """Bad input from the user: a file, a key, an argument."""

    exit_code = ExitCode.USAGE


class ConfigError(UsageError):
    """A problem in .env.template, .env or devenv.toml; the message names file:line or key."""


class ProjectNotFound(UsageError):
    """No devenv project around the current directory."""


class PortInUse(UsageError):
    """A host port devenv wants to publish is taken."""


class Aborted(DevenvError):
    """The user declined a confirmation."""

    exit_code = ExitCode.USAGE


class ImageUnavailable(UsageError):
    """An image is not present locally and cannot be pulled."""


class NotOurDatabase(UsageError):
    """A database operation refused: the database is not the stack's own."""


class CheckFailed(DevenvError):
    """A --check found drift (`devenv env --check`, `devenv render --check`); nothing was changed."""

    exit_code = ExitCode.FAILURE


class Busy(DevenvError):
    """Another devenv holds the project's lock for too long."""


class EngineUnreachable(DevenvError):
    """The Docker Engine (or compose v2) cannot be reached."""

    exit_code = ExitCode.ENGINE


class ServiceNotReady(DevenvError):
    """A service exited, turned unhealthy or missed its deadline."""

    exit_code = ExitCode.UNHEALTHY


class CredentialsRefused(ServiceNotReady):
    """Postgres or Redis refused the credentials in .env: waiting will not change it."""


class StackNotRunning(DevenvError):
    """The command needs a running stack (or service) and there is none."""

    exit_code = ExitCode.UNHEALTHY


class ServiceUnavailable(StackNotRunning):
    """A service does not answer (yet): not listening, starting up, or the connection dropped."""


class MigrationFailed(DevenvError):
    """prisma migrate deploy (or the seed) exited non-zero."""

    exit_code = ExitCode.MIGRATION


class BuildFailed(DevenvError):
    """The server image did not build."""

    exit_code = ExitCode.BUILD


class CommandFailed(DevenvError):
    """An external command exited non-zero; carries its argv, its exit code and the tail of its output."""

    def __init__(self, argv: Sequence[str], returncode: int, output: str, hint: str | None = None) -> None:
        shown = tail(output)
        last = shown.splitlines()[-1] if shown else "no output"
        super().__init__(f"`{' '.join(argv)}` failed (exit {returncode}): {last}", hint, details=shown or None)
        self.argv = list(argv)
        self.returncode = returncode
        self.output = output


class ComposeFailed(CommandFailed):
    """`docker compose` exited non-zero (argv without compose's global flags)."""

    def __init__(self, argv: Sequence[str], returncode: int, output: str, hint: str | None = None) -> None:
        super().__init__(["docker", "compose", *argv], returncode, output, hint)
        self.argv = list(argv)


class SnapshotNotFound(UsageError):
    """`devenv db restore|rm NAME`: there is no snapshot NAME."""


class SnapshotExists(UsageError):
    """`devenv db snapshot NAME`: NAME is taken (a snapshot is never overwritten)."""


class DatabaseCommandFailed(DevenvError):
    """pg_dump or pg_restore failed; the app database is as it was (a load swaps in only a finished restore)."""

    exit_code = ExitCode.DATABASE
