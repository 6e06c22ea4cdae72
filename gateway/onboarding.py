"""``gateway connectors add TYPE [ID]``: a new connector, step by step.

1. *Input*: what the type's options need, asked one field at a time (its description, when
   the type gives one), until its ``Config`` validates; a secret is read hidden.
2. *Secrets* go to a credential backend, never into the file as values: ``file`` (a 0600
   file under ``secrets/`` beside the configuration: ``${file:secrets/ID.FIELD}``),
   ``vault`` (``credentials.vault``: ``${vault:gateway/ID#FIELD}``) or ``env`` (the file
   names a variable; set it where the gateway runs).
3. *Validation*: for a webhook type, the URL to give the provider and a signed test
   delivery to try (``curl``); for a poller, one real request to the source.
4. The connector is written into the configuration (its text elsewhere unchanged) and the
   whole file is checked as ``gateway check-config`` does; when it fails, nothing stays.

Every answer can be given as flags instead (``--set KEY=VALUE``, ``--secret KEY=ENVVAR``
reads a secret from the environment, not from the command line), and ``--yes`` never asks:
what is missing is then an error.
"""

from __future__ import annotations

import asyncio
import getpass
import os
import re
import shlex
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import yaml
from pydantic import ValidationError

from connectors.base import Connector, Webhook
from connectors.polling import PollingConnector
from connectors.registry import available, definitions
from gateway.config import load_config
from gateway.credentials import CredentialError, Vault
from gateway.errors import ConfigError

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


class OnboardingError(Exception):
    """The flow cannot finish; the message says what to do."""


@dataclass
class Terminal:
    """Where the questions go. ``interactive`` False: never ask (``--yes``)."""

    interactive: bool = True
    out: TextIO = field(default_factory=lambda: sys.stdout)
    ask_text: Callable[[str], str] = input
    ask_hidden: Callable[[str], str] = getpass.getpass

    def say(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)


@dataclass
class Plan:
    type_name: str
    connector_id: str
    options: dict[str, Any] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)  # field -> value, until stored


def _secret_fields(schema: dict[str, Any]) -> set[str]:
    """Options the type holds as secrets (``SecretStr``: JSON Schema format password)."""
    out = set()
    for name, prop in (schema.get("properties") or {}).items():
        variants = [prop, *prop.get("anyOf", []), prop.get("items") or {}]
        if any(v.get("format") == "password" for v in variants):
            out.add(name)
    return out


def _value(text: str, prop: dict[str, Any]) -> Any:
    """An answer typed as the schema says (YAML for numbers, booleans and lists)."""
    kinds = {v.get("type") for v in [prop, *prop.get("anyOf", [])]}
    if kinds & {"integer", "number", "boolean", "array", "object"}:
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError:
            return text
    return text


def collect(plan: Plan, cls: type[Connector[Any]], term: Terminal) -> Connector[Any]:
    """Asks for what validation says is missing or wrong, until the options validate;
    returns the connector they make."""
    schema = cls.Config.model_json_schema(mode="validation")
    props = schema.get("properties") or {}
    secret_fields = _secret_fields(schema)
    for _ in range(50):  # each round answers at least one problem
        try:
            options = cls.Config.model_validate({**plan.options, **plan.secrets})
            return cls(plan.connector_id, options)
        except ValidationError as exc:
            problems = [(str(e["loc"][0]) if e["loc"] else "", e["msg"]) for e in exc.errors()]
        except Exception as exc:  # InvalidConnector: a value in the wrong format
            problems = [("", str(exc))]
        name, message = problems[0]
        if not name:  # a rule over several fields: ask the first it names
            name = next((p for p in props if re.search(rf"\b{p}\b", message)), "")
        if not term.interactive or not name or name not in props:
            raise OnboardingError("; ".join(f"{n or 'config'}: {m}" for n, m in problems))
        prop = props[name]
        hint = prop.get("description") or prop.get("title") or name
        if name in plan.options or name in plan.secrets:
            term.say(f"  {name}: {message}")
        if name in secret_fields:
            answer = term.ask_hidden(f"{name} ({hint}; hidden): ")
            if answer:
                plan.secrets[name] = answer
        else:
            answer = term.ask_text(f"{name} ({hint}): ").strip()
            if answer:
                plan.options[name] = _value(answer, prop)
    raise OnboardingError("the options never validated")


def store_secrets(plan: Plan, backend: str, config_path: Path, raw: dict[str, Any],
                  term: Terminal) -> tuple[dict[str, str], list[Path], dict[str, str]]:
    """Each secret stored in ``backend``: the references to write, the files made, and
    the variables the check needs set (``env``)."""
    refs: dict[str, str] = {}
    made: list[Path] = []
    variables: dict[str, str] = {}
    for name, value in plan.secrets.items():
        if backend == "file":
            directory = config_path.parent / "secrets"
            directory.mkdir(mode=0o700, exist_ok=True)
            target = directory / f"{plan.connector_id}.{name}"
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(value + "\n")
            made.append(target)
            refs[name] = f"${{file:secrets/{target.name}}}"
        elif backend == "vault":
            vault = _vault(raw, config_path)
            path = f"gateway/{plan.connector_id}"
            try:
                try:
                    fields, version = vault.read(path)
                except CredentialError as exc:
                    if "no Vault secret" not in str(exc):
                        raise
                    fields, version = {}, 0
                vault.write(path, {**fields, name: value}, cas=version)
            except CredentialError as exc:
                raise OnboardingError(f"cannot store {name} in Vault: {exc}") from None
            refs[name] = f"${{vault:{path}#{name}}}"
        else:  # env: the file names a variable, the value is set where the gateway runs
            variable = re.sub(r"[^A-Z0-9]", "_", f"GATEWAY_{plan.connector_id}_{name}".upper())
            refs[name] = f"${{{variable}}}"
            variables[variable] = value
            term.say(f"  set {variable} where the gateway runs (the value is not stored)")
    return refs, made, variables


def _vault(raw: dict[str, Any], config_path: Path) -> Vault:
    from gateway.credentials import CredentialsConfig, Resolver

    section = Resolver(dict(os.environ), config_path.parent).expand(
        raw.get("credentials") or {}, ("credentials",), lambda *_: None)
    vault = CredentialsConfig.model_validate(section).vault
    if vault is None:
        raise OnboardingError("--backend vault needs credentials.vault in the configuration")
    return Vault(vault)


def validate(connector: Connector[Any], base_url: str, term: Terminal) -> None:
    """The validation step: how to reach it, or one real request to the source."""
    if isinstance(connector, Webhook):
        url = f"{base_url.rstrip('/')}/webhooks/{connector.connector_id}"
        term.say(f"Give the provider this URL: {url}")
        try:
            body = connector.sample_body()
            headers = connector.sign(body)
        except NotImplementedError:
            term.say("  (this type cannot sign a test delivery: send one from the provider)")
            return
        parts = [f"curl -sS -X POST {shlex.quote(url)}"]
        parts += [f"-H {shlex.quote(f'{k}: {v}')}" for k, v in headers.items()]
        parts.append(f"--data-binary {shlex.quote(body.decode())}")
        term.say("A signed test delivery to try once the gateway runs (signed now: a"
                 " provider's replay window applies):")
        term.say("  " + " \\\n    ".join(parts))
    elif isinstance(connector, PollingConnector):
        async def once() -> int:
            http = connector.open_http()
            try:
                page = await connector.poll(http, {})
            finally:
                await http.aclose()
            return len(page.events)

        try:
            count = asyncio.run(once())
        except Exception as exc:
            raise OnboardingError(f"the source did not answer as expected: {exc}") from None
        term.say(f"Reached the source: {count} record(s) on its first page.")


def insert(text: str, connector_id: str, entry: dict[str, Any]) -> str:
    """``text`` with ``connectors.<id>: entry`` added, the rest of it unchanged."""
    block = yaml.safe_dump({connector_id: entry}, sort_keys=False, default_flow_style=False)
    lines = text.splitlines(keepends=True)
    for i, line in enumerate(lines):
        if re.match(r"connectors:\s*(\{\s*\}|null|~)?\s*(#.*)?$", line):
            entries = [x for x in lines[i + 1:] if x.strip() and not x.lstrip().startswith("#")]
            first = entries[0] if entries and entries[0][0] in " \t" else "  "
            pad = first[:len(first) - len(first.lstrip())]  # the entries' own indentation
            indented = "".join(f"{pad}{row}\n" for row in block.splitlines())
            end = i + 1
            while end < len(lines) and (not lines[end].strip() or lines[end][0] in " \t#"):
                end += 1
            while end > i + 1 and (not lines[end - 1].strip() or lines[end - 1][0] == "#"):
                end -= 1  # blank lines and comments after the block stay after it
            head = "connectors:\n" if re.match(r"connectors:\s*(\{|null|~)", line) else line
            return "".join([*lines[:i], head, *lines[i + 1:end], indented, *lines[end:]])
    sep = "" if not text or text.endswith("\n") else "\n"
    return f"{text}{sep}connectors:\n" + "".join(f"  {row}\n" for row in block.splitlines())


def add(config_path: Path, type_name: str, connector_id: str | None, *, term: Terminal,
        options: dict[str, str], secret_env: dict[str, str], backend: str,
        base_url: str, verify: bool = True) -> None:
    """The whole flow; OnboardingError says why it stopped (nothing is left behind)."""
    types = available()
    cls = types.get(type_name)
    if cls is None:
        raise OnboardingError(f"unknown connector type {type_name!r} (gateway providers)")
    text = config_path.read_text(encoding="utf-8") if config_path.exists() else ""
    raw = yaml.safe_load(text) or {}
    existing = raw.get("connectors") or {}
    connector_id = connector_id or type_name
    if not _ID.fullmatch(connector_id):
        raise OnboardingError("the id must be letters, digits, '.', '_' or '-'")
    if connector_id in existing:
        raise OnboardingError(f"connectors.{connector_id} already exists in {config_path}")
    d = definitions()[type_name]
    term.say(f"{d.display_name} ({type_name}, {d.kind}): {d.description}")
    term.say(f"Provider documentation: {d.docs_url}")
    schema = cls.Config.model_json_schema(mode="validation")
    secret_fields = _secret_fields(schema)
    plan = Plan(type_name, connector_id)
    for key, value in options.items():
        (plan.secrets if key in secret_fields else plan.options)[key] = value
    for key, variable in secret_env.items():
        if variable not in os.environ:
            raise OnboardingError(f"--secret {key}={variable}: {variable} is not set")
        plan.secrets[key] = os.environ[variable]
    props = schema.get("properties") or {}
    plan.options = {k: _value(str(v), props.get(k, {})) for k, v in plan.options.items()}
    connector = collect(plan, cls, term)
    if verify:
        validate(connector, base_url, term)
    refs, made, variables = store_secrets(plan, backend, config_path, raw, term)
    entry = {"type": type_name, "config": {**plan.options, **refs}}
    new_text = insert(text, connector_id, entry)
    trial = config_path.with_name(f".{config_path.name}.adding")
    try:
        trial.write_text(new_text, encoding="utf-8")
        load_config(trial, {**os.environ, **variables})  # check-config, on the new file
        os.replace(trial, config_path)
    except ConfigError as exc:
        for path in made:
            path.unlink(missing_ok=True)
        raise OnboardingError(f"the configuration would not load, nothing was changed:\n{exc}"
                              ) from None
    finally:
        trial.unlink(missing_ok=True)
    term.say(f"Added connectors.{connector_id} to {config_path}; check-config: ok")
