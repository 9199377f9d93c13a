/* libFuzzer target for src/util/ipmatch.c: the patterns of allowed_ips,
 * blocked_ips and trusted_proxies (from the configuration API) and the
 * X-Forwarded-For / X-Real-IP values of requests (from clients).
 *
 * The input is lines separated by '\n': "+PATTERN" adds a pattern to the
 * set, "?ADDRESS" probes an address, ">VALUE" reads an X-Forwarded-For
 * value with the set as trusted proxies, "=VALUE" an X-Real-IP value;
 * other lines are ignored. Each line is handed over in an exact-size block,
 * so AddressSanitizer flags a read past its length. The target traps when:
 *  - rd_ipset_add accepts a pattern the oracle below refuses or the other
 *    way round, returns another code than 0, 1, RD_EINVAL or RD_ETOOBIG,
 *    says "host bits cleared" wrongly, or leaves no message on error;
 *  - rd_ipaddr_parse disagrees with glibc's inet_pton (acceptance or bytes),
 *    or rd_ipaddr_format's text does not parse back to the same address;
 *  - a lookup (before and after freezing; by address, text and raw bytes)
 *    disagrees with a linear scan of the accepted entries, for every probe
 *    and for the first and last address of every entry and their
 *    neighbours outside;
 *  - rd_ip_from_forwarded disagrees with a simple re-reading of the rule
 *    (rightmost element not in the set), or rd_ip_from_real_ip with
 *    inet_pton. */
#include <arpa/inet.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/err.h"
#include "util/ipmatch.h"
#include "check.h"


#define MAX_ENTRIES 128
#define MAX_PROBES 256

struct entry {
    uint8_t b[16];
    unsigned bits;
};

static bool naive_contains(const struct entry *list, size_t n, const uint8_t a[16])
{
    for (size_t i = 0; i < n; i++) {
        bool same = true;
        for (unsigned k = 0; k < list[i].bits && same; k++) {
            unsigned byte = k / 8, shift = 7 - k % 8;
            same = ((unsigned)(list[i].b[byte] ^ a[byte]) >> shift & 1u) == 0;
        }
        if (same)
            return true;
    }
    return false;
}

static void mapped(uint8_t out[16], const uint8_t v4[4])
{
    memset(out, 0, 10);
    out[10] = out[11] = 0xff;
    memcpy(out + 12, v4, 4);
}

/* inet_pton on p[0..n) into the 128-bit space; false when it refuses. */
static bool oracle_addr(const char *p, size_t n, uint8_t out[16])
{
    char buf[80];
    if (n >= sizeof buf || memchr(p, '\0', n))
        return false;
    memcpy(buf, p, n);
    buf[n] = '\0';
    if (memchr(p, ':', n))
        return inet_pton(AF_INET6, buf, out) == 1;
    uint8_t v4[4];
    if (inet_pton(AF_INET, buf, v4) != 1)
        return false;
    mapped(out, v4);
    return true;
}

/* Strict decimal without a leading zero, at most max. */
static bool oracle_number(const char *p, size_t n, unsigned max, unsigned *out)
{
    if (n == 0 || n > 5 || (n > 1 && p[0] == '0'))
        return false;
    unsigned v = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return false;
        v = v * 10 + (unsigned)(p[i] - '0');
    }
    *out = v;
    return v <= max;
}

/* The pattern syntax, read independently of the matcher. */
static bool oracle_pattern(const char *p, size_t n, struct entry *e)
{
    if (n == 0 || n > RD_IP_MAX_TEXT || memchr(p, '\0', n))
        return false;
    if (memchr(p, '*', n)) {
        /* N.N.* forms: numeric labels, then one or more '*' labels, 4 at most */
        unsigned labels = 0, numeric = 0;
        uint8_t v4[4] = {0, 0, 0, 0};
        size_t i = 0;
        bool wild = false;
        for (;;) {
            size_t s = i;
            while (i < n && p[i] != '.')
                i++;
            if (++labels > 4)
                return false;
            if (i - s == 1 && p[s] == '*') {
                wild = true;
            } else {
                unsigned v;
                if (wild || !oracle_number(p + s, i - s, 255, &v) || i - s > 3)
                    return false;
                v4[numeric++] = (uint8_t)v;
            }
            if (i == n)
                break;
            i++;
        }
        if (!wild)
            return false;
        mapped(e->b, v4);
        e->bits = 96 + 8 * numeric;
        return true;
    }
    const char *slash = memchr(p, '/', n);
    size_t alen = slash ? (size_t)(slash - p) : n;
    if (!oracle_addr(p, alen, e->b))
        return false;
    bool v6 = memchr(p, ':', alen) != NULL;
    e->bits = 128;
    if (slash) {
        unsigned plen;
        if (!oracle_number(slash + 1, n - alen - 1, v6 ? 128 : 32, &plen))
            return false;
        e->bits = v6 ? plen : 96 + plen;
    }
    return true;
}

static bool host_bits_set(const struct entry *e)
{
    for (unsigned k = e->bits; k < 128; k++)
        if ((unsigned)e->b[k / 8] >> (7 - k % 8) & 1u)
            return true;
    return false;
}

static void mask(struct entry *e)
{
    for (unsigned k = e->bits; k < 128; k++)
        e->b[k / 8] &= (uint8_t) ~(1u << (7 - k % 8));
}

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* A port: 1 to 5 digits (leading zeros allowed), at most 65535. */
static bool oracle_port(const char *p, size_t n, unsigned *out)
{
    if (n == 0 || n > 5)
        return false;
    unsigned v = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return false;
        v = v * 10 + (unsigned)(p[i] - '0');
    }
    *out = v;
    return v <= 65535;
}

/* One forwarded-header element, read independently: "[v6]", "[v6]:port",
 * "v4:port" or an address. */
static bool oracle_element(const char *p, size_t n, uint8_t out[16])
{
    if (n > RD_IP_MAX_TEXT)
        return false;
    unsigned port;
    if (n > 0 && p[0] == '[') {
        const char *close = memchr(p, ']', n);
        if (close == NULL || !memchr(p, ':', (size_t)(close - p)))
            return false;
        size_t rest = n - (size_t)(close - p) - 1;
        if (rest > 0 && (close[1] != ':' || rest > 6 || !oracle_port(close + 2, rest - 1, &port)))
            return false;
        return oracle_addr(p + 1, (size_t)(close - p) - 1, out) && memchr(p + 1, ':', (size_t)(close - p) - 1);
    }
    const char *colon = memchr(p, ':', n);
    if (colon && !memchr(colon + 1, ':', n - (size_t)(colon - p) - 1) && memchr(p, '.', (size_t)(colon - p))) {
        size_t plen = n - (size_t)(colon - p) - 1;
        if (plen > 5 || !oracle_port(colon + 1, plen, &port))
            return false;
        n = (size_t)(colon - p);
    }
    return oracle_addr(p, n, out);
}

static char *exact(const char *p, size_t n)
{
    char *c = malloc(n ? n : 1);
    CHECK(c != NULL);
    memcpy(c, p, n);
    return c;
}

struct state {
    struct rd_ipset *set;
    struct entry entries[MAX_ENTRIES];
    size_t n_entries;
    uint8_t probes[MAX_PROBES][16];
    size_t n_probes;
};

static void add_probe(struct state *st, const uint8_t a[16])
{
    if (st->n_probes < MAX_PROBES)
        memcpy(st->probes[st->n_probes++], a, 16);
}

static void on_pattern(struct state *st, const char *line, size_t n)
{
    if (st->n_entries == MAX_ENTRIES)
        return;
    /* rd_ipset_add takes a C string: stop at a NUL like it would */
    char buf[RD_IP_MAX_TEXT + 8];
    size_t m = n < sizeof buf - 1 ? n : sizeof buf - 1;
    memcpy(buf, line, m);
    buf[m] = '\0';
    size_t len = strlen(buf);
    char err[96];
    memset(err, '#', sizeof err);
    int rc = rd_ipset_add(st->set, buf, err, sizeof err);
    CHECK(rc == 0 || rc == 1 || rc == RD_EINVAL);
    struct entry e;
    bool want = len <= RD_IP_MAX_TEXT && oracle_pattern(buf, len, &e);
    if (want != (rc >= 0))
        fprintf(stderr, "pattern <%s>: rc %d (%s), oracle %d\n", buf, rc, rc < 0 ? err : "", want);
    CHECK(want == (rc >= 0));
    if (rc < 0) {
        CHECK(memchr(err, '\0', sizeof err) != NULL && err[0] != '\0');
        return;
    }
    CHECK((rc == 1) == host_bits_set(&e));
    mask(&e);
    st->entries[st->n_entries++] = e;
}

static void on_address(struct state *st, const char *line, size_t n)
{
    char *p = exact(line, n);
    struct rd_ipaddr a;
    char err[96] = "";
    int rc = rd_ipaddr_parse(p, n, &a, err, sizeof err);
    uint8_t want[16];
    bool ok = oracle_addr(p, n, want);
    if (ok != (rc == 0))
        fprintf(stderr, "address <%.*s>: rc %d (%s), inet_pton %d\n", (int)n, line, rc, err, ok);
    CHECK(ok == (rc == 0));
    CHECK(rc == 0 || rc == RD_EINVAL);
    if (rc == 0) {
        CHECK(memcmp(a.b, want, 16) == 0);
        char text[46];
        int len = rd_ipaddr_format(&a, text, sizeof text);
        CHECK(len > 0 && (size_t)len == strlen(text));
        struct rd_ipaddr back;
        CHECK(rd_ipaddr_parse(text, (size_t)len, &back, NULL, 0) == 0 && memcmp(back.b, a.b, 16) == 0);
        add_probe(st, a.b);
    } else {
        CHECK(err[0] != '\0');
    }
    free(p);
}

static void on_forwarded(struct state *st, const char *line, size_t n)
{
    char *p = exact(line, n);
    struct rd_ipaddr got;
    memset(&got, 0xa5, sizeof got);
    char err[160] = "";
    int rc = rd_ip_from_forwarded(p, n, st->set, &got, err, sizeof err);
    CHECK(rc == 0 || rc == RD_ENOTFOUND || rc == RD_EINVAL);

    /* the rule: from the right, skip empty elements, stop at the first
     * element not in the set; the leftmost when all are in it */
    int want = RD_ENOTFOUND;
    uint8_t client[16];
    size_t end = n;
    while (end > 0) {
        size_t start = end;
        while (start > 0 && p[start - 1] != ',')
            start--;
        size_t s = start, e = end;
        while (s < e && is_ows(p[s]))
            s++;
        while (e > s && is_ows(p[e - 1]))
            e--;
        end = start > 0 ? start - 1 : 0;
        if (s == e)
            continue;
        if (!oracle_element(p + s, e - s, client)) {
            want = RD_EINVAL;
            break;
        }
        want = 0;
        if (!naive_contains(st->entries, st->n_entries, client))
            break;
    }
    if (want != rc)
        fprintf(stderr, "X-Forwarded-For <%.*s>: rc %d (%s), oracle %d\n", (int)n, line, rc, err, want);
    CHECK(want == rc);
    if (rc == 0)
        CHECK(memcmp(got.b, client, 16) == 0);
    if (rc == RD_EINVAL)
        CHECK(err[0] != '\0');
    free(p);
}

static void on_real_ip(const char *line, size_t n)
{
    char *p = exact(line, n);
    struct rd_ipaddr got;
    char err[160] = "";
    int rc = rd_ip_from_real_ip(p, n, &got, err, sizeof err);
    size_t s = 0, e = n;
    while (s < e && is_ows(p[s]))
        s++;
    while (e > s && is_ows(p[e - 1]))
        e--;
    uint8_t want[16];
    int wrc = s == e ? RD_ENOTFOUND : oracle_element(p + s, e - s, want) ? 0 : RD_EINVAL;
    CHECK(rc == wrc);
    if (rc == 0)
        CHECK(memcmp(got.b, want, 16) == 0);
    free(p);
}

/* The first and last address of e, and the addresses just outside. */
static void edge_probes(struct state *st, const struct entry *e)
{
    uint8_t lo[16], hi[16];
    memcpy(lo, e->b, 16);
    memcpy(hi, e->b, 16);
    for (unsigned k = e->bits; k < 128; k++)
        hi[k / 8] |= (uint8_t)(1u << (7 - k % 8));
    add_probe(st, lo);
    add_probe(st, hi);
    for (int i = 15; i >= 0; i--) /* lo - 1 */
        if (lo[i]-- != 0)
            break;
    for (int i = 15; i >= 0; i--) /* hi + 1 */
        if (++hi[i] != 0)
            break;
    add_probe(st, lo);
    add_probe(st, hi);
}

static void check_lookups(const struct state *st)
{
    for (size_t i = 0; i < st->n_probes; i++) {
        bool want = naive_contains(st->entries, st->n_entries, st->probes[i]);
        struct rd_ipaddr a;
        memcpy(a.b, st->probes[i], 16);
        CHECK(rd_ipset_contains_addr(st->set, &a) == want);
        CHECK(rd_ipset_contains_raw(st->set, a.b, 16) == want);
        if (rd_ipaddr_is_v4(&a))
            CHECK(rd_ipset_contains_raw(st->set, a.b + 12, 4) == want);
        char text[46];
        int len = rd_ipaddr_format(&a, text, sizeof text);
        CHECK(len > 0);
        CHECK(rd_ipset_contains_text(st->set, text, (size_t)len) == want);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1u << 16)
        return 0;
    static struct state st;
    st.set = rd_ipset_new();
    st.n_entries = st.n_probes = 0;
    const char *d = (const char *)data;
    /* patterns first, then the probes, then the headers against the full set */
    for (int pass = 0; pass < 3; pass++) {
        size_t i = 0;
        while (i < size) {
            const char *nl = memchr(d + i, '\n', size - i);
            size_t end = nl ? (size_t)(nl - d) : size;
            if (end > i) {
                const char *line = d + i + 1;
                size_t n = end - i - 1;
                char kind = d[i];
                if (pass == 0 && kind == '+')
                    on_pattern(&st, line, n);
                else if (pass == 1 && kind == '?')
                    on_address(&st, line, n);
                else if (pass == 2 && kind == '>')
                    on_forwarded(&st, line, n);
                else if (pass == 2 && kind == '=')
                    on_real_ip(line, n);
            }
            i = end + 1;
        }
        if (pass == 1) {
            for (size_t k = 0; k < st.n_entries; k++)
                edge_probes(&st, &st.entries[k]);
            check_lookups(&st);
            size_t mem = rd_ipset_mem(st.set);
            rd_ipset_freeze(st.set);
            CHECK(rd_ipset_mem(st.set) <= mem);
            CHECK(rd_ipset_count(st.set) == st.n_entries);
            check_lookups(&st);
        }
    }
    rd_ipset_free(st.set);
    st.set = NULL;
    return 0;
}
