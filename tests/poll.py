"""The one poller of the test suite (tenacity): ask until the answer is good, or fail saying what was seen last."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from tenacity import RetryError, Retrying, retry_if_result, stop_after_delay, wait_fixed

T = TypeVar("T")


def eventually(
    probe: Callable[[], T], until: Callable[[T], bool] = bool, *, timeout: float = 30, interval: float = 0.1
) -> T:
    """Call PROBE every INTERVAL s until UNTIL(answer) holds and return that answer; after TIMEOUT s fail the test
    with the last answer (an exception PROBE raises ends the wait at once)."""
    retrying = Retrying(
        stop=stop_after_delay(timeout), wait=wait_fixed(interval), retry=retry_if_result(lambda got: not until(got))
    )
    try:
        return retrying(probe)
    except RetryError as ex:
        last = ex.last_attempt.result()
        raise AssertionError(f"still not there after {timeout} s; last seen: {last!r}") from None
