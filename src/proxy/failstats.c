/* See failstats.h. */
#include "proxy/failstats.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/req.h"
#include "util/hash.h"
#include "util/mem.h"
#include "util/time.h"

/* Aligned so two workers' slots never share a cache line. */
struct slot {
    _Alignas(64) atomic_uint_fast64_t n[RD_FAILSTATS_TYPES];
};

struct rd_failstats {
    atomic_int refs;
    int64_t since_ms;
    unsigned nslots;
    struct slot *slots;           /* owned array of nslots */
    struct rd_retry_audit *audit; /* owned */
};

struct rd_failstats *rd_failstats_new(unsigned nslots, int64_t since_ms)
{
    struct rd_failstats *f = rd_calloc(1, sizeof *f);
    atomic_init(&f->refs, 1);
    f->since_ms = since_ms;
    f->nslots = nslots ? nslots : 1;
    size_t bytes = f->nslots * sizeof *f->slots; /* a multiple of 64 */
    f->slots = aligned_alloc(_Alignof(struct slot), bytes);
    if (f->slots == NULL)
        abort();
    memset(f->slots, 0, bytes);
    f->audit = rd_retry_audit_new();
    return f;
}

struct rd_failstats *rd_failstats_ref(struct rd_failstats *f)
{
    atomic_fetch_add_explicit(&f->refs, 1, memory_order_relaxed);
    return f;
}

void rd_failstats_unref(struct rd_failstats *f)
{
    if (f == NULL || atomic_fetch_sub_explicit(&f->refs, 1, memory_order_acq_rel) != 1)
        return;
    rd_retry_audit_free(f->audit);
    free(f->slots);
    free(f);
}

void rd_failstats_count(struct rd_failstats *f, unsigned slot, int type)
{
    if (type <= 0 || type >= RD_FAILSTATS_TYPES)
        return;
    atomic_fetch_add_explicit(&f->slots[slot % f->nslots].n[type], 1, memory_order_relaxed);
}

struct rd_retry_audit *rd_failstats_audit(struct rd_failstats *f)
{
    return f->audit;
}

static const char *const credential_headers[] = {"authorization", "x-api-key", "api-key", "x-goog-api-key"};

uint64_t rd_failstats_client_key(const char *client_ip, const struct rd_hdrs *req_hdrs)
{
    const struct rd_hdr *cred = NULL;
    for (size_t i = 0; i < req_hdrs->n && cred == NULL; i++)
        for (size_t k = 0; k < sizeof credential_headers / sizeof credential_headers[0]; k++)
            if (rd_hdr_name_eq(req_hdrs->v[i].name, req_hdrs->v[i].name_len, credential_headers[k])) {
                cred = &req_hdrs->v[i];
                break;
            }
    /* SHA-256 over "ip NUL credential": a digest, so the credential is
     * never kept, and no client can aim for another's key. */
    size_t ip_len = strlen(client_ip), cred_len = cred ? cred->value_len : 0;
    char stack[512];
    size_t len = ip_len + 1 + cred_len;
    char *buf = len <= sizeof stack ? stack : rd_malloc(len);
    memcpy(buf, client_ip, ip_len);
    buf[ip_len] = '\0';
    if (cred)
        memcpy(buf + ip_len + 1, cred->value, cred_len);
    uint8_t d[RD_SHA256_LEN];
    rd_sha256(buf, len, d);
    if (buf != stack)
        free(buf);
    uint64_t key = 0;
    for (int i = 0; i < 8; i++)
        key = key << 8 | d[i];
    return key;
}

struct json_object *rd_failstats_json(struct rd_failstats *f, int64_t proxy_id)
{
    static const uint64_t none[RD_FAILSTATS_TYPES];
    return rd_failstats_json_with(f, proxy_id, none, f->since_ms);
}

struct json_object *rd_failstats_json_with(struct rd_failstats *f, int64_t proxy_id,
                                           const uint64_t extra[RD_FAILSTATS_TYPES], int64_t since_ms)
{
    struct json_object *types = json_object_new_object();
    for (int t = 1; t < RD_FAILSTATS_TYPES; t++) {
        const char *name = rd_failure_name((enum rd_failure)t);
        if (name[0] == '\0')
            break;
        uint64_t n = extra[t];
        for (unsigned i = 0; i < f->nslots; i++)
            n += atomic_load_explicit(&f->slots[i].n[t], memory_order_relaxed);
        json_object_object_add(types, name, json_object_new_int64((int64_t)n));
    }
    struct rd_retry_audit_counts c;
    rd_retry_audit_counts(f->audit, &c);
    struct json_object *audit = json_object_new_object();
    json_object_object_add(audit, "advertised", json_object_new_int64((int64_t)c.advertised));
    json_object_object_add(audit, "retries_total", json_object_new_int64((int64_t)c.retries));
    json_object_object_add(audit, "early_retries", json_object_new_int64((int64_t)c.early));
    json_object_object_add(audit, "honoured", json_object_new_int64((int64_t)c.honoured));
    json_object_object_add(audit, "expired", json_object_new_int64((int64_t)c.expired));
    json_object_object_add(audit, "earliest_retry_ms_before", json_object_new_int64((int64_t)c.early_ms_max));
    char ts[32];
    struct json_object *root = json_object_new_object();
    json_object_object_add(root, "proxy_id", json_object_new_int64(proxy_id));
    int64_t since = since_ms < f->since_ms ? since_ms : f->since_ms;
    json_object_object_add(root, "since", json_object_new_string(rd_time_format(since, ts, sizeof ts)));
    json_object_object_add(root, "failures", types);
    json_object_object_add(root, "retry_audit", audit);
    return root;
}
