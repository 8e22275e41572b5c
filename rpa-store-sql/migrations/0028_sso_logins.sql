-- rpa schema, version 28: single sign-on logins under way (record kind of
-- rpa_core::identity; sealed: the PKCE verifier is a secret).
CREATE TABLE rpa_sso_logins (state TEXT PRIMARY KEY, version BIGINT NOT NULL, data TEXT NOT NULL);
