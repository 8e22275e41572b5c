-- rpa schema, version 26: RPA designers and who holds them (record kind
-- of rpa_core::designer).
CREATE TABLE rpa_designers (
    code TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    holder TEXT,
    version BIGINT NOT NULL,
    data TEXT NOT NULL
);
