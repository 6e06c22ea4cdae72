"""The Kafka side: the producer the relay publishes with (``acks=all``, idempotent), and
an admin client for the same cluster."""

from __future__ import annotations

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from gateway.config import KafkaConfig


def make_producer(cfg: KafkaConfig) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=cfg.bootstrap_servers,
        client_id=cfg.client_id,
        acks="all",
        enable_idempotence=True,
        linger_ms=cfg.linger_ms,
        max_batch_size=256 * 1024,
        max_request_size=cfg.max_message_bytes + 65536,  # the record, and a request's own
        request_timeout_ms=cfg.request_timeout_ms,
        retry_backoff_ms=200,
        compression_type=cfg.compression_type,
    )


def make_admin(cfg: KafkaConfig) -> AIOKafkaAdminClient:
    return AIOKafkaAdminClient(bootstrap_servers=cfg.bootstrap_servers,
                               client_id=cfg.client_id,
                               request_timeout_ms=cfg.request_timeout_ms)
