-- 007_request_log_seq_hw: a request log seq is never given twice. The next
-- seq was the newest block's last one + 1, so purging the newest rows made
-- the next rows reuse their numbers, which are also the live stream's event
-- ids (a client resuming with Last-Event-ID would skip or repeat rows).
-- request_log_seq keeps the highest seq a deleted or shortened block held;
-- the writer (sqlite_logs.c last_seq) and the view's insert trigger count
-- from the larger of the two.
CREATE TABLE request_log_seq (
    id     INTEGER PRIMARY KEY CHECK (id = 1),
    seq_hw INTEGER NOT NULL
);
INSERT INTO request_log_seq (id, seq_hw)
SELECT 1, coalesce(max(seq_last), 0) FROM request_log_blocks;

CREATE TRIGGER request_log_blocks_deleted AFTER DELETE ON request_log_blocks
BEGIN
    UPDATE request_log_seq SET seq_hw = max(seq_hw, OLD.seq_last) WHERE id = 1;
END;

CREATE TRIGGER request_log_blocks_shortened AFTER UPDATE OF seq_last ON request_log_blocks
WHEN NEW.seq_last < OLD.seq_last
BEGIN
    UPDATE request_log_seq SET seq_hw = max(seq_hw, OLD.seq_last) WHERE id = 1;
END;

DROP TRIGGER request_logs_insert;

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
