/* One request-log record: what the request log keeps of one request that
 * reached a proxy (docs/observability.md, "Request log"). Flat and fixed-size
 * (no pointers), so a worker fills it in place in the log's queue, the log
 * writer thread writes it from there, the live stream's history points to
 * it, and the store reads it back alike. Never holds a body, an API key or an Authorization
 * value: the fields below are all there is.
 *
 * Strings are NUL-terminated and truncated to their array (the bytes after
 * the NUL are unspecified: compare and copy up to it); "" means unknown
 * (shown as null in JSON, except where noted). Integers are -1 when unknown
 * unless noted. */
#ifndef RD_OBS_RECORD_H
#define RD_OBS_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

struct rd_req;

enum rd_log_cache { RD_LOG_CACHE_NONE, RD_LOG_CACHE_BYPASS, RD_LOG_CACHE_MISS, RD_LOG_CACHE_HIT };

struct rd_log_rec {
    uint64_t seq;     /* the row's number, given by the writer as it is written (0 before):
                       * increasing in writing order; the live stream's event id */
    char id[24];      /* the request id, "req_<16 hex>" (as in error bodies and process logs) */
    int64_t ts_ms;    /* wall clock at receipt, epoch ms (JSON: ISO 8601 UTC with ms and Z) */
    int64_t proxy_id;
    char node_id[64]; /* the node that served it (RUBBERDUCK_NODE_ID or the host name); set by the writer */
    char client_ip[64];
    char method[16];
    char path[256];     /* the request path without its query string (a query can carry a key) */
    char provider[24];  /* registry name: "openai", "bedrock", ... */
    char model[128];
    int status;          /* sent to the client (0: none, e.g. the client left first) */
    int upstream_status; /* the source's (0: none: simulated, cached, or no answer) */
    double latency_ms;          /* receipt to done */
    double upstream_latency_ms; /* upstream start to done; -1: no upstream call */
    double ttfb_ms;             /* receipt to the first response byte; -1: none */
    int64_t request_bytes, response_bytes;
    enum rd_log_cache cache;
    char failure_type[24];      /* rd_failure_name(); "" for none */
    int64_t response_delay_ms;  /* delay a stage applied before answering; 0 for none */
    bool stream;
    int64_t input_tokens, output_tokens, cached_tokens, reasoning_tokens;
    double cost_usd;        /* valid when has_cost */
    bool has_cost;
    char prompt_hash[65];   /* SHA-256 of the canonical request, lower-case hex; "" when not computed */
    char upstream_request_id[96];
    char trace_id[33];      /* W3C trace id, 32 lower-case hex */
};

/* Fills *r from req (state DONE, everything final); seq and node_id are
 * left 0 / "". The worker's thread. */
void rd_log_rec_from_req(struct rd_log_rec *r, struct rd_req *req);

/* Appends r as the JSON object of docs/observability.md (one line, no
 * newline). Returns 0 or -1 (out of memory). Any thread. */
int rd_log_rec_json(struct rd_buf *out, const struct rd_log_rec *r);
/* The CSV header line and one record as a CSV line (RFC 4180: fields with
 * a comma, quote, CR or LF are quoted, quotes doubled; CRLF line ends).
 * Return 0 or -1. */
int rd_log_csv_header(struct rd_buf *out);
int rd_log_rec_csv(struct rd_buf *out, const struct rd_log_rec *r);

/* The record as the store keeps it (record_pack.c): one flat JSON object
 * with a short key for each column of the request_logs view (rd_log_rec_key
 * gives it), a key at its default left out. rd_log_rec_pack writes the
 * fields whose bit is set in `which` (bit i: the i-th column of the view,
 * RD_LOG_PACK_SEQ the first);
 * rd_log_rec_shared gives the bits of the fields every one of *recs[0..n)
 * has alike (never seq or the id; 0 for fewer than two records), which a
 * block keeps once. rd_log_rec_apply sets the fields an object names on
 * *r (keys in any order, unknown keys skipped), rd_log_rec_unpack the same
 * from rd_log_rec_reset, the record with every field at its default
 * (strings "", measures and token counts unknown). Anything malformed is
 * RD_EPROTO, *r then partly set. Pure. */
#define RD_LOG_PACK_SEQ (UINT64_C(1) << 0)
#define RD_LOG_PACK_ALL (~UINT64_C(0))
int rd_log_rec_pack(struct rd_buf *out, const struct rd_log_rec *r, uint64_t which);
uint64_t rd_log_rec_shared(struct rd_log_rec *const *recs, size_t n);
int rd_log_rec_apply(const char *p, size_t n, struct rd_log_rec *r);
int rd_log_rec_unpack(const char *p, size_t n, struct rd_log_rec *r);
void rd_log_rec_reset(struct rd_log_rec *r);
/* A block's short forms (008_request_log_deltas.sql): a record's
 * timestamp is stored as "dt", its distance from the block's ts_min (left
 * out at 0); when every request id of the block is one worker's
 * ("req_" + 8 hex of prefix + 8 hex of its count), common holds the prefix
 * ("idp"), record 0's count ("id0") and the counts' range ("idmin",
 * "idmax"), and record k says "idl" only when its count is not id0 + k
 * (mod 2^32). rd_log_block_ctx_of computes this for recs[0..n) (the
 * writer); rd_log_block_pack writes common (the fields in `which`, from
 * recs[0], and the context); rd_log_rec_pack_in writes record `index`
 * without what the context implies; rd_log_block_ctx_read reads the context
 * back from common (ts_min from the block's column), rd_log_rec_apply_in
 * applies a record with it (a block written before 008 has neither form:
 * both read the same). rd_log_block_may_hold reports whether a block of
 * that context can hold request id `id` (a full canonical id; false only
 * when it surely does not). Malformed input is RD_EPROTO. Pure. */
struct rd_log_block_ctx {
    int64_t ts_min, ts_max;
    bool common_ts; /* common holds the timestamp (every record alike) */
    bool has_prefix;
    char prefix[13]; /* "req_" + 8 lower-case hex */
    uint32_t id0, idmin, idmax;
};
void rd_log_block_ctx_of(struct rd_log_block_ctx *c, struct rd_log_rec *const *recs, size_t n, uint64_t shared);
int rd_log_block_pack(struct rd_buf *out, const struct rd_log_rec *r0, uint64_t which,
                      const struct rd_log_block_ctx *c);
int rd_log_rec_pack_in(struct rd_buf *out, const struct rd_log_rec *r, uint64_t which, const struct rd_log_block_ctx *c,
                       size_t index);
int rd_log_block_ctx_read(const char *common, size_t n, int64_t ts_min, struct rd_log_block_ctx *c);
/* The same, and common's fields applied on *base in the one pass (what a
 * reader of the block's records starts each of them from). */
int rd_log_block_common_read(const char *common, size_t n, int64_t ts_min, struct rd_log_block_ctx *c,
                             struct rd_log_rec *base);
int rd_log_rec_apply_in(const char *p, size_t n, struct rd_log_rec *r, const struct rd_log_block_ctx *c, size_t index);
bool rd_log_block_may_hold(const struct rd_log_block_ctx *c, const char *id);
/* The 12-byte worker prefix of a canonical request id ("req_" + 16 lower-
 * case hex) and its count; false for any other id. */
bool rd_log_id_split(const char *id, uint32_t *count);

/* The key a column of the request_logs view ("model") is stored under;
 * NULL for no such column. */
const char *rd_log_rec_key(const char *column);

/* "hit" / "miss" / "bypass" / NULL for none. */
const char *rd_log_cache_name(enum rd_log_cache c);
/* Parses "hit|miss|bypass"; -1 for anything else. */
int rd_log_cache_parse(const char *s);
/* Epoch ms as "2026-12-03T06:41:02.123Z" into buf (at least 25 bytes). */
void rd_log_iso8601(int64_t ms, char *buf, size_t len);
/* Parses ISO 8601 ("2026-12-03", "2026-12-03T06:41:02Z", with .mmm, with
 * +hh:mm) or epoch milliseconds; returns 0 or -1. */
int rd_log_parse_time(const char *s, int64_t *ms);

#endif
