"""Typed application keys of the ingress's aiohttp app."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CollectorRegistry

from services.common.settings import KafkaSettings
from services.ingress.handler import WebhookHandler
from services.ingress.metrics import IngressMetrics
from services.ingress.settings import IngressSettings

SETTINGS = web.AppKey("settings", IngressSettings)
KAFKA = web.AppKey("kafka", KafkaSettings)
REGISTRY = web.AppKey("registry", CollectorRegistry)
METRICS = web.AppKey("metrics", IngressMetrics)
HANDLER = web.AppKey("handler", WebhookHandler)
