"""Real Apache Kafka for tests and development, from Maven Central, in KRaft mode.

- ``LocalKafka()``: one combined broker+controller on loopback (``.bootstrap``);
  ``LocalKafka(security=Security())`` adds SASL_SSL (SCRAM-SHA-512), mutual-TLS and
  OAUTHBEARER (SASL_PLAINTEXT, unsecured JWTs: ``unsecured_jwt``) listeners, described by
  ``.secure`` (a ``SecureAccess``).
- ``LocalKafkaCluster(nodes=3)``: a quorum of combined nodes, with ``stop_node``,
  ``kill_node``, ``start_node``, ``leader``, ``partition``, ``create_topic``.
"""

from devtools.kafka.cluster import LocalKafka, LocalKafkaCluster
from devtools.kafka.node import KafkaNode
from devtools.kafka.probe import READY_TOPIC, PartitionState
from devtools.kafka.runtime import (
    CACHE,
    KAFKA_VERSION,
    KafkaLaunchError,
    classpath,
    free_port,
    free_ports,
    new_cluster_id,
    port_free,
)
from devtools.kafka.security import (
    OAUTH_MECHANISM,
    SCRAM_MECHANISM,
    SecureAccess,
    Security,
    UnsecuredTokens,
    unsecured_jwt,
)
from devtools.kafka.tls import Pki, write_pki

__all__ = [
    "CACHE",
    "KAFKA_VERSION",
    "OAUTH_MECHANISM",
    "READY_TOPIC",
    "SCRAM_MECHANISM",
    "KafkaLaunchError",
    "KafkaNode",
    "LocalKafka",
    "LocalKafkaCluster",
    "PartitionState",
    "Pki",
    "SecureAccess",
    "Security",
    "UnsecuredTokens",
    "classpath",
    "free_port",
    "free_ports",
    "new_cluster_id",
    "port_free",
    "unsecured_jwt",
    "write_pki",
]
