"""The ingress's aiohttp application: ``create_app`` wires settings, producer, metrics and routes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from aiohttp import web
from prometheus_client import CollectorRegistry

from services.common.kafka import AsyncProducer, TopicSpec, ensure_topics, standard_topics
from services.common.logs import get_logger
from services.common.metrics import new_registry
from services.common.ops import add_ops_routes
from services.common.settings import KafkaSettings, load
from services.ingress.handler import Publisher, WebhookHandler
from services.ingress.keys import HANDLER, KAFKA, METRICS, REGISTRY, SETTINGS
from services.ingress.metrics import IngressMetrics
from services.ingress.settings import IngressSettings
from services.ingress.views import json_errors, receive_webhook

log = get_logger("services.ingress")


def create_app(
    settings: IngressSettings,
    *,
    kafka: KafkaSettings | None = None,
    producer: Publisher | None = None,
    registry: CollectorRegistry | None = None,
) -> web.Application:
    """The ingress app. Nothing connects here: the producer starts in the app's cleanup context.

    A ``producer`` passed in is started if needed but left running on the way out (its owner stops it);
    one created here is flushed and stopped when the app shuts down.
    """
    kafka = kafka or load(KafkaSettings)
    registry = registry if registry is not None else new_registry()
    publisher: Publisher = producer if producer is not None else AsyncProducer(kafka)
    metrics = IngressMetrics(registry)
    handler = WebhookHandler(settings, kafka, publisher, metrics)

    app = web.Application(middlewares=[json_errors])
    app[SETTINGS] = settings
    app[KAFKA] = kafka
    app[REGISTRY] = registry
    app[METRICS] = metrics
    app[HANDLER] = handler
    app.router.add_post(f"{settings.base_path}/{{secret}}", receive_webhook)

    async def readiness() -> tuple[bool, dict[str, object]]:
        reachable = publisher.started and await asyncio.to_thread(publisher.reachable, 2.0)
        return reachable, {
            "kafka": "reachable" if reachable else "unreachable",
            "queued": publisher.queued(),
            "in_flight": handler.in_flight,
        }

    add_ops_routes(app, registry, readiness)

    async def kafka_producer(app: web.Application) -> AsyncIterator[None]:
        started_here = not publisher.started
        if started_here:
            await publisher.start()
        if kafka.create_topics:
            await _ensure_topics(kafka)
        log.info(
            "ingress_started",
            base_path=settings.base_path,
            destination=handler.destination_topic,
            confirm_mode=settings.confirm_mode,
            signature_required=settings.signature_required,
            allow_list=len(settings.allowed_networks),
            path_secrets=len(settings.path_secrets),
        )
        yield
        # aiohttp has stopped accepting and waited for in-flight requests; flush what is left.
        if producer is None:
            undelivered = await publisher.stop(timeout=max(settings.shutdown_timeout_seconds, 1.0))
            log.info("ingress_stopped", undelivered=undelivered)

    app.cleanup_ctx.append(kafka_producer)
    return app


def ingress_topics(kafka: KafkaSettings) -> list[TopicSpec]:
    """The topics this service writes to."""
    mine = {kafka.events_topic, kafka.hints_topic, kafka.dlq_topic}
    return [spec for spec in standard_topics(kafka) if spec.name in mine]


async def _ensure_topics(kafka: KafkaSettings) -> None:
    try:
        created = await asyncio.to_thread(ensure_topics, kafka, ingress_topics(kafka), 10.0)
    except Exception as exc:  # Kafka down at start must not stop the service: it answers 503 until Kafka returns
        log.warning("topics_not_ensured", error=str(exc), bootstrap_servers=kafka.bootstrap_servers)
        return
    if created:
        log.info("topics_created", topics=created)


def run(settings: IngressSettings, kafka: KafkaSettings) -> None:
    """Serve until SIGTERM/SIGINT: then stop accepting, let in-flight requests finish, flush, exit."""
    log.info("ingress_listening", host=settings.host, port=settings.port)
    web.run_app(
        create_app(settings, kafka=kafka),
        host=settings.host,
        port=settings.port,
        shutdown_timeout=settings.shutdown_timeout_seconds,
        access_log=None,  # aiohttp's access log would print the secret path; views log a redacted line
        print=None,
        handle_signals=True,
    )
