"""Prometheus metrics of the API process."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

REQUESTS = Counter("refunds_http_requests_total", "HTTP requests", ["method", "route", "status"])
LATENCY = Histogram("refunds_http_request_seconds", "HTTP request latency", ["method", "route"])
WEBHOOKS = Counter("refunds_webhooks_total", "Gateway webhooks", ["gateway", "outcome"])
