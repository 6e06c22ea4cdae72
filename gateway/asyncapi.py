"""An AsyncAPI 3.0 document of what the gateway publishes (``gateway asyncapi``).

From the configuration: the brokers (and how clients authenticate to them), one channel
per topic the connectors write (a template that holds ``{type}``, or a push source's
``{source}``, becomes a channel address with that parameter), and per connector a
message in its topic's format (``kafka.format``): the envelope, or a CloudEvent in
binary or structured mode, with its headers and the record key. Where the connector's
``events`` allow-list names its event types, the message's ``type`` is bound to them.
The dead-letter topic has a channel of its own.
"""

from __future__ import annotations

import re
from typing import Any

from connectors.base import Connector, PushSource
from gateway import __version__
from gateway.config import LoadedConfig
from gateway.envelope import json_schema
from gateway.formats import CLOUDEVENT_SCHEMA
from gateway.kafka_settings import Format, KafkaConfig

_KEY_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
_TRACE = {"traceparent": {"type": "string", "description": "W3C trace context: the"
                          " gateway's span of the request that made the event"},
          "tracestate": {"type": "string", "description": "W3C trace state, as sent"}}
_TEXT = {"type": "string"}
_TIME = {"type": "string", "format": "date-time"}

SCHEMAS: dict[str, Any] = {
    "EnvelopeHeaders": {"type": "object", "properties": {
        "content-type": {"const": "application/json"}, "event-id": _TEXT,
        "event-type": _TEXT, "event-source": _TEXT, "connector-id": _TEXT, **_TRACE},
        "required": ["content-type", "event-id", "event-type", "event-source",
                     "connector-id", "traceparent"]},
    "CloudEventBinaryHeaders": {"type": "object", "properties": {
        "content-type": {"const": "application/json"}, "ce_specversion": {"const": "1.0"},
        "ce_id": _TEXT, "ce_source": _TEXT, "ce_type": _TEXT, "ce_time": _TIME,
        "ce_connectorid": _TEXT, "ce_receivedat": _TIME, "ce_partitionkey": _TEXT,
        **_TRACE}, "required": ["content-type", "ce_specversion", "ce_id", "ce_source",
                                "ce_type", "ce_time", "ce_connectorid", "ce_receivedat",
                                "ce_partitionkey", "traceparent"]},
    "CloudEventStructuredHeaders": {"type": "object", "properties": {
        "content-type": {"const": "application/cloudevents+json"}, **_TRACE},
        "required": ["content-type", "traceparent"]},
    "CloudEvent": {k: v for k, v in CLOUDEVENT_SCHEMA.items() if k != "$schema"},
    "DeadLetter": {"type": "object", "title": "Dead letter", "properties": {
        "id": _TEXT, "connector_id": _TEXT, "source": _TEXT, "reason": _TEXT,
        "received_at": _TIME, "request_id": {"type": ["string", "null"]},
        "content_type": {"type": ["string", "null"]},
        "body": {"type": ["string", "null"], "description": "the raw body, as text"},
        "body_base64": {"type": ["string", "null"], "description": "the raw body when it"
                        " is not UTF-8"},
        "topic": {"type": "string", "description": "a record Kafka refused: its topic"},
        "type": {"type": "string", "description": "a record Kafka refused: its type"},
        "event": {"description": "a record Kafka refused: its value"},
        "format": {"type": "string", "description": "a refused CloudEvent: its mode"},
        "headers": {"type": "object", "description": "a refused CloudEvent: its headers;"
                    " a webhook delivery: the request's headers, secret-bearing ones"
                    " \"[redacted]\""},
        "delivery_id": {"type": "string", "description": "the provider's delivery id (a"
                        " polled record: its id), to normalize it again"}},
        "required": ["id", "connector_id", "source", "reason", "received_at"]},
}
_CONTENT = {"envelope": ("application/json", "EnvelopeHeaders"),
            "cloudevents-binary": ("application/json", "CloudEventBinaryHeaders"),
            "cloudevents-structured": ("application/cloudevents+json",
                                       "CloudEventStructuredHeaders")}
_SECURITY = {"PLAIN": "plain", "SCRAM-SHA-256": "scramSha256",
             "SCRAM-SHA-512": "scramSha512", "OAUTHBEARER": "oauth2"}


def _ref(kind: str, name: str) -> dict[str, str]:
    return {"$ref": f"#/components/{kind}/{name}"}


def _types(connector: Connector[Any]) -> dict[str, Any]:
    """The ``type`` values the connector's allow-list lets through, as a schema."""
    allowed = connector.config.events
    if not allowed:
        return {"type": "string"}
    names = "|".join(re.escape(e) for e in sorted(allowed))
    return {"type": "string", "pattern": f"^({names})(\\..+)?$",
            "description": "an event type the connector's `events` allow-list names, or"
                           " a dotted subtype of one: " + ", ".join(sorted(allowed))}


def _message(connector: Connector[Any], fmt: Format, source: str | None) -> dict[str, Any]:
    cid = connector.connector_id
    content_type, headers = _CONTENT[fmt]
    sources = {"const": source} if source else {"type": "string"}
    if fmt == "envelope":
        payload: dict[str, Any] = {"allOf": [_ref("schemas", "Envelope"), {
            "type": "object", "properties": {"connector_id": {"const": cid},
                                             "source": sources, "type": _types(connector)}}]}
    elif fmt == "cloudevents-structured":
        payload = {"allOf": [_ref("schemas", "CloudEvent"), {
            "type": "object", "properties": {"connectorid": {"const": cid},
                                             "source": sources, "type": _types(connector)}}]}
    else:
        payload = {"type": "object", "description": "the source's event (the CloudEvent's"
                   " data); its attributes are in the headers (`ce_type`: "
                   + (", ".join(sorted(connector.config.events or ())) or "any type") + ")"}
    return {"name": cid, "title": f"Events of connector {cid}", "contentType": content_type,
            "headers": _ref("schemas", headers), "payload": payload,
            "bindings": {"kafka": {"key": {"type": "string", "description":
                                           "the partition key the connector chose (default"
                                           " the connector id): order holds per key"},
                                   "bindingVersion": "0.5.0"}}}


def _address(kafka: KafkaConfig, connector: Connector[Any], source: str | None) -> str:
    """The connector's topic, ``{type}`` (and an unknown ``{source}``) kept as parameters."""
    template = connector.topic or kafka.topic
    name = template.replace("{connector_id}", connector.connector_id)
    return name.replace("{source}", source) if source else name


def _servers(kafka: KafkaConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    secure = kafka.security_protocol in ("SSL", "SASL_SSL")
    schemes: dict[str, Any] = {}
    if kafka.sasl_mechanism is not None:
        schemes["sasl"] = {"type": _SECURITY[kafka.sasl_mechanism]}
        if kafka.sasl_mechanism == "OAUTHBEARER":
            schemes["sasl"]["flows"] = {"clientCredentials": {
                "tokenUrl": kafka.sasl_oauth_token_url, "availableScopes": {}}}
    elif kafka.ssl_certfile is not None:
        schemes["mtls"] = {"type": "X509"}
    servers = {}
    for n, host in enumerate(kafka.bootstrap_servers.split(","), start=1):
        server: dict[str, Any] = {"host": host.strip(),
                                  "protocol": "kafka-secure" if secure else "kafka",
                                  "description": f"security protocol {kafka.security_protocol}"}
        if schemes:
            server["security"] = [_ref("securitySchemes", name) for name in schemes]
        servers[f"broker{n}"] = server
    return servers, schemes


def document(loaded: LoadedConfig) -> dict[str, Any]:
    """The AsyncAPI 3.0.0 document of what ``loaded`` publishes."""
    kafka = loaded.settings.kafka
    channels: dict[str, Any] = {}
    keys: dict[str, str] = {}  # address -> channel key

    def channel(address: str, description: str) -> dict[str, Any]:
        """The channel of ``address`` (made on first use)."""
        if address not in keys:
            key = _KEY_UNSAFE.sub("_", address) or "topic"
            while key in channels:
                key += "_"
            keys[address] = key
            params = {p: {"description": f"filled in per event: its {p}"}
                      for p in re.findall(r"\{(type|source)\}", address)}
            channels[key] = {"address": address, "description": description,
                             "messages": {}, **({"parameters": params} if params else {})}
        result: dict[str, Any] = channels[keys[address]]
        return result

    for connector in sorted(loaded.connectors.values(), key=lambda c: c.connector_id):
        sources: list[str | None] = [connector.source_slug]
        if isinstance(connector, PushSource):  # its events name their source
            sources = [*loaded.acls[connector.connector_id].named_sources] or [None]
        for source in sources:
            address = _address(kafka, connector, source)
            name = _KEY_UNSAFE.sub("_", connector.connector_id + (f"-{source}" if source
                                                                  and len(sources) > 1 else ""))
            channel(address, "Events the gateway publishes")["messages"][name] = _message(
                connector, kafka.format_for(address), source)
    channel(kafka.dead_letter_topic, "Dead letters: authentic deliveries and polled records"
            " that could not become events, and records Kafka refused")["messages"][
        "deadLetter"] = {"name": "deadLetter", "contentType": "application/json",
                         "headers": _ref("schemas", "EnvelopeHeaders"),
                         "payload": _ref("schemas", "DeadLetter")}
    operations = {f"publish_{key}": {
        "action": "send", "channel": {"$ref": f"#/channels/{key}"},
        "messages": [{"$ref": f"#/channels/{key}/messages/{m}"} for m in ch["messages"]]}
        for key, ch in channels.items()}
    envelope = {k: v for k, v in json_schema().items() if k != "$schema"}
    servers, schemes = _servers(kafka)
    components: dict[str, Any] = {"schemas": {"Envelope": envelope, **SCHEMAS}}
    if schemes:
        components["securitySchemes"] = schemes
    return {
        "asyncapi": "3.0.0",
        "info": {"title": "Event gateway", "version": __version__, "description":
                 "What the event gateway publishes to Kafka: one message per event, keyed"
                 " by its partition key, in the format its topic is configured for."},
        "defaultContentType": "application/json",
        "servers": servers, "channels": channels, "operations": operations,
        "components": components,
    }
