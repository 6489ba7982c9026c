"""Retry timing for Trio API calls, as pure functions: exponential backoff with full jitter, Retry-After."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

RETRYABLE_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


def is_retryable_status(status: int) -> bool:
    """429 and every 5xx are worth another try; other 4xx will fail the same way again."""
    return status in RETRYABLE_STATUSES or 500 <= status <= 599


def backoff_delay(attempt: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Delay before retry number ``attempt`` (1 = the first retry): uniform in [0, min(cap, base * 2**(attempt-1))].

    Full jitter ("Exponential Backoff And Jitter", AWS architecture blog) spreads the retries of many
    clients so they do not hit a recovering server in lockstep.
    """
    if attempt < 1:
        raise ValueError("attempt counts retries from 1")
    ceiling = min(cap, base * (2 ** min(attempt - 1, 62)))
    return (rng or random).uniform(0, ceiling)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date; None if absent or garbled.

    A date in the past means "now" (0 seconds).
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if text.isdigit():
        return float(int(text))
    try:
        seconds = float(text)  # not RFC 9110, but some servers send "1.5"
    except ValueError:
        pass
    else:
        return seconds if seconds >= 0 else None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def retry_wait(
    attempt: int, retry_after: float | None, base: float, cap: float, rng: random.Random | None = None
) -> float:
    """How long to wait before the next attempt: the server's Retry-After when given, else jittered backoff.

    Retry-After is honoured even above ``cap``: the caller's time budget decides whether to wait that long.
    """
    if retry_after is not None:
        return retry_after
    return backoff_delay(attempt, base, cap, rng)
