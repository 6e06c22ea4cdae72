"""Signed timestamps: read strictly, and checked against one replay window.

Timestamps from requests are read by ``parse_epoch_seconds``, ``parse_rfc3339_seconds``
and ``parse_http_date_seconds`` in every connector that checks one: strictly (ASCII
digits, bounded length, one date form), so that nothing ``int()``, ``fromisoformat`` or
``parsedate`` would also accept (other scripts' digits, signs, underscores, 5000-digit
numbers) reaches the arithmetic. A value they refuse is a malformed timestamp: 401
``missing_signature``.

``ReplayWindow`` is the one policy, for HMAC, Ed25519, ECDSA, RSA and JWT schemes alike:
a connector's ``tolerance_seconds`` when it is set, else the provider's default, which
is always finite — five minutes where the provider signs each attempt afresh, its
documented retry horizon (plus five minutes of clock skew) where a retry carries the
first attempt's signature (SNS: one hour; SendGrid: a day; Dropbox Sign: three days).
A timestamp further in the future than the window (or than the provider's clock skew)
is refused too. A captured delivery replayed inside the window is caught by
deduplication instead.
"""

from __future__ import annotations

import email.utils
import math
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from connectors.errors import SignatureError

MAX_EPOCH_DIGITS = 20  # past the year 5000 in milliseconds; a float holds it
_EPOCH = re.compile(f"[0-9]{{1,{MAX_EPOCH_DIGITS}}}")
_RFC3339 = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}"
                      r"(?:[.,][0-9]{1,9})?(?:[Zz]|[+-][0-9]{2}:?[0-9]{2})?")
_RFC3339_MAX = 40
_HTTP_DATE = re.compile(r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), [0-9]{2} "
                        r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
                        r"[0-9]{4} [0-9]{2}:[0-9]{2}:[0-9]{2} GMT")
CLOCK_SKEW = 300  # seconds a sender's clock may be ahead, or a retry's first attempt behind


@dataclass(frozen=True, slots=True)
class ReplayWindow:
    """How far from now a signed timestamp may be: ``past`` seconds back, ``future``
    seconds ahead (``math.inf``: unbounded, for providers whose clocks say nothing)."""

    past: float
    future: float

    @classmethod
    def of(cls, configured: int | None, default: float, *,
           future: float | None = None) -> ReplayWindow:
        """The connector's ``tolerance_seconds`` when set, else the provider's
        ``default``. Ahead: as far as back, or the provider's clock skew when it names
        one (never more than the window), or unbounded (``PAST_ONLY``)."""
        seconds = default if configured is None else configured
        if future is None:
            return cls(seconds, seconds)
        return cls(seconds, future if future == PAST_ONLY else min(future, seconds))

    def check(self, stamp: float | None, *, now: float | None = None,
              what: str = "timestamp") -> None:
        """Raise ``SignatureError`` (missing_signature for an unreadable ``stamp``,
        stale_timestamp outside the window)."""
        if stamp is None:
            raise SignatureError(f"{what} is missing or malformed", reason="missing_signature")
        age = (time.time() if now is None else now) - stamp
        if age > self.past or -age > self.future:
            raise SignatureError(f"{what} is outside the replay window",
                                 reason="stale_timestamp")


PAST_ONLY = math.inf  # ``future=PAST_ONLY``: only too-old timestamps are refused


def parse_epoch_seconds(text: object, *, milliseconds: bool = False) -> float | None:
    """Epoch seconds (or, with ``milliseconds``, epoch milliseconds) as senders write
    them: 1 to ``MAX_EPOCH_DIGITS`` ASCII digits, nothing else. A sign, a space, a
    fraction, an exponent, ``NaN``, an underscore or digits of another script (all of
    which ``int()`` or ``float()`` would take) give None: a malformed timestamp."""
    if not isinstance(text, str) or not _EPOCH.fullmatch(text):
        return None
    value = int(text)
    return value / 1000 if milliseconds else float(value)


def parse_rfc3339_seconds(text: object) -> float | None:
    """An RFC 3339 date-time (``2026-01-02T03:04:05.678Z``; an offset, or none for UTC;
    up to nanoseconds) as epoch seconds; None for anything else, including the other
    forms ``datetime.fromisoformat`` reads (week dates, any separator, bare dates)."""
    if not isinstance(text, str) or len(text) > _RFC3339_MAX or not _RFC3339.fullmatch(text):
        return None
    try:
        parsed = datetime.fromisoformat(text[:-1] + "+00:00" if text[-1] in "Zz" else text)
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()
    except (ValueError, OverflowError):  # 2026-13-45, offsets of 24 hours, year 1 - 14h
        return None


def parse_http_date_seconds(text: object) -> float | None:
    """An HTTP date in its one current form, IMF-fixdate (RFC 9110: ``Thu, 04 Jan 2024
    18:05:25 GMT``), as epoch seconds; None for anything else, the obsolete RFC 850 and
    asctime forms included."""
    if not isinstance(text, str) or not _HTTP_DATE.fullmatch(text):
        return None
    try:
        return email.utils.parsedate_to_datetime(text).timestamp()
    except (ValueError, TypeError, OverflowError):  # 31 Feb, hour 25
        return None


def epoch_text(value: object) -> str | None:
    """A timestamp found in a JSON body, as text for the parsers: strings as they are,
    integers in decimal; anything else (floats, booleans, objects) is malformed."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None
