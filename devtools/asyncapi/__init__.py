"""Checks an AsyncAPI 3.0.0 document against the official AsyncAPI JSON Schema, offline.

    from devtools.asyncapi import problems
    assert problems(document) == [], problems(document)

Provenance of ``asyncapi-3.0.0.schema.json`` beside this file, copied byte for byte:

- npm package ``@asyncapi/specs`` version 6.11.1 (Apache-2.0, (c) AsyncAPI Initiative;
  tarball integrity ``sha512-A3WBLqAKGoJ2+6FWFtpjBlCQ1oFCcs4GxF7zsIGvNqp/klGUHjlA3aAcZ9XMMpL
  GE8zPeYDz2x9FmO6DSuKraQ==``)
- file ``package/schemas/3.0.0-without-$id.json``
- sha256 ``abe96881dbfaad495ccbb6bd8d3fb43ca18a13b9d7564849ccb66f39d5e5b20f``

To update: ``npm pack @asyncapi/specs@VERSION``, copy the file, change the lines above.

The package also ships ``schemas/3.0.0.json``, the same schema whose definitions carry
``http://asyncapi.com/...`` ``$id`` URIs. Both validate offline (each embeds the draft-07
metaschema); this one has only local ``#/definitions/...`` references and validates a
document about 30 times faster with ``jsonschema`` (under 1 ms against about 20 ms).

What the schema does not check: that a ``$ref`` (``operations.*.channel``,
``operations.*.messages``, ``components`` references) points at anything, only that it
is an object with a ``$ref`` string; and ``format`` keywords (``uri``, ``email``, ...),
which ``jsonschema`` treats as annotations unless given a format checker.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from jsonschema import Draft7Validator
from jsonschema.exceptions import ValidationError, best_match
from referencing import Registry

__all__ = ["SCHEMA_PATH", "problems"]

SCHEMA_PATH = Path(__file__).with_name("asyncapi-3.0.0.schema.json")

# A message longer than this (``oneOf`` failures repeat the whole instance) is cut.
_MAX_MESSAGE = 300


def problems(document: dict[str, Any]) -> list[str]:
    """Every way ``document`` breaks the AsyncAPI 3.0.0 schema, as ``"$.json.path: message"``
    lines sorted by path; empty when it is valid."""
    lines: list[str] = []
    for error in sorted(_validator().iter_errors(document), key=lambda e: e.json_path):
        for leaf in _explain(error):
            line = f"{leaf.json_path}: {_shorten(leaf.message)}"
            if line not in lines:
                lines.append(line)
    return lines


@functools.cache
def _validator() -> Draft7Validator:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    Draft7Validator.check_schema(schema)
    # An empty registry of our own: jsonschema adds the metaschemas it knows (draft-07's
    # among them), and any other URI raises ``referencing.exceptions.Unresolvable``
    # instead of being fetched over the network, as jsonschema's default registry would.
    return Draft7Validator(schema, registry=Registry())


def _explain(error: ValidationError) -> list[ValidationError]:
    """The errors that say what to fix. A ``oneOf``/``anyOf`` failure ("is not valid under
    any of the given schemas") is replaced by the failures of its one branch that is not
    a Reference Object (most AsyncAPI objects may be given inline or as ``{"$ref": ...}``);
    otherwise by jsonschema's ``best_match`` guess."""
    if not error.context:
        return [error]
    branches: dict[object, list[ValidationError]] = {}
    for sub in error.context:
        branches.setdefault(sub.relative_schema_path[0], []).append(sub)
    kept = [errs for errs in branches.values() if not _only_not_a_reference(errs)]
    if len(kept) == 1:
        return [leaf for sub in kept[0] for leaf in _explain(sub)]
    best = best_match([error])
    return [best] if best is not None else [error]


def _only_not_a_reference(errors: list[ValidationError]) -> bool:
    return all(e.validator == "required" and e.validator_value == ["$ref"] for e in errors)


def _shorten(message: str) -> str:
    if len(message) <= _MAX_MESSAGE:
        return message
    return message[: _MAX_MESSAGE - 3] + "..."
