"""The generated parts of ``docs/providers.md``, both from the connector types'
definitions (``gateway providers --json``): the list of every type (between the
``definitions`` markers) and how each webhook type is verified (between the
``verification`` markers).

    .venv/bin/python -m devtools.providers_doc     # rewrite both

``tests/test_definitions.py`` fails while the checked-in file differs from the output.
"""

from __future__ import annotations

from pathlib import Path

from connectors.registry import definitions

DOC_PATH = Path(__file__).resolve().parent.parent / "docs" / "providers.md"
MARKERS = {"definitions": ("<!-- definitions:start -->\n", "<!-- definitions:end -->\n"),
           "verification": ("<!-- verification:start -->\n", "<!-- verification:end -->\n")}


def _cell(text: str) -> str:
    return text.replace("|", r"\|").replace("\n", " ")


def definitions_table() -> str:
    """Every connector type installed, from its definition."""
    rows = ["| type | name | kind | what it verifies and how |", "|---|---|---|---|"]
    for name, d in sorted(definitions().items()):
        link = d.docs_url if d.docs_url.startswith("https://") else d.docs_url.replace(
            "docs/", "", 1)
        rows.append(f"| `{name}` | [{d.display_name}]({link}) | {d.kind} "
                    f"| {_cell(d.description)} |")
    return "\n".join(rows) + "\n"


def verification_table() -> str:
    """How every type that verifies deliveries does it, and where its vectors come from."""
    rows = ["| type | scheme | proof | covers | replay window | dedup key | handshake "
            "| vectors |", "|---|---|---|---|---|---|---|---|"]
    for name, d in sorted(definitions().items()):
        v = d.verification
        if v is not None:
            rows.append("| " + " | ".join(_cell(c) for c in (
                f"`{name}`", v.scheme, v.proof, v.covers, v.window, v.dedup, v.handshake,
                v.vectors)) + " |")
    return "\n".join(rows) + "\n"


def render(text: str) -> str:
    """``text`` (the doc) with its generated parts rewritten."""
    for key, table in (("definitions", definitions_table()),
                       ("verification", verification_table())):
        start, end = MARKERS[key]
        head, found, rest = text.partition(start)
        if not found:
            raise ValueError(f"docs/providers.md has no {start.strip()} marker")
        _, _, tail = rest.partition(end)
        text = head + start + table + end + tail
    return text


if __name__ == "__main__":
    DOC_PATH.write_text(render(DOC_PATH.read_text()))
    print(f"wrote the generated tables in {DOC_PATH}")
