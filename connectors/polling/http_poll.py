"""``http_poll``: the declarative poller. A JSON API needs config, not code.

One request per page: the configured ``url`` with its query, the incremental ``since``
and the pagination style's parameters (``connectors.polling.pagination``), authenticated
as configured (``connectors.polling.auth``) and conditional on the ETag of the last whole
first page. The records are the list at ``records``; each becomes an event with the id at
``id_field`` and a type from ``event_type``. The cursor saved with them holds ``since``
(the largest ``incremental.field`` seen), the ETag, and the position in the pages.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from connectors.errors import PollError
from connectors.polling.auth import Auth, Credentials, Rotation
from connectors.polling.base import Page, Polled, PollingConnector, PollSchedule
from connectors.polling.http import PollHttp
from connectors.polling.origins import HttpUrlText, Origin
from connectors.polling.pagination import Cursor, Pagination
from connectors.polling.values import json_body, later, scalar
from connectors.request import json_pointer, parse_time


class Incremental(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    field: str  # JSON pointer in a record
    param: str  # query parameter: records with field >= the saved value


class HttpPollConfig(PollSchedule):
    url: HttpUrlText
    method: Literal["GET", "POST"] = "GET"
    query: dict[str, str] = Field(default_factory=dict)
    headers: dict[str, SecretStr] = Field(default_factory=dict)  # may carry keys: secret
    auth: Auth | None = None
    records: str = ""  # JSON pointer to the list of records ("" = the body itself)
    id_field: str = "/id"
    # A record seen again with another value here (updated_at) is a new event; without
    # it, a record id is published once (within the deduplication window)
    version_field: str | None = None
    timestamp_field: str | None = None
    event_type: str = "{source}.record"  # template over top-level record fields
    pagination: Pagination = Pagination()
    incremental: Incremental | None = None
    key_field: str | None = None  # JSON pointer: the record key (default: the connector id)
    source: str = "http_poll"


class _Fields(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "unknown"


class HttpPollConnector(PollingConnector[HttpPollConfig]):
    source: ClassVar[str] = "http_poll"
    Config = HttpPollConfig

    def __init__(self, connector_id: str, config: HttpPollConfig) -> None:
        super().__init__(connector_id, config)
        self.source_slug = config.source
        self.home = Origin.of(config.url)
        self.pages = config.pagination.paginator(self.home, config.origins)
        self.credentials = Credentials(config.headers, config.query, config.auth)

    def write_back_to(self, sink: Rotation | None) -> None:
        self.credentials.on_rotation = sink

    async def poll(self, http: PollHttp, cursor: Cursor) -> Page:
        o = self.config
        headers, query = await self.credentials(http)
        following = self.pages.next_url(cursor)
        url = following or o.url
        if following is None:
            if o.incremental and cursor.get("since") is not None:
                query[o.incremental.param] = str(cursor["since"])
            query.update(self.pages.request_params(cursor))
            if cursor.get("etag") and not cursor.get("in_pages"):
                headers["If-None-Match"] = str(cursor["etag"])
        response = await http.request(o.method, url, params=query if url == o.url else None,
                                      headers=headers, home=self.home, allowed=o.origins)
        if response.status_code == 304:
            return Page([], cursor)
        if response.status_code >= 400:
            raise PollError(f"HTTP {response.status_code} from the source")
        body = json_body(response)
        rows = json_pointer(body, o.records) if o.records else body
        if not isinstance(rows, list):
            raise PollError(f"no list of records at {o.records or 'the top level'}")
        events, since = self._events(rows, cursor.get("since"))
        state: Cursor = {"since": scalar(since), "etag": cursor.get("etag")}
        after = self.pages.next_page(response, body, len(rows), cursor)
        if after is not None:
            state.update(after, in_pages=True)
        elif not cursor.get("in_pages"):
            state["etag"] = response.headers.get("etag")  # only a whole first page
        return Page(events, state, more=after is not None)

    def _events(self, rows: list[Any], since: Any) -> tuple[list[Polled], Any]:
        """The records that have an id, as events; and ``since`` moved past them."""
        o = self.config
        events = []
        for row in rows:
            if not isinstance(row, dict) or (rid := json_pointer(row, o.id_field)) is None:
                continue
            stamp = parse_time(json_pointer(row, o.timestamp_field)) if o.timestamp_field \
                else None
            etype = o.event_type.format_map(_Fields(
                {k: v for k, v in row.items() if isinstance(v, str | int | float)},
                source=o.source))
            key = scalar(json_pointer(row, o.key_field)) if o.key_field else None
            version = scalar(json_pointer(row, o.version_field)) if o.version_field else None
            events.append(Polled(str(rid) if version is None else f"{rid}@{version}", etype,
                                 row, stamp, None if key is None else str(key)))
            if o.incremental:
                value = json_pointer(row, o.incremental.field)
                if later(value, since):
                    since = value
        return events, since
