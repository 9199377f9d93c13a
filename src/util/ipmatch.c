#include "util/ipmatch.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/err.h"
#include "util/hash.h"
#include "util/mem.h"

/* A 128-bit key, most significant bit first: bit 0 is the top bit of hi. */
struct key {
    uint64_t hi, lo;
};

#define NONE UINT32_MAX

/* A trie node stands for the prefix key/len. Path compression: a node with
 * one child is never kept, so an internal node has two children, a leaf is
 * terminal, and the trie has fewer than twice as many nodes as entries. A
 * terminal node has no children: everything under an entry is in the set
 * already, so a lookup that reaches one stops there. */
struct node {
    struct key key; /* masked to len bits */
    uint32_t child[2];
    uint8_t len; /* 0..128 */
    bool terminal;
};

struct rd_ipset {
    struct node *nodes;
    uint32_t n_nodes, cap_nodes;
    uint32_t root;
    size_t count;
    bool frozen;
};

/* ---- keys ---- */

static struct key key_of(const struct rd_ipaddr *a)
{
    struct key k = {0, 0};
    for (int i = 0; i < 8; i++) {
        k.hi = k.hi << 8 | a->b[i];
        k.lo = k.lo << 8 | a->b[i + 8];
    }
    return k;
}

static struct key key_mask(struct key k, unsigned len)
{
    if (len == 0)
        return (struct key){0, 0};
    if (len <= 64) {
        k.hi &= len == 64 ? UINT64_MAX : ~(UINT64_MAX >> len);
        k.lo = 0;
    } else if (len < 128) {
        k.lo &= ~(UINT64_MAX >> (len - 64));
    }
    return k;
}

static unsigned key_bit(struct key k, unsigned i)
{
    return i < 64 ? (unsigned)(k.hi >> (63 - i)) & 1u : (unsigned)(k.lo >> (127 - i)) & 1u;
}

/* Length of the common prefix of a and b, 0..128. */
static unsigned key_common(struct key a, struct key b)
{
    uint64_t x = a.hi ^ b.hi;
    if (x)
        return (unsigned)__builtin_clzll(x);
    x = a.lo ^ b.lo;
    return x ? 64u + (unsigned)__builtin_clzll(x) : 128u;
}

static bool key_has_prefix(struct key k, struct key prefix, unsigned len)
{
    struct key m = key_mask(k, len);
    return m.hi == prefix.hi && m.lo == prefix.lo;
}

/* ---- the set ---- */

struct rd_ipset *rd_ipset_new(void)
{
    struct rd_ipset *s = rd_calloc(1, sizeof *s);
    s->root = NONE;
    return s;
}

void rd_ipset_free(struct rd_ipset *s)
{
    if (s == NULL)
        return;
    free(s->nodes);
    free(s);
}

static uint32_t node_new(struct rd_ipset *s, struct key k, unsigned len, bool terminal)
{
    /* capacity was reserved by the caller, so no pointer into nodes moves */
    uint32_t i = s->n_nodes++;
    s->nodes[i] = (struct node){.key = k, .child = {NONE, NONE}, .len = (uint8_t)len, .terminal = terminal};
    return i;
}

static void reserve(struct rd_ipset *s, uint32_t more)
{
    if (s->n_nodes + more <= s->cap_nodes)
        return;
    uint32_t cap = s->cap_nodes ? s->cap_nodes * 2 : 64;
    while (cap < s->n_nodes + more)
        cap *= 2;
    s->nodes = rd_realloc(s->nodes, (size_t)cap * sizeof *s->nodes);
    s->cap_nodes = cap;
}

/* Inserts the prefix k/len (k already masked). */
static void trie_insert(struct rd_ipset *s, struct key k, unsigned len)
{
    reserve(s, 2);
    uint32_t *link = &s->root;
    for (;;) {
        if (*link == NONE) {
            *link = node_new(s, k, len, true);
            return;
        }
        struct node *n = &s->nodes[*link];
        unsigned c = key_common(k, n->key);
        if (c > len)
            c = len;
        if (c > n->len)
            c = n->len;
        if (c == n->len) {
            if (n->terminal)
                return; /* covered by an entry already */
            if (len == n->len) {
                /* the new entry covers the subtree: it becomes a leaf (the
                 * orphaned nodes are dropped by rd_ipset_freeze) */
                n->terminal = true;
                n->child[0] = n->child[1] = NONE;
                return;
            }
            link = &n->child[key_bit(k, n->len)];
            continue;
        }
        /* k and n part below n's prefix */
        uint32_t old = *link;
        if (c == len) {
            *link = node_new(s, k, len, true); /* covers old: old is dropped */
            return;
        }
        uint32_t fork = node_new(s, key_mask(k, c), c, false);
        uint32_t leaf = node_new(s, k, len, true);
        s->nodes[fork].child[key_bit(k, c)] = leaf;
        s->nodes[fork].child[key_bit(s->nodes[old].key, c)] = old;
        *link = fork;
        return;
    }
}

bool rd_ipset_contains_addr(const struct rd_ipset *s, const struct rd_ipaddr *a)
{
    struct key k = key_of(a);
    uint32_t i = s->root;
    while (i != NONE) {
        const struct node *n = &s->nodes[i];
        if (!key_has_prefix(k, n->key, n->len))
            return false;
        if (n->terminal)
            return true;
        i = n->child[key_bit(k, n->len)]; /* an internal node is shorter than 128 */
    }
    return false;
}

/* Copies the subtree at i of from into s (depth is at most 129). */
static uint32_t copy_subtree(struct rd_ipset *s, const struct node *from, uint32_t i)
{
    if (i == NONE)
        return NONE;
    uint32_t j = node_new(s, from[i].key, from[i].len, from[i].terminal);
    uint32_t c0 = copy_subtree(s, from, from[i].child[0]);
    uint32_t c1 = copy_subtree(s, from, from[i].child[1]);
    s->nodes[j].child[0] = c0;
    s->nodes[j].child[1] = c1;
    return j;
}

static uint32_t count_subtree(const struct node *nodes, uint32_t i)
{
    if (i == NONE)
        return 0;
    return 1 + count_subtree(nodes, nodes[i].child[0]) + count_subtree(nodes, nodes[i].child[1]);
}

void rd_ipset_freeze(struct rd_ipset *s)
{
    if (s->frozen)
        return;
    s->frozen = true;
    /* Compact: entries covered by later wider ones left unreachable nodes,
     * and the array grew by doubling. */
    struct node *old = s->nodes;
    uint32_t live = count_subtree(old, s->root);
    s->nodes = live ? rd_malloc((size_t)live * sizeof *s->nodes) : NULL;
    s->n_nodes = 0;
    s->cap_nodes = live;
    s->root = copy_subtree(s, old, s->root);
    free(old);
}

size_t rd_ipset_count(const struct rd_ipset *s)
{
    return s->count;
}

size_t rd_ipset_mem(const struct rd_ipset *s)
{
    return sizeof *s + (size_t)s->cap_nodes * sizeof *s->nodes;
}

/* ---- parsing ---- */

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}


/* Describes byte c for a message: "'x'" or "byte 0x1f". */
static const char *show(char c, char *buf, size_t cap)
{
    unsigned char u = (unsigned char)c;
    if (u > 0x20 && u < 0x7f)
        snprintf(buf, cap, "'%c'", c);
    else
        snprintf(buf, cap, "byte 0x%02x", u);
    return buf;
}

static int bad_char(char c, size_t pos, char *err, size_t errcap)
{
    char b[16];
    if (c == '%')
        rd_seterr(err, errcap, "IPv6 zone index ('%%...') at position %zu is not supported", pos + 1);
    else
        rd_seterr(err, errcap, "unexpected %s at position %zu", show(c, b, sizeof b), pos + 1);
    return RD_EINVAL;
}

/* Parses a dotted IPv4 p[0..n) whose first byte is at position base of the
 * whole text. With allow_wild, trailing octets may be '*' and fewer than 4
 * octets may be given when the last one is '*'. Sets out[0..4) (wildcard
 * octets 0) and *fixed to the count of numeric octets. */
static int parse_v4(const char *p, size_t n, size_t base, bool allow_wild, uint8_t out[4], unsigned *fixed, char *err,
                    size_t errcap)
{
    unsigned labels = 0, numeric = 0;
    bool wild = false;
    size_t i = 0;
    memset(out, 0, 4);
    for (;;) {
        size_t start = i;
        if (labels == 4) {
            rd_seterr(err, errcap, "more than 4 octets: extra text at position %zu", base + start + 1);
            return RD_EINVAL;
        }
        if (i < n && p[i] == '*') {
            if (!allow_wild) {
                rd_seterr(err, errcap, "'*' at position %zu: wildcards are allowed in patterns only", base + i + 1);
                return RD_EINVAL;
            }
            i++;
            if (i < n && p[i] != '.') {
                rd_seterr(err, errcap, "'*' at position %zu must be a whole octet", base + start + 1);
                return RD_EINVAL;
            }
            wild = true;
        } else {
            unsigned v = 0;
            while (i < n && is_digit(p[i])) {
                if (i - start == 3) {
                    rd_seterr(err, errcap, "octet at position %zu has more than 3 digits", base + start + 1);
                    return RD_EINVAL;
                }
                v = v * 10 + (unsigned)(p[i] - '0');
                i++;
            }
            if (i == start) {
                if (i < n && p[i] != '.')
                    return bad_char(p[i], base + i, err, errcap);
                rd_seterr(err, errcap, "empty octet at position %zu", base + start + 1);
                return RD_EINVAL;
            }
            if (i < n && p[i] == '*') {
                rd_seterr(err, errcap, "'*' at position %zu must be a whole octet", base + i + 1);
                return RD_EINVAL;
            }
            if (i < n && p[i] != '.')
                return bad_char(p[i], base + i, err, errcap);
            if (i - start > 1 && p[start] == '0') {
                rd_seterr(err, errcap, "octet at position %zu has a leading zero (some tools read it as octal)",
                          base + start + 1);
                return RD_EINVAL;
            }
            if (v > 255) {
                rd_seterr(err, errcap, "octet %u at position %zu is over 255", v, base + start + 1);
                return RD_EINVAL;
            }
            if (wild) {
                rd_seterr(err, errcap,
                          "octet at position %zu follows a '*': wildcards must be whole trailing octets "
                          "(e.g. 10.0.*.*)",
                          base + start + 1);
                return RD_EINVAL;
            }
            out[numeric++] = (uint8_t)v;
        }
        labels++;
        if (i == n)
            break;
        i++; /* the '.' */
        if (i == n) {
            rd_seterr(err, errcap, "address ends with '.' at position %zu", base + i);
            return RD_EINVAL;
        }
    }
    if (!wild && labels < 4) {
        rd_seterr(err, errcap, "only %u of 4 octets (for a range write e.g. 10.0.* or 10.0.0.0/16)", labels);
        return RD_EINVAL;
    }
    *fixed = numeric;
    return 0;
}

/* Parses an IPv6 address p[0..n) (RFC 4291 text, with an optional dotted
 * IPv4 tail), the first byte at position base. */
static int parse_v6(const char *p, size_t n, size_t base, uint8_t out[16], char *err, size_t errcap)
{
    uint16_t g[8];
    unsigned ng = 0;
    int gap = -1; /* index in g where '::' stands */
    size_t i = 0;
    if (n == 0) {
        rd_seterr(err, errcap, "empty address");
        return RD_EINVAL;
    }
    if (p[0] == ':') {
        if (n < 2 || p[1] != ':') {
            rd_seterr(err, errcap, "address starts with a single ':' (position %zu)", base + 1);
            return RD_EINVAL;
        }
        gap = 0;
        i = 2;
    }
    while (i < n) {
        size_t start = i;
        unsigned v = 0;
        while (i < n && rd_hex_value(p[i]) >= 0 && i - start < 5) {
            v = v * 16 + (unsigned)rd_hex_value(p[i]);
            i++;
        }
        if (i < n && p[i] == '.') {
            /* dotted IPv4 tail: the last 32 bits, and the end of the text */
            if (ng > 6) {
                rd_seterr(err, errcap, "too many groups before the IPv4 part at position %zu", base + start + 1);
                return RD_EINVAL;
            }
            uint8_t v4[4];
            unsigned fixed;
            int rc = parse_v4(p + start, n - start, base + start, false, v4, &fixed, err, errcap);
            if (rc < 0)
                return rc;
            g[ng++] = (uint16_t)(v4[0] << 8 | v4[1]);
            g[ng++] = (uint16_t)(v4[2] << 8 | v4[3]);
            i = n;
            break;
        }
        if (i == start) {
            if (i < n && p[i] != ':')
                return bad_char(p[i], base + i, err, errcap);
            rd_seterr(err, errcap, "empty group at position %zu ('::' may appear once)", base + i + 1);
            return RD_EINVAL;
        }
        if (i - start > 4) {
            rd_seterr(err, errcap, "group at position %zu has more than 4 hex digits", base + start + 1);
            return RD_EINVAL;
        }
        if (ng == 8) {
            rd_seterr(err, errcap, "more than 8 groups at position %zu", base + start + 1);
            return RD_EINVAL;
        }
        g[ng++] = (uint16_t)v;
        if (i == n)
            break;
        if (p[i] != ':')
            return bad_char(p[i], base + i, err, errcap);
        i++;
        if (i == n) {
            rd_seterr(err, errcap, "address ends with a single ':' (position %zu)", base + i);
            return RD_EINVAL;
        }
        if (p[i] == ':') {
            if (gap >= 0) {
                rd_seterr(err, errcap, "second '::' at position %zu", base + i);
                return RD_EINVAL;
            }
            gap = (int)ng;
            i++;
        }
    }
    if (gap < 0 && ng != 8) {
        rd_seterr(err, errcap, "only %u of 8 groups and no '::'", ng);
        return RD_EINVAL;
    }
    if (gap >= 0 && ng > 7) {
        rd_seterr(err, errcap, "'::' stands for no group: 8 groups are given already");
        return RD_EINVAL;
    }
    unsigned zeros = 8 - ng, o = 0;
    for (unsigned k = 0; k < ng; k++) {
        if ((int)k == gap)
            for (unsigned z = 0; z < zeros; z++, o++)
                out[2 * o] = out[2 * o + 1] = 0;
        out[2 * o] = (uint8_t)(g[k] >> 8);
        out[2 * o + 1] = (uint8_t)g[k];
        o++;
    }
    if (gap == (int)ng)
        for (unsigned z = 0; z < zeros; z++, o++)
            out[2 * o] = out[2 * o + 1] = 0;
    return 0;
}

static void set_v4(struct rd_ipaddr *a, const uint8_t v4[4])
{
    memset(a->b, 0, 10);
    a->b[10] = a->b[11] = 0xff;
    memcpy(a->b + 12, v4, 4);
}

static bool has_byte(const char *p, size_t n, char c)
{
    return memchr(p, c, n) != NULL;
}

/* Parses an address p[0..n) starting at position base: IPv6 if it holds a
 * ':', IPv4 otherwise (wildcards when allow_wild, *bits then counts the
 * fixed bits in the 128-bit space). */
static int parse_addr(const char *p, size_t n, size_t base, bool allow_wild, struct rd_ipaddr *out, unsigned *bits,
                      char *err, size_t errcap)
{
    if (n == 0) {
        rd_seterr(err, errcap, "empty address");
        return RD_EINVAL;
    }
    if (has_byte(p, n, ':')) {
        *bits = 128;
        return parse_v6(p, n, base, out->b, err, errcap);
    }
    uint8_t v4[4];
    unsigned fixed;
    int rc = parse_v4(p, n, base, allow_wild, v4, &fixed, err, errcap);
    if (rc < 0)
        return rc;
    set_v4(out, v4);
    *bits = 96 + 8 * fixed;
    return 0;
}

int rd_ipaddr_parse(const char *text, size_t len, struct rd_ipaddr *out, char *err, size_t errcap)
{
    if (len > RD_IP_MAX_TEXT) {
        rd_seterr(err, errcap, "address longer than %u bytes", RD_IP_MAX_TEXT);
        return RD_EINVAL;
    }
    unsigned bits;
    return parse_addr(text, len, 0, false, out, &bits, err, errcap);
}

/* Parses the prefix length p[0..n) (after the '/' at position base - 1). */
static int parse_prefix(const char *p, size_t n, size_t base, unsigned max, unsigned *out, char *err, size_t errcap)
{
    if (n == 0) {
        rd_seterr(err, errcap, "missing prefix length after '/' at position %zu", base);
        return RD_EINVAL;
    }
    unsigned v = 0;
    for (size_t i = 0; i < n; i++) {
        if (!is_digit(p[i])) {
            char b[16];
            rd_seterr(err, errcap, "prefix length: unexpected %s at position %zu", show(p[i], b, sizeof b),
                      base + i + 1);
            return RD_EINVAL;
        }
        if (i == 3) {
            rd_seterr(err, errcap, "prefix length at position %zu is over %u", base + 1, max);
            return RD_EINVAL;
        }
        v = v * 10 + (unsigned)(p[i] - '0');
    }
    if (n > 1 && p[0] == '0') {
        rd_seterr(err, errcap, "prefix length at position %zu has a leading zero", base + 1);
        return RD_EINVAL;
    }
    if (v > max) {
        rd_seterr(err, errcap, "prefix length /%u at position %zu is over %u (the %s maximum)", v, base + 1, max,
                  max == 32 ? "IPv4" : "IPv6");
        return RD_EINVAL;
    }
    *out = v;
    return 0;
}

/* Parses pattern[0..n) (n <= RD_IP_MAX_TEXT, n > 0) into the address a and
 * the count of fixed bits in the 128-bit space. */
static int parse_pattern(const char *pattern, size_t n, struct rd_ipaddr *a, unsigned *bits, char *err, size_t errcap)
{
    const char *slash = memchr(pattern, '/', n);
    size_t alen = slash ? (size_t)(slash - pattern) : n;
    bool v6 = has_byte(pattern, alen, ':');
    if (slash && has_byte(pattern, alen, '*')) {
        rd_seterr(err, errcap, "a wildcard pattern takes no /prefix (position %zu)", alen + 1);
        return RD_EINVAL;
    }
    int rc = parse_addr(pattern, alen, 0, !v6, a, bits, err, errcap);
    if (rc < 0)
        return rc;
    if (slash) {
        unsigned plen;
        rc = parse_prefix(slash + 1, n - alen - 1, alen + 1, v6 ? 128 : 32, &plen, err, errcap);
        if (rc < 0)
            return rc;
        *bits = v6 ? plen : 96 + plen;
    }
    return 0;
}

static int check_length(size_t n, char *err, size_t errcap)
{
    if (n > RD_IP_MAX_TEXT) {
        rd_seterr(err, errcap, "pattern longer than %u bytes", RD_IP_MAX_TEXT);
        return RD_EINVAL;
    }
    if (n == 0) {
        rd_seterr(err, errcap, "empty pattern");
        return RD_EINVAL;
    }
    return 0;
}

/* Parses a pattern into its network key (the bits past the prefix
 * cleared) and prefix length. Returns 1 when the pattern had bits set past
 * its prefix (10.1.2.3/8), 0, or a negative RD_E* with err filled. */
static int parse_masked(const char *pattern, size_t len, struct key *m, unsigned *bits, char *err, size_t errcap)
{
    struct rd_ipaddr a;
    int rc = parse_pattern(pattern, len, &a, bits, err, errcap);
    if (rc < 0)
        return rc;
    struct key k = key_of(&a);
    *m = key_mask(k, *bits);
    return m->hi != k.hi || m->lo != k.lo ? 1 : 0;
}

int rd_ip_pattern_check(const char *pattern, size_t len, char *err, size_t errcap)
{
    int rc = check_length(len, err, errcap);
    if (rc < 0)
        return rc;
    if (memchr(pattern, '\0', len) != NULL) {
        rd_seterr(err, errcap, "pattern contains a NUL byte");
        return RD_EINVAL;
    }
    struct key m;
    unsigned bits;
    return parse_masked(pattern, len, &m, &bits, err, errcap);
}

int rd_ipset_add(struct rd_ipset *s, const char *pattern, char *err, size_t errcap)
{
    if (s->frozen) {
        rd_seterr(err, errcap, "the address set is frozen");
        return RD_ESTATE;
    }
    size_t n = strnlen(pattern, RD_IP_MAX_TEXT + 1);
    int rc = check_length(n, err, errcap);
    if (rc < 0)
        return rc;
    if (s->count >= RD_IPSET_MAX_ENTRIES) {
        rd_seterr(err, errcap, "more than %u entries", RD_IPSET_MAX_ENTRIES);
        return RD_ETOOBIG;
    }
    struct key m;
    unsigned bits;
    rc = parse_masked(pattern, n, &m, &bits, err, errcap);
    if (rc < 0)
        return rc;
    trie_insert(s, m, bits);
    s->count++;
    return rc;
}

/* ---- lookups by other address forms ---- */

int rd_ipaddr_from_sockaddr(const struct sockaddr *sa, struct rd_ipaddr *out)
{
    if (sa == NULL)
        return RD_EINVAL;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
        uint8_t v4[4];
        memcpy(v4, &in->sin_addr, 4);
        set_v4(out, v4);
        return 0;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
        memcpy(out->b, &in6->sin6_addr, 16);
        return 0;
    }
    return RD_EINVAL;
}

bool rd_ipset_contains(const struct rd_ipset *s, const struct sockaddr *sa)
{
    struct rd_ipaddr a;
    return rd_ipaddr_from_sockaddr(sa, &a) == 0 && rd_ipset_contains_addr(s, &a);
}

bool rd_ipset_contains_text(const struct rd_ipset *s, const char *text, size_t len)
{
    struct rd_ipaddr a;
    return rd_ipaddr_parse(text, len, &a, NULL, 0) == 0 && rd_ipset_contains_addr(s, &a);
}

bool rd_ipset_contains_raw(const struct rd_ipset *s, const void *bytes, size_t len)
{
    struct rd_ipaddr a;
    if (len == 4)
        set_v4(&a, bytes);
    else if (len == 16)
        memcpy(a.b, bytes, 16);
    else
        return false;
    return rd_ipset_contains_addr(s, &a);
}

bool rd_ipaddr_is_v4(const struct rd_ipaddr *a)
{
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    return memcmp(a->b, mapped, 12) == 0;
}

int rd_ipaddr_format(const struct rd_ipaddr *a, char *out, size_t cap)
{
    char buf[INET6_ADDRSTRLEN];
    if (rd_ipaddr_is_v4(a))
        snprintf(buf, sizeof buf, "%u.%u.%u.%u", a->b[12], a->b[13], a->b[14], a->b[15]);
    else if (inet_ntop(AF_INET6, a->b, buf, sizeof buf) == NULL)
        return RD_EINVAL;
    size_t n = strlen(buf);
    if (cap == 0)
        return RD_ETOOBIG;
    snprintf(out, cap, "%s", buf);
    return n < cap ? (int)n : RD_ETOOBIG;
}

/* ---- forwarded headers ---- */

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* Parses one header element p[0..n) (no surrounding whitespace): an
 * address, "[v6]", "[v6]:port" or "v4:port". base is its position in the
 * header, for messages. */
static int parse_host_port(const char *p, size_t n, size_t base, struct rd_ipaddr *out, char *err, size_t errcap)
{
    if (n > RD_IP_MAX_TEXT) {
        rd_seterr(err, errcap, "element at position %zu is longer than %u bytes", base + 1, RD_IP_MAX_TEXT);
        return RD_EINVAL;
    }
    const char *port = NULL;
    size_t alen = n, abase = base;
    const char *addr = p;
    unsigned bits;
    if (n > 0 && p[0] == '[') {
        const char *close = memchr(p, ']', n);
        if (close == NULL) {
            rd_seterr(err, errcap, "'[' at position %zu has no ']'", base + 1);
            return RD_EINVAL;
        }
        addr = p + 1;
        abase = base + 1;
        alen = (size_t)(close - addr);
        size_t rest = n - alen - 2;
        if (rest > 0) {
            if (close[1] != ':') {
                rd_seterr(err, errcap, "expected ':' and a port after ']' at position %zu", base + alen + 2);
                return RD_EINVAL;
            }
            port = close + 2;
        }
        if (!has_byte(addr, alen, ':')) {
            rd_seterr(err, errcap, "brackets at position %zu must hold an IPv6 address", base + 1);
            return RD_EINVAL;
        }
    } else {
        const char *colon = memchr(p, ':', n);
        if (colon && memchr(colon + 1, ':', n - (size_t)(colon - p) - 1) == NULL &&
            has_byte(p, (size_t)(colon - p), '.')) {
            alen = (size_t)(colon - p);
            port = colon + 1;
        }
    }
    if (port) {
        size_t plen = n - (size_t)(port - p);
        unsigned v = 0;
        if (plen == 0 || plen > 5) {
            rd_seterr(err, errcap, "bad port at position %zu", base + (size_t)(port - p) + 1);
            return RD_EINVAL;
        }
        for (size_t i = 0; i < plen; i++) {
            if (!is_digit(port[i]))
                return bad_char(port[i], base + (size_t)(port - p) + i, err, errcap);
            v = v * 10 + (unsigned)(port[i] - '0');
        }
        if (v > 65535) {
            rd_seterr(err, errcap, "port %u at position %zu is over 65535", v, base + (size_t)(port - p) + 1);
            return RD_EINVAL;
        }
    }
    return parse_addr(addr, alen, abase, false, out, &bits, err, errcap);
}

int rd_ip_from_forwarded(const char *xff, size_t len, const struct rd_ipset *trusted, struct rd_ipaddr *out, char *err,
                         size_t errcap)
{
    size_t end = len;
    struct rd_ipaddr cur;
    bool found = false;
    for (;;) {
        while (end > 0 && (xff[end - 1] == ',' || is_ows(xff[end - 1])))
            end--;
        if (end == 0)
            break;
        size_t start = end;
        while (start > 0 && xff[start - 1] != ',')
            start--;
        size_t s = start;
        while (is_ows(xff[s]))
            s++; /* stops at end at the latest: xff[end - 1] is not OWS */
        char why[160];
        if (parse_host_port(xff + s, end - s, s, &cur, why, sizeof why) < 0) {
            rd_seterr(err, errcap, "X-Forwarded-For: %s", why);
            return RD_EINVAL;
        }
        found = true;
        if (trusted == NULL || !rd_ipset_contains_addr(trusted, &cur)) {
            *out = cur;
            return 0;
        }
        end = start;
    }
    if (!found)
        return RD_ENOTFOUND;
    *out = cur; /* every element is a trusted proxy: the leftmost is the client */
    return 0;
}

int rd_ip_from_real_ip(const char *v, size_t len, struct rd_ipaddr *out, char *err, size_t errcap)
{
    size_t s = 0, e = len;
    while (s < e && is_ows(v[s]))
        s++;
    while (e > s && is_ows(v[e - 1]))
        e--;
    if (s == e)
        return RD_ENOTFOUND;
    char why[160];
    if (parse_host_port(v + s, e - s, s, out, why, sizeof why) < 0) {
        rd_seterr(err, errcap, "X-Real-IP: %s", why);
        return RD_EINVAL;
    }
    return 0;
}

int rd_ip_client(const struct sockaddr *peer, const struct rd_ipset *trusted, const char *xff, size_t xff_len,
                 const char *xrip, size_t xrip_len, struct rd_ipaddr *out, char *err, size_t errcap)
{
    struct rd_ipaddr p;
    if (rd_ipaddr_from_sockaddr(peer, &p) < 0) {
        rd_seterr(err, errcap, "peer is not an IPv4 or IPv6 socket address");
        return RD_EINVAL;
    }
    return rd_ip_client_addr(&p, trusted, xff, xff_len, xrip, xrip_len, out, err, errcap);
}

int rd_ip_client_addr(const struct rd_ipaddr *peer, const struct rd_ipset *trusted, const char *xff, size_t xff_len,
                      const char *xrip, size_t xrip_len, struct rd_ipaddr *out, char *err, size_t errcap)
{
    const struct rd_ipaddr p = *peer;
    *out = p;
    if (trusted == NULL || !rd_ipset_contains_addr(trusted, &p))
        return RD_IP_SOURCE_PEER;
    if (xff) {
        int rc = rd_ip_from_forwarded(xff, xff_len, trusted, out, err, errcap);
        if (rc == 0)
            return RD_IP_SOURCE_FORWARDED;
        if (rc != RD_ENOTFOUND)
            return RD_EPROTO;
    }
    if (xrip) {
        int rc = rd_ip_from_real_ip(xrip, xrip_len, out, err, errcap);
        if (rc == 0)
            return RD_IP_SOURCE_REAL_IP;
        if (rc != RD_ENOTFOUND) {
            *out = p;
            return RD_EPROTO;
        }
    }
    return RD_IP_SOURCE_PEER;
}
