"""Values read from a source's answers: its JSON, and cursor values that compare as
numbers when they are numbers and can always be saved."""

from __future__ import annotations

from typing import Any

import httpx

from connectors.errors import PollError


def json_body(response: httpx.Response) -> Any:
    """The answer's JSON; PollError when it cannot be parsed (not JSON, too deep)."""
    try:
        return response.json()
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError
        raise PollError(f"the source answered HTTP {response.status_code} with a body that "
                        f"is not usable JSON ({type(exc).__name__})") from None


def number(value: Any) -> int | float | None:
    """A JSON number, or the decimal text ``scalar`` saved for a too large integer."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value
    if isinstance(value, str) and value.lstrip("-").isdigit() and value.isascii():
        try:
            return int(value)
        except ValueError:  # past int's string conversion limit
            return None
    return None


def later(value: Any, since: Any) -> bool:
    """Whether an incremental field's value moves the cursor past ``since``: numbers
    compare as numbers (10 is after 9), anything else as text."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return False
    if since is None:
        return True
    if not isinstance(value, str) and (floor := number(since)) is not None:
        return value > floor
    return str(value) > str(since)


def scalar(value: Any) -> str | int | float | None:
    """A cursor value that can be saved: text, a 64-bit integer or a float; a larger
    integer as its decimal text; None for anything else (objects, lists, booleans)."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    if isinstance(value, int) and not -(2**63) <= value < 2**64:
        return str(value)
    return value
