-- rpa schema, version 19: a queue's newest items (the console's and the
-- administration's item lists).
CREATE INDEX rpa_items_process ON rpa_items (process, id);
