"""Where each preset's test vectors come from (tests/test_presets.py,
tests/test_provider_vectors.py): shown in docs/providers.md and in each type's definition.
A row missing here is built from the documented algorithm only, and says so."""

from __future__ import annotations

DOCUMENTED_ONLY = "built from the documented algorithm (no published vector or Python SDK)"
NOTHING_SIGNED = "nothing signed: a token compared whole, in constant time"
# "recorded": the provider's code outside Python (its Node SDK, sender or sample
# verifier) was run once and its result is kept in tests/fixtures/provider_vectors.json
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
    "shopify": "@shopify/shopify-api 13.1.0 `webhooks.validate` accepted both header families "
               "(recorded)",
    "linear": "@linear/sdk `LinearWebhookClient.verify` on its own test's body and secret "
              "(recorded)",
    "intercom": DOCUMENTED_ONLY + "; Intercom's SDKs have no verifier and its docs' example "
                "signature comes without a secret",
    "typeform": DOCUMENTED_ONLY + "; Typeform's SDKs only manage webhooks, its docs give code "
                "without values",
    "sentry": "Sentry's own server code (sentry 23.7.1 `build_signature`) produced the vector "
              "(recorded)",
    "zoom": "@zoom/rivet 0.4.0 accepted the vectors and answers url_validation as we do "
            "(recorded)",
    "twitch": "Twitch docs' message id and timestamp, accepted by @twurple/eventsub-http and "
              "twitchAPI (community: Twitch ships no SDK)",
    "mux": "mux-node SDK test vectors, re-run with @mux/mux-node `verifySignature` (recorded)",
    "calendly": DOCUMENTED_ONLY + "; Calendly has no SDK and its docs give no values",
    "razorpay": "razorpay SDK test vector + `Utility.verify_webhook_signature` (in the tests)",
    "checkout_com": DOCUMENTED_ONLY + "; no verifier in checkout-sdk (Python, Node, Java, .NET), "
                    "no values in the docs",
    "coinbase": "coinbase-commerce SDK test vector (tests/test_webhook.py)",
    "launchdarkly": DOCUMENTED_ONLY + "; LaunchDarkly's SDKs have no verifier, its docs no "
                    "values",
    "lemon_squeezy": "Lemon Squeezy's official example app's verifier (nextjs-billing) "
                     "(recorded)",
    "xero": "Xero's official sample receiver (XeroWebhooksReceiver) produced the vectors "
            "(recorded)",
    "vercel": "Vercel's documented sample verifier, run verbatim (recorded; no SDK verifier)",
    "dropbox": "Dropbox's official sample app (mdwebhook) `validate_request` (recorded)",
    "asana": DOCUMENTED_ONLY + "; Asana's SDKs have no verifier, its example servers ship no "
             "signed sample",
    "meta_whatsapp": "Meta's WhatsApp Node SDK test vector (`generateXHub256Sig`) + one it "
                     "produced",
    "docusign": DOCUMENTED_ONLY + "; DocuSign's SDKs only manage HMAC keys, its docs show "
                "values as screenshots",
    "notion": "@notionhq/client `signWebhookPayload` / `verifyWebhookSignature` (recorded)",
    "segment": "Segment's Webhooks destination (@segment/action-destinations) produced the "
               "vector (recorded); batches are refused: only the first event is signed",
    "zendesk": DOCUMENTED_ONLY + "; timestamp+body as the current docs say: an older page's "
               "vector (body+timestamp) is refused on purpose",
    "atlassian_jira": "published (Atlassian's Jira Cloud webhook docs)",
    "gitlab": "GitLab's sender code (the token as is)",
    "okta": "published (Okta's event hook guide: the Authorization header)",
    "aws_eventbridge": NOTHING_SIGNED,
    "postmark": "published (Postmark's Webhooks API `HttpAuth` example)",
    # catalogue, second round
    "terraform_cloud": DOCUMENTED_ONLY + "; HashiCorp's Ruby sample recipe, go-tfe signs nothing",
    "buildkite": "go-buildkite v4.23.0 test vector, accepted by its ValidatePayload (recorded)",
    "chargebee": "chargebee Node SDK basicAuthValidator accepted the tests' header (recorded)",
    "azure_devops": NOTHING_SIGNED + " (HTTP basic auth, RFC 7617's example)",
    "woocommerce": "WooCommerce's unit-test vector + `WC_Webhook::generate_signature` run "
                   "under PHP (recorded)",
    "bigcommerce": NOTHING_SIGNED + " (BigCommerce signs nothing: a custom header)",
    "webflow": "webflow-api Node SDK verifySignature accepted the recorded vector",
    "mollie": "mollie-api-py `SignatureValidator` signs and verifies (in the tests)",
    "gocardless": "gocardless-pro-go test vector + gocardless_pro SDK",
    "recurly": "recurly-client-ruby spec vector",
    "patreon": DOCUMENTED_ONLY + "; HMAC-MD5 per Patreon's docs: its SDKs have no webhook "
               "code, its docs no signature",
    "customerio": "customerio-node 5.2.0 verifyRequestSignature accepted the recorded vector",
    "klaviyo": DOCUMENTED_ONLY + "; the docs' example signature comes without body or secret, "
               "no SDK verifies",
    "workos": "workos SDK (verify_header, in the tests)",
    "calcom": "cal.com's sender code (@calcom/platform-libraries) produced the delivery "
              "(recorded)",
    "pandadoc": "PandaDoc docs' `verify_webhook_signature` accepted the vector (recorded)",
    "frameio": "Frame.io V4 guide's `verify_signature` accepted the vector (recorded)",
    "telegram": NOTHING_SIGNED + " (Bot API setWebhook `secret_token`)",
    # catalogue, third round
    "openai": "openai SDK test vector (tests/api_resources/test_webhooks.py)",
    "polar": "polar-sdk signed it and its `validate_event` accepted it (recorded)",
    "elevenlabs": "elevenlabs SDK `construct_event` accepted the vector (recorded)",
    "line": "line-bot-sdk test vector + `WebhookParser` accepted a delivery (recorded)",
    "pusher": "pusher SDK signs and verifies (in the tests)",
    "onfido": "onfido-python test vectors (classic and Studio)",
    "modern_treasury": "modern-treasury SDK test vectors + `get_signature` / "
                       "`validate_signature` (in the tests)",
    "easypost": "easypost SDK `validate_webhook` (in the tests, with a non-ASCII secret)",
    "airtable": DOCUMENTED_ONLY + "; Airtable ships no SDK: the community pyairtable "
                "`WebhookNotification.from_request` accepts what we sign (in the tests)",
    "aftership": "AfterShip docs' own Node `generateSignature` sample, run verbatim (recorded; "
                 "no AfterShip SDK verifies webhooks)",
    "todoist": "@doist/todoist-sdk `verifyWebhookSignature` accepted its own test's body and "
               "secret (recorded; the Python SDK has no webhook code)",
    "heroku": "Heroku's sample receiver (heroku/webhooks-demo) signed and accepted them "
              "(recorded; Heroku ships no verifier)",
    "front": "Front's official sample verifier (frontapp/dynamic-objects-handler) accepted "
             "them (recorded; Front's SDKs have no verifier)",
    "front_rule": "the `validateFrontSignature` snippet of Front's rule-webhook docs accepted "
                  "it (recorded)",
    "trello": "Trello's published verification code (both versions) accepted them (recorded; "
              "Trello has no SDK)",
    "help_scout": "helpscout-api-php `IncomingWebhook` test vector, and what its "
                  "`validateSignature` accepted (recorded)",
    "quickbooks": "QuickBooks Java SDK (ipp-v3-java-devkit) `WebhooksService` test vector, and "
                  "what its `verifyPayload` accepted (recorded; Intuit ships no Python verifier)",
    "squarespace": "Squarespace docs' own Node verifier and OpenSSL command, run verbatim "
                   "(recorded; Squarespace has no SDK)",
    "clickup": "ClickUp docs' own Node verification snippet, run verbatim (recorded; ClickUp "
               "has no SDK)",
    "nylas": "nylas-java `WebhookRequestValidator` test vector, and what nylas-legacy's "
             "`verify_webhook_signature` accepted",
    "persona": "the sample code of Persona's docs accepted them, a rotating header too "
               "(recorded; Persona ships no SDK verifier)",
    "checkr": "Checkr's official examples repository (webhook-verification-examples) and its "
              "verifier (recorded)",
    "greenhouse": "Greenhouse docs' own Ruby and PHP snippets, run verbatim (recorded; no SDK)",
    "ghost": "Ghost's own server code (ghost 6.65.0 `WebhookTrigger`) signed them (recorded)",
    "revolut": "published (Revolut's docs: secret, timestamp and body of its worked example)",
    "paystack": "Paystack's own CLI (`pingWebhook`) signed them (recorded; its SDKs have no "
                "verifier)",
    "authorize_net": "a real delivery's signature with its Signature Key (posted on "
                     "Authorize.net's developer forum); no official SDK verifies webhooks",
}
