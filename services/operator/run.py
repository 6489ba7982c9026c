"""``make run``: the whole system on this machine, with the Trio simulator as the default upstream.

Every piece can be pointed elsewhere with the usual settings: ``JOBSYNC_KAFKA_BOOTSTRAP_SERVERS`` and
``JOBSYNC_MONGODB_URI`` use existing servers instead of starting local ones; ``JOBSYNC_POLLER_BASE_URL``
with ``JOBSYNC_POLLER_API_KEY`` polls a real Trio tenant instead of the simulator.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import click

from services.common.kafka import ensure_topics, standard_topics
from services.common.settings import KafkaSettings, load
from services.localinfra.servers import InfraError, LocalServer, data_root, default_servers
from services.operator.processes import ProcessError
from services.operator.stack import Stack, StackConfig
from services.operator.status import Endpoints, collect, render


def _prometheus_command(config: StackConfig, root: Path) -> list[str] | None:
    """A local Prometheus scraping the three services, when Debian's prometheus package is installed."""
    binary = shutil.which("prometheus")
    if binary is None:
        return None
    folder = root / "prometheus"
    folder.mkdir(parents=True, exist_ok=True)
    targets = {"ingress": config.ingress_url, "poller": config.poller_url, "projector": config.projector_url}
    jobs = "\n".join(
        f"  - job_name: {name}\n    static_configs:\n      - targets: ['{url.removeprefix('http://')}']"
        for name, url in targets.items()
    )
    rules = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "alerts.yml"
    rule_files = f"rule_files:\n  - {rules}\n" if rules.exists() else ""
    (folder / "prometheus.yml").write_text(f"global:\n  scrape_interval: 5s\n{rule_files}scrape_configs:\n{jobs}\n")
    return [
        binary, f"--config.file={folder / 'prometheus.yml'}", f"--storage.tsdb.path={folder / 'data'}",
        f"--web.listen-address=127.0.0.1:{_prometheus_port()}",
    ]


def _prometheus_port() -> str:
    return os.environ.get("JOBSYNC_RUN_PROMETHEUS_PORT", "9090")


@click.command()
@click.option("--jobs", type=int, default=int(os.environ.get("JOBSYNC_RUN_JOBS", "2000")), show_default=True,
              help="Jobs the simulator starts with [env JOBSYNC_RUN_JOBS].")
@click.option("--rate", type=float, default=float(os.environ.get("JOBSYNC_RUN_RATE", "2")), show_default=True,
              help="Simulator changes per second [env JOBSYNC_RUN_RATE].")
@click.option("--seed", type=int, default=int(os.environ.get("JOBSYNC_RUN_SEED", "1")), show_default=True,
              help="Simulator seed [env JOBSYNC_RUN_SEED].")
@click.option("--faults", default=os.environ.get("JOBSYNC_RUN_FAULTS", ""), show_default=True,
              help='Simulator faults, e.g. "drop_webhook=0.05,rate_limit=0.05" [env JOBSYNC_RUN_FAULTS].')
@click.option("--once", is_flag=True, help="Start, print one status screen after --settle seconds, stop.")
@click.option("--settle", type=float, default=20.0, show_default=True, help="Seconds to wait with --once.")
def cli(jobs: int, rate: float, seed: int, faults: str, once: bool, settle: float) -> None:
    """Run Kafka, FerretDB, the simulator, the ingress, the poller and the projector, and show live status."""
    root = data_root() / "run"
    log_dir = root / "logs"
    started_servers: list[LocalServer] = []
    kafka_address = os.environ.get("JOBSYNC_KAFKA_BOOTSTRAP_SERVERS")
    mongo_uri = os.environ.get("JOBSYNC_MONGODB_URI")
    kafka_server, ferret_server = default_servers()
    try:
        if not kafka_address:
            if kafka_server.pid() is None:
                started_servers.append(kafka_server)
            kafka_server.start()
            kafka_address = kafka_server.bootstrap
        if not mongo_uri:
            if ferret_server.pid() is None:
                started_servers.append(ferret_server)
            ferret_server.start()
            mongo_uri = ferret_server.uri
    except InfraError as exc:
        raise click.ClickException(str(exc)) from exc

    trio_url = os.environ.get("JOBSYNC_POLLER_BASE_URL")
    config = StackConfig(
        kafka_bootstrap=kafka_address,
        mongo_uri=mongo_uri,
        log_dir=log_dir,
        mongo_database=os.environ.get("JOBSYNC_MONGODB_DATABASE", "trio_jobsync"),
        topic_prefix=os.environ.get("JOBSYNC_KAFKA_TOPIC_PREFIX", "trio"),
        partitions=int(os.environ.get("JOBSYNC_KAFKA_PARTITIONS", "6")),
        trio_base_url=trio_url,
        trio_api_key=os.environ.get("JOBSYNC_POLLER_API_KEY", "dev-key"),
        simulator_jobs=jobs,
        simulator_rate=rate,
        simulator_seed=seed,
        simulator_faults=faults,
        incremental_interval_s=float(os.environ.get("JOBSYNC_POLLER_INCREMENTAL_INTERVAL_S", "60")),
        full_interval_s=float(os.environ.get("JOBSYNC_POLLER_FULL_INTERVAL_S", "600")),
        simulator_port=int(os.environ.get("JOBSYNC_SIMULATOR_PORT", "8070")),
        ingress_port=int(os.environ.get("JOBSYNC_INGRESS_PORT", "8080")),
        poller_port=int(os.environ.get("JOBSYNC_POLLER_OPS_PORT", "8082")),
        projector_port=int(os.environ.get("JOBSYNC_PROJECTOR_OPS_PORT", "8083")),
    )
    kafka_settings = load(
        KafkaSettings, bootstrap_servers=config.kafka_bootstrap, topic_prefix=config.topic_prefix,
        partitions=config.partitions,
    )
    ensure_topics(kafka_settings, standard_topics(kafka_settings))
    stack = Stack(config)
    prometheus = _prometheus_command(config, root)
    prometheus_process: subprocess.Popen | None = None
    stopping = False
    failed = False

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        click.echo("starting the services (logs in " + str(log_dir) + ") ...")
        stack.start_all()
        if prometheus is not None:
            log_dir.mkdir(parents=True, exist_ok=True)
            prometheus_process = subprocess.Popen(
                prometheus, stdout=(log_dir / "prometheus.log").open("ab"), stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        click.echo(_where(config, prometheus is not None))
        endpoints = Endpoints(config.ingress_url, config.poller_url, config.projector_url)
        previous = None
        deadline = time.monotonic() + settle
        while not stopping:
            if once and time.monotonic() < deadline:
                time.sleep(0.5)
                continue
            current = collect(endpoints)
            screen = render(current, previous)
            previous = current
            if once:
                click.echo(screen)
                break
            click.echo("\x1b[2J\x1b[H" + _where(config, prometheus is not None, short=True) + "\n\n" + screen
                       + "\n\nCtrl-C stops everything.")
            for _ in range(20):
                if stopping:
                    break
                time.sleep(0.1)
    except ProcessError as exc:
        click.echo(f"error: {exc}", err=True)
        failed = True
    finally:
        click.echo("\nstopping ...")
        if prometheus_process is not None:
            prometheus_process.terminate()
            prometheus_process.wait(10)
        stack.stop_all()
        for server in reversed(started_servers):
            server.stop()
        click.echo("stopped.")
    if failed:
        sys.exit(1)


def _where(config: StackConfig, prometheus: bool, *, short: bool = False) -> str:
    upstream = f"simulator {config.simulator_url} (X-API-KEY {config.trio_api_key})" if config.uses_simulator \
        else f"Trio {config.base_url}"
    lines = [
        f"upstream        {upstream}",
        f"webhook URL     {config.webhook_url}",
        f"ingress         {config.ingress_url}   metrics {config.ingress_url}/metrics",
        f"poller          {config.poller_url}   metrics {config.poller_url}/metrics   admin token {config.admin_token}",
        f"projector       {config.projector_url}   metrics {config.projector_url}/metrics",
        f"kafka           {config.kafka_bootstrap}   topics {config.topic_prefix}.jobs.{{events,state,dlq}}",
        f"mongodb         {config.mongo_uri}   database {config.mongo_database}, collection jobs",
    ]
    if prometheus:
        lines.append(f"prometheus      http://127.0.0.1:{_prometheus_port()}")
    if not short:
        lines.append("stop            Ctrl-C (stops every process this command started)")
    return "\n".join(lines)
