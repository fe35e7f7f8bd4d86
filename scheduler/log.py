"""Logging set-up, called once by cli.py; library modules only call logging.getLogger.

No log line carries a secret link: `RedactTokens`, on every handler `setup` leaves, replaces
the token in /confirm/<token>, /unsubscribe/<token> and /manage/<token>, and any query value
that looks like a token, with "[redacted]" (in the message, its arguments and tracebacks).
"""

from __future__ import annotations

import logging
import re

REDACTED = "[redacted]"
# /confirm/<token>: everything up to the next slash, white space, query, fragment or quote.
TOKEN_PATH = re.compile(r"(/(?:confirm|unsubscribe|manage)/)[^/\s?#\"'<>]+")
# ?token=... (and key=, secret=, signature=, sig=, code=, ...token=), whatever the value looks
# like; and any other query value of 16 or more letters, digits, "-", "_", "." or "~" (a token
# by its looks: no zone, language or date is like that).
SECRET_QUERY = re.compile(
    r"([?&](?:[\w.-]*token|key|secret|signature|sig|code|password)=)[^&\s#\"'<>]+",
    re.IGNORECASE)
TOKEN_QUERY = re.compile(r"([?&][^=&\s#\"'<>]+=)[\w.~-]{16,}(?=$|[&\s#\"'<>])")


def redact(text: str) -> str:
    """`text` with every token-looking part of a URL replaced by "[redacted]"."""
    text = TOKEN_PATH.sub(rf"\g<1>{REDACTED}", text)
    text = SECRET_QUERY.sub(rf"\g<1>{REDACTED}", text)
    return TOKEN_QUERY.sub(rf"\g<1>{REDACTED}", text)


class RedactTokens(logging.Filter):
    """Rewrites a record so that what its handler writes holds no token: the message is
    formatted with its arguments and redacted, and so is the traceback, if any."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def setup(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RedactTokens) for f in handler.filters):
            handler.addFilter(RedactTokens())


def for_daemon() -> None:
    """A daemon tells what it does (every delivery's state change); its timer stays quiet."""
    logging.getLogger().setLevel(logging.INFO)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
