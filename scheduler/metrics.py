"""Prometheus metrics. Counts of deliveries come from the outbox itself at scrape time (so every
replica reports the same truth); lateness, errors and feed requests are counted as they happen.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Engine, func
from sqlmodel import Session, select

from scheduler.store import rsvp
from scheduler.store.models import Delivery

REGISTRY = CollectorRegistry()
LATENESS = Histogram(
    "coalition_send_lateness_seconds", "How long after its due time a message was sent",
    ["channel"], buckets=(1, 5, 15, 30, 60, 120, 300, 900, 1800, 3600), registry=REGISTRY)
SEND_ERRORS = Counter(
    "coalition_send_errors_total", "Failed attempts to send, by channel and whether final",
    ["channel", "kind"], registry=REGISTRY)
FEED_REQUESTS = Counter(
    "coalition_feed_requests_total", "Requests for .ics feeds, by HTTP status",
    ["status"], registry=REGISTRY)


class OutboxCollector(Collector):
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily("coalition_deliveries", "Deliveries in the outbox",
                                   labels=["status", "channel"])
        with Session(self.engine) as session:
            rows = session.exec(select(Delivery.status, Delivery.channel, func.count())
                                .group_by(Delivery.status, Delivery.channel)).all()
        for status, channel, count in rows:
            family.add_metric([status, channel], count)
        yield family
        answers = GaugeMetricFamily("coalition_rsvp_answers", "Members' answers for occurrences "
                                    "(yes: I'll be there, no: can't make it), by call",
                                    labels=["call", "answer"])
        with Session(self.engine) as session:
            for slug, answer, count in rsvp.counts(session):
                answers.add_metric([slug, answer], count)
        yield answers


def exposition(engine: Engine | None) -> bytes:
    """The metrics in Prometheus's text format: the counters, and the outbox of `engine`."""
    text = generate_latest(REGISTRY)
    if engine is not None:
        outbox = CollectorRegistry()
        outbox.register(OutboxCollector(engine))
        text += generate_latest(outbox)
    return text
