-- 001_init: proxies and settings.
-- Runs inside one transaction opened by the migrator; no BEGIN/COMMIT here.

-- AUTOINCREMENT so the id of a deleted proxy is never handed out again:
-- API clients and logs may still refer to the old id.
CREATE TABLE proxies (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    name           TEXT    NOT NULL UNIQUE,
    provider       TEXT    NOT NULL,
    port           INTEGER NOT NULL UNIQUE CHECK (port BETWEEN 1 AND 65535),
    bind           TEXT    NOT NULL DEFAULT '127.0.0.1',
    upstream_url   TEXT,
    description    TEXT,
    tags           TEXT    NOT NULL DEFAULT '[]',
    model          TEXT,
    config         TEXT    NOT NULL DEFAULT '{}',
    desired_status TEXT    NOT NULL DEFAULT 'stopped'
                           CHECK (desired_status IN ('running', 'stopped')),
    last_error     TEXT,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
);

-- Free-form key/value settings for later use.
CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
