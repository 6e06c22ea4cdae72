"""The poller kind: its schedule options and the whole surface ``gateway.polling`` uses.

    open_http()          -> PollHttp: this poller's timeout, pace and retries (closed by
                            the caller with ``aclose``)
    poll(http, cursor)   -> Page: events, the cursor to save with them, whether more wait
    next_delay()         -> seconds to the next scheduled poll, never below
                            ``min_interval``, the floor the source asked for
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, TypeVar

from cronsim import CronSim, CronSimError
from pydantic import Field, field_validator, model_validator

from connectors.base import Connector, Kind
from connectors.options import ConnectorConfig
from connectors.polling.http import PollHttp
from connectors.polling.origins import Origin, check_origin
from connectors.polling.pagination import Cursor


@dataclass(slots=True)
class Polled:
    id: str  # stable per record: the event id is derived from it
    type: str
    payload: dict[str, Any]
    timestamp: datetime | None = None
    key: str | None = None  # the Kafka record key (default: the connector id)


@dataclass(slots=True)
class Page:
    events: list[Polled]
    state: Cursor  # saved in the same transaction as the events
    more: bool = False  # another page is waiting: poll again at once


class PollSchedule(ConnectorConfig):
    interval_seconds: float | None = Field(default=None, gt=0)
    cron: str | None = None
    requests_per_second: float | None = Field(default=None, gt=0)
    burst: int = Field(default=1, ge=1)  # requests that may go at once before the pacing
    timeout_seconds: float = Field(default=10.0, gt=0)
    max_retries: int = Field(default=5, ge=0)
    # Origins ("https://cdn.example.com") that next links and redirects may lead to; they
    # are requested without any credentials. Any other origin is refused.
    allowed_origins: list[str] = Field(default_factory=list)

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, values: list[str]) -> list[str]:
        for value in values:
            check_origin(value)
        return values

    @property
    def origins(self) -> frozenset[Origin]:
        """``allowed_origins``, parsed."""
        return frozenset(Origin.of(value) for value in self.allowed_origins)

    @model_validator(mode="after")
    def _one_schedule(self) -> PollSchedule:
        if (self.interval_seconds is None) == (self.cron is None):
            raise ValueError("set exactly one of interval_seconds and cron")
        if self.cron is not None:
            try:
                CronSim(self.cron, datetime.now())
            except CronSimError as exc:
                raise ValueError(f"cron: {exc}") from None
        return self

    def next_delay(self) -> float:
        """Seconds until the next scheduled poll."""
        if self.cron is None:
            return self.interval_seconds or 0.0  # one of the two is set
        now = datetime.now()
        return (next(CronSim(self.cron, now)) - now).total_seconds()


P = TypeVar("P", bound=PollSchedule)


class PollingConnector(Connector[P]):
    """Base of pollers: ``poll`` one page from a saved cursor (see the module)."""

    kind: ClassVar[Kind] = "poller"
    Config: ClassVar[type[ConnectorConfig]] = PollSchedule

    def __init__(self, connector_id: str, config: P) -> None:
        super().__init__(connector_id, config)
        self.min_interval = 0.0  # seconds; a source may ask for more (X-Poll-Interval)

    def write_back_to(self, sink: Callable[[str, str], Awaitable[bool]] | None) -> None:
        """Where to hand a credential the source rotated (old value, new value): the
        gateway's credential store writes it back where it came from."""

    def open_http(self) -> PollHttp:
        return PollHttp.open(timeout=self.config.timeout_seconds,
                             requests_per_second=self.config.requests_per_second,
                             max_retries=self.config.max_retries, burst=self.config.burst)

    async def poll(self, http: PollHttp, cursor: Cursor) -> Page:
        """The page ``cursor`` points at, and the cursor to save once its events are
        durable. Raises on failure (``PollError`` or anything else): the runner backs off
        and polls again from the same cursor."""
        raise NotImplementedError

    def next_delay(self) -> float:
        """Until the next scheduled poll; never sooner than the source asked for."""
        return max(self.config.next_delay(), self.min_interval)
