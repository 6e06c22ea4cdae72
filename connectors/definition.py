"""A connector type's definition: what it is, discoverable without starting it.

Every type has one (``gateway providers --json`` prints them; ``docs/providers.md`` is
generated from them). It is read from the class:

    class AcmeConnector(Webhook[SecretRequired]):
        \"\"\"Acme's webhooks, HMAC-SHA256 over the body.\"\"\"   # description, if none set
        source = "acme"
        display_name = "Acme"
        docs_url = "https://docs.acme.example/webhooks"
        scopes = ("events:read",)                    # where the source has scopes
        verification = Verification(...)             # how deliveries are proven

``name`` is the entry point's name, ``version`` its distribution's version, ``kind`` the
class's, and ``config_schema`` the JSON Schema of its ``Config`` model. A definition that
does not hold (no display name or description, a docs URL that is not https, ...) is an
``InvalidConnector`` naming every problem: the gateway does not start with it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from connectors.base import Kind
from connectors.errors import InvalidConnector
from connectors.verification import Verification

if TYPE_CHECKING:
    from connectors.base import Connector

_DOCS_PATH = re.compile(r"docs/[A-Za-z0-9_./-]+\.md(#[a-z0-9_-]+)?")


class Definition(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")
    display_name: str = Field(min_length=1, max_length=80)
    description: str = Field(min_length=1, max_length=600)
    version: str = Field(pattern=r"^\d+(\.\d+)*([.+-]?[0-9A-Za-z][0-9A-Za-z.+-]*)?$")
    # The provider's documentation (https), or for the gateway's own generic types a
    # page of its documentation (docs/...md#anchor).
    docs_url: str
    kind: Kind
    scopes: tuple[str, ...] = ()
    config_schema: dict[str, Any]
    verification: Verification | None = None

    @field_validator("docs_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if re.fullmatch(r"https://[^\s/$.?#][^\s]*", value) or _DOCS_PATH.fullmatch(value):
            return value
        raise ValueError("must be an https URL (or docs/<page>.md#anchor for the gateway's"
                         " own documentation)")


def _description(cls: type[Connector[Any]]) -> str:
    """The first paragraph of the class's own docstring."""
    doc = cls.__dict__.get("__doc__") or ""
    return " ".join(doc.strip().split("\n\n", 1)[0].split())


def define(name: str, cls: type[Connector[Any]], version: str,
           fallback: Mapping[str, str] | None = None) -> Definition:
    """``cls``'s definition under ``name``; InvalidConnector listing every problem.
    ``fallback``: display_name, description and docs_url for what the class leaves
    unset (the built-in types' catalogue, ``connectors.builtin``)."""
    fallback = fallback or {}
    try:
        schema = cls.Config.model_json_schema(mode="validation")
    except Exception as exc:  # a Config pydantic cannot describe
        raise InvalidConnector(f"connector type {name!r}: its Config has no JSON Schema"
                               f" ({type(exc).__name__})") from None
    try:
        return Definition.model_validate({
            "name": name, "version": version, "kind": getattr(cls, "kind", None),
            "display_name": cls.display_name or fallback.get("display_name", ""),
            "description": (cls.description or fallback.get("description")
                            or _description(cls)),
            "docs_url": cls.docs_url or fallback.get("docs_url", ""),
            "scopes": cls.scopes, "config_schema": schema,
            "verification": cls.verification})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}"
                             for e in exc.errors())
        raise InvalidConnector(f"connector type {name!r} has an invalid definition:"
                               f" {problems}") from None
