-- 005_request_log_blocks: the request log kept in blocks (src/store/sqlite_logs.c,
-- docs/observability.md "Storage"). The writer thread writes each batch of
-- records as one row: a JSON array of flat records (obs/record_pack.c), the
-- keys the request_logs columns of 003, a key at its default left out. One
-- row and a few key rows per batch instead of a row and four index entries
-- per record: the log's cost per request falls from about 5 us to a fraction
-- of one (docs/performance.md). request_logs stays, as a view, for SQL
-- readers; inserting into it adds a block of one record.
--
-- A record is common's fields overlaid with its own.
-- Invariants the queries rely on: a block's id is at most the seq of each
-- of its records; the seqs of two blocks never interleave (a later block's
-- are all higher); ts_min/ts_max bound its records' timestamps.
CREATE TABLE request_log_blocks (
    id       INTEGER PRIMARY KEY,     -- <= every seq in records (the writer: the first one's)
    seq_last INTEGER NOT NULL,        -- the highest seq in records
    ts_min   INTEGER NOT NULL,        -- epoch ms, UTC: the records' timestamps lie in [ts_min, ts_max]
    ts_max   INTEGER NOT NULL,
    n        INTEGER NOT NULL,        -- records in the block
    common   TEXT    NOT NULL DEFAULT '{}', -- the fields every record has alike, kept once
    records  TEXT    NOT NULL         -- JSON array of records, in seq order; a record
                                      -- without "seq" has id + its index
);

-- Which proxies and statuses a block holds, and how many of each: a query
-- for one proxy or status reads only the blocks that have it.
CREATE TABLE request_log_keys (
    block       INTEGER NOT NULL,     -- request_log_blocks.id
    proxy_id    INTEGER NOT NULL,
    status_code INTEGER NOT NULL,
    n           INTEGER NOT NULL,
    PRIMARY KEY (block, proxy_id, status_code)
) WITHOUT ROWID;

-- The rows of 003, 512 to a block.
INSERT INTO request_log_blocks (id, seq_last, ts_min, ts_max, n, records)
SELECT g * 512 + 1, max(seq), min(timestamp), max(timestamp), count(*), json_group_array(json(rec))
FROM (SELECT seq, timestamp, (seq - 1) / 512 AS g,
             json_object('seq', seq, 'request_id', request_id, 'timestamp', timestamp, 'proxy_id', proxy_id, 'node_id', node_id, 'client_ip', client_ip, 'method', method, 'path', path, 'provider', provider, 'model', model, 'status_code', status_code, 'upstream_status', upstream_status, 'latency_ms', latency_ms, 'upstream_latency_ms', upstream_latency_ms, 'ttfb_ms', ttfb_ms, 'request_bytes', request_bytes, 'response_bytes', response_bytes, 'cache', cache, 'failure_type', failure_type, 'response_delay_ms', response_delay_ms, 'stream', stream, 'input_tokens', input_tokens, 'output_tokens', output_tokens, 'cached_tokens', cached_tokens, 'reasoning_tokens', reasoning_tokens, 'cost_usd', cost_usd, 'prompt_hash', prompt_hash, 'upstream_request_id', upstream_request_id, 'trace_id', trace_id) AS rec
      FROM request_logs ORDER BY seq)
GROUP BY g;
INSERT INTO request_log_keys (block, proxy_id, status_code, n)
SELECT ((seq - 1) / 512) * 512 + 1, proxy_id, status_code, count(*) FROM request_logs GROUP BY 1, 2, 3;
DROP TABLE request_logs;

-- The description's indexes (timestamp, proxy_id, status_code), a block's
-- worth at a time; made after the drop, which frees their names.
CREATE INDEX idx_logs_timestamp ON request_log_blocks(ts_max);
CREATE INDEX idx_logs_proxy_id ON request_log_keys(proxy_id, block);
CREATE INDEX idx_logs_status ON request_log_keys(status_code, block);

CREATE VIEW request_logs AS
SELECT
    coalesce(j.value ->> 'seq', b.id + j.key) AS seq,
    coalesce(j.value ->> 'request_id', b.common ->> 'request_id', '') AS request_id,
    coalesce(j.value ->> 'timestamp', b.common ->> 'timestamp') AS timestamp,
    coalesce(j.value ->> 'proxy_id', b.common ->> 'proxy_id') AS proxy_id,
    coalesce(j.value ->> 'node_id', b.common ->> 'node_id', '') AS node_id,
    coalesce(j.value ->> 'client_ip', b.common ->> 'client_ip', '') AS client_ip,
    coalesce(j.value ->> 'method', b.common ->> 'method', '') AS method,
    coalesce(j.value ->> 'path', b.common ->> 'path', '') AS path,
    coalesce(j.value ->> 'provider', b.common ->> 'provider', '') AS provider,
    coalesce(j.value ->> 'model', b.common ->> 'model', '') AS model,
    coalesce(j.value ->> 'status_code', b.common ->> 'status_code', 0) AS status_code,
    coalesce(j.value ->> 'upstream_status', b.common ->> 'upstream_status', 0) AS upstream_status,
    coalesce(j.value ->> 'latency_ms', b.common ->> 'latency_ms', 0) AS latency_ms,
    coalesce(j.value ->> 'upstream_latency_ms', b.common ->> 'upstream_latency_ms') AS upstream_latency_ms,
    coalesce(j.value ->> 'ttfb_ms', b.common ->> 'ttfb_ms') AS ttfb_ms,
    coalesce(j.value ->> 'request_bytes', b.common ->> 'request_bytes', 0) AS request_bytes,
    coalesce(j.value ->> 'response_bytes', b.common ->> 'response_bytes', 0) AS response_bytes,
    coalesce(j.value ->> 'cache', b.common ->> 'cache', 0) AS cache,
    coalesce(j.value ->> 'failure_type', b.common ->> 'failure_type', '') AS failure_type,
    coalesce(j.value ->> 'response_delay_ms', b.common ->> 'response_delay_ms', 0) AS response_delay_ms,
    coalesce(j.value ->> 'stream', b.common ->> 'stream', 0) AS stream,
    coalesce(j.value ->> 'input_tokens', b.common ->> 'input_tokens') AS input_tokens,
    coalesce(j.value ->> 'output_tokens', b.common ->> 'output_tokens') AS output_tokens,
    coalesce(j.value ->> 'cached_tokens', b.common ->> 'cached_tokens') AS cached_tokens,
    coalesce(j.value ->> 'reasoning_tokens', b.common ->> 'reasoning_tokens') AS reasoning_tokens,
    coalesce(j.value ->> 'cost_usd', b.common ->> 'cost_usd') AS cost_usd,
    coalesce(j.value ->> 'prompt_hash', b.common ->> 'prompt_hash', '') AS prompt_hash,
    coalesce(j.value ->> 'upstream_request_id', b.common ->> 'upstream_request_id', '') AS upstream_request_id,
    coalesce(j.value ->> 'trace_id', b.common ->> 'trace_id', '') AS trace_id
FROM request_log_blocks AS b, json_each(b.records) AS j;

-- An insert into the view: a block of one record, with the next seq.
CREATE TRIGGER request_logs_insert INSTEAD OF INSERT ON request_logs
BEGIN
    INSERT INTO request_log_blocks (id, seq_last, ts_min, ts_max, n, records)
    VALUES ((SELECT coalesce((SELECT seq_last FROM request_log_blocks ORDER BY id DESC LIMIT 1), 0) + 1),
            (SELECT coalesce((SELECT seq_last FROM request_log_blocks ORDER BY id DESC LIMIT 1), 0) + 1),
            coalesce(NEW.timestamp, 0), coalesce(NEW.timestamp, 0), 1,
            json_array(json_object('seq', (SELECT coalesce((SELECT seq_last FROM request_log_blocks ORDER BY id DESC LIMIT 1), 0) + 1), 'request_id', NEW.request_id, 'timestamp', NEW.timestamp, 'proxy_id', NEW.proxy_id, 'node_id', NEW.node_id, 'client_ip', NEW.client_ip, 'method', NEW.method, 'path', NEW.path, 'provider', NEW.provider, 'model', NEW.model, 'status_code', NEW.status_code, 'upstream_status', NEW.upstream_status, 'latency_ms', NEW.latency_ms, 'upstream_latency_ms', NEW.upstream_latency_ms, 'ttfb_ms', NEW.ttfb_ms, 'request_bytes', NEW.request_bytes, 'response_bytes', NEW.response_bytes, 'cache', NEW.cache, 'failure_type', NEW.failure_type, 'response_delay_ms', NEW.response_delay_ms, 'stream', NEW.stream, 'input_tokens', NEW.input_tokens, 'output_tokens', NEW.output_tokens, 'cached_tokens', NEW.cached_tokens, 'reasoning_tokens', NEW.reasoning_tokens, 'cost_usd', NEW.cost_usd, 'prompt_hash', NEW.prompt_hash, 'upstream_request_id', NEW.upstream_request_id, 'trace_id', NEW.trace_id)));
    INSERT INTO request_log_keys (block, proxy_id, status_code, n)
    VALUES (last_insert_rowid(), coalesce(NEW.proxy_id, 0), coalesce(NEW.status_code, 0), 1);
END;
