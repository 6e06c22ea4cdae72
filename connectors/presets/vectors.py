"""Where each preset's test vectors come from (tests/test_presets.py,
tests/test_provider_vectors.py): shown in docs/providers.md and in each type's definition.
A row missing here is built from the documented algorithm only, and says so."""

from __future__ import annotations

DOCUMENTED_ONLY = "built from the documented algorithm (no published vector or Python SDK)"
VECTORS: dict[str, str] = {
    "stripe": "stripe SDK (signs and verifies, in the tests)",
    "slack": "published (api.slack.com) + slack_sdk",
    "standard_webhooks": "standardwebhooks library's test vector + its SDK",
    "svix": "published (docs.svix.com) + svix SDK",
    "clerk": "svix SDK (Clerk delivers through Svix)",
    "resend": "svix SDK (Resend delivers through Svix)",
    "paddle": "paddle-python-sdk test vector + its Verifier",
    "pagerduty": "go-pagerduty SDK test vector",
    "square": "square-python-sdk test vectors",
    "circleci": "published (CircleCI webhook docs, 4 vectors)",
    "bitbucket": "published (Atlassian webhook docs)",
    "sanity": "sanity webhook-toolkit test vectors",
    "openclaw": "standardwebhooks SDK (Standard Webhooks signing)",
    "moltbook": "standardwebhooks SDK (Standard Webhooks signing)",
    "fourclaw": "standardwebhooks SDK (Standard Webhooks signing)",
    "hubspot": "hubspot-api-client SDK (Signature.get_signature v3)",
    "zendesk": DOCUMENTED_ONLY + "; current docs sign timestamp+body, an older copy"
               " said body+timestamp",
    # catalogue: HMAC and token family
    "terraform_cloud": DOCUMENTED_ONLY + "; HashiCorp's Ruby sample, no vector",
    "buildkite": "go-buildkite v4.23.0 test vector, accepted by its ValidatePayload (recorded)",
    "chargebee": "chargebee Node SDK basicAuthValidator accepted the tests' header (recorded)",
    "azure_devops": DOCUMENTED_ONLY + "; HTTP basic auth, RFC 7617's example",
    "woocommerce": DOCUMENTED_ONLY + "; WC_Webhook::generate_signature source, no vector",
    "bigcommerce": DOCUMENTED_ONLY + "; BigCommerce signs nothing: a custom header",
    "webflow": "webflow-api Node SDK verifySignature accepted the recorded vector",
    "mollie": DOCUMENTED_ONLY + "; mollie-api-php SignatureValidator source, no vector",
    "gocardless": "gocardless-pro-go test vector + gocardless_pro SDK",
    "recurly": "recurly-client-ruby spec vector",
    "patreon": DOCUMENTED_ONLY + "; HMAC-MD5 per Patreon's docs, no vector",
    "customerio": "customerio-node 5.2.0 verifyRequestSignature accepted the recorded vector",
    "klaviyo": DOCUMENTED_ONLY + "; body then the HTTP-date timestamp, no vector",
    "workos": "workos SDK (verify_header, in the tests)",
    "calcom": DOCUMENTED_ONLY + "; cal.com's sendPayload source, no vector",
    "pandadoc": DOCUMENTED_ONLY,
    "frameio": DOCUMENTED_ONLY,
    "telegram": DOCUMENTED_ONLY + "; Bot API setWebhook secret_token",
}
