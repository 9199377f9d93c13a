/* The cache key of a request (key.h): the key material is built in the
 * caller's scratch buffer in the order key.h gives, then hashed once. */
#include "cache/key.h"

#include <ctype.h>
#include <string.h>

#include "cache/canon.h"
#include "util/err.h"
#include "util/hash.h"

/* Appends s[0..n) and a NUL. */
static int put0(struct rd_buf *b, const char *s, size_t n)
{
    return rd_buf_append(b, s, n) < 0 || rd_buf_append(b, "", 1) < 0 ? RD_ETOOBIG : 0;
}

/* One "name=value" parameter of a query (no '?'), as sent. */
struct param {
    const char *name, *value;
    size_t name_len, value_len;
};

/* The parameter at *q, advancing *q past it and its '&'; false at the end. */
static bool next_param(const char **q, struct param *out)
{
    if (**q == '\0')
        return false;
    const char *s = *q;
    size_t n = strcspn(s, "&");
    const char *eq = memchr(s, '=', n);
    out->name = s;
    out->name_len = eq ? (size_t)(eq - s) : n;
    out->value = eq ? eq + 1 : s + n;
    out->value_len = eq ? n - out->name_len - 1 : 0;
    *q = s[n] ? s + n + 1 : s + n;
    return true;
}

/* "name=value" NUL for each occurrence of each answer-changing parameter. */
static int put_query(const struct rd_cache_key_input *in, struct rd_buf *b)
{
    const char *const *names = in->provider->cache_query_params;
    int rc = 0;
    for (size_t i = 0; names && names[i] && rc == 0; i++) {
        const char *q = in->query ? in->query : "";
        struct param pr;
        while (rc == 0 && next_param(&q, &pr)) {
            if (!rd_provider_query_name_is(pr.name, pr.name_len, names[i]))
                continue;
            rc = rd_buf_appends(b, names[i]) | rd_buf_append(b, "=", 1);
            rc = rc < 0 ? RD_ETOOBIG : put0(b, pr.value, pr.value_len);
        }
    }
    return rc;
}

/* "lower-cased-name: value" NUL for each field named in key_headers. */
static int put_key_headers(const struct rd_cache_key_input *in, struct rd_buf *b)
{
    for (size_t k = 0; k < in->nkey_headers; k++) {
        const char *want = in->key_headers[k];
        for (size_t i = 0; in->headers && i < in->headers->n; i++) {
            const struct rd_hdr *h = &in->headers->v[i];
            if (!rd_hdr_name_eq(h->name, h->name_len, want))
                continue;
            for (size_t j = 0; j < h->name_len; j++) {
                char lc = (char)tolower((unsigned char)h->name[j]);
                if (rd_buf_append(b, &lc, 1) < 0)
                    return RD_ETOOBIG;
            }
            if (rd_buf_append(b, ": ", 2) < 0 || put0(b, h->value, h->value_len) < 0)
                return RD_ETOOBIG;
        }
    }
    return 0;
}

/* The part of a credential that names who sends it: for a SigV4
 * Authorization, the access key id of Credential=AKID/date/region/...
 * (the signature changes with every request); else the whole value. */
static void credential_id(const char *v, size_t n, const char **id, size_t *id_len)
{
    static const char scheme[] = "AWS4-HMAC-SHA256 ", cred[] = "Credential=";
    *id = v;
    *id_len = n;
    if (n < sizeof scheme - 1 || memcmp(v, scheme, sizeof scheme - 1) != 0)
        return;
    const char *c = memmem(v, n, cred, sizeof cred - 1);
    if (c == NULL)
        return;
    c += sizeof cred - 1;
    size_t rest = n - (size_t)(c - v), akid = 0;
    while (akid < rest && c[akid] != '/' && c[akid] != ',' && c[akid] != ' ')
        akid++;
    if (akid > 0 && akid < rest && c[akid] == '/') {
        *id = c;
        *id_len = akid;
    } /* else malformed: the whole value, which at worst never hits */
}

/* The request's credential (key.h), or false when it has none. */
static bool find_credential(const struct rd_cache_key_input *in, const char **v, size_t *n)
{
    const struct rd_provider *p = in->cred_provider ? in->cred_provider : in->provider;
    for (size_t i = 0; p->auth_headers && p->auth_headers[i]; i++) {
        const struct rd_hdr *h = in->headers ? rd_hdrs_find(in->headers, p->auth_headers[i]) : NULL;
        if (h) {
            credential_id(h->value, h->value_len, v, n);
            return true;
        }
    }
    for (size_t i = 0; p->secret_query_params && p->secret_query_params[i]; i++) {
        const char *q = in->query ? in->query : "";
        struct param pr;
        while (next_param(&q, &pr))
            if (rd_provider_query_name_is(pr.name, pr.name_len, p->secret_query_params[i])) {
                *v = pr.value;
                *n = pr.value_len;
                return true;
            }
    }
    return false;
}

static int put_scope(const struct rd_cache_key_input *in, struct rd_buf *b)
{
    if (in->scope_proxy)
        return put0(b, "proxy", 5);
    const char *v;
    size_t n;
    if (!find_credential(in, &v, &n))
        return put0(b, "cred:none", 9);
    uint8_t h[RD_SHA256_LEN];
    char hex[2 * RD_SHA256_LEN + 1];
    rd_sha256(v, n, h);
    rd_hex(h, sizeof h, hex);
    return rd_buf_append(b, "cred:", 5) < 0 ? RD_ETOOBIG : put0(b, hex, 2 * RD_SHA256_LEN);
}

static int put_body(const struct rd_cache_key_input *in, struct rd_buf *b)
{
    if (in->body_len == 0)
        return 0;
    if (in->canon_body)
        return rd_buf_append(b, in->canon_body, in->canon_body_len) < 0 ? RD_ETOOBIG : 0;
    const struct rd_canon_rules rules = {
        .drop = in->provider->cache_ignore_fields,
        .round2 = in->provider->cache_round_fields,
    };
    return rd_canon_json(in->body, in->body_len, &rules, b);
}

int rd_cache_key(const struct rd_cache_key_input *in, struct rd_buf *scratch, uint8_t key[32])
{
    size_t off;
    return rd_cache_key_canon(in, scratch, key, &off);
}

int rd_cache_key_canon(const struct rd_cache_key_input *in, struct rd_buf *scratch, uint8_t key[32], size_t *body_off)
{
    rd_buf_reset(scratch);
    int rc = put0(scratch, "rdk1", 4);
    if (rc == 0)
        rc = put0(scratch, in->provider->name, strlen(in->provider->name));
    if (rc == 0)
        rc = put0(scratch, in->method, strlen(in->method));
    if (rc == 0)
        rc = put0(scratch, in->path, strlen(in->path));
    if (rc == 0)
        rc = put_query(in, scratch);
    if (rc == 0)
        rc = put_key_headers(in, scratch);
    if (rc == 0)
        rc = put_scope(in, scratch);
    if (rc == 0)
        rc = put0(scratch, in->stream ? "stream:1" : "stream:0", 8);
    *body_off = scratch->len;
    if (rc == 0)
        rc = put_body(in, scratch);
    if (rc < 0)
        return rc;
    rd_sha256(scratch->data, scratch->len, key);
    return 0;
}
