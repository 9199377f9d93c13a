#include "util/sigv4.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/err.h"
#include "util/hash.h"
#include "util/mem.h"

static bool is_unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
           c == '.' || c == '~';
}

/* Percent-encodes p[0..n) with upper-case hex, keeping the unreserved set
 * (and '/' when keep_slash). */
static int encode(struct rd_buf *out, const char *p, size_t n, bool keep_slash)
{
    static const char hex[] = "0123456789ABCDEF";
    int rc = 0;
    size_t run = 0; /* bytes kept as they are, appended in one go */
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (is_unreserved(c) || (keep_slash && c == '/')) {
            run++;
            continue;
        }
        rc |= rd_buf_append(out, p + i - run, run);
        run = 0;
        char e[3] = {'%', hex[c >> 4], hex[c & 15]};
        rc |= rd_buf_append(out, e, 3);
    }
    rc |= rd_buf_append(out, p + n - run, run);
    return rc < 0 ? RD_ETOOBIG : 0;
}


/* Decodes %XX in p[0..n) into out (a '%' not followed by two hex digits
 * stays as it is). */
static int decode_into(struct rd_buf *out, const char *p, size_t n)
{
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (c == '%' && i + 2 < n) {
            int hi = rd_hex_value(p[i + 1]), lo = rd_hex_value(p[i + 2]);
            if (hi >= 0 && lo >= 0) {
                char v = (char)(hi << 4 | lo);
                rc |= rd_buf_append(out, &v, 1);
                i += 2;
                continue;
            }
        }
        rc |= rd_buf_append(out, &c, 1);
    }
    return rc < 0 ? RD_ETOOBIG : 0;
}

int rd_sigv4_canonical_uri(const char *path, bool s3, struct rd_buf *out)
{
    size_t n = strlen(path);
    if (n == 0)
        return rd_buf_append(out, "/", 1) < 0 ? RD_ETOOBIG : 0;
    if (s3)
        return rd_buf_append(out, path, n) < 0 ? RD_ETOOBIG : 0;
    /* Segments kept after normalisation: at most one per '/' plus one. */
    size_t cap = 1;
    for (size_t i = 0; i < n; i++)
        cap += path[i] == '/';
    struct seg {
        const char *p;
        size_t n;
    } *segs = rd_malloc(cap * sizeof *segs);
    size_t nseg = 0;
    for (const char *s = path, *end = path + n; s <= end;) {
        const char *slash = memchr(s, '/', (size_t)(end - s));
        const char *e = slash ? slash : end;
        size_t len = (size_t)(e - s);
        if (len == 0 || (len == 1 && s[0] == '.')) {
            /* empty or "." segment: dropped */
        } else if (len == 2 && s[0] == '.' && s[1] == '.') {
            if (nseg)
                nseg--;
        } else {
            segs[nseg++] = (struct seg){s, len};
        }
        if (!slash)
            break;
        s = slash + 1;
    }
    int rc = 0;
    if (path[0] == '/')
        rc |= rd_buf_append(out, "/", 1);
    for (size_t i = 0; i < nseg; i++) {
        if (i)
            rc |= rd_buf_append(out, "/", 1);
        rc |= encode(out, segs[i].p, segs[i].n, false);
    }
    if (nseg > 0 && path[n - 1] == '/')
        rc |= rd_buf_append(out, "/", 1);
    free(segs);
    return rc < 0 ? RD_ETOOBIG : 0;
}

/* ---- query ---- */

struct pair {
    size_t key, key_len, val, val_len; /* offsets into the scratch buffer */
};

static int cmp_pair(const void *a, const void *b, void *ud)
{
    const char *s = ud;
    const struct pair *x = a, *y = b;
    size_t n = x->key_len < y->key_len ? x->key_len : y->key_len;
    int c = memcmp(s + x->key, s + y->key, n);
    if (c || x->key_len != y->key_len)
        return c ? c : x->key_len < y->key_len ? -1 : 1;
    n = x->val_len < y->val_len ? x->val_len : y->val_len;
    c = memcmp(s + x->val, s + y->val, n);
    if (c || x->val_len != y->val_len)
        return c ? c : x->val_len < y->val_len ? -1 : 1;
    return 0;
}

/* Appends the canonical encoding of the encoded text p[0..n). */
static int recode(struct rd_buf *scratch, struct rd_buf *tmp, const char *p, size_t n)
{
    rd_buf_reset(tmp);
    int rc = decode_into(tmp, p, n);
    return rc ? rc : encode(scratch, tmp->data ? tmp->data : "", tmp->len, false);
}

int rd_sigv4_canonical_query(const char *query, struct rd_buf *out)
{
    size_t n = strlen(query);
    if (n == 0)
        return 0;
    size_t cap = 1;
    for (size_t i = 0; i < n; i++)
        cap += query[i] == '&';
    struct pair *pairs = rd_malloc(cap * sizeof *pairs);
    size_t np = 0;
    struct rd_buf scratch, tmp;
    rd_buf_init(&scratch, 0);
    rd_buf_init(&tmp, 0);
    int rc = 0;
    for (const char *s = query, *end = query + n; s < end && rc == 0;) {
        const char *amp = memchr(s, '&', (size_t)(end - s));
        const char *e = amp ? amp : end;
        if (e > s) {
            const char *eq = memchr(s, '=', (size_t)(e - s));
            const char *kend = eq ? eq : e;
            struct pair *pr = &pairs[np++];
            pr->key = scratch.len;
            rc |= recode(&scratch, &tmp, s, (size_t)(kend - s));
            pr->key_len = scratch.len - pr->key;
            pr->val = scratch.len;
            if (eq)
                rc |= recode(&scratch, &tmp, eq + 1, (size_t)(e - eq - 1));
            pr->val_len = scratch.len - pr->val;
        }
        s = amp ? amp + 1 : end;
    }
    if (rc == 0 && np > 0) {
        qsort_r(pairs, np, sizeof *pairs, cmp_pair, scratch.data);
        for (size_t i = 0; i < np; i++) {
            if (i)
                rc |= rd_buf_append(out, "&", 1);
            rc |= rd_buf_append(out, scratch.data + pairs[i].key, pairs[i].key_len);
            rc |= rd_buf_append(out, "=", 1);
            rc |= rd_buf_append(out, scratch.data + pairs[i].val, pairs[i].val_len);
        }
    }
    free(pairs);
    rd_buf_free(&scratch);
    rd_buf_free(&tmp);
    return rc < 0 ? RD_ETOOBIG : 0;
}

/* ---- headers ---- */

struct hdr {
    size_t name, name_len, val, val_len; /* offsets into the scratch buffer */
    size_t order;                        /* position in the request: keeps repeated values in order */
};

static int cmp_hdr(const void *a, const void *b, void *ud)
{
    const char *s = ud;
    const struct hdr *x = a, *y = b;
    size_t n = x->name_len < y->name_len ? x->name_len : y->name_len;
    int c = memcmp(s + x->name, s + y->name, n);
    if (c)
        return c;
    if (x->name_len != y->name_len)
        return x->name_len < y->name_len ? -1 : 1;
    return x->order < y->order ? -1 : x->order > y->order ? 1 : 0;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

/* Value trimmed, with every run of white space collapsed to one space. */
static int put_value(struct rd_buf *b, const char *v, size_t n)
{
    while (n && is_space(v[0])) {
        v++;
        n--;
    }
    while (n && is_space(v[n - 1]))
        n--;
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        if (is_space(v[i])) {
            while (i + 1 < n && is_space(v[i + 1]))
                i++;
            rc |= rd_buf_append(b, " ", 1);
        } else {
            rc |= rd_buf_append(b, v + i, 1);
        }
    }
    return rc;
}

int rd_sigv4_canonical_request(const struct rd_sigv4_request *r, struct rd_buf *out, struct rd_buf *signed_hdrs)
{
    if (r->nheaders == 0 || r->nheaders > RD_SIGV4_MAX_HEADERS)
        return RD_EINVAL;
    struct hdr h[RD_SIGV4_MAX_HEADERS];
    struct rd_buf scratch;
    rd_buf_init(&scratch, 0);
    int rc = 0;
    for (size_t i = 0; i < r->nheaders; i++) {
        const struct rd_sigv4_header *in = &r->headers[i];
        if (in->name_len == 0) {
            rd_buf_free(&scratch);
            return RD_EINVAL;
        }
        h[i].order = i;
        h[i].name = scratch.len;
        for (size_t k = 0; k < in->name_len; k++) {
            char c = in->name[k];
            c = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
            rc |= rd_buf_append(&scratch, &c, 1);
        }
        h[i].name_len = in->name_len;
        h[i].val = scratch.len;
        rc |= put_value(&scratch, in->value ? in->value : "", in->value ? in->value_len : 0);
        h[i].val_len = scratch.len - h[i].val;
    }
    if (rc == 0)
        qsort_r(h, r->nheaders, sizeof h[0], cmp_hdr, scratch.data);

    struct rd_buf sh;
    rd_buf_init(&sh, 0);
    rc |= rd_buf_appends(out, r->method) | rd_buf_append(out, "\n", 1);
    rc |= rd_sigv4_canonical_uri(r->path, r->s3, out) | rd_buf_append(out, "\n", 1);
    rc |= rd_sigv4_canonical_query(r->query ? r->query : "", out) | rd_buf_append(out, "\n", 1);
    for (size_t i = 0; i < r->nheaders && rc == 0; i++) {
        bool same_as_prev = i > 0 && h[i].name_len == h[i - 1].name_len &&
                            memcmp(scratch.data + h[i].name, scratch.data + h[i - 1].name, h[i].name_len) == 0;
        if (same_as_prev) {
            /* Repeated header: its values joined with ',' on one line. */
            out->len--; /* the '\n' of the previous value */
            rc |= rd_buf_append(out, ",", 1);
        } else {
            rc |= rd_buf_append(out, scratch.data + h[i].name, h[i].name_len) | rd_buf_append(out, ":", 1);
            if (sh.len)
                rc |= rd_buf_append(&sh, ";", 1);
            rc |= rd_buf_append(&sh, scratch.data + h[i].name, h[i].name_len);
        }
        rc |= rd_buf_append(out, scratch.data + h[i].val, h[i].val_len) | rd_buf_append(out, "\n", 1);
    }
    rc |= rd_buf_append(out, "\n", 1);
    rc |= rd_buf_append(out, sh.data ? sh.data : "", sh.len) | rd_buf_append(out, "\n", 1);
    rc |= rd_buf_appends(out, r->payload_hash);
    if (signed_hdrs)
        rc |= rd_buf_append(signed_hdrs, sh.data ? sh.data : "", sh.len);
    rd_buf_free(&sh);
    rd_buf_free(&scratch);
    return rc < 0 ? RD_ETOOBIG : 0;
}

/* ---- signing ---- */

static bool amz_date_ok(const char *d)
{
    if (d == NULL || strlen(d) != 16 || d[8] != 'T' || d[15] != 'Z')
        return false;
    for (int i = 0; i < 15; i++)
        if (i != 8 && (d[i] < '0' || d[i] > '9'))
            return false;
    return true;
}

int rd_sigv4_string_to_sign(const char *amz_date, const char *region, const char *service, const char *creq,
                            size_t creq_len, struct rd_buf *out)
{
    if (!amz_date_ok(amz_date))
        return RD_EINVAL;
    uint8_t digest[RD_SHA256_LEN];
    char hex[2 * RD_SHA256_LEN + 1];
    rd_sha256(creq, creq_len, digest);
    rd_hex(digest, sizeof digest, hex);
    int rc = rd_buf_appends(out, "AWS4-HMAC-SHA256\n") | rd_buf_appends(out, amz_date) | rd_buf_append(out, "\n", 1);
    rc |= rd_buf_append(out, amz_date, 8) | rd_buf_append(out, "/", 1) | rd_buf_appends(out, region) |
          rd_buf_append(out, "/", 1) | rd_buf_appends(out, service) | rd_buf_appends(out, "/aws4_request\n");
    rc |= rd_buf_appends(out, hex);
    return rc < 0 ? RD_ETOOBIG : 0;
}

static void hmac(const uint8_t *key, size_t key_len, const void *data, size_t n, uint8_t out[32])
{
    unsigned int len = 32;
    /* Only fails for an unavailable digest, which OpenSSL always has. */
    if (HMAC(EVP_sha256(), key, (int)key_len, data, n, out, &len) == NULL)
        abort();
}

void rd_sigv4_signing_key(const char *secret, const char *amz_date, const char *region, const char *service,
                          uint8_t key[32])
{
    size_t sn = strlen(secret);
    uint8_t *k0 = rd_malloc(sn + 4);
    memcpy(k0, "AWS4", 4);
    memcpy(k0 + 4, secret, sn);
    uint8_t k[32];
    hmac(k0, sn + 4, amz_date, 8, k);
    OPENSSL_cleanse(k0, sn + 4);
    free(k0);
    hmac(k, 32, region, strlen(region), k);
    hmac(k, 32, service, strlen(service), k);
    hmac(k, 32, "aws4_request", 12, key);
    OPENSSL_cleanse(k, sizeof k);
}

int rd_sigv4_authorization(const struct rd_sigv4_request *r, const struct rd_sigv4_creds *c, const char *amz_date,
                           const char *region, const char *service, struct rd_buf *auth)
{
    if (c == NULL || c->access_key_id == NULL || c->secret_access_key == NULL || c->access_key_id[0] == '\0' ||
        !amz_date_ok(amz_date) || region == NULL || region[0] == '\0')
        return RD_EINVAL;
    struct rd_buf creq, sh, sts;
    rd_buf_init(&creq, 0);
    rd_buf_init(&sh, 0);
    rd_buf_init(&sts, 0);
    int rc = rd_sigv4_canonical_request(r, &creq, &sh);
    if (rc == 0)
        rc = rd_sigv4_string_to_sign(amz_date, region, service, creq.data, creq.len, &sts);
    if (rc == 0) {
        uint8_t key[32], sig[32];
        char hex[65];
        rd_sigv4_signing_key(c->secret_access_key, amz_date, region, service, key);
        hmac(key, sizeof key, sts.data, sts.len, sig);
        OPENSSL_cleanse(key, sizeof key);
        rd_hex(sig, sizeof sig, hex);
        int a = rd_buf_appends(auth, "AWS4-HMAC-SHA256 Credential=") | rd_buf_appends(auth, c->access_key_id) |
                rd_buf_append(auth, "/", 1) | rd_buf_append(auth, amz_date, 8) | rd_buf_append(auth, "/", 1) |
                rd_buf_appends(auth, region) | rd_buf_append(auth, "/", 1) | rd_buf_appends(auth, service) |
                rd_buf_appends(auth, "/aws4_request, SignedHeaders=") | rd_buf_append(auth, sh.data, sh.len) |
                rd_buf_appends(auth, ", Signature=") | rd_buf_appends(auth, hex);
        rc = a < 0 ? RD_ETOOBIG : 0;
    }
    rd_buf_free(&creq);
    rd_buf_free(&sh);
    rd_buf_free(&sts);
    return rc;
}

void rd_sigv4_amz_date(int64_t epoch_ms, char out[17])
{
    time_t secs = (time_t)(epoch_ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    if (strftime(out, 17, "%Y%m%dT%H%M%SZ", &tm) != 16)
        memcpy(out, "19700101T000000Z", 17);
}

void rd_sigv4_payload_hash(const void *p, size_t n, char out[65])
{
    uint8_t d[RD_SHA256_LEN];
    rd_sha256(p ? p : "", n, d);
    rd_hex(d, sizeof d, out);
}
