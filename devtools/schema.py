"""The published JSON Schemas, checked in under ``schema/``: the envelope's
(``envelope.schema.json``) and the polling manifest's (``manifest.schema.json``).

    .venv/bin/python -m devtools.schema     # rewrite both

``tests/test_schema_and_logs.py`` and ``tests/test_manifest.py`` fail while a checked-in
file differs from the output.
"""

from __future__ import annotations

import json

from gateway import manifest
from gateway.envelope import SCHEMA_PATH, schema_text


def manifest_text() -> str:
    return json.dumps(manifest.json_schema(), indent=2, sort_keys=True) + "\n"


def main() -> None:
    SCHEMA_PATH.parent.mkdir(parents=True, exist_ok=True)
    SCHEMA_PATH.write_text(schema_text())
    manifest.SCHEMA_PATH.write_text(manifest_text())
    print(f"wrote {SCHEMA_PATH} and {manifest.SCHEMA_PATH}")


if __name__ == "__main__":
    main()
