-- Sessions are timers too: the tick deletes a token once it has run out.
CREATE INDEX rpa_tokens_expiry ON rpa_tokens (expires_at);
