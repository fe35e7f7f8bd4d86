"""GET /healthz and GET /metrics: what an operator's monitoring reads."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx
from sqlalchemy import create_engine
from starlette.testclient import TestClient

from scheduler import config, db
from scheduler.web import create_app
from tests.conftest import Ran
from tests.daemon_process import start, stop

Coalition = Callable[..., Ran]
PASSED = datetime(2019, 3, 5, 15, tzinfo=UTC)


def app_for(coalition: Coalition, alive: bool = True) -> TestClient:
    settings = config.load(Path(coalition.config))  # type: ignore[attr-defined]
    engine = db.open_database(settings.database_url())
    return TestClient(create_app(settings, engine,
                                 health=lambda: {"alive": alive, "last_pass": PASSED}))


def test_healthy_service_says_so(coalition: Coalition) -> None:
    response = app_for(coalition).get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"database": "ok", "scheduler": "alive",
                               "last_pass": "2019-03-05T15:00:00+00:00"}


def test_stopped_scheduler_is_unhealthy(coalition: Coalition) -> None:
    response = app_for(coalition, alive=False).get("/healthz")
    assert response.status_code == 503 and response.json()["scheduler"] == "stopped"


def test_unreachable_database_is_unhealthy(coalition: Coalition) -> None:
    settings = config.load(Path(coalition.config))  # type: ignore[attr-defined]
    engine = create_engine("postgresql+psycopg://postgres@127.0.0.1:9/none")
    client = TestClient(create_app(settings, engine,
                                   health=lambda: {"alive": True, "last_pass": None}))
    response = client.get("/healthz")
    assert response.status_code == 503 and response.json()["database"].startswith("error:")


def metric(text: str, name: str, **labels: str) -> float:
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        match = re.fullmatch(rf"{name}\{{(.*)\}} (\S+)", line)
        if match and ",".join(sorted(match[1].split(","))) == wanted:
            return float(match[2])
    return 0.0


def test_metrics_count_deliveries_lateness_errors_and_feed_requests(
    organizer: Callable[[str], Coalition],
) -> None:
    members = organizer("reminders")
    client = app_for(members)
    assert members("run-once", "--now", "2019-03-05T14:59:00Z").exit_code == 0  # queues
    before = client.get("/metrics").text
    assert metric(before, "coalition_deliveries", status="pending", channel="email") == 2
    assert members("run-once", "--now", "2019-03-05T15:02:00Z").exit_code == 0  # 2 min late
    client.get("/calendars/justice-for-all-coalition-call.ics")
    client.get("/calendars/nothing-here.ics")
    after = client.get("/metrics").text
    assert metric(after, "coalition_deliveries", status="sent", channel="email") == 2
    assert metric(after, "coalition_deliveries", status="pending", channel="email") == 0
    # run-once ran in this process: its two emails were two minutes late
    assert metric(after, "coalition_send_lateness_seconds_bucket", channel="email",
                  le="120.0") - metric(before, "coalition_send_lateness_seconds_bucket",
                                       channel="email", le="120.0") == 2
    for status in ("200", "404"):
        assert metric(after, "coalition_feed_requests_total", status=status) - metric(
            before, "coalition_feed_requests_total", status=status) == 1


def test_daemon_serves_health_and_metrics(coalition: Coalition) -> None:
    process = start(Path(coalition.config))  # type: ignore[attr-defined]
    try:
        ready = next(line for line in process.log if line.startswith("ready:"))
        url = ready.split()[3].rstrip("/")
        health = httpx.get(url + "/healthz")
        assert health.status_code == 200 and health.json()["scheduler"] == "alive"
        assert "coalition_feed_requests_total" in httpx.get(url + "/metrics").text
    finally:
        assert stop(process) == 0
