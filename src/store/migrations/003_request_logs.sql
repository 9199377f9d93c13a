-- 003_request_logs: the request log (src/obs/, docs/observability.md).
-- One row per request that reached a proxy. Never bodies, keys or
-- Authorization values: the columns below are everything kept.
-- seq is the rowid: increasing in writing order, the live stream's event id
-- and the tie-break of the keyset order (timestamp DESC, seq DESC).
-- proxy_id is not a foreign key: a proxy's log outlives the proxy.
CREATE TABLE request_logs (
    seq                 INTEGER PRIMARY KEY,
    request_id          TEXT    NOT NULL,
    timestamp           INTEGER NOT NULL,       -- epoch ms, UTC
    proxy_id            INTEGER NOT NULL,
    node_id             TEXT    NOT NULL DEFAULT '',
    client_ip           TEXT    NOT NULL DEFAULT '',
    method              TEXT    NOT NULL DEFAULT '',
    path                TEXT    NOT NULL DEFAULT '',
    provider            TEXT    NOT NULL DEFAULT '',
    model               TEXT    NOT NULL DEFAULT '',
    status_code         INTEGER NOT NULL DEFAULT 0,
    upstream_status     INTEGER NOT NULL DEFAULT 0,
    latency_ms          REAL    NOT NULL DEFAULT 0,
    upstream_latency_ms REAL,                   -- NULL: no upstream call
    ttfb_ms             REAL,
    request_bytes       INTEGER NOT NULL DEFAULT 0,
    response_bytes      INTEGER NOT NULL DEFAULT 0,
    cache               INTEGER NOT NULL DEFAULT 0, -- 0 none, 1 bypass, 2 miss, 3 hit
    failure_type        TEXT    NOT NULL DEFAULT '',
    response_delay_ms   INTEGER NOT NULL DEFAULT 0,
    stream              INTEGER NOT NULL DEFAULT 0,
    input_tokens        INTEGER,                -- NULL: not reported
    output_tokens       INTEGER,
    cached_tokens       INTEGER,
    reasoning_tokens    INTEGER,
    cost_usd            REAL,                   -- NULL: unknown
    prompt_hash         TEXT    NOT NULL DEFAULT '',
    upstream_request_id TEXT    NOT NULL DEFAULT '',
    trace_id            TEXT    NOT NULL DEFAULT ''
);

-- The description's indexes, each made to serve the newest-first keyset order.
CREATE INDEX idx_logs_timestamp ON request_logs(timestamp, seq);
CREATE INDEX idx_logs_proxy_id ON request_logs(proxy_id, timestamp, seq);
CREATE INDEX idx_logs_status ON request_logs(status_code, timestamp);
CREATE INDEX idx_logs_request_id ON request_logs(request_id);
