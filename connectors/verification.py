"""How a webhook type proves its deliveries, stated for people: part of its definition
(``gateway providers --json``) and the table in docs/providers.md.

A class states it once, beside the code that does it:

    class AcmeConnector(Webhook[SecretRequired]):
        verification = Verification(
            scheme="HMAC-SHA256, hex", proof="`Acme-Signature`",
            covers="`{timestamp}.{body}`", window="`Acme-Timestamp`, 300 s",
            dedup="body `/id` (signed)", vectors="acme SDK test vectors")

A preset's is made from its row (``connectors.presets.describe``).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class Verification(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    scheme: str = Field(min_length=1, max_length=300)  # algorithm, encoding, key
    proof: str = Field(min_length=1, max_length=300)  # where the proof travels
    covers: str = Field(min_length=1, max_length=300)  # what the proof covers
    window: str = Field(min_length=1, max_length=200)  # the replay window, or "none signed"
    dedup: str = Field(min_length=1, max_length=200)  # the deduplication key(s)
    handshake: str = Field(default="-", min_length=1, max_length=300)
    vectors: str = Field(min_length=1, max_length=300)  # where its test vectors come from
