"""Polling connectors: sources that only answer when asked.

A poller turns a saved cursor (its ``since``, pagination position, ETag) into one ``Page``
of events plus the cursor to save once those events are durable; ``gateway.polling``
runs it on its schedule and commits events and cursor in one transaction, so a crash
re-polls from the last durable point and overlaps are recognised by deterministic event
ids.

Credentials go only where they were configured to. A poller's *home* is the origin
(scheme, host, port) of its configured ``url`` (github_poll: ``api_url``; the OAuth2
``token_url`` is the home of the token request). ``PollHttp`` follows redirects itself:
a next link or a redirect to another origin is refused with a ``PollError`` unless the
poller lists that origin in ``allowed_origins``, and then it is requested bare: no
configured headers, no auth header, no auth query parameter, no body.

    base.py        PollingConnector (the runner's whole view of a poller: ``open_http``,
                   ``poll``, ``next_delay``, ``min_interval``), PollSchedule, Page, Polled
    http.py        PollHttp (redirects kept home, pacing: ``Pacer``)
    retry.py       the retry policy of a request (tenacity): 429 Retry-After, 5xx, jitter
    origins.py     Origin, ``admit``: where credentials may go
    pagination.py  one class per pagination style (none, link, cursor, page, offset)
    auth.py        bearer, api_key, basic, OAuth2 client credentials
    values.py      the body's JSON; cursor values that compare and can be saved
    http_poll.py   ``http_poll``: the declarative poller (config, not code)
    github.py      ``github_poll``: GitHub's events API
"""

from connectors.polling.auth import Auth
from connectors.polling.base import Page, Polled, PollingConnector, PollSchedule
from connectors.polling.github import GitHubPollConfig, GitHubPollConnector
from connectors.polling.http import PollHttp
from connectors.polling.http_poll import HttpPollConfig, HttpPollConnector, Incremental
from connectors.polling.origins import Origin, admit
from connectors.polling.pagination import Cursor, Pagination, Paginator

__all__ = [
    "Auth",
    "Cursor",
    "GitHubPollConfig",
    "GitHubPollConnector",
    "HttpPollConfig",
    "HttpPollConnector",
    "Incremental",
    "Origin",
    "Page",
    "Pagination",
    "Paginator",
    "PollHttp",
    "PollSchedule",
    "Polled",
    "PollingConnector",
    "admit",
]
