"""The built-in connector types' display names, documentation and (for the types
written as classes) descriptions: the fallback of their definitions
(``connectors.definition``). A preset's description is made from its row
(``presets.describe.summary``).

Each provider's documentation URL was found by a search of the provider's own site
(2026-12-02), not composed; the gateway's own generic types point at its documentation.
"""

from __future__ import annotations

BUILTIN: dict[str, dict[str, str]] = {
    'adyen': {
        'display_name': 'Adyen',
        'docs_url': (
            'https://docs.adyen.com/development-resources/webhooks/secure-webhooks/verify-hmac-signatures'
        ),
        'description': (
            "Adyen notifications: HMAC-SHA256 of each notification item's fields "
            '(additionalData.hmacSignature); the batch is acknowledged with '
            '[accepted].'
        ),
    },
    'aftership': {
        'display_name': 'AfterShip',
        'docs_url': 'https://www.aftership.com/docs/tracking/webhook/webhook-signature',
    },
    'airtable': {
        'display_name': 'Airtable',
        'docs_url': 'https://airtable.com/developers/web/api/webhooks-overview',
    },
    'asana': {
        'display_name': 'Asana',
        'docs_url': 'https://developers.asana.com/docs/webhooks-guide',
    },
    'atlassian_jira': {
        'display_name': 'Jira',
        'docs_url': 'https://developer.atlassian.com/cloud/jira/platform/webhooks',
    },
    'authorize_net': {
        'display_name': 'Authorize.net',
        'docs_url': 'https://developer.authorize.net/api/reference/features/webhooks.html',
    },
    'aws_eventbridge': {
        'display_name': 'Amazon EventBridge',
        'docs_url': (
            'https://docs.aws.amazon.com/eventbridge/latest/userguide/api-destinations.html'
        ),
    },
    'aws_sns': {
        'display_name': 'Amazon SNS',
        'docs_url': (
            'https://docs.aws.amazon.com/sns/latest/dg/sns-verify-signature-of-message.html'
        ),
        'description': (
            'Amazon SNS HTTP/S subscriptions: the message signature (SignatureVersion '
            '1 or 2) checked with the certificate fetched from an SNS host; '
            'subscription confirmations answered.'
        ),
    },
    'azure_devops': {
        'display_name': 'Azure DevOps',
        'docs_url': 'https://learn.microsoft.com/azure/devops/service-hooks/services/webhooks',
    },
    'azure_event_grid': {
        'display_name': 'Azure Event Grid',
        'docs_url': 'https://learn.microsoft.com/en-ie/azure/event-grid/webhook-event-delivery',
        'description': (
            'Azure Event Grid push deliveries: a shared key in aeg-sas-key or ?code=, '
            'the SubscriptionValidation and CloudEvents OPTIONS handshakes answered; '
            'one event per element.'
        ),
    },
    'bigcommerce': {
        'display_name': 'BigCommerce',
        'docs_url': (
            'https://docs.bigcommerce.com/developer/api-reference/rest/integrations/webhooks'
        ),
    },
    'bitbucket': {
        'display_name': 'Bitbucket',
        'docs_url': 'https://support.atlassian.com/bitbucket-cloud/docs/manage-webhooks/',
    },
    'box': {
        'display_name': 'Box',
        'docs_url': 'https://developer.box.com/guides/webhooks/handle/setup-signatures',
        'description': (
            'Box webhooks: HMAC-SHA256 (base64) of body and timestamp with the '
            'primary and secondary keys, 10 minute replay window.'
        ),
    },
    'braintree': {
        'display_name': 'Braintree',
        'docs_url': (
            'https://developer.paypal.com/braintree/docs/guides/webhooks/parse/python'
        ),
        'description': (
            'Braintree webhooks: a form whose bt_signature holds HMAC-SHA1 (keyed '
            'with SHA-1 of the API private key) of bt_payload, a base64 XML '
            'notification; the legacy bt_challenge check answered.'
        ),
    },
    'buildkite': {
        'display_name': 'Buildkite',
        'docs_url': 'https://buildkite.com/docs/apis/webhooks/pipelines',
        'description': (
            'Buildkite webhooks: an HMAC-SHA256 signature over timestamp and body '
            '(X-Buildkite-Signature), or the token (X-Buildkite-Token).'
        ),
    },
    'calcom': {
        'display_name': 'Cal.com',
        'docs_url': 'https://cal.com/docs/api-reference/v1/webhooks/creates-a-new-webhook',
    },
    'calendly': {
        'display_name': 'Calendly',
        'docs_url': 'https://developer.calendly.com/api-docs/overview/webhooks/webhook-signatures',
    },
    'chargebee': {
        'display_name': 'Chargebee',
        'docs_url': 'https://www.chargebee.com/docs/2.0/webhook_settings.html',
    },
    'checkout_com': {
        'display_name': 'Checkout.com',
        'docs_url': (
            'https://www.checkout.com/docs/developer-resources/webhooks/manage-webhooks/set-up-your-webhook-receiver'
        ),
    },
    'checkr': {
        'display_name': 'Checkr',
        'docs_url': 'https://docs.checkr.com/apis/webhooks',
    },
    'circleci': {
        'display_name': 'CircleCI',
        'docs_url': 'https://circleci.com/docs/outbound-webhooks',
    },
    'clerk': {
        'display_name': 'Clerk',
        'docs_url': 'https://clerk.com/docs/webhooks/sync-data',
    },
    'clickup': {
        'display_name': 'ClickUp',
        'docs_url': 'https://developer.clickup.com/docs/webhooksignature',
    },
    'cloudinary': {
        'display_name': 'Cloudinary',
        'docs_url': 'https://cloudinary.com/documentation/notification_signatures',
        'description': (
            'Cloudinary notifications: X-Cld-Signature, SHA-1 or SHA-256 hex of '
            'body + X-Cld-Timestamp + API secret (a plain hash, not HMAC), two '
            'hours into the past.'
        ),
    },
    'coinbase': {
        'display_name': 'Coinbase Commerce',
        'docs_url': 'https://docs.cdp.coinbase.com/commerce/api-arcitecture/webhooks-security',
    },
    'contentful': {
        'display_name': 'Contentful',
        'docs_url': (
            'https://contentful.com/developers/docs/extensibility/webhooks/request-verification'
        ),
        'description': (
            'Contentful webhooks: request verification (HMAC-SHA256 over method, '
            'path, signed headers and body) with a replay window.'
        ),
    },
    'customerio': {
        'display_name': 'Customer.io',
        'docs_url': 'https://docs.customer.io/journeys/webhooks/',
    },
    'discord': {
        'display_name': 'Discord',
        'docs_url': 'https://docs.discord.com/developers/interactions/overview',
        'description': (
            'Discord interactions and webhook events: Ed25519 over timestamp and '
            'body; interaction PINGs are answered after verification.'
        ),
    },
    'docusign': {
        'display_name': 'Docusign',
        'docs_url': 'https://developers.docusign.com/docs/platform/webhooks/connect/validate',
    },
    'dropbox': {
        'display_name': 'Dropbox',
        'docs_url': 'https://www.dropbox.com/developers/reference/webhooks',
    },
    'dropbox_sign': {
        'display_name': 'Dropbox Sign',
        'docs_url': 'https://developers.hellosign.com/docs/events/walkthrough/',
        'description': (
            'Dropbox Sign (HelloSign) event callbacks: the event_hash HMAC-SHA256 of '
            'event time and type keyed with the API key; answered with Hello API '
            'Event Received.'
        ),
    },
    'figma': {
        'display_name': 'Figma',
        'docs_url': 'https://developers.figma.com/docs/rest-api/webhooks-security',
        'description': 'Figma webhooks (v2): the passcode in the body compared in constant time.',
    },
    'fourclaw': {
        'display_name': 'FourClaw',
        'docs_url': 'docs/providers.md#how-each-is-verified',
    },
    'frameio': {
        'display_name': 'Frame.io',
        'docs_url': 'https://developer.frame.io/platform/v4/docs/guides/webhooks',
    },
    'front': {
        'display_name': 'Front',
        'docs_url': 'https://dev.frontapp.com/docs/application-webhooks',
    },
    'front_rule': {
        'display_name': 'Front (rule webhooks)',
        'docs_url': 'https://dev.frontapp.com/docs/rule-webhooks',
    },
    'ghost': {
        'display_name': 'Ghost',
        'docs_url': 'https://docs.ghost.org/webhooks',
    },
    'github': {
        'display_name': 'GitHub',
        'docs_url': 'https://docs.github.com/webhooks/securing',
        'description': (
            'GitHub webhooks: HMAC-SHA256 of the body in X-Hub-Signature-256, the '
            'event type from X-GitHub-Event plus the action; ping answered.'
        ),
    },
    'github_poll': {
        'display_name': 'GitHub events poller',
        'docs_url': 'docs/providers.md#how-each-is-verified',
        'description': (
            "GitHub's events API polled (ETag, X-Poll-Interval, rate limits), typed "
            'like the GitHub webhooks.'
        ),
    },
    'gitlab': {
        'display_name': 'GitLab',
        'docs_url': (
            'https://docs.gitlab.com/ee/user/project/integrations/webhooks.html#validate-payloads-by-using-a-secret-token'
        ),
    },
    'gocardless': {
        'display_name': 'GoCardless',
        'docs_url': (
            'https://developer.gocardless.com/getting-started/staying-up-to-date-with-webhooks/'
        ),
    },
    'google_pubsub': {
        'display_name': 'Google Cloud Pub/Sub',
        'docs_url': 'https://cloud.google.com/pubsub/docs/authenticate-push-subscriptions',
        'description': (
            "Google Cloud Pub/Sub push subscriptions: the OIDC token (RS256, Google's "
            'keys) checked for audience and service account.'
        ),
    },
    'greenhouse': {
        'display_name': 'Greenhouse',
        'docs_url': 'https://developers.greenhouse.io/webhooks.html',
    },
    'help_scout': {
        'display_name': 'Help Scout',
        'docs_url': 'https://developer.helpscout.com/webhooks/',
    },
    'heroku': {
        'display_name': 'Heroku',
        'docs_url': 'https://devcenter.heroku.com/articles/app-webhooks',
    },
    'http_poll': {
        'display_name': 'HTTP API poller',
        'docs_url': 'docs/providers.md#how-each-is-verified',
        'description': (
            'Any JSON HTTP API polled on a schedule: pagination, an incremental '
            'cursor, retries and rate limits, records published as events.'
        ),
    },
    'hubspot': {
        'display_name': 'HubSpot',
        'docs_url': 'https://developers.hubspot.com/docs/api/webhooks/validating-requests',
        'description': (
            'HubSpot webhooks: signature v3 (HMAC-SHA256 over method, URI, body and '
            'timestamp), and v1 and v2.'
        ),
    },
    'intercom': {
        'display_name': 'Intercom',
        'docs_url': (
            'https://developers.intercom.com/intercom-api-reference/v1.0/reference/signed-notifications'
        ),
    },
    'klaviyo': {
        'display_name': 'Klaviyo',
        'docs_url': 'https://developers.klaviyo.com/en/docs/working_with_system_webhooks',
    },
    'launchdarkly': {
        'display_name': 'LaunchDarkly',
        'docs_url': 'https://launchdarkly.com/docs/home/infrastructure/webhooks',
    },
    'lemon_squeezy': {
        'display_name': 'Lemon Squeezy',
        'docs_url': 'https://docs.lemonsqueezy.com/help/webhooks/signing-requests',
    },
    'linear': {
        'display_name': 'Linear',
        'docs_url': 'https://linear.app/developers/sdk-webhooks',
    },
    'mailgun': {
        'display_name': 'Mailgun',
        'docs_url': (
            'https://documentation.mailgun.com/docs/mailgun/user-manual/webhooks/securing-webhooks'
        ),
        'description': (
            'Mailgun webhooks: the HMAC-SHA256 signature of timestamp and token '
            'inside the body.'
        ),
    },
    'mandrill': {
        'display_name': 'Mailchimp Transactional (Mandrill)',
        'docs_url': 'https://mailchimp.com/developer/transactional/docs/webhooks/',
        'description': (
            'Mailchimp Transactional (Mandrill) webhooks: X-Mandrill-Signature, '
            'HMAC-SHA1 (base64) of the URL and the sorted form parameters; one '
            'event per element of mandrill_events.'
        ),
    },
    'meta_whatsapp': {
        'display_name': 'WhatsApp Cloud API',
        'docs_url': 'https://developers.facebook.com/docs/graph-api/webhooks/getting-started/',
    },
    'microsoft_graph': {
        'display_name': 'Microsoft Graph',
        'docs_url': 'https://learn.microsoft.com/en-us/graph/webhooks-with-resource-data',
        'description': (
            'Microsoft Graph change notifications: the clientState secret in each '
            'notification; validation tokens echoed.'
        ),
    },
    'mollie': {
        'display_name': 'Mollie',
        'docs_url': 'https://docs.mollie.com/reference/best-practices',
    },
    'moltbook': {
        'display_name': 'Moltbook',
        'docs_url': 'docs/providers.md#how-each-is-verified',
    },
    'mux': {
        'display_name': 'Mux',
        'docs_url': 'https://mux.com/docs/core/verify-webhook-signatures',
    },
    'netlify': {
        'display_name': 'Netlify',
        'docs_url': 'https://docs.netlify.com/site-deploys/deploy-notifications/',
        'description': (
            'Netlify deploy notifications: the JWS (HS256) in X-Webhook-Signature, '
            'its sha256 claim bound to the body.'
        ),
    },
    'notion': {
        'display_name': 'Notion',
        'docs_url': 'https://developers.notion.com/reference/webhooks',
    },
    'nylas': {
        'display_name': 'Nylas',
        'docs_url': 'https://developer.nylas.com/docs/v3/notifications/',
    },
    'okta': {
        'display_name': 'Okta',
        'docs_url': 'https://developer.okta.com/docs/guides/secure-hooks/-/main/',
    },
    'openclaw': {
        'display_name': 'OpenClaw',
        'docs_url': 'docs/providers.md#how-each-is-verified',
    },
    'paddle': {
        'display_name': 'Paddle',
        'docs_url': 'https://developer.paddle.com/webhooks/signature-verification',
    },
    'pagerduty': {
        'display_name': 'PagerDuty',
        'docs_url': 'https://support.pagerduty.com/docs/webhooks',
    },
    'pandadoc': {
        'display_name': 'PandaDoc',
        'docs_url': 'https://developers.pandadoc.com/docs/webhook-verification',
    },
    'patreon': {
        'display_name': 'Patreon',
        'docs_url': 'https://docs.patreon.com/',
    },
    'paypal': {
        'display_name': 'PayPal',
        'docs_url': 'https://developer.paypal.com/api/rest/webhooks/rest/',
        'description': (
            'PayPal REST webhooks: an RSA signature over the transmission id and time, '
            'the webhook id and the CRC-32 of the body, checked with the certificate '
            "fetched from PayPal's API hosts."
        ),
    },
    'paystack': {
        'display_name': 'Paystack',
        'docs_url': 'https://paystack.com/docs/payments/webhooks/',
    },
    'persona': {
        'display_name': 'Persona',
        'docs_url': 'https://docs.withpersona.com/docs/webhooks-best-practices',
    },
    'plaid': {
        'display_name': 'Plaid',
        'docs_url': 'https://plaid.com/docs/api/webhooks/webhook-verification/',
        'description': (
            'Plaid webhooks: the ES256 JWT in Plaid-Verification, its key fetched '
            'from Plaid by kid, its body hash claim checked.'
        ),
    },
    'plivo': {
        'display_name': 'Plivo',
        'docs_url': 'https://plivo.com/docs/voice/xml/request/validation',
        'description': (
            'Plivo voice callbacks: X-Plivo-Signature-V3, HMAC-SHA256 (base64) of the URL '
            'with its sorted query, the sorted form parameters and '
            'X-Plivo-Signature-V3-Nonce.'
        ),
    },
    'postmark': {
        'display_name': 'Postmark',
        'docs_url': 'https://postmarkapp.com/developer/webhooks/webhooks-overview',
    },
    'push': {
        'display_name': 'Push (/api/events)',
        'docs_url': 'docs/contract/http.md',
        'description': (
            'Events already normalized, POSTed to /api/events with a bearer token or '
            "a Standard Webhooks signature, limited to the connector's sources."
        ),
    },
    'quickbooks': {
        'display_name': 'QuickBooks Online',
        'docs_url': (
            'https://developer.intuit.com/app/developer/qbo/docs/develop/webhooks/managing-webhooks-notifications'
        ),
    },
    'razorpay': {
        'display_name': 'Razorpay',
        'docs_url': 'https://razorpay.com/docs/webhooks/validate-test/',
    },
    'recurly': {
        'display_name': 'Recurly',
        'docs_url': 'https://docs.recurly.com/recurly-subscriptions/docs/signature-verification',
    },
    'resend': {
        'display_name': 'Resend',
        'docs_url': 'https://resend.com/docs/webhooks/verify-webhooks-requests',
    },
    'revolut': {
        'display_name': 'Revolut Business',
        'docs_url': (
            'https://developer.revolut.com/docs/guides/manage-accounts/webhooks/verify-the-payload-signature'
        ),
    },
    'sanity': {
        'display_name': 'Sanity',
        'docs_url': 'https://www.sanity.io/docs/webhooks',
    },
    'segment': {
        'display_name': 'Segment',
        'docs_url': (
            'https://www.twilio.com/docs/segment/connections/destinations/catalog/actions-webhook'
        ),
    },
    'sendgrid': {
        'display_name': 'SendGrid',
        'docs_url': (
            'https://www.twilio.com/docs/sendgrid/for-developers/tracking-events/getting-started-event-webhook-security-features'
        ),
        'description': (
            'SendGrid Event Webhook: ECDSA P-256 over timestamp and body; a signed '
            'batch, one event per element.'
        ),
    },
    'sentry': {
        'display_name': 'Sentry',
        'docs_url': 'https://docs.sentry.io/integrations/integration-platform/webhooks/',
    },
    'shopify': {
        'display_name': 'Shopify',
        'docs_url': 'https://shopify.dev/docs/apps/build/webhooks/verify-deliveries',
    },
    'slack': {
        'display_name': 'Slack',
        'docs_url': 'https://api.slack.com/docs/verifying-requests-from-slack',
    },
    'square': {
        'display_name': 'Square',
        'docs_url': 'https://developer.squareup.com/docs/webhooks/step3validate',
    },
    'squarespace': {
        'display_name': 'Squarespace',
        'docs_url': 'https://developers.squarespace.com/webhooks/verifying-notifications',
    },
    'standard_webhooks': {
        'display_name': 'Standard Webhooks',
        'docs_url': 'https://www.standardwebhooks.com/verify',
        'description': (
            'Standard Webhooks: v1 (HMAC-SHA256) and v1a (Ed25519) signatures over '
            'id, timestamp and body.'
        ),
    },
    'stripe': {
        'display_name': 'Stripe',
        'docs_url': 'https://docs.stripe.com/webhooks/signature',
    },
    'svix': {
        'display_name': 'Svix',
        'docs_url': 'https://docs.svix.com/receiving/verifying-payloads/how/',
    },
    'teams_outgoing': {
        'display_name': 'Microsoft Teams',
        'docs_url': (
            'https://docs.microsoft.com/en-us/microsoftteams/platform/webhooks-and-connectors/how-to/add-outgoing-webhook'
        ),
        'description': (
            'Microsoft Teams outgoing webhooks: HMAC-SHA256 of the body in '
            'Authorization: HMAC, one Bot Framework activity per POST.'
        ),
    },
    'telegram': {
        'display_name': 'Telegram',
        'docs_url': 'https://core.telegram.org/bots/api/methods/setwebhook.md',
        'description': (
            'Telegram Bot API updates: the secret_token in '
            "X-Telegram-Bot-Api-Secret-Token; the update's field names the event "
            'type.'
        ),
    },
    'telnyx': {
        'display_name': 'Telnyx',
        'docs_url': 'https://developers.telnyx.com/docs/development/sdk/python/webhooks',
        'description': (
            'Telnyx webhooks: Ed25519 over timestamp and body '
            '(telnyx-signature-ed25519), 300 second window.'
        ),
    },
    'terraform_cloud': {
        'display_name': 'HCP Terraform',
        'docs_url': (
            'https://developer.hashicorp.com/terraform/cloud-docs/api-docs/notification-configurations'
        ),
    },
    'todoist': {
        'display_name': 'Todoist',
        'docs_url': 'https://developer.todoist.com/api/v1/#tag/Webhooks',
    },
    'trello': {
        'display_name': 'Trello',
        'docs_url': 'https://developer.atlassian.com/cloud/trello/guides/rest-api/webhooks/',
    },
    'twilio': {
        'display_name': 'Twilio',
        'docs_url': 'https://www.twilio.com/docs/usage/webhooks/webhooks-security',
        'description': (
            'Twilio webhooks: X-Twilio-Signature, HMAC-SHA1 of the URL (with or '
            'without the default port) and the sorted form fields, or of the URL with '
            'bodySHA256 for JSON.'
        ),
    },
    'twitch': {
        'display_name': 'Twitch',
        'docs_url': 'https://dev.twitch.tv/docs/eventsub/handling-webhook-events',
    },
    'typeform': {
        'display_name': 'Typeform',
        'docs_url': 'https://www.typeform.com/developers/webhooks/secure-your-webhooks/',
    },
    'vercel': {
        'display_name': 'Vercel',
        'docs_url': 'https://vercel.com/docs/webhooks',
    },
    'vonage': {
        'display_name': 'Vonage',
        'docs_url': 'https://developer.nexmo.com/cn/messages/concepts/signed-webhooks',
        'description': (
            'Vonage signed webhooks (Messages and Voice): the HS256 JWT in '
            'Authorization, its payload_hash bound to the body.'
        ),
    },
    'webflow': {
        'display_name': 'Webflow',
        'docs_url': 'https://developers.webflow.com/reference/webhooks',
    },
    'webhook': {
        'display_name': 'Generic HMAC webhook',
        'docs_url': 'docs/providers.md#how-each-is-verified',
        'description': (
            'Any provider: a configurable HMAC signature (header, digest, encoding, '
            'prefix, signed template, timestamp window) and where the id and type '
            'are.'
        ),
    },
    'woocommerce': {
        'display_name': 'WooCommerce',
        'docs_url': 'https://developer.woocommerce.com/docs/apis/rest-api/v3/webhooks/',
    },
    'workos': {
        'display_name': 'WorkOS',
        'docs_url': 'https://www.workos.com/docs/webhooks',
    },
    'x_activity': {
        'display_name': 'X Account Activity',
        'docs_url': 'https://docs.x.com/x-api/webhooks/introduction',
        'description': (
            'X (Twitter) Account Activity webhooks: sha256= base64 HMAC-SHA256 of '
            "the body; the CRC challenge answered for tokens of X's shape only."
        ),
    },
    'xero': {
        'display_name': 'Xero',
        'docs_url': 'https://developer.xero.com/documentation/webhooks/configuring-your-server',
    },
    'zendesk': {
        'display_name': 'Zendesk',
        'docs_url': 'https://developer.zendesk.com/documentation/webhooks/verifying/',
    },
    'zoom': {
        'display_name': 'Zoom',
        'docs_url': 'https://developers.zoom.us/docs/api/webhooks',
    },
    'easypost': {
        'display_name': 'EasyPost',
        'docs_url': 'https://docs.easypost.com/guides/webhooks-guide',
    },
    'elevenlabs': {
        'display_name': 'ElevenLabs',
        'docs_url': 'https://elevenlabs.io/docs/product-guides/administration/webhooks',
    },
    'line': {
        'display_name': 'LINE Messaging API',
        'docs_url': 'https://developers.line.biz/en/docs/messaging-api/verify-webhook-signature',
    },
    'modern_treasury': {
        'display_name': 'Modern Treasury',
        'docs_url': 'https://docs.moderntreasury.com/platform/docs/verifying-webhooks',
    },
    'onfido': {
        'display_name': 'Onfido',
        'docs_url': 'https://developers.onfido.com/guide/manual-webhook-signature-verification/',
    },
    'openai': {
        'display_name': 'OpenAI',
        'docs_url': 'https://platform.openai.com/docs/guides/webhooks',
    },
    'polar': {
        'display_name': 'Polar',
        'docs_url': 'https://docs.polar.sh/integrate/webhooks/delivery',
    },
    'pusher': {
        'display_name': 'Pusher Channels',
        'docs_url': 'https://pusher.com/docs/channels/server_api/webhooks/',
    },
}
