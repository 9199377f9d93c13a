-- 008_request_log_deltas: two fields every record spelled out are mostly
-- implied by their block (obs/record.h rd_log_block_ctx): a record's
-- timestamp is "dt", its distance from the block's ts_min, left out at 0;
-- when every request id of a block is one worker's ("req_" + 8 hex of
-- prefix + 8 hex of count), common holds the prefix ("idp"), record 0's
-- count ("id0") and the counts' range ("idmin", "idmax"), and record k
-- says "idl" only when its count is not id0 + k. Blocks written before
-- keep "ts" and "id", which still come first. The view is re-created with
-- both forms (and with it its insert trigger, as 007 left it).
DROP VIEW request_logs;

CREATE VIEW request_logs AS
SELECT
    coalesce(j.value ->> 'seq', b.id + j.key) AS seq,
    coalesce(j.value ->> 'id', b.common ->> 'id',
             (b.common ->> 'idp') || printf('%08x', coalesce(j.value ->> 'idl', ((b.common ->> 'id0') + j.key) % 4294967296)),
             '') AS request_id,
    coalesce(j.value ->> 'ts', b.common ->> 'ts', b.ts_min + coalesce(j.value ->> 'dt', 0)) AS timestamp,
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

CREATE TRIGGER request_logs_insert INSTEAD OF INSERT ON request_logs
BEGIN
    INSERT INTO request_log_blocks (id, seq_last, ts_min, ts_max, n, records)
    VALUES ((SELECT max(coalesce((SELECT seq_last FROM request_log_blocks ORDER BY id DESC LIMIT 1), 0), coalesce((SELECT seq_hw FROM request_log_seq WHERE id = 1), 0)) + 1),
            (SELECT max(coalesce((SELECT seq_last FROM request_log_blocks ORDER BY id DESC LIMIT 1), 0), coalesce((SELECT seq_hw FROM request_log_seq WHERE id = 1), 0)) + 1),
            coalesce(NEW.timestamp, 0), coalesce(NEW.timestamp, 0), 1,
            json_array(json_object('seq', (SELECT max(coalesce((SELECT seq_last FROM request_log_blocks ORDER BY id DESC LIMIT 1), 0), coalesce((SELECT seq_hw FROM request_log_seq WHERE id = 1), 0)) + 1), 'id', NEW.request_id, 'ts', NEW.timestamp, 'proxy', NEW.proxy_id, 'node', NEW.node_id, 'ip', NEW.client_ip, 'method', NEW.method, 'path', NEW.path, 'provider', NEW.provider, 'model', NEW.model, 'status', NEW.status_code, 'ustatus', NEW.upstream_status, 'ms', NEW.latency_ms, 'ums', NEW.upstream_latency_ms, 'fb', NEW.ttfb_ms, 'in', NEW.request_bytes, 'out', NEW.response_bytes, 'cache', NEW.cache, 'fail', NEW.failure_type, 'delay', NEW.response_delay_ms, 'stream', NEW.stream, 'ti', NEW.input_tokens, 'to', NEW.output_tokens, 'tc', NEW.cached_tokens, 'tr', NEW.reasoning_tokens, 'usd', NEW.cost_usd, 'ph', NEW.prompt_hash, 'urid', NEW.upstream_request_id, 'tid', NEW.trace_id)));
    INSERT INTO request_log_keys (block, proxy_id, status_code, n)
    VALUES (last_insert_rowid(), coalesce(NEW.proxy_id, 0), coalesce(NEW.status_code, 0), 1);
END;
