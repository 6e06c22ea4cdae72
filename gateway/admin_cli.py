"""The admin API from the command line: ``gateway deliveries search``, ``gateway replay``,
``gateway dlq redrive``, ``gateway reload``, ``gateway connectors pause|resume`` (the
address and token from the configuration's ``admin``)."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import httpx
import orjson

from gateway.config import load_config, resolve_path


def _call(args: argparse.Namespace, method: str, path: str, **kwargs: Any) -> Any:
    admin = load_config(resolve_path(args.config), allow_placeholders=True).settings.admin
    if admin.token is None:
        raise SystemExit("gateway: the admin API is off: set admin.token in the config")
    host = "127.0.0.1" if admin.host in ("0.0.0.0", "::") else admin.host
    try:
        response = httpx.request(method, f"http://{host}:{admin.port}/admin{path}",
                                 headers={"Authorization":
                                          f"Bearer {admin.token.get_secret_value()}"},
                                 timeout=60, **kwargs)
    except httpx.HTTPError as exc:
        raise SystemExit(f"gateway: the admin API at {host}:{admin.port} cannot be reached"
                         f" ({type(exc).__name__}): is the gateway running?") from None
    if response.status_code >= 400:
        raise SystemExit(f"gateway: {response.status_code} {response.text}")
    return response.json()


def _since(value: str | None) -> float | None:
    """``10m``, ``2h``, ``1d`` ago, or epoch seconds."""
    if not value:
        return None
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if value[-1] in units and value[:-1].replace(".", "", 1).isdigit():
        return time.time() - float(value[:-1]) * units[value[-1]]
    return float(value)


def _filters(args: argparse.Namespace) -> dict[str, Any]:
    found = {"connector_id": args.connector, "outcome": getattr(args, "outcome", None),
             "reason": args.reason, "q": args.q, "since": _since(args.since),
             "until": _since(args.until)}
    return {k: v for k, v in found.items() if v is not None}


def cmd_search(args: argparse.Namespace) -> int:
    found = _call(args, "GET", "/deliveries", params={**_filters(args), "limit": args.limit})
    for d in found["deliveries"]:
        when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(d["at"]))
        print(f"{when}  {d['request_id']}  {d['connector_id'] or '-'}  {d['outcome']}"
              f"{' ' + d['reason'] if d['reason'] else ''}  {len(d['event_ids'])} event(s)")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    print(orjson.dumps(_call(args, "GET", f"/deliveries/{args.request_id}"),
                       option=orjson.OPT_INDENT_2).decode())
    return 0


def _report(report: dict[str, Any]) -> int:
    for r in report["replayed"]:
        print(f"replayed {r['request_id']}: {', '.join(r['event_ids'])}")
    for s in report["skipped"]:
        print(f"skipped  {s['request_id']}: {s['reason']}", file=sys.stderr)
    return 0 if report["replayed"] or not report["skipped"] else 1


def cmd_replay(args: argparse.Namespace) -> int:
    body = {"request_ids": args.request_ids} if args.request_ids else {
        "filter": _filters(args)}
    return _report(_call(args, "POST", "/replay", json=body))


def cmd_redrive(args: argparse.Namespace) -> int:
    filters = _filters(args)
    if args.from_topic and "since" not in filters:
        raise SystemExit("gateway: --from-topic needs --since (the start of the range)")
    report = _call(args, "POST", "/dlq/redrive",
                   json={"filter": filters, "from_topic": args.from_topic})
    if report.get("truncated"):
        print(f"read the first {report['read']} dead letters of the range: redrive the"
              " rest with a later --since", file=sys.stderr)
    return _report(report)


def cmd_reload(args: argparse.Namespace) -> int:
    swapped = _call(args, "POST", "/reload")["reloaded"]
    print(f"reloaded: {', '.join(swapped) or 'nothing changed'}")
    return 0


def cmd_pause(args: argparse.Namespace) -> int:
    paused = _call(args, "POST", f"/connectors/{args.connector_id}/{args.connectors_command}")
    print(f"paused: {', '.join(paused['paused']) or 'none'}")
    return 0


def add_parsers(sub: Any, connectors_sub: Any) -> None:
    """The commands, on ``gateway``'s parser (``sub``) and ``gateway connectors``'s."""
    def filters(p: argparse.ArgumentParser, outcome: bool = True) -> None:
        p.add_argument("--config")  # its help: cli._default_help
        p.add_argument("--connector", help="only this connector id")
        if outcome:
            p.add_argument("--outcome", help="accepted, duplicate, rejected, handshake,"
                           " filtered, dead_lettered or failed")
        p.add_argument("--reason", help="an audit reason (invalid_signature, ...)")
        p.add_argument("--q", help="text the body contains")
        p.add_argument("--since", help="10m, 2h, 1d ago, or epoch seconds")
        p.add_argument("--until", help="as --since")

    deliveries = sub.add_parser("deliveries", help="the delivery store (admin API)")
    dsub = deliveries.add_subparsers(dest="deliveries_command", required=True)
    search = dsub.add_parser("search", help="stored deliveries, newest first")
    filters(search)
    search.add_argument("--limit", type=int, default=50, help="at most this many")
    search.set_defaults(func=cmd_search)
    show = dsub.add_parser("show", help="one delivery: outcomes, headers, body, and where"
                           " its events went (topic, partition, offset)")
    show.add_argument("request_id", help="its X-Request-Id")
    show.add_argument("--config")  # its help: cli._default_help
    show.set_defaults(func=cmd_show)

    replay = sub.add_parser("replay", help="stored deliveries through their connector"
                            " again, with the same event ids (admin API)")
    replay.add_argument("request_ids", nargs="*", help="X-Request-Ids (or use filters)")
    filters(replay)
    replay.set_defaults(func=cmd_replay)

    dlq = sub.add_parser("dlq", help="dead letters (admin API)")
    dlq_sub = dlq.add_subparsers(dest="dlq_command", required=True)
    redrive = dlq_sub.add_parser("redrive", help="normalize stored dead letters again:"
                                 " those that now succeed are published, the rest stay")
    filters(redrive, outcome=False)
    redrive.add_argument("--from-topic", action="store_true",
                         help="read them back from kafka.dead_letter_topic (from --since to"
                         " --until) instead of the delivery store")
    redrive.set_defaults(func=cmd_redrive)

    reload = sub.add_parser("reload", help="read the configuration again, in every"
                            " process, without a restart (admin API)")
    reload.add_argument("--config")  # its help: cli._default_help
    reload.set_defaults(func=cmd_reload)

    for name, text in (("pause", "answer a connector's deliveries 503 with Retry-After"
                        " (nothing is lost: providers retry)"),
                       ("resume", "take a paused connector's deliveries again")):
        p = connectors_sub.add_parser(name, help=text + " (admin API)")
        p.add_argument("connector_id", help="a connector of the config")
        p.add_argument("--config")  # its help: cli._default_help
        p.set_defaults(func=cmd_pause)
