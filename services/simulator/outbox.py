"""Webhook deliveries waiting to go out, with the late and reordered ones held back (pure).

Times are ``time.monotonic()`` seconds, passed in, so the order logic is testable without waiting.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Delivery:
    url: str
    number: int
    modified: str  # the ModifiedDateUtc in the body: which version of the job this delivery carries
    body: bytes
    due: float = 0.0
    duplicated: bool = False
    late: bool = False
    reordered: bool = False


class Outbox:
    """FIFO of deliveries. A late delivery waits for its due time without blocking the ones behind it;
    a reordered one waits until the next delivery to the same URL has been queued, then goes after it.
    """

    def __init__(self) -> None:
        self._queue: deque[Delivery] = deque()
        self._held: dict[str, list[Delivery]] = {}

    def __len__(self) -> int:
        return len(self._queue) + sum(len(h) for h in self._held.values())

    def put(self, delivery: Delivery, *, hold: bool = False) -> None:
        if hold:
            self._held.setdefault(delivery.url, []).append(delivery)
            return
        self._queue.append(delivery)
        self._queue.extend(self._held.pop(delivery.url, ()))

    def pop_due(self, now: float) -> Delivery | None:
        """The first queued delivery whose time has come, or None."""
        for index, delivery in enumerate(self._queue):
            if delivery.due <= now:
                del self._queue[index]
                return delivery
        return None

    def next_due(self) -> float | None:
        """When the earliest queued delivery falls due (None when the queue is empty)."""
        return min((d.due for d in self._queue), default=None)

    def pop_any(self) -> Delivery | None:
        """For a flush: the next delivery in queue order whatever its due time, then the held ones."""
        if self._queue:
            return self._queue.popleft()
        for url in list(self._held):
            held = self._held[url]
            delivery = held.pop(0)
            if not held:
                del self._held[url]
            return delivery
        return None
