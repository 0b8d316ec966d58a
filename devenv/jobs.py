"""One-off jobs in the server image (migrations, the seed): run them, and turn a failure into MigrationFailed."""

from __future__ import annotations

from collections.abc import Sequence

from devenv.errors import MigrationFailed
from devenv.errors import tail as output_tail
from devenv.runtime import Runtime


def run_job(runtime: Runtime, argv: Sequence[str], *, failure: str, hint: str) -> str:
    """Run ARGV in a one-off `migrate` container; on a non-zero exit raise MigrationFailed with the output's tail.

    FAILURE is the message, with {argv} and {code} filled in.
    """
    code, output = runtime.run_oneoff("migrate", list(argv))
    if code != 0:
        raise MigrationFailed(failure.format(argv=" ".join(argv), code=code), hint, details=output_tail(output))
    return output
