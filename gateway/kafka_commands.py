"""The commands that talk to Kafka: ``gateway tail``, ``gateway topics check|create``,
``gateway check-config --connect``, and ``gateway run``'s startup check of the topics."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys

from pydantic import ValidationError

from gateway.config import LoadedConfig, load_config, problems_from_validation, resolve_path
from gateway.errors import ConfigError
from gateway.kafka_settings import KafkaConfig, from_environment


def check_connection(kafka: KafkaConfig) -> int:
    """``check-config --connect``: connect as the relay does and say what failed."""
    from aiokafka.errors import KafkaError

    from gateway.kafka import explain, make_producer

    async def check() -> int:
        producer = make_producer(kafka)
        how = kafka.security_protocol + (f" {kafka.sasl_mechanism}" if kafka.sasl_mechanism
                                         else "")
        try:
            await asyncio.wait_for(producer.start(), kafka.request_timeout_ms / 1000 + 5)
            metadata = await producer.client.fetch_all_metadata()
        except (KafkaError, OSError, TimeoutError) as exc:
            reason, _ = await explain(kafka, exc)
            print(f"cannot connect to Kafka at {kafka.bootstrap_servers} ({how}): {reason}",
                  file=sys.stderr)
            return 3
        finally:
            with contextlib.suppress(Exception):
                await producer.stop()
        print(f"ok: connected to Kafka at {kafka.bootstrap_servers} ({how}):"
              f" {len(metadata.brokers())} broker(s), {len(metadata.topics())} topic(s)")
        return await check_registry(kafka)

    return asyncio.run(check())


async def check_registry(kafka: KafkaConfig) -> int:
    """The schema registry's half of ``check-config --connect`` (0 when none is set)."""
    from gateway.schema_registry import RegistryUnavailable, SchemaRegistry

    if kafka.schema_registry is None:
        return 0
    registry = SchemaRegistry(kafka.schema_registry)
    try:
        subjects = await registry.subjects()
    except RegistryUnavailable as exc:
        print(f"cannot use the schema registry at {kafka.schema_registry.url}: {exc}",
              file=sys.stderr)
        return 3
    finally:
        await registry.aclose()
    print(f"ok: schema registry at {kafka.schema_registry.url}: {subjects} subject(s)")
    return 0


def kafka_settings(config: str | None) -> KafkaConfig:
    """``kafka:`` of the config file (the environment laid over it); without a file, the
    environment's ``KAFKA_*`` alone."""
    if config or os.environ.get("GATEWAY_CONFIG"):
        return load_config(resolve_path(config), allow_placeholders=True).settings.kafka
    try:
        return KafkaConfig.model_validate(from_environment({}, dict(os.environ)))
    except ValidationError as exc:
        raise ConfigError(problems_from_validation(exc, ("kafka",))) from None


def topics_refusal(loaded: LoadedConfig) -> str | None:
    """The startup check of ``kafka.missing_topics: fail`` (see gateway.provisioning)."""
    from aiokafka.errors import KafkaError

    from gateway import provisioning
    from gateway.kafka import explain, make_admin

    async def check() -> str | None:
        admin = make_admin(loaded.settings.kafka)
        try:
            await asyncio.wait_for(admin.start(), provisioning.TIMEOUT)
            return await provisioning.refusal_to_start(loaded, admin)
        except (KafkaError, OSError, TimeoutError) as exc:
            reason, _ = await explain(loaded.settings.kafka, exc)
            print(f"gateway: cannot check the topics now ({reason}); starting: the"
                  " buffer keeps events until Kafka is reachable", file=sys.stderr)
            return None
        finally:
            await admin.close()

    return asyncio.run(check())


def cmd_topics(args: argparse.Namespace) -> int:
    """``gateway topics check|create``: the topics the gateway writes against the cluster."""
    from aiokafka.errors import KafkaError

    from gateway import provisioning
    from gateway.kafka import explain, make_admin

    loaded = load_config(resolve_path(args.config), allow_placeholders=True)
    kafka = loaded.settings.kafka

    async def run() -> int:
        admin = make_admin(kafka)
        try:
            await asyncio.wait_for(admin.start(), provisioning.TIMEOUT)
            topics, dynamic = provisioning.planned(loaded)
            report = await provisioning.inspect(admin, topics, dynamic)
            if args.action == "create" and report.missing:
                for name in await provisioning.create(admin, topics, report):
                    print(f"created  {name}")
                report = await provisioning.inspect(admin, topics, dynamic)
        except (KafkaError, OSError, TimeoutError) as exc:
            reason, _ = await explain(kafka, exc)
            print(f"cannot reach Kafka at {kafka.bootstrap_servers}: {reason}",
                  file=sys.stderr)
            return 2
        except provisioning.ProvisioningError as exc:
            print(str(exc), file=sys.stderr)
            return 1
        finally:
            await admin.close()
        print("\n".join(provisioning.lines(report)))
        if report.missing:
            print("missing topics: create them with `gateway topics create`", file=sys.stderr)
        if report.differing:
            print("topics that differ from kafka.topics are not changed by the gateway:"
                  " alter them with your cluster's tools", file=sys.stderr)
        return 1 if report.missing or report.differing else 0

    return asyncio.run(run())


def cmd_tail(args: argparse.Namespace) -> int:
    """``gateway tail``: records as they arrive. It never creates a topic: the ones that
    do not exist yet are named and waited for (asked by listing every topic, since a
    metadata request naming one may make a broker that auto-creates topics create it)."""
    from aiokafka.errors import KafkaError

    from gateway.kafka import explain, make_admin, make_consumer

    kafka = kafka_settings(args.config)

    async def existing() -> set[str]:
        admin = make_admin(kafka)
        try:
            await asyncio.wait_for(admin.start(), 15)
            return set(await admin.list_topics())
        finally:
            await admin.close()

    async def tail() -> int:
        try:
            missing = sorted(set(args.topic) - await existing())
            if missing:
                print(f"gateway: not on the cluster yet: {', '.join(missing)} (the gateway"
                      " writes them with their first event); waiting", file=sys.stderr)
            while missing:
                await asyncio.sleep(2)
                missing = sorted(set(args.topic) - await existing())
            consumer = make_consumer(kafka, *args.topic, from_beginning=args.from_beginning)
            await consumer.start()
        except (KafkaError, OSError, TimeoutError) as exc:
            reason, _ = await explain(kafka, exc)
            print(f"gateway: cannot reach Kafka at {kafka.bootstrap_servers}: {reason}",
                  file=sys.stderr)
            return 2
        try:
            seen = 0
            async for msg in consumer:
                headers = {k: v.decode(errors="replace") for k, v in msg.headers}
                key = msg.key.decode(errors="replace") if msg.key else None
                print(f"# {msg.topic}[{msg.partition}]@{msg.offset} key={key} {headers}")
                print((msg.value or b"").decode(errors="replace"), flush=True)
                seen += 1
                if args.max and seen >= args.max:
                    break
        finally:
            await consumer.stop()
        return 0

    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(tail())
    return 130
