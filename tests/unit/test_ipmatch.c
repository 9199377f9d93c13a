/* Tests for src/util/ipmatch.c: the address sets behind allowed_ips,
 * blocked_ips and trusted_proxies, and the forwarded-header rule. What
 * matters to a user: a pattern matches exactly the addresses its syntax
 * says (first and last address of a range in, their neighbours out), IPv4
 * clients match IPv4 entries however the socket reports them, a malformed
 * pattern is refused with a message naming the problem and its position,
 * a big list answers like a plain linear scan, and a client cannot spoof
 * its address past a trusted proxy. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/un.h>

#include <cmocka.h>

#include "util/err.h"
#include "util/ipmatch.h"

/* A set of the given patterns, each of which must be accepted. */
static struct rd_ipset *set_of(const char *const *patterns)
{
    struct rd_ipset *s = rd_ipset_new();
    for (size_t i = 0; patterns[i]; i++) {
        char err[128] = "";
        int rc = rd_ipset_add(s, patterns[i], err, sizeof err);
        if (rc < 0)
            print_error("pattern <%s>: %s\n", patterns[i], err);
        assert_true(rc >= 0);
    }
    rd_ipset_freeze(s);
    return s;
}

#define SET(...) set_of((const char *const[]){__VA_ARGS__, NULL})

/* contains_text over an exact-size copy, so a read past len is caught. */
static bool has(const struct rd_ipset *s, const char *addr)
{
    size_t n = strlen(addr);
    char *p = malloc(n ? n : 1);
    assert_non_null(p);
    memcpy(p, addr, n);
    struct rd_ipaddr a;
    char err[128] = "";
    int rc = rd_ipaddr_parse(p, n, &a, err, sizeof err);
    if (rc < 0)
        print_error("address <%s>: %s\n", addr, err);
    assert_int_equal(rc, 0);
    bool r = rd_ipset_contains_text(s, p, n);
    assert_true(r == rd_ipset_contains_addr(s, &a));
    free(p);
    return r;
}

static void test_exact(void **state)
{
    (void)state;
    struct rd_ipset *s = SET("10.1.2.3", "2001:db8::1", "::1", "::ffff:1.2.3.4");
    assert_true(has(s, "10.1.2.3"));
    assert_false(has(s, "10.1.2.2"));
    assert_false(has(s, "10.1.2.4"));
    assert_true(has(s, "2001:db8::1"));
    assert_true(has(s, "2001:DB8:0:0:0:0:0:1"));
    assert_false(has(s, "2001:db8::2"));
    assert_false(has(s, "2001:db8::"));
    assert_true(has(s, "::1"));
    assert_false(has(s, "::"));
    assert_true(has(s, "1.2.3.4")); /* the v4-mapped entry is the IPv4 address */
    assert_false(has(s, "1.2.3.5"));
    assert_int_equal(rd_ipset_count(s), 4);
    rd_ipset_free(s);

    struct rd_ipset *empty = SET("0.0.0.1");
    assert_false(has(empty, "0.0.0.0"));
    rd_ipset_free(empty);
    struct rd_ipset *none = rd_ipset_new();
    assert_false(has(none, "1.2.3.4"));
    assert_false(has(none, "::"));
    rd_ipset_free(none);
}

static void test_cidr_boundaries(void **state)
{
    (void)state;
    struct rd_ipset *s = SET("10.0.0.0/8", "192.168.1.7/32", "2001:db8::/32", "fe80::1/128");
    assert_true(has(s, "10.0.0.0"));
    assert_true(has(s, "10.255.255.255"));
    assert_false(has(s, "9.255.255.255"));
    assert_false(has(s, "11.0.0.0"));
    assert_true(has(s, "192.168.1.7"));
    assert_false(has(s, "192.168.1.6"));
    assert_false(has(s, "192.168.1.8"));
    assert_true(has(s, "2001:db8::"));
    assert_true(has(s, "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"));
    assert_false(has(s, "2001:db7:ffff:ffff:ffff:ffff:ffff:ffff"));
    assert_false(has(s, "2001:db9::"));
    assert_true(has(s, "fe80::1"));
    assert_false(has(s, "fe80::"));
    assert_false(has(s, "fe80::2"));
    rd_ipset_free(s);

    /* /0: all of IPv4 for an IPv4 pattern, everything for IPv6's */
    struct rd_ipset *v4all = SET("0.0.0.0/0");
    assert_true(has(v4all, "0.0.0.0"));
    assert_true(has(v4all, "255.255.255.255"));
    assert_false(has(v4all, "2001:db8::1"));
    assert_false(has(v4all, "::"));
    rd_ipset_free(v4all);
    struct rd_ipset *all = SET("::/0");
    assert_true(has(all, "::"));
    assert_true(has(all, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"));
    assert_true(has(all, "1.2.3.4"));
    rd_ipset_free(all);

    /* prefixes at a 64-bit word boundary and one bit around it */
    struct rd_ipset *w = SET("2001:db8:1:2::/64", "2001:db8:1:3::/63", "2001:db8:1:4:8000::/65");
    assert_true(has(w, "2001:db8:1:2:ffff:ffff:ffff:ffff"));
    assert_false(has(w, "2001:db8:1:1:ffff:ffff:ffff:ffff"));
    assert_true(has(w, "2001:db8:1:3::5")); /* /63 at :2:: covers :2 and :3 */
    assert_true(has(w, "2001:db8:1:4:8000::"));
    assert_true(has(w, "2001:db8:1:4:ffff:ffff:ffff:ffff"));
    assert_false(has(w, "2001:db8:1:4:7fff:ffff:ffff:ffff"));
    rd_ipset_free(w);
}

static void test_host_bits_masked(void **state)
{
    (void)state;
    struct rd_ipset *s = rd_ipset_new();
    char err[128];
    assert_int_equal(rd_ipset_add(s, "10.1.2.3/8", err, sizeof err), 1);
    assert_int_equal(rd_ipset_add(s, "172.16.0.0/12", err, sizeof err), 0);
    assert_int_equal(rd_ipset_add(s, "2001:db8::1/32", err, sizeof err), 1);
    assert_int_equal(rd_ipset_add(s, "1.2.3.4", err, sizeof err), 0);
    assert_int_equal(rd_ipset_add(s, "10.0.*", err, sizeof err), 0);
    rd_ipset_freeze(s);
    assert_true(has(s, "10.0.0.0"));
    assert_true(has(s, "10.200.0.1"));
    assert_true(has(s, "172.31.255.255"));
    assert_false(has(s, "172.32.0.0"));
    assert_true(has(s, "2001:db8:abcd::"));
    rd_ipset_free(s);
}

static void test_wildcards(void **state)
{
    (void)state;
    struct rd_ipset *s = SET("192.168.*.*", "10.0.*", "172.16.5.*");
    assert_true(has(s, "192.168.0.0"));
    assert_true(has(s, "192.168.255.255"));
    assert_false(has(s, "192.169.0.0"));
    assert_false(has(s, "192.167.255.255"));
    assert_true(has(s, "10.0.0.0"));
    assert_true(has(s, "10.0.255.255"));
    assert_false(has(s, "10.1.0.0"));
    assert_true(has(s, "172.16.5.0"));
    assert_true(has(s, "172.16.5.255"));
    assert_false(has(s, "172.16.6.0"));
    rd_ipset_free(s);

    const char *alls[] = {"*", "*.*.*.*", "*.*"};
    for (size_t i = 0; i < 3; i++) {
        struct rd_ipset *a = SET(alls[i]);
        assert_true(has(a, "0.0.0.0"));
        assert_true(has(a, "255.255.255.255"));
        assert_true(has(a, "::ffff:8.8.8.8"));
        assert_false(has(a, "::"));
        assert_false(has(a, "2001:db8::1"));
        assert_false(has(a, "::fffe:ffff:ffff"));
        rd_ipset_free(a);
    }
}

static void test_v4_mapped_and_forms(void **state)
{
    (void)state;
    struct rd_ipset *s = SET("1.2.3.0/24", "2001:db8::/48");
    struct sockaddr_in in = {.sin_family = AF_INET};
    struct sockaddr_in6 in6 = {.sin6_family = AF_INET6};
    assert_int_equal(inet_pton(AF_INET, "1.2.3.200", &in.sin_addr), 1);
    assert_true(rd_ipset_contains(s, (struct sockaddr *)&in));
    assert_int_equal(inet_pton(AF_INET6, "::ffff:1.2.3.200", &in6.sin6_addr), 1);
    assert_true(rd_ipset_contains(s, (struct sockaddr *)&in6));
    assert_int_equal(inet_pton(AF_INET6, "::1.2.3.200", &in6.sin6_addr), 1); /* IPv4-compatible: plain IPv6 */
    assert_false(rd_ipset_contains(s, (struct sockaddr *)&in6));
    assert_int_equal(inet_pton(AF_INET6, "2001:db8:0:ffff::1", &in6.sin6_addr), 1);
    assert_true(rd_ipset_contains(s, (struct sockaddr *)&in6));
    assert_int_equal(inet_pton(AF_INET, "1.2.4.0", &in.sin_addr), 1);
    assert_false(rd_ipset_contains(s, (struct sockaddr *)&in));

    const uint8_t raw4[4] = {1, 2, 3, 9};
    const uint8_t raw16[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 1, 2, 3, 9};
    assert_true(rd_ipset_contains_raw(s, raw4, 4));
    assert_true(rd_ipset_contains_raw(s, raw16, 16));
    assert_false(rd_ipset_contains_raw(s, raw16, 5));
    assert_false(rd_ipset_contains_raw(s, raw16, 0));

    struct sockaddr_un un = {.sun_family = AF_UNIX};
    assert_false(rd_ipset_contains(s, (struct sockaddr *)&un));
    assert_false(rd_ipset_contains_text(s, "1.2.3", 5));
    assert_false(rd_ipset_contains_text(s, "1.2.3.*", 7)); /* no wildcard in an address */
    rd_ipset_free(s);

    /* a v4-mapped pattern with an IPv6 prefix length: ::ffff:10.0.0.0/104 is 10/8 */
    struct rd_ipset *m = SET("::ffff:10.0.0.0/104");
    assert_int_equal(inet_pton(AF_INET, "10.9.9.9", &in.sin_addr), 1);
    assert_true(rd_ipset_contains(m, (struct sockaddr *)&in));
    assert_false(has(m, "11.0.0.0"));
    rd_ipset_free(m);
}

static void test_format(void **state)
{
    (void)state;
    const char *cases[][2] = {
        {"1.2.3.4", "1.2.3.4"},
        {"::ffff:1.2.3.4", "1.2.3.4"},
        {"2001:DB8:0:0:0:0:0:1", "2001:db8::1"},
        {"::", "::"},
        {"::1.2.3.4", "::1.2.3.4"},
        {"1::", "1::"},
        {"0:0:0:0:0:0:0:1", "::1"},
        {"a:b:c:d:e:f:1.2.3.4", "a:b:c:d:e:f:102:304"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct rd_ipaddr a;
        assert_int_equal(rd_ipaddr_parse(cases[i][0], strlen(cases[i][0]), &a, NULL, 0), 0);
        char out[46];
        int n = rd_ipaddr_format(&a, out, sizeof out);
        assert_int_equal(n, (int)strlen(cases[i][1]));
        assert_string_equal(out, cases[i][1]);
    }
    struct rd_ipaddr a;
    assert_int_equal(rd_ipaddr_parse("10.0.0.1", 8, &a, NULL, 0), 0);
    char small[4];
    assert_int_equal(rd_ipaddr_format(&a, small, sizeof small), RD_ETOOBIG);
    assert_string_equal(small, "10.");
}

/* Every malformed pattern is refused with RD_EINVAL and a message holding
 * want, and the set is left as it was. */
static void test_malformed(void **state)
{
    (void)state;
    static const char *const cases[][2] = {
        {"", "empty pattern"},
        {"10.*.1.2", "octet at position 6 follows a '*'"},
        {"*.1", "octet at position 3 follows a '*'"},
        {"10.0.1*", "'*' at position 7 must be a whole octet"},
        {"10.0.*1", "'*' at position 6 must be a whole octet"},
        {"10.0.**", "'*' at position 6 must be a whole octet"},
        {"10.0.*/16", "takes no /prefix (position 7)"},
        {"10.0", "only 2 of 4 octets"},
        {"10", "only 1 of 4 octets"},
        {"1.2.3.4.5", "more than 4 octets: extra text at position 9"},
        {"1.2.3.*.*", "more than 4 octets"},
        {"256.1.1.1", "octet 256 at position 1 is over 255"},
        {"1.2.3.1000", "octet at position 7 has more than 3 digits"},
        {"01.2.3.4", "leading zero"},
        {"1..2.3", "empty octet at position 3"},
        {".1.2.3", "empty octet at position 1"},
        {"1.2.3.", "address ends with '.' at position 6"},
        {"1.2.3.4 ", "unexpected byte 0x20 at position 8"},
        {" 1.2.3.4", "unexpected byte 0x20 at position 1"},
        {"1.2.3.x", "unexpected 'x' at position 7"},
        {"10.0.0.0/33", "prefix length /33 at position 10 is over 32 (the IPv4 maximum)"},
        {"10.0.0.0/", "missing prefix length after '/' at position 9"},
        {"10.0.0.0/8/8", "prefix length: unexpected '/' at position 11"},
        {"10.0.0.0/08", "leading zero"},
        {"10.0.0.0/-1", "prefix length: unexpected '-'"},
        {"10.0.0.0/1000", "is over 32"},
        {"/8", "empty address"},
        {"2001:db8::/129", "prefix length /129 at position 12 is over 128 (the IPv6 maximum)"},
        {"2001:db8::1::2", "second '::' at position 12"},
        {":1", "starts with a single ':'"},
        {"1:", "ends with a single ':'"},
        {"1:2:3:4:5:6:7", "only 7 of 8 groups"},
        {"1:2:3:4:5:6:7:8:9", "more than 8 groups at position 17"},
        {"1:2:3:4::5:6:7:8", "'::' stands for no group"},
        {"12345::", "group at position 1 has more than 4 hex digits"},
        {"1:::2", "empty group at position 4"},
        {"fe80::1%eth0", "zone index"},
        {"2001:db8::g", "unexpected 'g' at position 11"},
        {"2001:db8::*", "unexpected '*' at position 11"},
        {"::ffff:1.2.3", "only 3 of 4 octets"},
        {"::ffff:1.2.3.4.5", "more than 4 octets"},
        {"1.2.3.4::", "unexpected ':' at position 8"},
        {"1:2:3:4:5:6:7:1.2.3.4", "too many groups before the IPv4 part"},
        {"::1.2.3.4:5", "unexpected ':' at position 10"},
        {"[::1]", "unexpected '['"},
        {"1.2.3.4\x01", "unexpected byte 0x01 at position 8"},
        {"0123456789012345678901234567890123456789012345678901234567890123456789", "longer than 64 bytes"},
    };
    struct rd_ipset *s = rd_ipset_new();
    assert_int_equal(rd_ipset_add(s, "1.2.3.4", NULL, 0), 0);
    size_t mem = rd_ipset_mem(s);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char err[160] = "";
        int rc = rd_ipset_add(s, cases[i][0], err, sizeof err);
        if (rc != RD_EINVAL || strstr(err, cases[i][1]) == NULL)
            print_error("pattern <%s>: rc %d, message <%s>, wanted <%s>\n", cases[i][0], rc, err, cases[i][1]);
        assert_int_equal(rc, RD_EINVAL);
        assert_non_null(strstr(err, cases[i][1]));
        /* a NULL or zero-size message buffer is fine too */
        assert_int_equal(rd_ipset_add(s, cases[i][0], NULL, 0), RD_EINVAL);
    }
    assert_int_equal(rd_ipset_count(s), 1);
    assert_int_equal(rd_ipset_mem(s), mem);
    assert_true(has(s, "1.2.3.4"));
    rd_ipset_freeze(s);
    char err[64];
    assert_int_equal(rd_ipset_add(s, "5.6.7.8", err, sizeof err), RD_ESTATE);
    assert_string_equal(err, "the address set is frozen");
    assert_false(has(s, "5.6.7.8"));
    rd_ipset_free(s);
    rd_ipset_free(NULL);
}

/* ---- random sets against a linear scan ---- */

static uint64_t rng_state = 0x9e3779b97f4a7c15u; /* fixed seed: reproducible */

static uint64_t next_u64(void)
{
    /* splitmix64 */
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static unsigned below(unsigned n)
{
    return (unsigned)(next_u64() % n);
}

struct naive_entry {
    uint8_t b[16];
    unsigned bits; /* in the 128-bit space */
};

static bool naive_match(const struct naive_entry *e, const uint8_t a[16])
{
    for (unsigned i = 0; i < e->bits; i++) {
        unsigned byte = i / 8, shift = 7 - i % 8;
        if (((e->b[byte] >> shift) & 1u) != ((a[byte] >> shift) & 1u))
            return false;
    }
    return true;
}

static bool naive_contains(const struct naive_entry *list, size_t n, const uint8_t a[16])
{
    for (size_t i = 0; i < n; i++)
        if (naive_match(&list[i], a))
            return true;
    return false;
}

static void random_addr(uint8_t a[16], bool v4)
{
    for (int i = 0; i < 16; i++)
        a[i] = (uint8_t)next_u64();
    if (v4) {
        memset(a, 0, 10);
        a[10] = a[11] = 0xff;
    } else if (below(4) == 0) {
        memset(a, 0, 8); /* some low addresses, near the v4-mapped range */
    }
}

/* Writes a random pattern to text and what it means to e. */
static void random_pattern(char *text, size_t cap, struct naive_entry *e)
{
    bool v4 = below(2) == 0;
    random_addr(e->b, v4);
    unsigned kind = below(4);
    if (v4 && kind == 0) {
        /* /16 and /24 only: a few hundred /8s would cover all of IPv4
         * and leave nothing to tell apart */
        unsigned fixed = 2 + below(2);
        int n = 0;
        for (unsigned i = 0; i < fixed; i++)
            n += snprintf(text + n, cap - (size_t)n, "%s%u", i ? "." : "", e->b[12 + i]);
        snprintf(text + n, cap - (size_t)n, "%s", below(2) || fixed == 3 ? ".*" : ".*.*");
        e->bits = 96 + 8 * fixed;
    } else if (v4) {
        unsigned plen = kind == 1 ? 32 : 12 + below(21); /* /0 and such are tested above */
        snprintf(text, cap, "%u.%u.%u.%u/%u", e->b[12], e->b[13], e->b[14], e->b[15], plen);
        e->bits = 96 + plen;
    } else {
        unsigned plen = kind == 1 ? 128 : 40 + below(89);
        char a6[INET6_ADDRSTRLEN];
        assert_non_null(inet_ntop(AF_INET6, e->b, a6, sizeof a6));
        snprintf(text, cap, "%s/%u", a6, plen);
        e->bits = plen;
    }
}

static void test_random_against_linear(void **state)
{
    (void)state;
    enum { ENTRIES = 10000, PROBES = 100000 };
    struct naive_entry *list = calloc(ENTRIES, sizeof *list);
    assert_non_null(list);
    struct rd_ipset *s = rd_ipset_new();
    for (size_t i = 0; i < ENTRIES; i++) {
        char text[80], err[128] = "";
        random_pattern(text, sizeof text, &list[i]);
        int rc = rd_ipset_add(s, text, err, sizeof err);
        if (rc < 0)
            print_error("pattern <%s>: %s\n", text, err);
        assert_true(rc >= 0);
    }
    rd_ipset_freeze(s);
    assert_int_equal(rd_ipset_count(s), ENTRIES);
    /* fewer than two nodes of 32 bytes per entry */
    assert_true(rd_ipset_mem(s) < 2u * ENTRIES * 32u + 1024u);

    size_t hits = 0;
    for (size_t i = 0; i < PROBES; i++) {
        uint8_t a[16];
        random_addr(a, below(2) == 0);
        if (below(2) == 0) {
            /* an address inside or right beside some entry, so that both
             * answers come up often */
            const struct naive_entry *e = &list[below(ENTRIES)];
            unsigned keep = e->bits > 0 && below(3) == 0 ? e->bits - 1 : e->bits;
            for (unsigned b = 0; b < keep; b++) {
                unsigned byte = b / 8, shift = 7 - b % 8;
                a[byte] = (uint8_t)((a[byte] & ~(1u << shift)) | (e->b[byte] & (1u << shift)));
            }
        }
        bool want = naive_contains(list, ENTRIES, a);
        bool got = rd_ipset_contains_raw(s, a, 16);
        if (want != got) {
            char t[INET6_ADDRSTRLEN];
            inet_ntop(AF_INET6, a, t, sizeof t);
            print_error("address %s: set says %d, linear scan %d\n", t, got, want);
        }
        assert_true(want == got);
        hits += got;
    }
    /* both answers were exercised */
    assert_true(hits > PROBES / 10 && hits < PROBES - PROBES / 10);
    rd_ipset_free(s);
    free(list);
}

/* Many overlapping entries in both orders: covered entries are dropped and
 * freezing compacts the storage without changing answers. */
static void test_overlaps(void **state)
{
    (void)state;
    struct rd_ipset *narrow_first = SET("10.1.2.3", "10.1.2.0/24", "10.1.0.0/16", "10.0.0.0/8");
    struct rd_ipset *wide_first = SET("10.0.0.0/8", "10.1.0.0/16", "10.1.2.0/24", "10.1.2.3");
    const char *probes[] = {"10.1.2.3", "10.1.2.4", "10.1.3.0", "10.2.0.0", "9.0.0.0", "11.0.0.0"};
    for (size_t i = 0; i < 6; i++)
        assert_true(has(narrow_first, probes[i]) == has(wide_first, probes[i]));
    assert_true(rd_ipset_mem(narrow_first) == rd_ipset_mem(wide_first));
    rd_ipset_free(narrow_first);
    rd_ipset_free(wide_first);

    struct rd_ipset *dup = SET("1.2.3.4", "1.2.3.4", "1.2.3.5");
    assert_true(has(dup, "1.2.3.4"));
    assert_true(has(dup, "1.2.3.5"));
    assert_false(has(dup, "1.2.3.6"));
    assert_int_equal(rd_ipset_count(dup), 3);
    rd_ipset_free(dup);
}

/* ---- forwarded headers ---- */

/* rd_ip_from_forwarded over an exact-size copy; on success the client's
 * text goes to out. */
static int xff(const char *v, size_t len, const struct rd_ipset *trusted, char *out, char *err, size_t errcap)
{
    char *p = malloc(len ? len : 1);
    assert_non_null(p);
    memcpy(p, v, len);
    struct rd_ipaddr a;
    int rc = rd_ip_from_forwarded(p, len, trusted, &a, err, errcap);
    if (rc == 0)
        assert_true(rd_ipaddr_format(&a, out, 46) > 0);
    free(p);
    return rc;
}

static void expect_client(const struct rd_ipset *trusted, const char *header, const char *want)
{
    char out[46] = "", err[160] = "";
    int rc = xff(header, strlen(header), trusted, out, err, sizeof err);
    if (rc != 0 || strcmp(out, want) != 0)
        print_error("X-Forwarded-For <%s>: rc %d <%s> %s, wanted %s\n", header, rc, out, err, want);
    assert_int_equal(rc, 0);
    assert_string_equal(out, want);
}

static void expect_xff_error(const struct rd_ipset *trusted, const char *header, size_t len, const char *want)
{
    char out[46] = "", err[160] = "";
    int rc = xff(header, len, trusted, out, err, sizeof err);
    if (rc != RD_EINVAL || strstr(err, want) == NULL)
        print_error("X-Forwarded-For <%s>: rc %d, message <%s>, wanted <%s>\n", header, rc, err, want);
    assert_int_equal(rc, RD_EINVAL);
    assert_non_null(strstr(err, want));
}

static void test_forwarded(void **state)
{
    (void)state;
    struct rd_ipset *t = SET("10.0.0.0/8", "192.168.0.1", "::1");
    expect_client(t, "1.2.3.4", "1.2.3.4");
    expect_client(t, "1.2.3.4, 10.0.0.1", "1.2.3.4");
    /* the client made up its leftmost entries: they are never believed */
    expect_client(t, "6.6.6.6, 1.2.3.4, 10.0.0.2, 10.0.0.1", "1.2.3.4");
    expect_client(t, "garbage, 1.2.3.4, 10.0.0.1", "1.2.3.4");
    expect_client(t, "10.0.0.9, 1.2.3.4", "1.2.3.4"); /* a trusted address left of an untrusted one */
    /* only trusted proxies: the leftmost */
    expect_client(t, "10.0.0.3, 192.168.0.1, 10.0.0.1", "10.0.0.3");
    expect_client(t, "::1", "::1");
    /* whitespace, empty elements, several header lines joined */
    expect_client(t, " \t1.2.3.4\t ,, 10.0.0.1 ,", "1.2.3.4");
    expect_client(t, "1.2.3.4,10.0.0.1", "1.2.3.4");
    /* ports and brackets */
    expect_client(t, "1.2.3.4:8080, 10.0.0.1:443", "1.2.3.4");
    expect_client(t, "[2001:db8::1]:443, [::1]", "2001:db8::1");
    expect_client(t, "2001:db8::2, ::1", "2001:db8::2");
    /* v4-mapped proxies are the IPv4 ones */
    expect_client(t, "5.5.5.5, ::ffff:10.0.0.5", "5.5.5.5");
    expect_client(t, "::ffff:5.5.5.5", "5.5.5.5");
    /* nobody trusted: the rightmost */
    expect_client(NULL, "1.1.1.1, 2.2.2.2", "2.2.2.2");

    char out[46], err[160];
    assert_int_equal(xff("", 0, t, out, err, sizeof err), RD_ENOTFOUND);
    assert_int_equal(xff(" , ,\t,", 6, t, out, err, sizeof err), RD_ENOTFOUND);

    expect_xff_error(t, "1.2.3.4, garbage", 16, "X-Forwarded-For: unexpected 'g' at position 10");
    expect_xff_error(t, "1.2.3.4, 10.0.0.1 10.0.0.2", 26, "unexpected byte 0x20 at position 18");
    expect_xff_error(t, "unknown, 10.0.0.1", 17, "unexpected 'u' at position 1");
    expect_xff_error(t, "1.2.3.4\0", 8, "unexpected byte 0x00 at position 8");
    expect_xff_error(t, "1.2.3.4:99999", 13, "port 99999 at position 9 is over 65535");
    expect_xff_error(t, "1.2.3.4:", 8, "bad port at position 9");
    expect_xff_error(t, "[2001:db8::1", 12, "'[' at position 1 has no ']'");
    expect_xff_error(t, "[2001:db8::1]x", 14, "expected ':' and a port after ']'");
    expect_xff_error(t, "[1.2.3.4]", 9, "brackets at position 1 must hold an IPv6 address");
    expect_xff_error(t, "[::1]:8a", 8, "unexpected 'a' at position 8");
    expect_xff_error(t, "10.0.0.*", 8, "wildcards are allowed in patterns only");
    expect_xff_error(t, "1.2.3.4/32", 10, "unexpected '/'");
    char longv[200];
    memset(longv, '1', sizeof longv);
    expect_xff_error(t, longv, sizeof longv, "longer than 64 bytes");
    rd_ipset_free(t);
}

static void test_real_ip_and_client(void **state)
{
    (void)state;
    struct rd_ipaddr a;
    char err[160] = "", out[46];
    assert_int_equal(rd_ip_from_real_ip(" 1.2.3.4\t", 9, &a, err, sizeof err), 0);
    assert_true(rd_ipaddr_format(&a, out, sizeof out) > 0);
    assert_string_equal(out, "1.2.3.4");
    assert_int_equal(rd_ip_from_real_ip("[::1]:80", 8, &a, err, sizeof err), 0);
    assert_int_equal(rd_ip_from_real_ip("  ", 2, &a, err, sizeof err), RD_ENOTFOUND);
    assert_int_equal(rd_ip_from_real_ip("1.2.3.4, 5.6.7.8", 16, &a, err, sizeof err), RD_EINVAL);
    assert_non_null(strstr(err, "X-Real-IP: unexpected ','"));

    struct rd_ipset *t = SET("127.0.0.1");
    struct sockaddr_in proxy = {.sin_family = AF_INET}, other = {.sin_family = AF_INET};
    assert_int_equal(inet_pton(AF_INET, "127.0.0.1", &proxy.sin_addr), 1);
    assert_int_equal(inet_pton(AF_INET, "127.0.0.2", &other.sin_addr), 1);
    const char *h = "9.9.9.9";
    const char *rip = "8.8.8.8";
    const struct sockaddr *P = (const struct sockaddr *)&proxy, *O = (const struct sockaddr *)&other;

    /* an untrusted peer's headers are ignored */
    assert_int_equal(rd_ip_client(O, t, h, 7, rip, 7, &a, err, sizeof err), RD_IP_SOURCE_PEER);
    assert_true(rd_ipaddr_format(&a, out, sizeof out) > 0);
    assert_string_equal(out, "127.0.0.2");
    assert_int_equal(rd_ip_client(P, NULL, h, 7, NULL, 0, &a, err, sizeof err), RD_IP_SOURCE_PEER);
    /* a trusted peer: X-Forwarded-For first, then X-Real-IP, then itself */
    assert_int_equal(rd_ip_client(P, t, h, 7, rip, 7, &a, err, sizeof err), RD_IP_SOURCE_FORWARDED);
    assert_true(rd_ipaddr_format(&a, out, sizeof out) > 0);
    assert_string_equal(out, "9.9.9.9");
    assert_int_equal(rd_ip_client(P, t, NULL, 0, rip, 7, &a, err, sizeof err), RD_IP_SOURCE_REAL_IP);
    assert_true(rd_ipaddr_format(&a, out, sizeof out) > 0);
    assert_string_equal(out, "8.8.8.8");
    assert_int_equal(rd_ip_client(P, t, " ", 1, rip, 7, &a, err, sizeof err), RD_IP_SOURCE_REAL_IP);
    assert_int_equal(rd_ip_client(P, t, NULL, 0, NULL, 0, &a, err, sizeof err), RD_IP_SOURCE_PEER);
    /* a malformed header from a trusted peer: reported, the peer kept */
    assert_int_equal(rd_ip_client(P, t, "nope", 4, rip, 7, &a, err, sizeof err), RD_EPROTO);
    assert_true(rd_ipaddr_format(&a, out, sizeof out) > 0);
    assert_string_equal(out, "127.0.0.1");
    assert_non_null(strstr(err, "X-Forwarded-For"));
    assert_int_equal(rd_ip_client(P, t, NULL, 0, "::1::", 5, &a, err, sizeof err), RD_EPROTO);
    assert_true(rd_ipaddr_format(&a, out, sizeof out) > 0);
    assert_string_equal(out, "127.0.0.1");
    assert_non_null(strstr(err, "X-Real-IP: second '::'"));

    struct sockaddr_un un = {.sun_family = AF_UNIX};
    assert_int_equal(rd_ip_client((const struct sockaddr *)&un, t, NULL, 0, NULL, 0, &a, err, sizeof err), RD_EINVAL);
    rd_ipset_free(t);
}

/* rd_ip_pattern_check (the schema's check) agrees with rd_ipset_add on
 * every verdict and message, reads only its length, and reports host bits. */
static void test_pattern_check(void **state)
{
    (void)state;
    static const char *const pats[] = {
        "10.1.2.3", "10.0.0.0/8", "10.1.2.3/8", "10.0.*", "*", "*.*.*.*", "::1", "2001:db8::/32", "2001:db8::1/32",
        "::ffff:10.0.0.0/104", "10.*.1.2", "10.0.0.0/33", "010.0.0.1", "fe80::1%eth0", "", "10.0", "1.2.3.4 ",
        "2001:db8::*", "10.0.*/16", "300.1.1.1", "::/0", "0.0.0.0/0",
    };
    for (size_t i = 0; i < sizeof pats / sizeof pats[0]; i++) {
        char e1[160] = "", e2[160] = "";
        struct rd_ipset *s = rd_ipset_new();
        int a = rd_ipset_add(s, pats[i], e1, sizeof e1);
        int b = rd_ip_pattern_check(pats[i], strlen(pats[i]), e2, sizeof e2);
        if (a != b || strcmp(e1, e2) != 0)
            fail_msg("%s: add %d '%s', check %d '%s'", pats[i], a, e1, b, e2);
        rd_ipset_free(s);
    }
    assert_int_equal(rd_ip_pattern_check("10.1.2.3/8", 10, NULL, 0), 1);
    assert_int_equal(rd_ip_pattern_check("10.0.0.0/8", 10, NULL, 0), 0);
    /* only len bytes are read: a longer buffer's tail is not part of it */
    assert_int_equal(rd_ip_pattern_check("10.0.0.1garbage", 8, NULL, 0), 0);
    char err[160];
    assert_int_equal(rd_ip_pattern_check("10.0.0.1\0x", 10, err, sizeof err), RD_EINVAL);
    assert_non_null(strstr(err, "NUL"));
}

int main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exact),
        cmocka_unit_test(test_cidr_boundaries),
        cmocka_unit_test(test_host_bits_masked),
        cmocka_unit_test(test_wildcards),
        cmocka_unit_test(test_v4_mapped_and_forms),
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_random_against_linear),
        cmocka_unit_test(test_overlaps),
        cmocka_unit_test(test_forwarded),
        cmocka_unit_test(test_real_ip_and_client),
        cmocka_unit_test(test_pattern_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
