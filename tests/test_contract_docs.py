"""The contract documents (docs/contract/) say what the code does: the configuration
reference is the generator's current output, and every error code, HTTP status, audit
outcome, audit field and audit reason the code can produce is named in them."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools import configref
from gateway import audit, errors

ROOT = Path(__file__).resolve().parent.parent
CONTRACT = ROOT / "docs" / "contract"
REGENERATE = "run `.venv/bin/python -m devtools.configref`"


def _doc(name: str) -> str:
    return (CONTRACT / name).read_text(encoding="utf-8")


def _sources(*packages: str) -> Iterator[tuple[Path, str]]:
    for package in packages:
        for path in sorted((ROOT / package).rglob("*.py")):
            yield path, path.read_text(encoding="utf-8")


def _named(text: str, word: str) -> bool:
    """``word`` appears in ``text`` as code (`word`)."""
    return f"`{word}`" in text


def _status_named(text: str, status: int) -> bool:
    return re.search(rf"(?<![\d.]){status}(?![\d.])", text) is not None


# -- configuration.md ----------------------------------------------------------------


def test_configuration_reference_is_current() -> None:
    assert _doc("configuration.md") == configref.render(), (
        f"docs/contract/configuration.md is stale: {REGENERATE}")


def test_a_config_key_without_a_description_stops_the_generator(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(configref.DESCRIPTIONS, "server.port")
    with pytest.raises(configref.UndocumentedConfig, match=r"server\.port"):
        configref.render()


def test_a_description_of_a_key_that_does_not_exist_stops_the_generator(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(configref.DESCRIPTIONS, "server.no_such_key", "Nothing.")
    with pytest.raises(configref.UndocumentedConfig, match=r"server\.no_such_key"):
        configref.render()


# -- http.md -------------------------------------------------------------------------


def _error_classes() -> set[type[errors.GatewayError]]:
    """Every class under the root error class, once every module that may define one
    is imported (the app, and every registered connector type)."""
    import gateway.app  # noqa: F401  (the service's modules)
    from connectors import registry

    registry.available()
    found: set[type[errors.GatewayError]] = set()
    todo: list[type[errors.GatewayError]] = [errors.GatewayError]
    while todo:
        cls = todo.pop()
        for sub in cls.__subclasses__():
            if sub not in found:
                found.add(sub)
                todo.append(sub)
    return found


def _table_facts(value: object) -> Iterator[int | str]:
    """Statuses (ints) and codes in a value of a table keyed by error classes."""
    if isinstance(value, bool):
        return
    if isinstance(value, int):
        yield value
    elif isinstance(value, tuple | list):
        for item in value:
            if isinstance(item, int) and not isinstance(item, bool):
                yield item
    else:
        for name in ("status", "code"):
            attribute = getattr(value, name, None)
            if isinstance(attribute, int | str) and not isinstance(attribute, bool):
                yield attribute


def _declared_answers() -> tuple[set[str], set[int]]:
    """The ``{"error": code}`` codes and HTTP statuses the error classes declare: as class
    attributes (``code``, ``status``) or in a table of ``gateway.errors`` keyed by class."""
    codes: set[str] = set()
    statuses: set[int] = set()
    for cls in _error_classes():
        code = getattr(cls, "code", None)
        if isinstance(code, str):
            codes.add(code)
        status = getattr(cls, "status", None)
        if isinstance(status, int) and not isinstance(status, bool):
            statuses.add(status)
    for table in vars(errors).values():
        if not isinstance(table, dict):
            continue
        for key, value in table.items():
            if not (isinstance(key, type) and issubclass(key, BaseException)):
                continue
            for fact in _table_facts(value):
                if isinstance(fact, str):
                    codes.add(fact)
                elif 100 <= fact <= 599:
                    statuses.add(fact)
    return codes, statuses


# Answers the service writes out literally (the edge's, the framework routes', the
# pipeline's own) rather than through an error class.
_LITERAL_CODES = (
    re.compile(r'"error"\s*:\s*"([a-z_]+)"'),
    re.compile(r'(?:Answer\.error|_raw_answer)\(\s*\d{3},\s*(?:"[^"]*",\s*)?"([a-z_]+)"'),
    re.compile(r'\b\d{3}:\s*"([a-z_]+)"'),
)
_LITERAL_STATUSES = (
    re.compile(r'(?:Answer\.(?:error|json)|_raw_answer|_json|_answer)\(\s*(?:send,\s*)?'
               r"(\d{3})\b"),
    re.compile(r'"status":\s*(\d{3})\b'),
    re.compile(r"\b(\d{3}) if [\w.]+ else (\d{3})\b"),
    re.compile(r'\b(\d{3}):\s*"[a-z_]+"'),
)


def _literal_answers() -> tuple[set[str], set[int]]:
    codes: set[str] = set()
    statuses: set[int] = set()
    for _, text in _sources("gateway"):
        for pattern in _LITERAL_CODES:
            codes.update(pattern.findall(text))
        for pattern in _LITERAL_STATUSES:
            for found in pattern.findall(text):
                groups = (found,) if isinstance(found, str) else found
                statuses.update(int(g) for g in groups if g)
    return codes, statuses


def test_every_error_code_and_status_is_in_http_md() -> None:
    http = _doc("http.md")
    declared_codes, declared_statuses = _declared_answers()
    literal_codes, literal_statuses = _literal_answers()
    assert {"unknown_connector", "too_large", "buffer_full"} <= declared_codes
    assert {404, 413} <= declared_statuses
    codes = declared_codes | literal_codes
    statuses = declared_statuses | literal_statuses | {503}  # Unavailable's answer
    missing_codes = sorted(c for c in codes if not _named(http, c))
    missing_statuses = sorted(s for s in statuses if not _status_named(http, s))
    assert not missing_codes, f"error codes missing from docs/contract/http.md: {missing_codes}"
    assert not missing_statuses, (
        f"HTTP statuses missing from docs/contract/http.md: {missing_statuses}")


# -- audit.md ------------------------------------------------------------------------


def test_every_audit_outcome_and_field_is_in_audit_md() -> None:
    text = _doc("audit.md")
    assert audit.OUTCOMES, "gateway.audit.OUTCOMES is empty"
    missing = sorted(o for o in audit.OUTCOMES if not _named(text, o))
    assert not missing, f"audit outcomes missing from docs/contract/audit.md: {missing}"
    fields = [*audit.FIELDS, "client_request_id"]
    absent = [f for f in fields if not _named(text, f)]
    assert not absent, f"audit fields missing from docs/contract/audit.md: {absent}"


_REASONS = (
    re.compile(r'\breason(?:\s*:\s*str)?\s*=\s*"([a-z_]+)"'),
    re.compile(r'\baudit\(\s*"[a-z_]+"\s*,\s*"([a-z_]+)"'),
)


def test_every_audit_reason_in_the_code_is_in_audit_md() -> None:
    text = _doc("audit.md")
    reasons: set[str] = set()
    for _, source in _sources("gateway", "connectors"):
        for pattern in _REASONS:
            reasons.update(pattern.findall(source))
    # A request the buffer cannot take is audited failed with the error's code.
    reasons.update(code for cls in _error_classes()
                   if issubclass(cls, errors.Unavailable)
                   and isinstance(code := getattr(cls, "code", None), str))
    assert {"missing_signature", "client_disconnect", "kafka_refused"} <= reasons
    missing = sorted(r for r in reasons if not _named(text, r))
    assert not missing, f"audit reasons missing from docs/contract/audit.md: {missing}"
