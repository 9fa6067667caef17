"""One retry policy for every call to a service that may fail for a while: the model APIs and
the literature APIs. The loop itself is tenacity's.

The delay before retry n (1-based) is min(max_delay_s, base_delay_s * 2**(n-1)), scaled by a
random factor in [0.5, 1] so that parallel callers do not retry in step; a wait the server asks
for (retry-after-ms, or retry-after in seconds or as an HTTP date) replaces it, shortened to
max_retry_after_s when that is set. No attempt waits longer than call_timeout_s, and retrying
stops once the next wait would pass total_timeout_s since the first attempt.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

import tenacity

T = TypeVar("T")

LONG_WAIT_S = 2.0  # a wait at least this long is announced on screen


class RetryableError(Exception):
    """One attempt failed in a way that waiting may fix."""

    def __init__(self, status: str, reason: str, retry_after: float | None = None):
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.retry_after = retry_after


class RetriesExhausted(Exception):
    """Every attempt allowed failed; `error` is the last one."""

    def __init__(self, error: RetryableError, attempts: int, elapsed_s: float):
        super().__init__(error.reason)
        self.error = error
        self.attempts = attempts
        self.elapsed_s = elapsed_s


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 6
    base_delay_s: float = 1.0
    max_delay_s: float = 30.0
    call_timeout_s: float = 120.0
    total_timeout_s: float = 300.0
    max_retry_after_s: float | None = None
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False, repr=False)

    def backoff(self, attempt: int) -> float:
        delay = min(self.max_delay_s, self.base_delay_s * 2 ** (attempt - 1))
        return delay * random.uniform(0.5, 1.0)

    def delay(self, error: RetryableError, attempt: int) -> float:
        if error.retry_after is not None:
            return min(error.retry_after, self.max_retry_after_s or error.retry_after)
        return self.backoff(attempt)

    def run(
        self,
        attempt: Callable[[float], T],
        on_wait: Callable[[RetryableError, int, float], None] | None = None,
    ) -> T:
        """`attempt(timeout_s)` until it returns, retrying on RetryableError. `on_wait(error,
        attempt_number, delay_s)` is told before each wait. Raises RetriesExhausted when the
        attempts or the time run out; any other exception passes through at once."""
        started = time.monotonic()
        deadline = started + self.total_timeout_s
        attempts = 0

        def one_attempt() -> T:
            nonlocal attempts
            attempts += 1
            return attempt(max(0.1, min(self.call_timeout_s, deadline - time.monotonic())))

        def before_sleep(state: tenacity.RetryCallState) -> None:
            if on_wait is not None:
                on_wait(state.outcome.exception(), state.attempt_number, state.upcoming_sleep)

        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(RetryableError),
            stop=tenacity.stop_after_attempt(self.max_attempts)
            | tenacity.stop_before_delay(self.total_timeout_s),
            wait=lambda state: self.delay(state.outcome.exception(), state.attempt_number),
            sleep=self.sleep,
            before_sleep=before_sleep,
            reraise=True,
        )
        try:
            return retrying(one_attempt)
        except RetryableError as error:
            raise RetriesExhausted(error, attempts, time.monotonic() - started) from None


def retry_after_seconds(headers: Any) -> float | None:
    """The server's requested wait: retry-after-ms, or retry-after in seconds or as a date."""
    if headers is None:
        return None
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None
