"""The generated parts of ``docs/providers.md``: the list of every connector type from
the definitions (between the ``definitions`` markers), and the provider table at the
end from the presets.

    .venv/bin/python -m devtools.providers_doc     # rewrite both

``tests/test_presets.py`` and ``tests/test_definitions.py`` fail while the checked-in
file differs from the output.
"""

from __future__ import annotations

from pathlib import Path

from connectors.presets import DOCUMENTED_ONLY, PRESETS, VECTORS
from connectors.registry import definitions
from connectors.signing import TokenScheme


def markdown_table() -> str:
    """The provider table in docs/providers.md (a test keeps the file current)."""
    rows = ["| type | scheme | signature header | signed | timestamp / tolerance "
            "| dedup key | replays | event type | vectors |",
            "|---|---|---|---|---|---|---|---|---|"]
    for p in PRESETS:
        s = p.scheme
        if isinstance(s, TokenScheme):
            dedup = p.id_header or (f"body `{p.id_pointer}`" if p.id_pointer else "body SHA-256")
            etype = p.type_header or (f"body `{p.type_pointer}`" if p.type_pointer else "-")
            replays = ("nothing is signed; the body's SHA-256 is claimed too" if p.id_header
                       else "nothing is signed")
            rows.append(f"| `{p.name}` | token ({s.style}): authenticates the sender, not the "
                        f"body | `{s.header}` | - | none | {dedup} | {replays} | {etype} "
                        f"| {VECTORS.get(p.name, DOCUMENTED_ONLY)} |")
            continue
        layout = {"single": "", "list": f" (list, `{s.separator.strip() or 'space'}`)",
                  "params": f" (params `{s.separator}`)",
                  "stamped_list": f" (timestamp`{s.separator}`signatures)"}[s.layout]
        scheme = f"HMAC-{s.digest.upper()} {s.encoding}{layout}"
        if s.key_format != "raw":
            scheme += f", key {s.key_format}"
        where = s.timestamp_header or (f"`{s.timestamp_key}=` param" if s.timestamp_key
                                       else "head of the list" if s.stamped_header
                                       else (f"body `{s.timestamp_pointer}`"
                                             if s.timestamp_pointer else None))
        window = (f"{where}, {s.timestamp_format}, {s.tolerance_seconds}s"
                  f"{'' if s.reject_future else ' (past only)'}") if where else "none signed"
        dedup = p.id_header or (f"body `{p.id_pointer}`" if p.id_pointer else "body SHA-256")
        etype = p.type_header or (f"body `{p.type_pointer}`" if p.type_pointer else "-")
        if p.action_pointer:
            etype += f" + `{p.action_pointer}`"
        if not p.id_header or s.signs_delivery_id:
            replays = "the id is signed"
        else:
            replays = "id unsigned: the body's SHA-256" + (
                " and the signed timestamp are" if s.timestamp_header or s.stamped_header
                else " is") + " claimed too"
        carrier = f"query `{s.header}`" if s.location == "query" else f"`{s.header}`"
        prefix = (f" {s.prefix!r}{' (optional)' if s.prefix_optional else ''}"
                  if s.prefix else "")
        rows.append(f"| `{p.name}` | {scheme} | {carrier}{prefix} | `{s.signed}` | {window} "
                    f"| {dedup} | {replays} | {etype} | {VECTORS.get(p.name, DOCUMENTED_ONLY)} |")
    return "\n".join(rows) + "\n"


DOC_PATH = Path(__file__).resolve().parent.parent / "docs" / "providers.md"
_TABLE_START = "| type | scheme | signature header |"
START, END = "<!-- definitions:start -->\n", "<!-- definitions:end -->\n"


def definitions_table() -> str:
    """Every connector type installed, from its definition (``gateway providers --json``)."""
    rows = ["| type | name | kind | what it verifies and how |", "|---|---|---|---|"]
    for name, d in sorted(definitions().items()):
        link = d.docs_url if d.docs_url.startswith("https://") else d.docs_url.replace(
            "docs/", "", 1)
        text = d.description.replace("|", r"\|")
        rows.append(f"| `{name}` | [{d.display_name}]({link}) | {d.kind} | {text} |")
    return START + "\n".join(rows) + "\n" + END


def write_docs() -> None:
    """Rewrite the generated parts of docs/providers.md."""
    text = DOC_PATH.read_text()
    head, _, rest = text.partition(START)
    _, _, tail = rest.partition(END)
    text = head + definitions_table() + tail
    DOC_PATH.write_text(text[:text.index(_TABLE_START)] + markdown_table())


if __name__ == "__main__":
    write_docs()
    print(f"wrote the provider table in {DOC_PATH}")
