-- rpa schema, version 10: webhook subscriptions and the deliveries that
-- failed every try, record kinds of rpa_core::webhook. Subscriptions hold no
-- secret: each one's is derived from the server's key.
CREATE TABLE rpa_webhooks (id BIGINT PRIMARY KEY, version BIGINT NOT NULL, data TEXT NOT NULL);

CREATE TABLE rpa_webhook_failures (
    id BIGINT PRIMARY KEY,
    subscription BIGINT NOT NULL,
    redeliver BIGINT NOT NULL,
    version BIGINT NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX rpa_webhook_failures_subscription ON rpa_webhook_failures (subscription, id);
CREATE INDEX rpa_webhook_failures_redeliver ON rpa_webhook_failures (redeliver, id) WHERE redeliver = 1;
