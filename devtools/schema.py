"""The envelope's JSON Schema, checked in at ``schema/envelope.schema.json``.

    .venv/bin/python -m devtools.schema     # rewrite the file

``tests/test_schema_and_logs.py`` fails while the checked-in file differs from the output.
"""

from __future__ import annotations

from gateway.envelope import SCHEMA_PATH, schema_text


def main() -> None:
    SCHEMA_PATH.parent.mkdir(parents=True, exist_ok=True)
    SCHEMA_PATH.write_text(schema_text())
    print(f"wrote {SCHEMA_PATH}")


if __name__ == "__main__":
    main()
