"""``jobsync ingress``: run the webhook ingress."""

from __future__ import annotations

import sys

import click

from services.common.errors import ConfigurationError


@click.command("ingress")
@click.option("--host", default=None, help="Listen address (overrides JOBSYNC_INGRESS_HOST).")
@click.option("--port", type=int, default=None, help="Listen port (overrides JOBSYNC_INGRESS_PORT).")
@click.option("--check-config", is_flag=True, help="Validate the configuration, print a summary and exit.")
def cli(host: str | None, port: int | None, check_config: bool) -> None:
    """Receive Trio's 'Job Update' webhooks and publish them to Kafka.

    POST <JOBSYNC_INGRESS_BASE_PATH>/<secret> with the job JSON answers 200 only after Kafka acknowledged
    the event; 503 with Retry-After when Kafka cannot take it. Also serves /healthz, /readyz and /metrics.

    Configured from the environment: JOBSYNC_INGRESS_* (at least JOBSYNC_INGRESS_PATH_SECRETS),
    JOBSYNC_KAFKA_* and JOBSYNC_LOG_*; see services/ingress/README.md for the table.
    SIGTERM stops accepting, lets in-flight requests finish, flushes the producer and exits.
    """
    from services.common.logs import configure_logging
    from services.common.settings import KafkaSettings, LogSettings, load
    from services.ingress.settings import IngressSettings

    overrides = {name: value for name, value in (("host", host), ("port", port)) if value is not None}
    try:
        log_settings = load(LogSettings)
        settings = load(IngressSettings, **overrides)
        kafka = load(KafkaSettings)
    except ConfigurationError as exc:
        click.echo(f"jobsync ingress: {exc}", err=True)
        sys.exit(2)
    if check_config:
        click.echo(
            f"ok: listen {settings.host}:{settings.port}, webhook path {settings.base_path}/<secret> "
            f"({len(settings.path_secrets)} secret(s)), publishing to "
            f"{kafka.hints_topic if settings.confirm_mode else kafka.events_topic} at {kafka.bootstrap_servers}"
        )
        return
    configure_logging(log_settings.format, log_settings.level)
    from services.ingress.app import run

    run(settings, kafka)
