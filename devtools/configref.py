"""The configuration reference, ``docs/contract/configuration.md``, generated from the
pydantic models that validate a configuration file: ``GatewayConfig`` and its sections
(``gateway/config.py``) and the options every connector takes (``ConnectorConfig``: the
default ``Config`` of ``connectors.base.Connector``, taken from there wherever it is
defined).

    .venv/bin/python -m devtools.configref        # rewrite the file

Every key path needs a meaning: the field's pydantic ``description`` or, failing that,
an entry of ``DESCRIPTIONS`` below. A key without either (a new config key) makes the
generator raise ``UndocumentedConfig``, and so does an entry for a key that is gone or
an environment variable the code reads that ``ENVIRONMENT`` does not explain.
``tests/test_contract_docs.py`` fails while the checked-in file differs from the output.
"""

from __future__ import annotations

import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo

from connectors.base import Connector
from gateway.config import GatewayConfig
from gateway.kafka_settings import ENVIRONMENT as KAFKA_ENVIRONMENT

ROOT = Path(__file__).resolve().parent.parent
DOC_PATH = ROOT / "docs" / "contract" / "configuration.md"
COMMON_OPTIONS: type[BaseModel] = Connector.Config  # ConnectorConfig
# Where the environment variables the code reads are looked for (string literals only):
# the shipped packages. Development tools (devtools/) read their own.
ENV_SOURCES = ("gateway", "connectors")

# Fields whose declared type says less than what is validated: ``config`` is a plain
# mapping in ``ConnectorEntry``, validated by the type's ``Config`` (a ConnectorConfig).
SUBSTITUTES: dict[str, type[BaseModel]] = {"connectors.<id>.config": COMMON_OPTIONS}
MAPPING_KEY = "<id>"  # the placeholder for a mapping's keys in key paths


class UndocumentedConfig(Exception):
    """A config key (or environment variable) without a meaning, or a meaning without
    its key: the reference would be incomplete or wrong."""


DESCRIPTIONS: dict[str, str] = {
    # -- server --------------------------------------------------------------------
    "server": "The HTTP listener and the limits of its edge (`gateway/server.py`). Limits"
    " said to be per worker apply to each worker process separately.",
    "server.host": "Address to listen on; `gateway run --host` overrides it.",
    "server.port": "Port to listen on; `gateway run --port` overrides it. `gateway sign`"
    " builds its URL from `host` and `port`.",
    "server.max_body_bytes": "Largest request body. Larger: 413 `too_large` with"
    " `Connection: close`, decided on `Content-Length` and again while the body streams"
    " in; audited `rejected`/`too_large`.",
    "server.workers": "HTTP worker processes (uvicorn); `gateway run --workers` overrides"
    " it. They share the buffer; the relay and pollers run in one more process beside"
    " them.",
    "server.max_header_bytes": "Request line plus headers, in bytes, counted while they"
    " arrive. Past it: 431 `headers_too_large` and the connection is closed.",
    "server.max_headers": "Number of request headers. Past it: 431 `headers_too_large`"
    " and the connection is closed.",
    "server.header_timeout_seconds": "From the connection's opening (for the next request"
    " on a kept-alive connection: from its first byte) to the end of the headers. Past"
    " it the connection is closed without an answer. Idle kept-alive connections are"
    " closed by uvicorn's keep-alive timeout (5 s).",
    "server.body_timeout_seconds": "From the end of the headers to the end of the body."
    " Past it the connection is closed; nothing is accepted and the request is audited"
    " `rejected`/`client_disconnect`.",
    "server.max_connections": "Open connections per worker. A connection past it is"
    " answered 503 `busy` with `Retry-After: 5` and closed.",
    "server.max_concurrent_requests": "Requests in flight per worker. Past it: 503"
    " `busy` with `Retry-After: 5` and `Connection: close` (not audited).",
    "server.shutdown_timeout_seconds": "On SIGTERM, how long requests in flight get to"
    " finish (rounded up to whole seconds) before they are cut.",
    "server.trusted_proxies": "Addresses or CIDR ranges whose `X-Forwarded-For` /"
    " `X-Forwarded-Proto` are believed; the forwarded address is then the client's (for"
    " `allowed_ips` and the audit's `remote_addr`). Empty: the peer address is the"
    " client's. Each entry must parse as an address or range.",
    # -- kafka ---------------------------------------------------------------------
    "kafka": "The cluster the relay publishes to, with an idempotent producer and"
    " `acks=all` (`gateway/kafka.py`).",
    "kafka.bootstrap_servers": "Brokers, `host:port[,host:port...]`."
    " `KAFKA_BOOTSTRAP_SERVERS` overrides it.",
    "kafka.topic": "Topic template. `{source}`, `{type}` and `{connector_id}` are filled"
    " in per event; characters Kafka refuses become `_` and the name is cut to 249"
    " characters. Any other placeholder, or a name Kafka can never take, is a"
    " configuration error. A connector's `config.topic` replaces it.",
    "kafka.dead_letter_topic": "Where dead letters go: authentic deliveries and polled"
    " records that cannot become an envelope, and records Kafka refused for good"
    " (`docs/contract/envelope.md`). Used as written: placeholders pass the check but are"
    " not filled in, so give a fixed name.",
    "kafka.format": "What a record's value is (`docs/contract/envelope.md`): `envelope`"
    " (the envelope as JSON, the gateway's headers), `cloudevents-binary` (the"
    " CloudEvents Kafka binding's binary mode: the payload as the value, the attributes"
    " in `ce_` headers) or `cloudevents-structured` (the whole CloudEvent as JSON,"
    " `content-type: application/cloudevents+json`). A `kafka.topics` entry's `format`"
    " overrides it for its topics. Dead letters keep their own format.",
    "kafka.client_id": "The client id the producer and the admin client send to the"
    " brokers.",
    "kafka.linger_ms": "Producer linger: how long a batch waits for more records.",
    "kafka.request_timeout_ms": "Producer and admin client request timeout.",
    "kafka.compression_type": "Producer compression as aiokafka names it (`gzip`,"
    " `snappy`, `lz4`, `zstd`); unset: none. Not checked at load: the relay's producer"
    " refuses an unknown value.",
    "kafka.max_message_bytes": "The largest record the broker takes (its"
    " `message.max.bytes`, or a topic's `max.message.bytes` if lower). A delivery whose"
    " event or dead letter, as a record batch with key and headers, would be larger is"
    " refused with 413 `too_large` before it is accepted. The producer's largest request"
    " is this plus 64 KiB.",
    "kafka.unknown_topic_timeout_seconds": "How long records wait for a topic the cluster"
    " lacks (and does not create) while the records of other topics go on; then they go"
    " to the dead-letter topic (`kafka_refused: UnknownTopicOrPartitionError`).",
    "kafka.topics": "The topics the gateway writes, as they should be: entries with a"
    " `name` (a topic) or a `pattern` (a glob, `events.*`, giving its settings to every"
    " name it matches), each with `partitions`, `replication_factor` and `configs` (topic"
    " configs: `retention.ms`, `min.insync.replicas`, `cleanup.policy`, ...), and"
    " `format` (replaces `kafka.format` for those topics)."
    " `gateway topics check` compares them with the cluster; `gateway topics create`"
    " creates the missing ones (the broker's defaults for what is not declared).",
    "kafka.missing_topics": "At startup, when a topic the gateway writes (the dead-letter"
    " topic, fixed names, templates filled with each connector's source and id) is"
    " missing and the brokers do not create topics: `fail` refuses to start, naming"
    " them; `warn` starts, and their events wait, then go to the dead-letter topic. An"
    " unreachable cluster never stops startup.",
    "kafka.security_protocol": "How every Kafka client of the gateway connects: `PLAINTEXT`,"
    " `SSL` (TLS; mutual TLS with `ssl_certfile`/`ssl_keyfile`), `SASL_PLAINTEXT` or"
    " `SASL_SSL` (SASL over TLS: what managed clusters use). `KAFKA_SECURITY_PROTOCOL`.",
    "kafka.ssl_cafile": "PEM file of the CAs that sign the brokers' certificates; unset:"
    " the system's trusted CAs. Must be readable at load. `KAFKA_SSL_CAFILE`.",
    "kafka.ssl_certfile": "PEM client certificate (and chain) for mutual TLS; with"
    " `ssl_keyfile`. `KAFKA_SSL_CERTFILE`.",
    "kafka.ssl_keyfile": "PEM private key of `ssl_certfile`. `KAFKA_SSL_KEYFILE`.",
    "kafka.ssl_check_hostname": "Whether a broker's certificate must name the host"
    " connected to. Turn off only for brokers reached by an address their certificates"
    " do not carry. `KAFKA_SSL_CHECK_HOSTNAME`.",
    "kafka.sasl_mechanism": "`PLAIN`, `SCRAM-SHA-256`, `SCRAM-SHA-512` (with"
    " `sasl_plain_username`/`_password`) or `OAUTHBEARER` (with the `sasl_oauth_*` keys);"
    " needed by, and only with, the `SASL_*` protocols. `KAFKA_SASL_MECHANISM`.",
    "kafka.sasl_plain_username": "The SASL user (PLAIN and SCRAM). `KAFKA_SASL_USERNAME`.",
    "kafka.sasl_plain_password": "The SASL password (a secret: masked everywhere; a"
    " placeholder value stops startup outside development mode). `KAFKA_SASL_PASSWORD`.",
    "kafka.sasl_oauth_token_url": "OAUTHBEARER: the OAuth 2.0 token endpoint of a"
    " client-credentials grant; https (http only on loopback), since the client secret is"
    " sent there. `KAFKA_SASL_OAUTH_TOKEN_URL`.",
    "kafka.sasl_oauth_client_id": "OAUTHBEARER: the client id. `KAFKA_SASL_OAUTH_CLIENT_ID`.",
    "kafka.sasl_oauth_client_secret": "OAUTHBEARER: the client secret (a secret; sent only"
    " to `sasl_oauth_token_url`, in the Authorization header)."
    " `KAFKA_SASL_OAUTH_CLIENT_SECRET`.",
    "kafka.sasl_oauth_scope": "OAUTHBEARER: the scope to ask for, if the provider wants one."
    " `KAFKA_SASL_OAUTH_SCOPE`.",
    "kafka.schema_registry": "A Confluent-compatible Schema Registry. Set: the relay"
    " registers the JSON Schema of each topic's format (`schemaType: JSON`) and sends"
    " every event's value in the registry wire format (byte 0, the 4-byte schema id,"
    " then the JSON), which Confluent's `JSONDeserializer` reads. Dead letters stay"
    " unframed. While the registry cannot be reached (or refuses a schema) the records"
    " wait in the buffer, in order, as for a Kafka outage (`docs/contract/envelope.md`)."
    " `gateway check-config --connect` checks that it answers.",
    "kafka.schema_registry.url": "The registry's base URL (for Apicurio:"
    " `.../apis/ccompat/v7`). No credentials in it; with credentials, https (http only"
    " on the loopback interface). Redirects are not followed.",
    "kafka.schema_registry.basic_auth": "HTTP basic authentication to the registry"
    " (Confluent Cloud: an API key and secret).",
    "kafka.schema_registry.basic_auth.username": "The user (or API key).",
    "kafka.schema_registry.basic_auth.password": "The password (or API secret): a"
    " secret, masked everywhere.",
    "kafka.schema_registry.bearer_token": "A bearer token instead of `basic_auth` (a"
    " secret).",
    "kafka.schema_registry.subject_strategy": "`topic` (`<topic>-value`, Confluent's"
    " TopicNameStrategy), `record` (the schema's name: `Envelope`, `CloudEvent` or"
    " `Payload`) or `topic_record` (`<topic>-<name>`).",
    "kafka.schema_registry.timeout_seconds": "Per registry request.",
    # -- audit ---------------------------------------------------------------------
    "audit": "The audit trail: one JSON line per outcome (`docs/contract/audit.md`).",
    "audit.path": "The audit file. Unset: `<data_dir>/audit.jsonl`. A path that is not a"
    " regular file (`/dev/stdout`, a pipe) is written as is: no lock, no rotation.",
    "audit.max_bytes": "Rotation size: a write that would take the file past it first"
    " renames `PATH` to `PATH.1` (`PATH.1` to `PATH.2`, ...).",
    "audit.keep": "Rotated files kept (`PATH.1` ... `PATH.<keep>`); older ones are"
    " deleted.",
    "audit.max_backlog_lines": "Lines held in memory per process while the file cannot be"
    " written (a full disk); past it the oldest are dropped and counted"
    " (`gateway_audit_dropped_lines_total`).",
    # -- governance ----------------------------------------------------------------
    "governance": "The keys personal data is hashed and encrypted with, for every"
    " connector's `governance.pii` (`docs/governance.md`).",
    "governance.hash_key": "The HMAC-SHA256 key of `hash` (a secret, 32+ characters): one"
    " for the gateway, so a value hashes the same in every event and connector.",
    "governance.encryption_keys": "Key id to a 32-byte AES key, base64 (secrets). Old ids"
    " stay listed so `gateway decrypt` still opens what they sealed.",
    "governance.encryption_key": "The id in `encryption_keys` new values are sealed with.",
    # -- certification -------------------------------------------------------------
    "certification": "Every connector's certification (`docs/governance.md`): `pending`"
    " until its first request or poll, then `monitoring`; `certified` after a full window"
    " without an SLO breach; a breach makes it `failed`, a later clean window `certified`"
    " again. Kept in `<data_dir>/certification.json` across restarts; evaluated by the"
    " relay that holds the buffer's lease.",
    "certification.window_seconds": "How long a connector must run without a breach to be"
    " certified (default a day).",
    "certification.measure_seconds": "The rolling window the SLOs are measured over"
    " (measurements start afresh when the relay restarts; the certification state does"
    " not).",
    "certification.evaluate_seconds": "How often the SLOs are evaluated and the state"
    " written.",
    # -- telemetry -----------------------------------------------------------------
    "telemetry": "Spans over OpenTelemetry (`gateway/telemetry.py`). The W3C trace"
    " context (`traceparent`, `tracestate`) is carried onto every record and into the"
    " audit line whether or not this is set.",
    "telemetry.otlp_endpoint": "An OTLP/HTTP collector's base URL"
    " (`http://otel-collector:4318`); spans go to `<url>/v1/traces`: `receive`"
    " (`POST /webhooks/{connector_id}`), `durable` and `publish <topic>`. Unset (the"
    " default): no spans, and the OpenTelemetry SDK is not loaded.",
    "telemetry.service_name": "The spans' `service.name`.",
    # -- buffer --------------------------------------------------------------------
    "buffer": "The local durable buffer between a 2xx and Kafka's acknowledgement:"
    " `<data_dir>/buffer.db`, SQLite in WAL mode, every commit fsynced"
    " (`docs/contract/delivery.md`).",
    "buffer.max_events": "Events held at most. A delivery that does not fit is answered"
    " 503 `buffer_full` with `Retry-After`.",
    "buffer.max_bytes": "Bytes held at most: the records' values plus the deduplication"
    " state (each key's length + 48 bytes). A delivery that does not fit is answered 503"
    " `buffer_full` with `Retry-After`.",
    "buffer.dedup_window_seconds": "How long a delivery's deduplication keys are"
    " remembered. A repeat inside the window is answered 200 `\"duplicate\": true` and"
    " not published again. `0` turns deduplication off.",
    "buffer.retry_after_seconds": "The `Retry-After` of a 503 `buffer_full`.",
    "buffer.max_age_seconds": "`/readyz` answers 503 (not ready) while the oldest"
    " buffered event is older than this: events are not reaching Kafka.",
    # -- top level -----------------------------------------------------------------
    "data_dir": "Everything the gateway keeps on disk: `buffer.db` (buffer,"
    " deduplication state, poller cursors, quarantine, relay lease and status, the"
    " workers' metrics) and, unless `audit.path` is set, `audit.jsonl`. Relative to the"
    " working directory. `GATEWAY_DATA_DIR` overrides it.",
    "connectors": "Connectors by id. An id is 1 to 100 characters: a letter or digit,"
    " then letters, digits, `.`, `_` or `-`. It appears in URLs (`/webhooks/<id>`),"
    " envelopes, record keys, audit lines and metrics. Each connector is validated on"
    " its own, so every problem of every connector is reported.",
    "connectors.<id>": "One connector: its type, and the options the type takes.",
    "connectors.<id>.enabled": "`false`: validated but not started; its URL answers 404"
    " `unknown_connector` and its pollers do not run.",
    "connectors.<id>.type": "The implementation: a name in the `gateway.connectors`"
    " entry-point group (`gateway providers` lists them). An unknown type is an error"
    " that lists the available ones.",
    "retention": "How long and how much the delivery store keeps (`gateway/deliveries.py`:"
    " every request's outcome with its redacted headers and body, for the admin API's"
    " search and replay). A connector's `governance.retention_days` shortens it.",
    "retention.days": "Deliveries older than this are removed (checked every minute).",
    "retention.max_bytes": "Past this size of `deliveries.db`, the oldest deliveries go.",
    "admin": "The admin API (`gateway/admin.py`): search deliveries, replay, redrive dead"
    " letters, pause and resume connectors, reload; on its own listener, where the relay"
    " runs.",
    "admin.host": "Where it listens (keep it on a private address).",
    "admin.port": "Its port; never the webhook port.",
    "admin.token": "Every call needs `Authorization: Bearer <token>` (a secret). Without"
    " one the admin API is off; the dashboard at the listener's `/` signs in with it.",
    "redis": "State shared by several replicas (`gateway/shared.py`): deduplication claims,"
    " one rate-limit bucket per connector for the cluster, and one owner per poller (a"
    " lease with a fencing token; the cursor shared). Off without a URL: each replica then"
    " keeps its own, as one node does. See `docs/scaling.md`.",
    "redis.url": "`redis://[:password@]host:port/db`, `rediss://` for TLS, or `unix://`;"
    " held as a secret (it may carry the password). `REDIS_URL` sets it too.",
    "redis.on_redis_down": "Redis unreachable: `accept` goes on with each replica's own"
    " deduplication and rate limits (event ids stay deterministic, so consumers can still"
    " deduplicate), `reject` answers 503 with `Retry-After` and `/readyz` says not ready."
    " Pollers pause either way (no replica can hold a lease).",
    "redis.key_prefix": "Prefix of every key the gateway writes (several gateways can share"
    " one Redis).",
    "redis.claim_seconds": "How long a replica's claim on a delivery blocks the others while"
    " it makes the event durable: a replica that dies holding one blocks the provider's"
    " retry this long at most, never the whole deduplication window.",
    "redis.lease_seconds": "A poller's lease; renewed every third of it. Another replica"
    " takes a poller over within this after its owner is gone.",
    "redis.timeout_seconds": "Each Redis call's timeout; past it Redis counts as down (then"
    " calls fail at once for a second before one tries again).",
    "credentials": "Where secrets given as references come from (`gateway/credentials.py`):"
    " `${NAME}` (environment), `${file:PATH}` (a mounted secret; relative to the config"
    " file), `${vault:PATH#FIELD}` (a Vault or OpenBao KV v2 field). Files that change and"
    " Vault secrets with a new version swap the connectors using them, without a restart.",
    "credentials.vault": "The Vault (or OpenBao) server holding `${vault:...}` secrets (KV"
    " v2). Its token goes to `address` only.",
    "credentials.vault.address": "`https://vault.example:8200` (http only on a loopback"
    " address).",
    "credentials.vault.mount": "The KV v2 engine's mount path.",
    "credentials.vault.namespace": "Sent as `X-Vault-Namespace` (Vault Enterprise, OpenBao).",
    "credentials.vault.token": "Token auth (a secret; e.g. `${file:/var/run/vault/token}`)."
    " Set this, or `role_id` and `secret_id`.",
    "credentials.vault.role_id": "AppRole auth: the role id (logs in, renews before the"
    " token's lease ends, logs in again when refused).",
    "credentials.vault.secret_id": "AppRole auth: the secret id (a secret).",
    "credentials.vault.approle_mount": "The AppRole auth method's mount path.",
    "credentials.vault.ca_file": "A PEM bundle to verify the server's certificate with.",
    "credentials.vault.timeout_seconds": "Per request to Vault.",
    "credentials.refresh_seconds": "How often the Vault secrets in use are checked for a new"
    " version.",
    "credentials.watch_seconds": "How often the referenced files are checked for a change.",
    "connectors.<id>.acl": "What the connector may produce (glob patterns; `gateway/acl.py`)."
    " Left out, each key is the narrow default, never everything. An event outside is a 403"
    " for push (audited `rejected`/`forbidden`) and a dead letter (`forbidden`) for the"
    " others; a webhook or poller configured outside its own ACL does not start.",
    "connectors.<id>.acl.sources": "Sources it may produce. Default: its own (a webhook's or"
    " poller's source; a push connector's `config.sources`, else its id).",
    "connectors.<id>.acl.event_types": "Event types it may produce, e.g. `invoice.*`."
    " Default: any type of its sources.",
    "connectors.<id>.acl.topics": "Topics it may write. Default: those its own routing"
    " (`config.topic` or `kafka.topic`) gives its sources and types.",
    "connectors.<id>.governance": "Who owns the connector, how sensitive its data is, how"
    " personal data is handled before anything is stored, and the payload contract"
    " (`docs/governance.md`). Shown by `gateway connectors show ID`.",
    "connectors.<id>.governance.owner": "The team or person answerable for it.",
    "connectors.<id>.governance.retention_days": "How many days the delivery store keeps the"
    " connector's deliveries and the audit trail its lines (older lines leave every audit"
    " file, swept hourly). Default: `retention.days` for the store; for the audit, as long"
    " as its files are kept.",
    "connectors.<id>.governance.classification": "`public`, `internal`, `confidential` or"
    " `restricted`; `restricted` connectors need `schemas` (or `allow_without_schema`).",
    "connectors.<id>.governance.pii": "Personal data in the payload: JSON paths (`$.a.b`,"
    " `$['a b']`, `$.items[*].card.number`, `$.list[0]`), or entries `{path, handling,"
    " keep_last}` (`keep_last`: 0-4 characters `mask` keeps after `****`). Handled in"
    " every event before it is made durable; the envelope's `pii` lists them; dead"
    " letters carry the body with the same paths handled (no body when it is not a JSON"
    " object).",
    "connectors.<id>.governance.pii_handling": "For paths that do not say: `mask`"
    " (`****`), `hash` (`hmac-sha256:<hex>` keyed with `governance.hash_key`), `encrypt`"
    " (`enc:<key id>:<data>`, AES-256-GCM with `governance.encryption_key`; `gateway"
    " decrypt`) or `exclude` (removed).",
    "connectors.<id>.governance.schemas": "Payload contracts: an event type (or a dotted"
    " prefix of it) to a JSON Schema, a file (relative to the config file) or inline. An"
    " event that breaks it is dead-lettered with reason `schema_violation` and the JSON"
    " paths and keywords that failed (never the values); on `/api/events` it is a 400."
    " Counted in `gateway_schema_violations_total`.",
    "connectors.<id>.governance.allow_without_schema": "`true`: a `restricted` connector"
    " may run without `schemas`.",
    "connectors.<id>.governance.slo": "Objectives, measured over"
    " `certification.measure_seconds` and evaluated every `certification.evaluate_seconds`"
    " (`gateway/certification.py`): `/readyz` (`connectors`), `/metrics`"
    " (`gateway_connector_slo_*`) and `gateway connectors status` show them against what"
    " was measured, and a breach fails the connector's certification. A measure with"
    " nothing to measure in the window (no requests) breaches nothing.",
    "connectors.<id>.governance.slo.freshness_minutes": "At most this long since the newest"
    " accepted event (since the evaluator started, when there was none).",
    "connectors.<id>.governance.slo.availability_percent": "At least this share of"
    " requests not failed by the gateway (503, 500); for a poller, of successful polls.",
    "connectors.<id>.governance.slo.error_rate_percent": "At most this share of requests"
    " rejected, dead-lettered or failed; for a poller, of polled records dead-lettered.",
    "connectors.<id>.config": "The type's options: the common ones below and the type's"
    " own. Unknown keys are errors. Secrets are held as secret values (`**********` in"
    " any dump, message or log).",
    # -- connectors.<id>.config: ConnectorConfig --------------------------------------
    "connectors.<id>.config.secret": "The shared secret or token the type verifies with."
    " Types that need one refuse a config with neither `secret` nor `secrets`, or an"
    " empty one. A value that looks like a placeholder (`change-me`, `secret`,"
    " `example`, ...) stops startup unless development mode is on (`--dev`,"
    " `GATEWAY_DEV=1`).",
    "connectors.<id>.config.secrets": "More secrets, any of which verifies (rotation);"
    " taken together with `secret`.",
    "connectors.<id>.config.public_key": "The provider's public key, for types verifying a"
    " signature made with the provider's private key (Ed25519, ECDSA: `discord`,"
    " `sendgrid`, `telnyx`, ...).",
    "connectors.<id>.config.tolerance_seconds": "Replay window of timestamped schemes, in"
    " seconds from now (back, and ahead unless the provider's clock skew is smaller); unset:"
    " the provider's default, always finite (`docs/providers.md`); 0 is a window of zero,"
    " not off. A timestamp outside it: 401 `unauthorized`, audited `stale_timestamp`.",
    "connectors.<id>.config.public_url": "The exact URL the provider calls, for schemes"
    " that sign the URL (required by those types: Twilio, HubSpot, Square, ...).",
    "connectors.<id>.config.topic": "Topic template for this connector's events, in place"
    " of `kafka.topic` (same placeholders, same checks).",
    "connectors.<id>.config.events": "Allow-list of event types for webhook deliveries: an"
    " entry matches the type and the dotted types under it (`pull_request` matches"
    " `pull_request.opened`). Other events are dropped; a delivery left with none is"
    " answered 200 `\"filtered\": true`, audited `filtered`/`event_not_allowed`. Unset:"
    " every type. Not applied to `/api/events` or pollers.",
    "connectors.<id>.config.rate_limit": "A token bucket per worker process over"
    " authentic deliveries (for `push`: `/api/events` requests). Past it: 429"
    " `rate_limited` with `Retry-After`, audited `rejected`/`rate_limited`. Forged"
    " requests and handshakes do not count.",
    "connectors.<id>.config.rate_limit.per_second": "Deliveries per second: the bucket's"
    " refill rate.",
    "connectors.<id>.config.rate_limit.burst": "The bucket's size; unset: `per_second`"
    " rounded up.",
    "connectors.<id>.config.allowed_ips": "Addresses or CIDR ranges that may deliver (the"
    " peer, or the forwarded address from `server.trusted_proxies`), checked first."
    " Others: 403 `forbidden`, audited `unauthorized_ip`.",
    "connectors.<id>.config.basic_auth": "HTTP Basic credentials required after"
    " `allowed_ips` and before the signature check (which still runs). Missing or wrong:"
    " 401 `unauthorized`, audited `invalid_credentials`. Needs `password` or"
    " `passwords`.",
    "connectors.<id>.config.basic_auth.username": "The user name.",
    "connectors.<id>.config.basic_auth.password": "The password.",
    "connectors.<id>.config.basic_auth.passwords": "More passwords, any of which is"
    " accepted (rotation).",
    "connectors.<id>.config.api_key": "An API key required after `allowed_ips` and before"
    " the signature check (which still runs), from exactly one of `header` and `query`,"
    " matching `value` or one of `values`. Missing or wrong: 401 `unauthorized`, audited"
    " `invalid_credentials`.",
    "connectors.<id>.config.api_key.header": "The request header that carries the key.",
    "connectors.<id>.config.api_key.query": "The query parameter that carries the key.",
    "connectors.<id>.config.api_key.value": "The key.",
    "connectors.<id>.config.api_key.values": "More keys, any of which is accepted"
    " (rotation).",
}

# Environment variables the code reads, and what they do. The generator checks this
# against the string literals the code passes to os.environ / env lookups.
ENVIRONMENT: dict[str, str] = {
    "GATEWAY_INSTANCE": "Set by `gateway run` for its workers and relay: their metrics are"
    " summed together, never with another instance's sharing the data directory.",
    "REDIS_URL": "Sets `redis.url` (state shared by replicas), over the file's.",
    "GATEWAY_CONFIG": "The configuration file when `--config` is not given (`gateway run`"
    " sets it for its worker processes).",
    "KAFKA_BOOTSTRAP_SERVERS": "Replaces `kafka.bootstrap_servers` when set and not"
    " empty. Like every `KAFKA_*` variable below, it also serves `gateway tail` without a"
    " config file.",
    "KAFKA_SECURITY_PROTOCOL": "Replaces `kafka.security_protocol`.",
    "KAFKA_SSL_CAFILE": "Replaces `kafka.ssl_cafile`.",
    "KAFKA_SSL_CERTFILE": "Replaces `kafka.ssl_certfile`.",
    "KAFKA_SSL_KEYFILE": "Replaces `kafka.ssl_keyfile`.",
    "KAFKA_SSL_CHECK_HOSTNAME": "Replaces `kafka.ssl_check_hostname` (`true`/`false`).",
    "KAFKA_SASL_MECHANISM": "Replaces `kafka.sasl_mechanism`.",
    "KAFKA_SASL_USERNAME": "Replaces `kafka.sasl_plain_username`.",
    "KAFKA_SASL_PASSWORD": "Replaces `kafka.sasl_plain_password`.",
    "KAFKA_SASL_OAUTH_TOKEN_URL": "Replaces `kafka.sasl_oauth_token_url`.",
    "KAFKA_SASL_OAUTH_CLIENT_ID": "Replaces `kafka.sasl_oauth_client_id`.",
    "KAFKA_SASL_OAUTH_CLIENT_SECRET": "Replaces `kafka.sasl_oauth_client_secret`.",
    "KAFKA_SASL_OAUTH_SCOPE": "Replaces `kafka.sasl_oauth_scope`.",
    "GATEWAY_DATA_DIR": "Replaces `data_dir` when set and not empty.",
    "GATEWAY_DEV": "`1`, `true` or `yes`: development mode, placeholder secrets are"
    " accepted. `--dev` sets it. Never on an exposed instance.",
    "GATEWAY_LOG_LEVEL": "Log level of the JSON logs on stdout (default `info`).",
    "GATEWAY_RELAY": "Set by `gateway run`: `external` tells worker processes that the"
    " relay runs in a process of its own.",
    "GATEWAY_BACKGROUND_NICE": "Niceness of the relay-and-pollers process `gateway run`"
    " starts (default `5`).",
}

INTRO = """\
<!-- Generated by devtools/configref.py from gateway/config.py and ConnectorConfig.
     Do not edit: run `.venv/bin/python -m devtools.configref`. -->

# Configuration reference

One YAML file: `gateway run --config PATH`, or `$GATEWAY_CONFIG`. `gateway check-config`
validates it and exits.

- `${VAR}` and `${VAR:-default}` are expanded in every string from the environment. The
  default applies when `VAR` is unset or empty. A missing variable without a default is
  an error naming the variable and the key path.
- Every problem is reported at once, each with its key path
  (`connectors.github-main.config.secret: ...`), and the process exits with status 2;
  it never starts half-configured. Unknown keys are errors (`unknown key`). Messages are
  built from key paths, never from values, so a secret cannot leak through one.
- Secrets that look like placeholders stop startup outside development mode (`--dev`,
  `GATEWAY_DEV=1`); `gateway sign`, `tail`, `audit verify` and `quarantine` accept them.

Types: `str`, `int`, `float`, `bool`; `secret` is a string held as a secret value;
`| null` means the key may be left unset. Sizes are bytes, durations seconds unless the
name says otherwise.
"""

CONNECTOR_OPTIONS_INTRO = """\
Every connector type's options include these (`ConnectorConfig`, the base of every
type's `Config`); a type uses those its scheme needs and may require some (`secret` or
`secrets` for shared-secret schemes, `public_key`, `public_url`). What each type
requires, signs and deduplicates on: `docs/providers.md` and `gateway providers`.
"""

TYPE_OPTIONS_INTRO = """\
Types that take keys of their own, or require a common key (generated from each type's
`Config` class; details in `docs/providers.md` and the type's module). Every other type
takes only the common options.
"""

ENV_INTRO = """\
Environment variables the gateway reads besides `${VAR}` references in the file (and
the variable a `github_poll` connector names in `token_env`, default `GITHUB_TOKEN`).
Development tools (`devtools/`, not shipped) read their own.
"""


@dataclass(frozen=True)
class Row:
    key: str
    type: str
    default: str
    constraints: str
    meaning: str


@dataclass
class Section:
    key: str  # "" for the top level
    intro: str
    rows: list[Row] = field(default_factory=list)


def _model(annotation: Any) -> type[BaseModel] | None:
    """The model ``annotation`` names (also inside ``X | None``), or None."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        found = [m for a in typing.get_args(annotation) if (m := _model(a)) is not None]
        return found[0] if len(found) == 1 else None
    return None


def _mapping_value(annotation: Any) -> type[BaseModel] | None:
    """The model of a ``dict[str, Model]``'s values, or None."""
    if typing.get_origin(annotation) is dict:
        return _model(typing.get_args(annotation)[1])
    return None


def type_name(annotation: Any) -> str:
    """``annotation`` as the reference writes types."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        names = [type_name(a) for a in args if a is not type(None)]
        return " | ".join(names) + (" | null" if type(None) in args else "")
    if origin is list:
        return f"list[{type_name(args[0])}]"
    if origin is dict:
        return "mapping"
    if annotation is SecretStr:
        return "secret"
    if annotation is Any:
        return "any"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "mapping"
    if typing.get_origin(annotation) is typing.Literal:
        return " | ".join(f"`{a}`" for a in args)
    return str(getattr(annotation, "__name__", annotation))


def _size(value: int) -> str:
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if value >= 1 << shift and value % (1 << shift) == 0:
            return f" ({value >> shift} {unit})"
    return ""


def default_text(key: str, info: FieldInfo) -> str:
    if info.is_required():
        return "required"
    value = info.get_default(call_default_factory=True)
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, int):
        return f"`{value}`" + (_size(value) if key.endswith("_bytes") else "")
    if isinstance(value, float):
        return f"`{value:g}`"
    if isinstance(value, str):
        return f"`{value}`" if value else '`""`'
    if isinstance(value, list | tuple):
        return "`[]`" if not value else f"`{list(value)}`"
    if isinstance(value, dict):
        return "`{}`" if not value else f"`{value}`"
    return f"`{value!r}`"


_BOUNDS = (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<="),
           ("min_length", "length >="), ("max_length", "length <="))


def constraints_text(info: FieldInfo) -> str:
    """The bounds pydantic enforces (``Field(ge=...)`` and the like)."""
    found = []
    for meta in info.metadata:
        for attr, symbol in _BOUNDS:
            bound = getattr(meta, attr, None)
            if bound is not None:
                found.append(f"{symbol} {bound}")
    return ", ".join(found)


def _meaning(key: str, info: FieldInfo | None, missing: list[str]) -> str:
    text = (info.description if info is not None else None) or DESCRIPTIONS.get(key)
    if not text:
        missing.append(key)
        return ""
    return " ".join(text.split())


def _walk(model: type[BaseModel], prefix: str, section: Section, sections: list[Section],
          missing: list[str], seen: set[str]) -> None:
    for name, info in model.model_fields.items():
        key = prefix + name
        seen.add(key)
        meaning = _meaning(key, info, missing)
        annotation = info.annotation
        nested = SUBSTITUTES.get(key) or _model(annotation)
        if (nested is not None and key not in SUBSTITUTES
                and isinstance(info.get_default(call_default_factory=True), BaseModel)):
            own = Section(key, meaning)  # a section of the file (server:, kafka:, ...)
            sections.append(own)
            _walk(nested, key + ".", own, sections, missing, seen)
            continue
        section.rows.append(Row(key, type_name(annotation), default_text(key, info),
                                constraints_text(info), meaning))
        if key in SUBSTITUTES:  # a mapping validated by a model: its keys get a section
            own = Section(key, CONNECTOR_OPTIONS_INTRO)
            sections.append(own)
            _walk(SUBSTITUTES[key], key + ".", own, sections, missing, seen)
        elif nested is not None:  # an optional mapping: its keys follow its row
            _walk(nested, key + ".", section, sections, missing, seen)
        elif (values := _mapping_value(annotation)) is not None:
            entry = f"{key}.{MAPPING_KEY}"
            seen.add(entry)
            own = Section(entry, _meaning(entry, None, missing))
            sections.append(own)
            _walk(values, entry + ".", own, sections, missing, seen)


def sections() -> list[Section]:
    """The reference's tables; raises UndocumentedConfig for keys without a meaning."""
    top = Section("", "Keys at the top level of the file.")
    found = [top]
    missing: list[str] = []
    seen: set[str] = set()
    _walk(GatewayConfig, "", top, found, missing, seen)
    stale = sorted(set(DESCRIPTIONS) - seen)
    problems = []
    if missing:
        problems.append("config keys without a description (add one to"
                        " devtools/configref.py DESCRIPTIONS): " + ", ".join(missing))
    if stale:
        problems.append("descriptions of config keys that no longer exist (remove them"
                        " from devtools/configref.py DESCRIPTIONS): " + ", ".join(stale))
    if problems:
        raise UndocumentedConfig("; ".join(problems))
    return found  # the top level first, then the sections as the models declare them


_ENV_LITERAL = re.compile(
    r"""(?:environ\.get|environ\[|getenv|\benv\.get|\benv\[)\(?\s*["']([A-Z][A-Z0-9_]*)["']""")


def environment_in_code(root: Path = ROOT) -> set[str]:
    """The environment variables the code reads by name, and those of the table of
    ``kafka:`` overrides (``gateway.kafka_settings.ENVIRONMENT``)."""
    names: set[str] = set(KAFKA_ENVIRONMENT)
    for package in ENV_SOURCES:
        for path in sorted((root / package).rglob("*.py")):
            names.update(_ENV_LITERAL.findall(path.read_text(encoding="utf-8")))
    return names


def _check_environment() -> None:
    in_code = environment_in_code()
    unexplained = sorted(in_code - set(ENVIRONMENT))
    gone = sorted(set(ENVIRONMENT) - in_code)
    problems = []
    if unexplained:
        problems.append("environment variables the code reads without an entry in"
                        " devtools/configref.py ENVIRONMENT: " + ", ".join(unexplained))
    if gone:
        problems.append("ENVIRONMENT entries the code no longer reads: " + ", ".join(gone))
    if problems:
        raise UndocumentedConfig("; ".join(problems))


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _table(rows: list[Row]) -> list[str]:
    out = ["| key | type | default | constraints | meaning |", "|---|---|---|---|---|"]
    out += [f"| `{r.key}` | {_cell(r.type)} | {_cell(r.default)} | {_cell(r.constraints)}"
            f" | {_cell(r.meaning)} |" for r in rows]
    return out


def type_options() -> list[tuple[str, list[str]]]:
    """Per connector type: its own keys, and the common keys it requires."""
    from connectors import registry

    common = COMMON_OPTIONS.model_fields
    out = []
    for name, cls in sorted(registry.available().items()):
        keys = []
        for key, info in cls.Config.model_fields.items():
            base = common.get(key)
            if base is None:
                keys.append(f"`{key}`" + (" (required)" if info.is_required() else ""))
            elif info.is_required() and not base.is_required():
                keys.append(f"`{key}` (required)")
        if keys:
            out.append((name, keys))
    return out


def render() -> str:
    """The text of docs/contract/configuration.md."""
    _check_environment()
    out = [INTRO]
    for section in sections():
        title = f"`{section.key}`" if section.key else "Top level"
        out += [f"## {title}", "", section.intro.strip(), "", *_table(section.rows), ""]
    out += ["## Per connector type", "", TYPE_OPTIONS_INTRO.strip(), "",
            "| type | keys |", "|---|---|"]
    out += [f"| `{name}` | {', '.join(keys)} |" for name, keys in type_options()]
    out += ["", "## Environment", "", ENV_INTRO.strip(), "", "| variable | effect |",
            "|---|---|"]
    out += [f"| `{name}` | {_cell(' '.join(text.split()))} |"
            for name, text in ENVIRONMENT.items()]
    return "\n".join(out) + "\n"


def main() -> None:
    """Write docs/contract/configuration.md."""
    text = render()
    DOC_PATH.parent.mkdir(parents=True, exist_ok=True)
    DOC_PATH.write_text(text, encoding="utf-8")
    print(f"wrote {DOC_PATH.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
