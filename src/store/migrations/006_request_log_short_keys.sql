-- 006_request_log_short_keys: the request log's stored records keep their
-- fields under short keys ("id", "ts", "ms", ... docs/observability.md
-- "Storage"): a record's own fields (those its block does not share) are
-- mostly keys, and every byte of a block is written twice (the WAL, then
-- the database). About a third fewer bytes per record. The request_logs
-- view keeps its columns and names; its insert trigger writes the short keys.
--
-- The rewrite of existing blocks: a key pattern "name": cannot occur inside
-- a JSON string value (its quotes would be escaped there).
UPDATE request_log_blocks SET
    records = replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(records, '"request_id":', '"id":'), '"timestamp":', '"ts":'), '"proxy_id":', '"proxy":'), '"node_id":', '"node":'), '"client_ip":', '"ip":'), '"status_code":', '"status":'), '"upstream_status":', '"ustatus":'), '"latency_ms":', '"ms":'), '"upstream_latency_ms":', '"ums":'), '"ttfb_ms":', '"fb":'), '"request_bytes":', '"in":'), '"response_bytes":', '"out":'), '"failure_type":', '"fail":'), '"response_delay_ms":', '"delay":'), '"input_tokens":', '"ti":'), '"output_tokens":', '"to":'), '"cached_tokens":', '"tc":'), '"reasoning_tokens":', '"tr":'), '"cost_usd":', '"usd":'), '"prompt_hash":', '"ph":'), '"upstream_request_id":', '"urid":'), '"trace_id":', '"tid":'),
    common = replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(common, '"request_id":', '"id":'), '"timestamp":', '"ts":'), '"proxy_id":', '"proxy":'), '"node_id":', '"node":'), '"client_ip":', '"ip":'), '"status_code":', '"status":'), '"upstream_status":', '"ustatus":'), '"latency_ms":', '"ms":'), '"upstream_latency_ms":', '"ums":'), '"ttfb_ms":', '"fb":'), '"request_bytes":', '"in":'), '"response_bytes":', '"out":'), '"failure_type":', '"fail":'), '"response_delay_ms":', '"delay":'), '"input_tokens":', '"ti":'), '"output_tokens":', '"to":'), '"cached_tokens":', '"tc":'), '"reasoning_tokens":', '"tr":'), '"cost_usd":', '"usd":'), '"prompt_hash":', '"ph":'), '"upstream_request_id":', '"urid":'), '"trace_id":', '"tid":');

DROP VIEW request_logs;

CREATE VIEW request_logs AS
SELECT
    coalesce(j.value ->> 'seq', b.id + j.key) AS seq,
    coalesce(j.value ->> 'id', b.common ->> 'id', '') AS request_id,
    coalesce(j.value ->> 'ts', b.common ->> 'ts') AS timestamp,
    coalesce(j.value ->> 'proxy', b.common ->> 'proxy') AS proxy_id,
    coalesce(j.value ->> 'node', b.common ->> 'node', '') AS node_id,
    coalesce(j.value ->> 'ip', b.common ->> 'ip', '') AS client_ip,
    coalesce(j.value ->> 'method', b.common ->> 'method', '') AS method,
    coalesce(j.value ->> 'path', b.common ->> 'path', '') AS path,
    coalesce(j.value ->> 'provider', b.common ->> 'provider', '') AS provider,
    coalesce(j.value ->> 'model', b.common ->> 'model', '') AS model,
    coalesce(j.value ->> 'status', b.common ->> 'status', 0) AS status_code,
    coalesce(j.value ->> 'ustatus', b.common ->> 'ustatus', 0) AS upstream_status,
    coalesce(j.value ->> 'ms', b.common ->> 'ms', 0) AS latency_ms,
    coalesce(j.value ->> 'ums', b.common ->> 'ums') AS upstream_latency_ms,
    coalesce(j.value ->> 'fb', b.common ->> 'fb') AS ttfb_ms,
    coalesce(j.value ->> 'in', b.common ->> 'in', 0) AS request_bytes,
    coalesce(j.value ->> 'out', b.common ->> 'out', 0) AS response_bytes,
    coalesce(j.value ->> 'cache', b.common ->> 'cache', 0) AS cache,
    coalesce(j.value ->> 'fail', b.common ->> 'fail', '') AS failure_type,
    coalesce(j.value ->> 'delay', b.common ->> 'delay', 0) AS response_delay_ms,
    coalesce(j.value ->> 'stream', b.common ->> 'stream', 0) AS stream,
    coalesce(j.value ->> 'ti', b.common ->> 'ti') AS input_tokens,
    coalesce(j.value ->> 'to', b.common ->> 'to') AS output_tokens,
    coalesce(j.value ->> 'tc', b.common ->> 'tc') AS cached_tokens,
    coalesce(j.value ->> 'tr', b.common ->> 'tr') AS reasoning_tokens,
    coalesce(j.value ->> 'usd', b.common ->> 'usd') AS cost_usd,
    coalesce(j.value ->> 'ph', b.common ->> 'ph', '') AS prompt_hash,
    coalesce(j.value ->> 'urid', b.common ->> 'urid', '') AS upstream_request_id,
    coalesce(j.value ->> 'tid', b.common ->> 'tid', '') AS trace_id
FROM request_log_blocks AS b, json_each(b.records) AS j;

-- An insert into the view: a block of one record, with the next seq.
CREATE TRIGGER request_logs_insert INSTEAD OF INSERT ON request_logs
BEGIN
    INSERT INTO request_log_blocks (id, seq_last, ts_min, ts_max, n, records)
    VALUES ((SELECT coalesce((SELECT seq_last FROM request_log_blocks ORDER BY id DESC LIMIT 1), 0) + 1),
            (SELECT coalesce((SELECT seq_last FROM request_log_blocks ORDER BY id DESC LIMIT 1), 0) + 1),
            coalesce(NEW.timestamp, 0), coalesce(NEW.timestamp, 0), 1,
            json_array(json_object('seq', (SELECT coalesce((SELECT seq_last FROM request_log_blocks ORDER BY id DESC LIMIT 1), 0) + 1), 'id', NEW.request_id, 'ts', NEW.timestamp, 'proxy', NEW.proxy_id, 'node', NEW.node_id, 'ip', NEW.client_ip, 'method', NEW.method, 'path', NEW.path, 'provider', NEW.provider, 'model', NEW.model, 'status', NEW.status_code, 'ustatus', NEW.upstream_status, 'ms', NEW.latency_ms, 'ums', NEW.upstream_latency_ms, 'fb', NEW.ttfb_ms, 'in', NEW.request_bytes, 'out', NEW.response_bytes, 'cache', NEW.cache, 'fail', NEW.failure_type, 'delay', NEW.response_delay_ms, 'stream', NEW.stream, 'ti', NEW.input_tokens, 'to', NEW.output_tokens, 'tc', NEW.cached_tokens, 'tr', NEW.reasoning_tokens, 'usd', NEW.cost_usd, 'ph', NEW.prompt_hash, 'urid', NEW.upstream_request_id, 'tid', NEW.trace_id)));
    INSERT INTO request_log_keys (block, proxy_id, status_code, n)
    VALUES (last_insert_rowid(), coalesce(NEW.proxy_id, 0), coalesce(NEW.status_code, 0), 1);
END;
