"""Making deliveries authentic the way each provider does, for the cases in
``tests/connector_cases.py`` (shared by tests/test_fuzz.py and tests/test_conformance.py).

``sign_detached`` gives the headers that prove a body (the connector's own ``sign``, or
the provider's algorithm with the cases' private keys); ``with_proof`` builds a body that
carries its own proof (Mailgun, Graph, Adyen, SNS, Figma, Dropbox Sign, Braintree); ``keep_local``
points a connector's key and certificate fetches at a local server.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import time
from typing import Any
from urllib.parse import urlencode

import orjson
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from connectors.base import Connector, PushSource, Webhook
from connectors.bodysigned import adyen_signed_string
from tests.connector_cases import ADYEN_HEX_KEY, ECDSA_KEY, ED25519_KEY, SECRET
from tests.test_aws_sns import CERT_URL, CertServer, Fake

__all__ = ["keep_local", "sign_detached", "with_proof"]


def sign_detached(type_name: str, c: Webhook[Any] | PushSource[Any],
                  body: bytes) -> dict[str, str]:
    """Headers that make ``body`` authentic for ``c`` (empty when it cannot be signed)."""
    stamp = str(int(time.time()))
    if type_name == "discord":
        return {"X-Signature-Ed25519": ED25519_KEY.sign(stamp.encode() + body).hex(),
                "X-Signature-Timestamp": stamp}
    if type_name == "sendgrid":
        sig = ECDSA_KEY.sign(stamp.encode() + body, ec.ECDSA(hashes.SHA256()))
        return {"X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(sig).decode(),
                "X-Twilio-Email-Event-Webhook-Timestamp": stamp}
    if type_name == "telnyx":
        sig = ED25519_KEY.sign(stamp.encode() + b"|" + body)
        return {"telnyx-signature-ed25519": base64.b64encode(sig).decode(),
                "telnyx-timestamp": stamp}
    try:
        return c.sign(body)
    except NotImplementedError:
        return {}


def with_proof(type_name: str, value: Any, sns: Fake, cert_url: str = CERT_URL,
               stamp: str | None = None) -> bytes | None:
    """``value`` made authentic where the proof travels inside the body (None: no such
    connector); ``stamp`` replaces the current time where the proof holds one."""
    stamp = str(int(time.time())) if stamp is None else stamp
    if type_name == "mailgun":
        token = hashlib.sha256(orjson.dumps(value)).hexdigest()
        mac = hmac.new(SECRET.encode(), (stamp + token).encode(), hashlib.sha256).hexdigest()
        return orjson.dumps({"signature": {"timestamp": stamp, "token": token,
                                           "signature": mac}, "event-data": value})
    if type_name == "microsoft_graph":
        items = value if isinstance(value, list) else [value]
        return orjson.dumps({"value": [{**i, "clientState": SECRET} if isinstance(i, dict)
                                       else i for i in items]})
    if type_name == "adyen":
        items = value if isinstance(value, list) else [value]
        key = bytes.fromhex(ADYEN_HEX_KEY)
        signed = []
        for item in items:
            if isinstance(item, dict):
                digest = hmac.new(key, adyen_signed_string(item), hashlib.sha256).digest()
                extra = item.get("additionalData")
                item = {**item, "additionalData": {
                    **(extra if isinstance(extra, dict) else {}),
                    "hmacSignature": base64.b64encode(digest).decode()}}
            signed.append({"NotificationRequestItem": item})
        return orjson.dumps({"notificationItems": signed})
    if type_name == "aws_sns":
        fields = value if isinstance(value, dict) else {"Message": value}
        message = sns.message(**{**fields, "SigningCertURL": cert_url})
        return orjson.dumps(message)
    # catalogue: HMAC and token family
    if type_name == "figma":  # the webhook's passcode rides in the body
        fields = value if isinstance(value, dict) else {"data": value}
        return orjson.dumps({**fields, "passcode": SECRET})
    if type_name == "dropbox_sign":  # event_hash = HMAC(api key, event_time + event_type)
        fields = value if isinstance(value, dict) else {"data": value}
        etype = "signature_request_sent"
        mac = hmac.new(SECRET.encode(), (stamp + etype).encode(), hashlib.sha256).hexdigest()
        return orjson.dumps({**fields, "event": {"event_time": stamp, "event_type": etype,
                                                 "event_hash": mac}})
    if type_name == "braintree":  # bt_signature over bt_payload, a base64 XML notification
        xml = ("<notification><kind>check</kind><subject><data>"
               + html.escape(orjson.dumps(value).decode()) + "</data></subject></notification>")
        payload = base64.encodebytes(xml.encode())
        key = hashlib.sha1(SECRET.encode()).digest()  # noqa: S324 - Braintree's scheme
        mac = hmac.new(key, payload, hashlib.sha1).hexdigest()
        return urlencode({"bt_signature": f"fuzz-case-public-key|{mac}",
                          "bt_payload": payload.decode()}).encode()
    return None


def keep_local(c: Connector[Any], server: CertServer) -> None:
    """Every key or certificate ``c`` would fetch comes from the local server instead of
    the provider's hosts (which answers 404 but for SNS certificates)."""
    for holder in (getattr(c, "keys", None), getattr(c, "certs", None)):
        if holder is not None and hasattr(holder, "transport"):
            holder.transport = server.transport()
