/* libFuzzer target for src/obs/record_pack.c's rd_log_rec_unpack: one
 * stored request-log record, read back from the database file, which is
 * input like any other (a copied, edited or damaged file; a row written
 * through the request_logs view's insert trigger).
 *
 * The input is the record's JSON, in an exact-size block so
 * AddressSanitizer flags a read past its end. The target traps when:
 *  - unpack returns anything but 0 or RD_EPROTO;
 *  - an unpacked record breaks its contract: every string NUL-terminated
 *    in its array, cache a known value;
 *  - the record, packed again, does not unpack, or unpacks to other
 *    integers, flags or string lengths (what is packed is read back).
 * An input with a newline is also read as a block's common fields (before
 * it) and one of its records (after it), with the block's short forms
 * (rd_log_block_ctx_read, rd_log_rec_apply_in): the same contract, and the
 * record packed again in that block (rd_log_rec_pack_in) reads back to the
 * same timestamp and, if it is a canonical one, the same id. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "obs/record.h"
#include "util/buf.h"
#include "util/err.h"

#define STR_OK(r, m) CHECK(memchr((r)->m, '\0', sizeof (r)->m) != NULL)

static void check_rec(const struct rd_log_rec *r)
{
    STR_OK(r, id);
    STR_OK(r, node_id);
    STR_OK(r, client_ip);
    STR_OK(r, method);
    STR_OK(r, path);
    STR_OK(r, provider);
    STR_OK(r, model);
    STR_OK(r, failure_type);
    STR_OK(r, prompt_hash);
    STR_OK(r, upstream_request_id);
    STR_OK(r, trace_id);
    CHECK(r->cache >= RD_LOG_CACHE_NONE && r->cache <= RD_LOG_CACHE_HIT);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *p = malloc(size ? size : 1);
    if (p == NULL)
        return 0;
    if (size)
        memcpy(p, data, size);
    struct rd_log_rec r1, r2;
    int rc = rd_log_rec_unpack(p, size, &r1);
    CHECK(rc == 0 || rc == RD_EPROTO);
    check_rec(&r1); /* also after a failure: partly set, never unterminated */
    if (rc == 0) {
        struct rd_buf b;
        rd_buf_init(&b, 0);
        CHECK(rd_log_rec_pack(&b, &r1, RD_LOG_PACK_ALL) == 0);
        CHECK(rd_log_rec_unpack((const char *)b.data, b.len, &r2) == 0);
        check_rec(&r2);
        CHECK(r2.seq == r1.seq && r2.ts_ms == r1.ts_ms && r2.proxy_id == r1.proxy_id);
        CHECK(r2.status == r1.status && r2.upstream_status == r1.upstream_status);
        CHECK(r2.request_bytes == r1.request_bytes && r2.response_bytes == r1.response_bytes);
        CHECK(r2.cache == r1.cache && r2.stream == r1.stream && r2.has_cost == r1.has_cost);
        CHECK(r2.input_tokens == r1.input_tokens && r2.output_tokens == r1.output_tokens);
        CHECK(r2.cached_tokens == r1.cached_tokens && r2.reasoning_tokens == r1.reasoning_tokens);
        CHECK(r2.response_delay_ms == r1.response_delay_ms);
        CHECK((r2.upstream_latency_ms < 0) == (r1.upstream_latency_ms < 0 || r1.upstream_latency_ms != r1.upstream_latency_ms));
        rd_buf_free(&b);
    }
    const char *nl = size ? memchr(p, '\n', size) : NULL;
    if (nl) {
        size_t cn = (size_t)(nl - p), rn = size - cn - 1;
        char *common = malloc(cn ? cn : 1), *rec = malloc(rn ? rn : 1);
        if (common && rec) {
            memcpy(common, p, cn);
            memcpy(rec, nl + 1, rn);
            struct rd_log_block_ctx c;
            size_t index = size % 7;
            rc = rd_log_block_ctx_read(common, cn, (int64_t)(size * 1000), &c);
            CHECK(rc == 0 || rc == RD_EPROTO);
            CHECK(c.prefix[12] == '\0');
            rd_log_rec_reset(&r1);
            rc = rc == 0 ? rd_log_rec_apply_in(rec, rn, &r1, &c, index) : RD_EPROTO;
            CHECK(rc == 0 || rc == RD_EPROTO);
            check_rec(&r1);
            if (rc == 0) {
                struct rd_buf b;
                rd_buf_init(&b, 0);
                CHECK(rd_log_rec_pack_in(&b, &r1, RD_LOG_PACK_ALL, &c, index) == 0);
                rd_log_rec_reset(&r2);
                CHECK(rd_log_rec_apply_in((const char *)b.data, b.len, &r2, &c, index) == 0);
                check_rec(&r2);
                uint32_t k;
                /* (another id may be re-escaped: a byte that is not UTF-8) */
                CHECK(!rd_log_id_split(r1.id, &k) || strcmp(r2.id, r1.id) == 0);
                CHECK(c.common_ts || r2.ts_ms == r1.ts_ms);
                rd_buf_free(&b);
            }
        }
        free(common);
        free(rec);
    }
    free(p);
    return 0;
}
