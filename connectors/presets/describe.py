"""A preset's row, told for people: its description (one sentence) and its
``Verification`` (the providers table, ``gateway providers --json``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from connectors.presets.vectors import DOCUMENTED_ONLY, VECTORS
from connectors.signing import HmacScheme, TokenScheme
from connectors.verification import Verification

if TYPE_CHECKING:
    from connectors.presets.engine import Preset


def summary(preset: Preset) -> str:
    """One sentence on how a preset's deliveries are verified (its description)."""
    s = preset.scheme
    if isinstance(s, TokenScheme):
        how = f"a shared token in `{s.header}` ({s.style}; it authenticates the sender)"
    else:
        where = f"query parameter `{s.header}`" if s.location == "query" else f"`{s.header}`"
        how = (f"HMAC-{s.digest.upper()} ({s.encoding}) of `{s.signed}` in {where}"
               + (f", {s.tolerance_seconds} s replay window" if s.timestamped else ""))
    kind = "a JSON array of events" if preset.batch or preset.batch_pointer else "one event"
    return f"Webhooks verified by {how}; each delivery is {kind}."


def verification(preset: Preset) -> Verification:
    s = preset.scheme
    dedup = (f"`{preset.id_header}`" if preset.id_header
             else f"body `{preset.id_pointer}`" if preset.id_pointer
             else "body SHA-256 + the signed timestamp" if preset.id_timestamp
             else "body SHA-256")
    handshakes = [h.description for h in (preset.challenge, preset.handshake) if h]
    if (ack := preset.acknowledgement) is not None:
        handshakes.append(f"every received delivery answered {ack.status}"
                          + (f" `{ack.body.decode()}`" if ack.body else " with no body"))
    common = {"handshake": "; ".join(handshakes) or "-",
              "vectors": VECTORS.get(preset.name, DOCUMENTED_ONLY)}
    if isinstance(s, TokenScheme):
        if preset.id_header:
            dedup += " (nothing is signed; the body's SHA-256 is claimed too)"
        return Verification(scheme=f"shared token ({s.style})", proof=f"`{s.header}`",
                            covers="nothing: it authenticates the sender, not the body",
                            window="none", dedup=dedup, **common)
    return Verification(scheme=_hmac_scheme(s), proof=_carrier(s), covers=f"`{s.signed}`",
                        window=_window(s), dedup=dedup + _replays(preset, s), **common)


def _hmac_scheme(s: HmacScheme) -> str:
    layout = {"single": "", "list": f" (list, `{s.separator.strip() or 'space'}`)",
              "params": f" (params `{s.separator}`)",
              "stamped_list": f" (timestamp`{s.separator}`signatures)"}[s.layout]
    scheme = f"HMAC-{s.digest.upper()} {s.encoding}{layout}"
    return scheme + (f", key {s.key_format}" if s.key_format != "raw" else "")


def _carrier(s: HmacScheme) -> str:
    carrier = f"query `{s.header}`" if s.location == "query" else f"`{s.header}`"
    if s.fallback_header:
        carrier += f" (or `{s.fallback_header}`)"
    if s.numbered:
        carrier += " (and -2, -3, ...: one per key)"
    if s.prefix:
        carrier += f" {s.prefix!r}{' (optional)' if s.prefix_optional else ''}"
    return carrier


def _window(s: HmacScheme) -> str:
    where = s.timestamp_header or (f"`{s.timestamp_key}=` param" if s.timestamp_key
                                   else "head of the list" if s.stamped_header
                                   else (f"body `{s.timestamp_pointer}`"
                                         if s.timestamp_pointer else None))
    if where is None:
        return "none signed"
    return (f"{where}, {s.timestamp_format}, {s.tolerance_seconds} s"
            f"{'' if s.reject_future else ' (past only)'}")


def _replays(preset: Preset, s: HmacScheme) -> str:
    if not preset.id_header and not preset.id_pointer:
        return ""  # the body's hash is the id
    if not preset.id_header or s.signs_delivery_id:
        return " (signed)"
    also = " and the signed timestamp are" if s.timestamp_header or s.stamped_header else " is"
    return f" (unsigned: the body's SHA-256{also} claimed too)"
