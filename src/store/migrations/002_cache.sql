-- 002_cache: the response caches' write-behind copy (docs/caching.md,
-- "Persistence"; src/cache/persist.c writes it, store.h documents the ops).
-- Runs inside one transaction opened by the migrator; no BEGIN/COMMIT here.

-- One row per committed cache entry of a proxy. The store does not interpret
-- headers (JSON text, [[name, value], ...]), body or marks (packed stream
-- event ends, see persist.c): the cache encodes and checks them. kind is the
-- request type's name ("chat", "embedding", ...), not an enum number, so a
-- reordered enum never changes what a stored row means.
CREATE TABLE cache_entries (
    proxy_id           INTEGER NOT NULL REFERENCES proxies(id) ON DELETE CASCADE,
    cache_key          TEXT    NOT NULL CHECK (length(cache_key) = 64),
    model              TEXT    NOT NULL DEFAULT '',
    kind               TEXT    NOT NULL,
    method             TEXT    NOT NULL,
    path               TEXT    NOT NULL,
    status             INTEGER NOT NULL CHECK (status BETWEEN 100 AND 599),
    stream             INTEGER NOT NULL CHECK (stream IN (0, 1)),
    headers            TEXT    NOT NULL DEFAULT '[]',
    body               BLOB    NOT NULL,
    marks              BLOB,
    input_tokens       INTEGER NOT NULL DEFAULT 0,
    output_tokens      INTEGER NOT NULL DEFAULT 0,
    cached_tokens      INTEGER NOT NULL DEFAULT 0,
    cache_write_tokens INTEGER NOT NULL DEFAULT 0,
    reasoning_tokens   INTEGER NOT NULL DEFAULT 0,
    upstream_model     TEXT    NOT NULL DEFAULT '',
    finish             TEXT    NOT NULL DEFAULT '',
    created_at         INTEGER NOT NULL,
    expires_at         INTEGER NOT NULL,
    ttl_s              INTEGER NOT NULL CHECK (ttl_s > 0),
    hits               INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (proxy_id, cache_key)
);

-- The product description's two indexes: by key (a lookup or deletion across
-- proxies) and by expiry (the background purge).
CREATE INDEX idx_cache_key ON cache_entries(cache_key);
CREATE INDEX idx_cache_expiry ON cache_entries(expires_at);
