"""A minimal valid config for every registered connector type, and what signs for it.

``CASES`` maps each ``type`` name to a config its class accepts. ``tests/test_fuzz.py``
fails when a registered type has no case here, so a new connector type must add one.
Keys are fixed (derived from constant seeds) so that tests can sign for the public-key
connectors, and nothing here is a real credential.
"""

from __future__ import annotations

import base64
from typing import Any, TypeVar

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from connectors.base import Connector, PushSource, Webhook
from connectors.registry import available

SECRET = "fuzz-case-secret"
WHSEC = "whsec_" + base64.b64encode(b"fuzz-case-standard-webhooks-key!").decode()
ADYEN_HEX_KEY = "44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056"
PUBLIC_URL = "https://hooks.example.com/webhooks/case"
CONTENTFUL_SECRET = "fuzz-case-contentful-signing-secret-".ljust(64, "x")  # 64 characters
AIRTABLE_SECRET = base64.b64encode(b"fuzz-case-airtable-mac-secret!!!").decode()  # base64

# Private keys of the public-key connectors (Discord, SendGrid, Standard Webhooks v1a).
ED25519_KEY = ed25519.Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
ECDSA_KEY = ec.derive_private_key(0x5EED_CA5E_F022, ec.SECP256R1())

_RAW = serialization.Encoding.Raw, serialization.PublicFormat.Raw
ED25519_PUBLIC_HEX = ED25519_KEY.public_key().public_bytes(*_RAW).hex()
ED25519_PUBLIC_WHPK = "whpk_" + base64.b64encode(
    ED25519_KEY.public_key().public_bytes(*_RAW)).decode()
ECDSA_PUBLIC_B64 = base64.b64encode(ECDSA_KEY.public_key().public_bytes(
    serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).decode()

_HMAC = {"secret": SECRET}
_WHSEC = {"secret": WHSEC}

CASES: dict[str, dict[str, Any]] = {
    # hand-written connectors
    "github": _HMAC,
    "webhook": {"secret": SECRET, "timestamp_header": "X-Timestamp",
                "id_header": "X-Delivery-Id", "event_type_pointer": "/type",
                "timestamp_pointer": "/created_at"},
    "push": _HMAC,
    "http_poll": {"url": "http://127.0.0.1:9/records", "interval_seconds": 60},
    "github_poll": {"repository": "octo/repo"},
    "mailgun": _HMAC,
    "adyen": {"secret": ADYEN_HEX_KEY},
    "box": {"secrets": [SECRET, SECRET + "-secondary"]},
    "microsoft_graph": _HMAC,
    "twilio": {"secret": SECRET, "public_url": PUBLIC_URL},
    "aws_sns": {"tolerance_seconds": 3600},
    "discord": {"public_key": ED25519_PUBLIC_HEX},
    "sendgrid": {"public_key": ECDSA_PUBLIC_B64, "tolerance_seconds": 600},
    # presets (connectors/presets/table.py)
    "stripe": _HMAC, "slack": _HMAC, "paddle": _HMAC, "pagerduty": _HMAC,
    "square": {"secret": SECRET, "public_url": PUBLIC_URL},
    "circleci": _HMAC, "shopify": _HMAC, "linear": _HMAC, "bitbucket": _HMAC,
    "intercom": _HMAC, "typeform": _HMAC, "sentry": _HMAC, "zoom": _HMAC, "twitch": _HMAC,
    "mux": _HMAC, "calendly": _HMAC, "razorpay": _HMAC, "checkout_com": _HMAC,
    "coinbase": _HMAC, "launchdarkly": _HMAC, "lemon_squeezy": _HMAC, "xero": _HMAC,
    "vercel": _HMAC, "dropbox": _HMAC, "asana": _HMAC,
    "meta_whatsapp": {"secret": SECRET, "verify_token": "fuzz-verify-token"},
    "docusign": _HMAC, "notion": _HMAC, "segment": _HMAC, "sanity": _HMAC,
    "hubspot": {"secret": SECRET, "public_url": PUBLIC_URL},
    "zendesk": _HMAC, "atlassian_jira": _HMAC,
    "gitlab": _HMAC, "okta": _HMAC, "aws_eventbridge": _HMAC, "postmark": _HMAC,
    # Standard Webhooks and the providers that deliver through it (whsec_ keys)
    "standard_webhooks": {"secret": WHSEC, "public_key": ED25519_PUBLIC_WHPK},
    "svix": _WHSEC, "clerk": _WHSEC, "resend": _WHSEC,
    "openclaw": _WHSEC, "moltbook": _WHSEC, "fourclaw": _WHSEC,
    # catalogue: JWT, asymmetric and Azure
    "telnyx": {"public_key": base64.b64encode(
        ED25519_KEY.public_key().public_bytes(*_RAW)).decode()},
    "plaid": {"client_id": "fuzz-case-client", "secret": SECRET, "environment": "sandbox"},
    "netlify": _HMAC,
    "vonage": _HMAC,
    "google_pubsub": {"audience": PUBLIC_URL,
                      "service_account_email": "push@fuzz-case.iam.gserviceaccount.com"},
    "azure_event_grid": _HMAC,
    "teams_outgoing": {"secret": base64.b64encode(b"fuzz-case-teams-outgoing-token!!").decode()},
    # catalogue: HMAC and token family
    "terraform_cloud": _HMAC, "buildkite": _HMAC, "chargebee": _HMAC, "azure_devops": _HMAC,
    "woocommerce": _HMAC, "bigcommerce": _HMAC, "webflow": _HMAC, "mollie": _HMAC,
    "gocardless": _HMAC, "recurly": _HMAC, "patreon": _HMAC, "customerio": _HMAC,
    "klaviyo": _HMAC, "workos": _HMAC, "calcom": _HMAC, "pandadoc": _HMAC, "frameio": _HMAC,
    "telegram": _HMAC, "figma": _HMAC, "dropbox_sign": _HMAC,
    # catalogue, third round
    "openai": _WHSEC, "polar": _HMAC, "elevenlabs": _HMAC, "line": _HMAC, "pusher": _HMAC,
    "onfido": _HMAC, "modern_treasury": _HMAC, "easypost": _HMAC,
    "contentful": {"secret": CONTENTFUL_SECRET, "public_url": PUBLIC_URL},
    # catalogue, fourth round
    "cloudinary": _HMAC,
    "airtable": {"secret": AIRTABLE_SECRET},
    "braintree": {"secret": SECRET, "public_key": "fuzz-case-public-key"},
    "plivo": {"secret": SECRET, "public_url": PUBLIC_URL},
    "aftership": _HMAC, "todoist": _HMAC, "heroku": _HMAC, "front": _HMAC, "front_rule": _HMAC,
    "trello": {"secret": SECRET, "public_url": PUBLIC_URL},
    "help_scout": _HMAC, "quickbooks": _HMAC, "x_activity": _HMAC,
    "squarespace": {"secret": SECRET.encode().hex()}, "clickup": _HMAC, "nylas": _HMAC,
    "mandrill": {"secret": SECRET, "public_url": PUBLIC_URL},
    "paypal": {"webhook_id": "WH-FUZZ-CASE"},
    "persona": _HMAC, "checkr": _HMAC, "greenhouse": _HMAC, "ghost": _HMAC, "revolut": _HMAC,
    "paystack": _HMAC, "authorize_net": _HMAC,
}

# Headers the hand-written connectors read (presets are read from their Preset).
HEADERS: dict[str, tuple[str, ...]] = {
    "github": ("X-Hub-Signature-256", "X-GitHub-Event", "X-GitHub-Delivery"),
    "webhook": ("X-Signature", "X-Timestamp", "X-Delivery-Id"),
    "push": ("Authorization", "webhook-id", "webhook-timestamp", "webhook-signature"),
    "mailgun": ("Content-Type",),
    "adyen": ("Content-Type",),
    "microsoft_graph": ("Content-Type",),
    "box": ("BOX-DELIVERY-TIMESTAMP", "BOX-SIGNATURE-PRIMARY", "BOX-SIGNATURE-SECONDARY",
            "BOX-SIGNATURE-VERSION", "BOX-SIGNATURE-ALGORITHM", "BOX-DELIVERY-ID"),
    "twilio": ("X-Twilio-Signature", "Content-Type", "I-Twilio-Idempotency-Token"),
    "aws_sns": ("x-amz-sns-message-type", "x-amz-sns-message-id", "Content-Type"),
    "discord": ("X-Signature-Ed25519", "X-Signature-Timestamp"),
    "sendgrid": ("X-Twilio-Email-Event-Webhook-Signature",
                 "X-Twilio-Email-Event-Webhook-Timestamp"),
    # catalogue: JWT, asymmetric and Azure
    "telnyx": ("telnyx-signature-ed25519", "telnyx-timestamp"),
    "plaid": ("Plaid-Verification",),
    "netlify": ("X-Webhook-Signature",),
    "vonage": ("Authorization",),
    "google_pubsub": ("Authorization",),
    "azure_event_grid": ("aeg-sas-key", "aeg-event-type", "WebHook-Request-Origin"),
    "teams_outgoing": ("Authorization",),
    # catalogue: HMAC and token family
    "contentful": ("x-contentful-signature", "x-contentful-signed-headers",
                   "x-contentful-timestamp", "x-contentful-topic",
                   "x-contentful-idempotency-key"),
    "figma": ("Content-Type",),
    "dropbox_sign": ("Content-Type",),
    "cloudinary": ("X-Cld-Signature", "X-Cld-Timestamp"),
    "braintree": ("Content-Type",),
    "plivo": ("X-Plivo-Signature-V3", "X-Plivo-Signature-Ma-V3", "X-Plivo-Signature-V3-Nonce",
              "Content-Type"),
    "mandrill": ("X-Mandrill-Signature", "Content-Type"),
    "paypal": ("PAYPAL-TRANSMISSION-ID", "PAYPAL-TRANSMISSION-TIME", "PAYPAL-TRANSMISSION-SIG",
               "PAYPAL-CERT-URL", "PAYPAL-AUTH-ALGO"),
}


K = TypeVar("K", bound=Connector[Any])


def build_any(type_name: str, connector_id: str | None = None,
              config: dict[str, Any] | None = None) -> Connector[Any]:
    """The connector of ``type_name`` (of any kind) with its case's config, or ``config``."""
    cls = available()[type_name]
    return cls(connector_id or f"case-{type_name}".replace("_", "-"),
               cls.Config.model_validate(CASES[type_name] if config is None else config))


def build_as(kind: type[K], type_name: str, connector_id: str | None = None,
             config: dict[str, Any] | None = None) -> K:
    """``build_any``, typed as the class ``kind`` the test relies on."""
    c = build_any(type_name, connector_id, config)
    assert isinstance(c, kind), f"{type_name} is a {type(c).__name__}, not a {kind.__name__}"
    return c


def build(type_name: str, connector_id: str | None = None,
          config: dict[str, Any] | None = None) -> Webhook[Any]:
    """The webhook connector of ``type_name`` with its case's config, or ``config``."""
    return build_as(Webhook, type_name, connector_id, config)


def build_sender(type_name: str, connector_id: str | None = None
                 ) -> Webhook[Any] | PushSource[Any]:
    """A connector deliveries are sent to: a webhook, or a push source (``/api/events``)."""
    c = build_any(type_name, connector_id)
    assert isinstance(c, Webhook | PushSource), f"{type_name} receives no deliveries"
    return c
