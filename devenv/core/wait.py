"""Every retry policy of devenv, in one place, built on tenacity.

- `wait_for`: a readiness probe with exponential backoff and jitter until a deadline ("not yet" is False and is
  retried; a final state raises at once, so a dead service is reported in the time of one poll, not a timeout).
- `poll_until`: a condition polled at a fixed short interval (a lock, sessions ending, a process group exiting).
- `retry_while`: a call retried while it raises an error the caller calls passing (Postgres' "source in use").

tenacity is imported on first use: the common paths (nothing to wait for) never pay for it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol, TypeVar

from devenv.core.errors import ServiceNotReady

T = TypeVar("T")

# Backoff: start at 20 ms, grow by 1.5x, cap at 100 ms, plus up to 20 ms of jitter.
# The bounds are "start <= 50 ms, cap <= 500 ms"; a low cap keeps us within a poll of the real ready time.
BACKOFF = {"multiplier": 0.02, "exp_base": 1.5, "max": 0.1, "jitter": 0.02}


class Probe(Protocol):
    """Something that can tell whether one service really answers: True ready, False not yet, raise: final."""

    name: str

    def check(self) -> bool: ...


class Cancelled(Exception):
    """Another wait failed first; this one stops quietly."""


def wait_for(
    probe: Probe,
    *,
    timeout: float,
    watch: Callable[[], None] | None = None,
    cancel: threading.Event | None = None,
    sleep: Callable[[float], None] = time.sleep,
    hint: str | None = None,
) -> None:
    """Retry probe.check() with exponential backoff and jitter until it returns True or TIMEOUT passes.

    WATCH runs before every check and raises when the service's container reached a final state.
    """

    def attempt() -> bool:
        if cancel is not None and cancel.is_set():
            raise Cancelled()
        if watch is not None:
            watch()
        return probe.check()

    if attempt() is True:
        return  # ready at the first look (a stack that is already up): no retry machinery to import
    sleep(BACKOFF["multiplier"])  # the first backoff step; tenacity's first attempt comes without one
    from tenacity import RetryError, Retrying, retry_if_result, stop_after_delay, wait_exponential_jitter

    retrying = Retrying(
        stop=stop_after_delay(timeout),
        wait=wait_exponential_jitter(**BACKOFF),
        retry=retry_if_result(lambda ready: ready is not True),
        sleep=sleep,
    )
    try:
        retrying(attempt)
    except RetryError as ex:
        raise ServiceNotReady(
            f"{probe.name} did not answer within {timeout:g} s.",
            hint or f"see `devenv logs {probe.name}`; raise the deadline with --timeout if the machine is slow.",
        ) from ex


def poll_until(condition: Callable[[], bool], *, timeout: float, interval: float) -> bool:
    """Poll CONDITION every INTERVAL seconds until it is true (True) or TIMEOUT passes (False)."""
    if condition():
        return True  # the usual case: importing tenacity would cost more than the wait
    from tenacity import RetryError, Retrying, retry_if_result, stop_after_delay, wait_fixed

    retrying = Retrying(
        stop=stop_after_delay(timeout), wait=wait_fixed(interval), retry=retry_if_result(lambda ok: not ok)
    )
    try:
        return bool(retrying(condition))
    except RetryError:
        return False


def retry_while(
    call: Callable[[], T], passing: Callable[[BaseException], bool], *, timeout: float, interval: float
) -> T:
    """Call CALL; while it raises an error PASSING says will go away, call again every INTERVAL s up to TIMEOUT."""
    from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_fixed

    retrying = Retrying(
        stop=stop_after_delay(timeout), wait=wait_fixed(interval), retry=retry_if_exception(passing), reraise=True
    )
    return retrying(call)
