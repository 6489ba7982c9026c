"""``jobsync ops status`` and ``jobsync ops drift``: what the running system says, and whether the view agrees
with Trio right now."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import click

from services.common.settings import MongoSettings, load
from services.operator.drift import DriftReport, compare_with_listing
from services.operator.status import Endpoints, collect, render


@click.command()
@click.option("--ingress", default="http://127.0.0.1:8080", show_default=True, help="Ingress base URL.")
@click.option("--poller", default="http://127.0.0.1:8082", show_default=True, help="Poller ops URL.")
@click.option("--projector", default="http://127.0.0.1:8083", show_default=True, help="Projector ops URL.")
def status(ingress: str, poller: str, projector: str) -> None:
    """The numbers of the live screen, once, from the running services' /metrics; exit 1 if one is down."""
    current = collect(Endpoints(ingress, poller, projector))
    click.echo(render(current))
    sys.exit(0 if all(current.up.values()) else 1)


async def _view(mongo: MongoSettings, collection: str) -> dict[int, dict[str, Any]]:
    from pymongo import AsyncMongoClient

    client: AsyncMongoClient = AsyncMongoClient(mongo.uri, serverSelectionTimeoutMS=10_000)
    try:
        view: dict[int, dict[str, Any]] = {}
        async for doc in client[mongo.database][collection].find({}, {"job_json": 1, "status": 1}):
            job = json.loads(doc["job_json"])
            job["JobStatus"] = doc.get("status", job.get("JobStatus"))  # the view's status, inferred closures too
            view[doc["_id"]] = job
        return view
    finally:
        await client.close()


async def _listing() -> list[Any]:
    from services.poller.client import TrioClient
    from services.poller.settings import PollerSettings

    settings = load(PollerSettings)
    async with TrioClient.from_settings(settings) as client:
        return await client.list_jobs()


@click.command()
@click.option("--collection", default="jobs", show_default=True, help="Collection of the job view.")
@click.option("--show", default=20, show_default=True, help="How many job numbers to print per kind of drift.")
def drift(collection: str, show: int) -> None:
    """Compare the view with a fresh full listing from Trio (JOBSYNC_POLLER_BASE_URL / _API_KEY).

    Prints missing, extra and mismatched jobs by field; exit status 0 when they agree, 1 when they do not.
    Jobs that change while it runs show as drift: run it again, or on a quiet system.
    """
    listing = {job["Number"]: job for job in asyncio.run(_listing())}
    view = asyncio.run(_view(load(MongoSettings), collection))
    report: DriftReport = compare_with_listing(view, listing)
    click.echo(report.summary())
    if report.missing:
        click.echo(f"missing (listed by Trio, not open in the view): {report.missing[:show]}")
    if report.extra:
        click.echo(f"extra (open in the view, not listed by Trio): {report.extra[:show]}")
    for number, fields in list(report.mismatched.items())[:show]:
        click.echo(f"mismatched {number}: {', '.join(fields)}")
    sys.exit(0 if report.agrees else 1)
