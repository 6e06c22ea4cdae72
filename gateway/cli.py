"""``gateway``: run the service, check a config, sign a test delivery, watch a topic."""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import signal
import sys
import time
import uuid
from pathlib import Path

import orjson
import yaml

from connectors.base import PushSource, Webhook
from gateway import logging as gateway_logging
from gateway.config import LoadedConfig, load_config, resolve_path
from gateway.errors import ConfigError
from gateway.kafka_commands import check_connection, cmd_tail, cmd_topics, topics_refusal


def _load(path: str | None, *, allow_placeholders: bool = False) -> LoadedConfig:
    return load_config(resolve_path(path), allow_placeholders=allow_placeholders)


def _dev(args: argparse.Namespace) -> None:
    """``--dev``: placeholder secrets are accepted (here and in the child processes)."""
    if getattr(args, "dev", False):
        os.environ["GATEWAY_DEV"] = "1"
        print("gateway: development mode: placeholder secrets are accepted; never expose"
              " this instance", file=sys.stderr)


def cmd_check_config(args: argparse.Namespace) -> int:
    _dev(args)
    loaded = _load(args.config)
    s = loaded.settings
    print(f"ok: {len(loaded.connectors)} enabled connector(s): "
          f"{', '.join(sorted(loaded.connectors)) or '-'}; kafka {s.kafka.bootstrap_servers};"
          f" data dir {s.data_dir}")
    return check_connection(s.kafka) if args.connect else 0


def cmd_relay(args: argparse.Namespace) -> int:
    import uvloop

    from gateway.relay import serve

    loaded = _load(args.config)
    gateway_logging.configure()
    if args.nice:  # behind the 2xx: the request path comes first
        os.nice(args.nice)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await serve(loaded, stop, pollers=args.command == "poll")

    uvloop.run(main())
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from gateway.background import RelayProcess
    from gateway.server import serve, uvicorn_config

    _dev(args)
    config_path = resolve_path(args.config)
    os.environ["GATEWAY_CONFIG"] = str(config_path.resolve())
    loaded = load_config(config_path)
    if loaded.settings.kafka.missing_topics == "fail" and (refusal := topics_refusal(loaded)):
        print(f"gateway: {refusal}", file=sys.stderr)
        return 2
    server = loaded.settings.server
    host = args.host or server.host
    port = server.port if args.port is None else args.port
    workers = args.workers or server.workers
    gateway_logging.configure()
    os.environ["GATEWAY_INSTANCE"] = uuid.uuid4().hex  # its workers' and relay's metrics
    relay = RelayProcess(config_path.resolve())
    relay.start()
    # No "server: uvicorn" header: a sender need not learn what answers it. No
    # log_config: uvicorn's own logs go through ours (gateway/logging.py), as JSON.
    if workers == 1:
        from gateway.app import create_app

        app: object = create_app(loaded, relay_in_process=False)
    else:
        os.environ["GATEWAY_RELAY"] = "external"
        app = "gateway.app:create_app_from_env"
    print(f"gateway: listening on http://{host}:{port} ({workers} worker(s)); data in"
          f" {server_data_dir(loaded)}", file=sys.stderr)
    try:
        serve(uvicorn_config(app, server, host=host, port=port, workers=workers,
                             factory=workers > 1))
    finally:
        relay.stop()
    return 0


def cmd_sign(args: argparse.Namespace) -> int:
    loaded = _load(args.config, allow_placeholders=True)  # signing serves nothing
    connector = loaded.connectors.get(args.connector_id)
    if not isinstance(connector, Webhook | PushSource):
        signable = sorted(cid for cid, c in loaded.connectors.items()
                          if isinstance(c, Webhook | PushSource))
        print(f"no enabled webhook or push connector {args.connector_id!r}; configured: "
              f"{', '.join(signable) or '-'}", file=sys.stderr)
        return 2
    try:
        body = Path(args.body).read_bytes() if args.body else connector.sample_body()
    except OSError as exc:
        print(f"gateway: cannot read {args.body}: {exc.strerror}", file=sys.stderr)
        return 2
    try:
        headers = connector.sign(body)
    except NotImplementedError:
        print(f"{args.connector_id!r} ({type(connector).__name__}) is signed with the "
              "provider's private key; only the provider can sign its deliveries",
              file=sys.stderr)
        return 2
    server = loaded.settings.server
    host = "127.0.0.1" if server.host in ("0.0.0.0", "::") else server.host
    url = args.url or f"http://{host}:{server.port}/webhooks/{args.connector_id}"
    parts = ["curl", "-sS", "-X", "POST", url]
    for name, value in {"Content-Type": "application/json", **headers}.items():
        parts += ["-H", f"{name}: {value}"]
    # a file is sent as curl reads it (any bytes); the sample inline
    parts += ["--data-binary", f"@{args.body}" if args.body else body.decode()]
    print(shlex.join(parts))
    return 0


def cmd_providers(args: argparse.Namespace) -> int:
    from connectors import registry

    if args.json:
        print(orjson.dumps([d.model_dump(mode="json") for _, d in sorted(
            registry.definitions().items())], option=orjson.OPT_INDENT_2).decode())
        return 0
    for name, d in sorted(registry.definitions().items()):
        print(f"{name:<20} {d.kind:<8} {d.display_name}")
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    from gateway.envelope import schema_text

    sys.stdout.write(schema_text())
    return 0


def cmd_asyncapi(args: argparse.Namespace) -> int:
    from gateway.asyncapi import document

    doc = document(_load(args.config, allow_placeholders=True))  # secrets are not read
    sys.stdout.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n"
                     if args.json else yaml.safe_dump(doc, sort_keys=False, width=88))
    return 0


def cmd_connectors_show(args: argparse.Namespace) -> int:
    loaded = _load(args.config, allow_placeholders=True)
    entry = loaded.settings.connectors.get(args.connector_id)
    if entry is None:
        print(f"gateway: no connector {args.connector_id!r} in the configuration",
              file=sys.stderr)
        return 1
    kafka = loaded.settings.kafka
    connector = loaded.connectors.get(args.connector_id)
    topic = (connector.topic if connector is not None else None) or kafka.topic
    governance = entry.governance
    print(orjson.dumps({
        "id": args.connector_id, "type": entry.type, "enabled": entry.enabled,
        "topic": topic, "format": kafka.format_for(topic),
        "config": entry.config,  # secrets are masked in the settings
        "governance": governance.model_dump(mode="json") if governance else None,
    }, option=orjson.OPT_INDENT_2).decode())
    return 0


def cmd_connectors_status(args: argparse.Namespace) -> int:
    from gateway.certification import read_state

    settings = _load(args.config, allow_placeholders=True).settings
    state = read_state(settings.data_dir)
    if args.json:
        print(orjson.dumps(state, option=orjson.OPT_INDENT_2).decode())
        return 0
    if not state:
        print("gateway: no evaluation yet (the relay evaluates every"
              f" {settings.certification.evaluate_seconds:g} s)", file=sys.stderr)
        return 1
    print(f"{'connector':<24} {'certification':<14} {'objective':<22} {'target':>9}"
          f" {'measured':>9}  breach")
    for cid, view in sorted(state.get("connectors", {}).items()):
        cert = view["certification"]["state"]
        rows = [(o, view["objectives"].get(o), view["measured"].get(o))
                for o in ("freshness_minutes", "availability_percent", "error_rate_percent")]
        for i, (objective, goal, value) in enumerate(rows):
            print(f"{cid if i == 0 else '':<24} {cert if i == 0 else '':<14} {objective:<22}"
                  f" {'-' if goal is None else f'{goal:g}':>9}"
                  f" {'-' if value is None else f'{value:g}':>9}"
                  f"  {'BREACH' if objective in view['breaches'] else ''}")
        if "health" in view:
            print(f"{'':<24} health: {view['health']['status']} ({view['health']['reason']})")
    age = time.time() - state.get("evaluated_at", 0)
    print(f"evaluated {age:.0f} s ago; measured over the last {state['measure_seconds']:g} s;"
          f" a clean {state['window_seconds']:g} s certifies", file=sys.stderr)
    return 0


def cmd_decrypt(args: argparse.Namespace) -> int:
    from gateway.governance import decrypt

    keys = _load(args.config, allow_placeholders=True).settings.governance
    failed = 0
    for token in args.tokens:
        try:
            print(orjson.dumps(decrypt(keys, token)).decode())
        except ValueError as exc:
            print(f"gateway: {exc}", file=sys.stderr)
            failed += 1
    return 1 if failed else 0


def server_data_dir(loaded: LoadedConfig) -> str:
    return str(Path(loaded.settings.data_dir).resolve())


def cmd_audit_verify(args: argparse.Namespace) -> int:
    from gateway.audit import verify_files

    path = Path(args.path) if args.path else _load(
        args.config, allow_placeholders=True).settings.audit_path
    report = verify_files(path)
    print(report.summary())
    return 0 if report.ok else 1


def cmd_quarantine(args: argparse.Namespace) -> int:
    from gateway.buffer import Buffer

    settings = _load(args.config, allow_placeholders=True).settings

    async def show() -> int:
        buffer = Buffer(settings.data_path / "buffer.db", settings.buffer)
        await buffer.open()
        try:
            kept = await buffer.outbox.quarantined_records(args.limit)
        finally:
            await buffer.close()
        for q in kept:
            r = q.record
            line = {"id": q.id, "event_id": r.event_id, "connector_id": r.connector_id,
                    "topic": r.topic, "type": r.event_type, "reason": q.reason,
                    "bytes": len(r.value), "quarantined_at": q.created}
            if args.with_values:
                line["value"] = r.value.decode("utf-8", "replace")
            print(orjson.dumps(line).decode())
        print(f"{len(kept)} quarantined record(s)", file=sys.stderr)
        return 0

    return asyncio.run(show())


def _pairs(values: list[str], flag: str) -> dict[str, str]:
    out = {}
    for value in values:
        key, sep, rest = value.partition("=")
        if not sep or not key:
            raise SystemExit(f"gateway: {flag} takes KEY=VALUE, not {value!r}")
        out[key] = rest
    return out


def cmd_manifest(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from gateway import manifest

    path = Path(args.path)
    try:
        document = manifest.read(path)
    except ValueError as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        return 2
    found = manifest.problems(document)
    if not found:
        try:
            declared = manifest.Manifest.model_validate(document)
        except ValidationError as exc:
            found = [f"$.{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]
    if found:
        print(f"{path}: {len(found)} problem(s)", file=sys.stderr)
        for problem in found:
            print(f"  {problem}", file=sys.stderr)
        return 2
    if args.manifest_command == "validate":
        print(f"{path}: ok ({len(declared.entities)} entities)")
        return 0
    topic = _load(args.config, allow_placeholders=True).settings.kafka.topic \
        if args.config else "events.{source}"
    print("\n".join(manifest.explain(args.id or path.stem, declared, topic)))
    return 0


def cmd_connectors_add(args: argparse.Namespace) -> int:
    from gateway.onboarding import OnboardingError, Terminal, add

    path = resolve_path(args.config)
    term = Terminal(interactive=not args.yes and sys.stdin.isatty())
    try:
        add(path, args.type, args.connector_id, term=term,
            options=_pairs(args.set, "--set"), secret_env=_pairs(args.secret, "--secret"),
            backend=args.backend, base_url=args.url, verify=not args.no_verify)
    except OnboardingError as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        return 2
    except (EOFError, KeyboardInterrupt):
        print("\ngateway: stopped; nothing was changed", file=sys.stderr)
        return 130
    return 0


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("event-gateway")
    except PackageNotFoundError:
        return "(not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gateway", description=__doc__)
    parser.add_argument("--version", action="version", version=f"gateway {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="serve webhooks (and pollers) from a config file")
    run.add_argument("--config", help="config file (default: $GATEWAY_CONFIG)")
    run.add_argument("--host", help="address to listen on (default: server.host)")
    run.add_argument("--port", type=int, help="port to listen on (default: server.port)")
    run.add_argument("--workers", type=int, help="worker processes (default: server.workers)")
    run.add_argument("--dev", action="store_true",
                     help="development only: accept placeholder secrets (change-me...)")
    run.set_defaults(func=cmd_run)

    relay = sub.add_parser("relay", help="publish the local buffer to Kafka (alone; `run`"
                           " starts one itself)")
    relay.add_argument("--config")
    relay.add_argument("--nice", type=int, default=0, help="lower this process's priority")
    relay.set_defaults(func=cmd_relay)

    poll = sub.add_parser("poll", help="run the polling connectors (and the relay) alone,"
                          " as a dedicated daemon; `run` starts one itself")
    poll.add_argument("--config")
    poll.add_argument("--nice", type=int, default=0, help="lower this process's priority")
    poll.set_defaults(func=cmd_relay)

    check = sub.add_parser("check-config", help="validate a config file and exit")
    check.add_argument("--config")
    check.add_argument("--dev", action="store_true", help="accept placeholder secrets")
    check.add_argument("--connect", action="store_true",
                       help="also connect to Kafka as the relay does, and say what failed")
    check.set_defaults(func=cmd_check_config)

    audit = sub.add_parser("audit", help="the audit trail")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True)
    verify = audit_sub.add_parser("verify", help="check that every line of the audit file"
                                  " (and its rotated files) is a whole audit record")
    verify.add_argument("path", nargs="?", help="audit file (default: from the config)")
    verify.add_argument("--config")
    verify.set_defaults(func=cmd_audit_verify)

    quarantine = sub.add_parser("quarantine", help="list records Kafka and the dead-letter"
                                " topic both refused (kept in the buffer)")
    quarantine.add_argument("--config")
    quarantine.add_argument("--limit", type=int, default=1000,
                            help="list at most this many records (default 1000)")
    quarantine.add_argument("--with-values", action="store_true",
                            help="print each record's value (the event) too")
    quarantine.set_defaults(func=cmd_quarantine)

    topics = sub.add_parser("topics", help="the topics the gateway writes, against the"
                            " cluster: check them, or create the missing ones")
    topics.add_argument("action", choices=["check", "create"],
                        help="check: compare with the cluster; create: make the missing ones")
    topics.add_argument("--config")
    topics.set_defaults(func=cmd_topics)

    tail = sub.add_parser("tail", help="print records arriving on topics")
    tail.add_argument("topic", nargs="+", help="topics to read (never created by tail)")
    tail.add_argument("--config")
    tail.add_argument("--from-beginning", action="store_true",
                      help="start at the oldest record, not at the next one")
    tail.add_argument("--max", type=int, default=0, help="stop after this many records")
    tail.set_defaults(func=cmd_tail)

    sign = sub.add_parser("sign", help="print a curl command with a correctly signed delivery")
    sign.add_argument("connector_id", help="a webhook or push connector of the config")
    sign.add_argument("--config")
    sign.add_argument("--body", help="file with the body to send (default: a sample)")
    sign.add_argument("--url", help="override the target URL")
    sign.set_defaults(func=cmd_sign)

    providers = sub.add_parser("providers", help="list the connector types installed")
    providers.add_argument("--json", action="store_true", help="every type's definition,"
                           " with its configuration's JSON Schema")
    providers.set_defaults(func=cmd_providers)

    schema = sub.add_parser("schema", help="print the envelope's JSON Schema")
    schema.set_defaults(func=cmd_schema)

    asyncapi = sub.add_parser("asyncapi", help="print the AsyncAPI 3.0 document of what the"
                              " configuration publishes (YAML)")
    asyncapi.add_argument("--config")
    asyncapi.add_argument("--json", action="store_true", help="JSON instead of YAML")
    asyncapi.set_defaults(func=cmd_asyncapi)

    connectors = sub.add_parser("connectors", help="the configured connectors")
    connectors_sub = connectors.add_subparsers(dest="connectors_command", required=True)
    show = connectors_sub.add_parser("show", help="a connector's type, topic, format and"
                                     " governance (secrets masked)")
    show.add_argument("connector_id", help="a connector of the config")
    show.add_argument("--config")
    show.set_defaults(func=cmd_connectors_show)
    add = connectors_sub.add_parser(
        "add", help="add a connector step by step: its options (secrets read hidden and"
        " stored in a credential backend), a validation step, then the config check")
    add.add_argument("type", help="a connector type (gateway providers)")
    add.add_argument("connector_id", nargs="?", help="its id (default: the type)")
    add.add_argument("--config", help="the configuration file to add it to")
    add.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                     help="an option's value, instead of asking")
    add.add_argument("--secret", action="append", default=[], metavar="KEY=ENVVAR",
                     help="a secret option's value, read from the environment variable")
    add.add_argument("--backend", choices=["file", "vault", "env"], default="file",
                     help="where secrets go: a 0600 file beside the config (default), Vault"
                     " (credentials.vault), or a variable you set")
    add.add_argument("--url", default="http://localhost:8080",
                     help="the gateway's public base URL, for the webhook URL to print")
    add.add_argument("--yes", action="store_true",
                     help="never ask: what is missing is an error (for scripts)")
    add.add_argument("--no-verify", action="store_true",
                     help="skip the validation step (a poller's request to its source)")
    add.set_defaults(func=cmd_connectors_add)
    status = connectors_sub.add_parser("status", help="each connector's SLOs against what"
                                       " was measured, and its certification")
    status.add_argument("--config")
    status.add_argument("--json", action="store_true", help="the whole state, as JSON")
    status.set_defaults(func=cmd_connectors_status)

    manifest = sub.add_parser("manifest", help="a polling connector's manifest"
                              " (connectors.<id>.manifest), read without starting anything")
    manifest_sub = manifest.add_subparsers(dest="manifest_command", required=True)
    for name, text in (("validate", "check it against schema/manifest.schema.json: every"
                        " problem with its path"),
                       ("explain", "print what will be polled, how, and where it goes")):
        command = manifest_sub.add_parser(name, help=text)
        command.add_argument("path", help="the manifest file")
        if name == "explain":
            command.add_argument("--id", help="the connector id (default: the file's name)")
            command.add_argument("--config", help="for kafka.topic, when the manifest names"
                                 " no destination topic")
        command.set_defaults(func=cmd_manifest)

    from gateway.admin_cli import add_parsers

    add_parsers(sub, connectors_sub)

    decrypt = sub.add_parser("decrypt", help="the values behind enc: tokens (pii_handling"
                             " encrypt), with governance.encryption_keys from the config")
    decrypt.add_argument("tokens", nargs="+", metavar="TOKEN",
                         help="enc: tokens from an envelope's payload")
    decrypt.add_argument("--config")
    decrypt.set_defaults(func=cmd_decrypt)
    _default_help(parser)
    return parser


def _default_help(parser: argparse.ArgumentParser) -> None:
    """``--config`` means the same everywhere: said once, for every command."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _default_help(sub)
        elif action.option_strings == ["--config"] and not action.help:
            action.help = "the configuration file (default: $GATEWAY_CONFIG)"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        return 2
