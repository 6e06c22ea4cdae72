"""A real Apache Kafka without Docker: fetched from Maven Central, run in KRaft mode.

    with LocalKafka() as kafka:          # formats storage in a temp dir, free ports
        kafka.bootstrap                  # "127.0.0.1:PORT", accepting produce requests

The launcher lives in ``devtools.kafka`` (one broker, secured listeners, a cluster); this
module keeps its old import path and is the command line:

    python -m devtools.localkafka [--port P] [--data-dir D] [--nodes N] [--secure]
"""

from __future__ import annotations

import contextlib
import signal
import sys
from pathlib import Path

from devtools.kafka import (
    CACHE,
    KAFKA_VERSION,
    READY_TOPIC,
    KafkaLaunchError,
    LocalKafka,
    LocalKafkaCluster,
    SecureAccess,
    Security,
    classpath,
    free_port,
    free_ports,
    new_cluster_id,
    port_free,
)

__all__ = [
    "CACHE",
    "KAFKA_VERSION",
    "READY_TOPIC",
    "KafkaLaunchError",
    "LocalKafka",
    "LocalKafkaCluster",
    "SecureAccess",
    "Security",
    "classpath",
    "free_port",
    "free_ports",
    "main",
    "new_cluster_id",
    "port_free",
]


def main(argv: list[str] | None = None) -> int:
    """Runs a broker (or ``--nodes`` of them) until SIGTERM or Ctrl-C; prints its bootstrap
    address once it accepts produce requests (and, with ``--secure``, how to reach the
    secured listeners)."""
    import argparse
    import threading

    parser = argparse.ArgumentParser(prog="python -m devtools.localkafka",
                                     description="run a local KRaft broker or cluster")
    parser.add_argument("--port", type=int, default=None, help="PLAINTEXT port (one node)")
    parser.add_argument("--data-dir", default=None, help="keep the broker's data here")
    parser.add_argument("--nodes", type=int, default=1, help="combined broker+controllers")
    parser.add_argument("--secure", action="store_true",
                        help="add SASL_SSL (SCRAM-SHA-512), mutual-TLS and OAUTHBEARER"
                        " (SASL_PLAINTEXT, unsecured JWTs) listeners")
    args = parser.parse_args(argv)
    data_dir = Path(args.data_dir) if args.data_dir else None
    security = Security() if args.secure else None
    kafka = LocalKafka(port=args.port, data_dir=data_dir, security=security) \
        if args.nodes == 1 else \
        LocalKafkaCluster(args.nodes, data_dir=data_dir, security=security,
                          ports=None if args.port is None else [args.port])
    try:
        kafka.start()
    except KafkaLaunchError as exc:
        print(f"localkafka: {exc}", file=sys.stderr)
        return 2
    print(kafka.bootstrap, flush=True)
    if security is not None:
        for key, value in vars(kafka.secure).items():
            print(f"{key}={value}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with contextlib.suppress(KeyboardInterrupt):
        stop.wait()
    kafka.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
