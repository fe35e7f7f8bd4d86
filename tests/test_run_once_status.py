"""`coalition run-once` tells cron and systemd timers what became of its pass: 0 all sent (or
nothing due), 1 something failed for good, 75 (EX_TEMPFAIL) something waits for a retry."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import time_machine

from tests.conftest import Ran, SmtpSink, use_smtp

Coalition = Callable[..., Ran]
ANNOUNCE = "2019-03-05T15:00:00Z"  # ada's and bea's emails and the forum post are due
REFUSED = "550 5.1.1 no such mailbox"
BUSY = "451 4.3.2 try again later"


@pytest.fixture
def members(organizer: Callable[[str], Coalition], smtp_sink: tuple[SmtpSink, int]) -> Coalition:
    with time_machine.travel("2019-03-01T12:00:00Z", tick=False):
        coalition = organizer("reminders")
    use_smtp(Path(coalition.config), smtp_sink[1])  # type: ignore[attr-defined]
    return coalition


@pytest.mark.parametrize(("refuse", "status"), [
    pytest.param({}, 0, id="all-sent"),
    pytest.param({"ada@example.org": REFUSED}, 1, id="one-failed-for-good"),
    pytest.param({"ada@example.org": BUSY}, 75, id="one-to-retry"),
    pytest.param({"ada@example.org": REFUSED, "bea@example.org": BUSY}, 1,
                 id="failed-and-to-retry"),
])
def test_run_once_exit_status_says_what_became_of_the_pass(
        members: Coalition, smtp_sink: tuple[SmtpSink, int], refuse: dict[str, str],
        status: int) -> None:
    smtp_sink[0].refuse = refuse
    ran = members("run-once", "--now", ANNOUNCE)
    assert ran.exit_code == status
    if status:
        failed, waiting = sum(a.startswith("5") for a in refuse.values()), \
            sum(a.startswith("4") for a in refuse.values())
        assert ran.stderr == (f"error: {failed} deliveries failed for good, {waiting} will be "
                              "retried; see `coalition deliveries`\n")
    else:
        assert ran.stderr == "" and "sent: 3 sent" in ran.stdout


def test_run_once_exits_0_when_nothing_is_due(members: Coalition) -> None:
    ran = members("run-once", "--now", "2019-03-05T14:00:00Z")
    assert ran.exit_code == 0 and "none due" in ran.stdout


def test_a_failure_counts_in_the_pass_it_happened_in_only(
        members: Coalition, smtp_sink: tuple[SmtpSink, int]) -> None:
    """The next pass has nothing to do with the old failure: cron hears of it once."""
    smtp_sink[0].refuse = {"ada@example.org": REFUSED}
    assert members("run-once", "--now", ANNOUNCE).exit_code == 1
    assert members("run-once", "--now", "2019-03-05T15:30:00Z").exit_code == 0


def test_run_once_help_gives_the_meaning_of_each_exit_status(members: Coalition) -> None:
    text = " ".join(members("run-once", "--help").stdout.split())
    for meaning in ("0 when every delivery due was sent, or none was due",
                    "1 when at least one failed for good in this pass",
                    "75 (EX_TEMPFAIL) when none failed for good but some failed for now and "
                    "will be retried", "2 for bad input or configuration"):
        assert meaning in text
