"""Small helpers for tests against the real Kafka broker."""

from __future__ import annotations

import time
import uuid

from confluent_kafka import Consumer, Message

from services.common.kafka import base_config
from services.common.settings import KafkaSettings


def consume(settings: KafkaSettings, topic: str, expected: int, timeout: float = 30.0) -> list[Message]:
    """Read ``topic`` from the beginning until ``expected`` messages arrived or ``timeout`` passed.

    Returns what arrived (possibly fewer, or more if more were there by the time it stopped);
    the caller asserts on it.
    """
    consumer = Consumer(
        {
            **base_config(settings),
            "group.id": f"test-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    found: list[Message] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and len(found) < expected:
            msg = consumer.poll(0.2)
            if msg is None or msg.error():
                continue
            found.append(msg)
        # A short grace period so a test that expects N sees an N+1th (e.g. a duplicate) too.
        grace = time.monotonic() + 0.5
        while time.monotonic() < grace:
            msg = consumer.poll(0.1)
            if msg is not None and not msg.error():
                found.append(msg)
    finally:
        consumer.close()
    return found
