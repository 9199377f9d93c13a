-- 004_metrics_rollups: metric roll-ups (src/obs/rollup.c,
-- docs/observability.md "Roll-ups"). One row per bucket of resolution_s
-- seconds (60, 900 or 3600), proxy, provider and model. Counters only: no
-- request, prompt or key is kept. latency is a histogram blob (obs/hist.c)
-- merged by the roll-up thread. proxy_id is not a foreign key: a proxy's
-- history outlives the proxy (ids are never reused: 001_init.sql).
CREATE TABLE metrics_rollups (
    resolution_s       INTEGER NOT NULL,
    bucket_start       INTEGER NOT NULL,  -- epoch ms, UTC, a multiple of resolution_s * 1000
    proxy_id           INTEGER NOT NULL,
    provider           TEXT    NOT NULL DEFAULT '',
    model              TEXT    NOT NULL DEFAULT '',
    requests           INTEGER NOT NULL DEFAULT 0,
    cache_hits         INTEGER NOT NULL DEFAULT 0,
    cache_misses       INTEGER NOT NULL DEFAULT 0,
    cache_bypass       INTEGER NOT NULL DEFAULT 0,
    errors_simulated   INTEGER NOT NULL DEFAULT 0, -- status sent >= 400 with a simulated outcome
    errors_upstream    INTEGER NOT NULL DEFAULT 0, -- status sent >= 400 otherwise
    input_tokens       INTEGER NOT NULL DEFAULT 0, -- tokens and cost: billed requests (not cache hits)
    output_tokens      INTEGER NOT NULL DEFAULT 0,
    cached_tokens      INTEGER NOT NULL DEFAULT 0,
    cache_write_tokens INTEGER NOT NULL DEFAULT 0,
    reasoning_tokens   INTEGER NOT NULL DEFAULT 0,
    cost_usd           REAL    NOT NULL DEFAULT 0,
    priced_requests    INTEGER NOT NULL DEFAULT 0,
    unpriced_requests  INTEGER NOT NULL DEFAULT 0, -- reported tokens, no price
    latency            BLOB,                       -- NULL: no request timed
    PRIMARY KEY (resolution_s, bucket_start, proxy_id, provider, model)
) WITHOUT ROWID;

CREATE INDEX idx_rollups_proxy ON metrics_rollups(resolution_s, proxy_id, bucket_start);

-- Simulated outcomes by type (each type once per request), per bucket and proxy.
CREATE TABLE metrics_rollup_failures (
    resolution_s INTEGER NOT NULL,
    bucket_start INTEGER NOT NULL,
    proxy_id     INTEGER NOT NULL,
    failure_type TEXT    NOT NULL,
    count        INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (resolution_s, bucket_start, proxy_id, failure_type)
) WITHOUT ROWID;
