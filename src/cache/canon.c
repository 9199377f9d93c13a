/* Canonical JSON for cache keys (canon.h): one pass over the document with
 * bounded recursion (a container per level, at most RD_CANON_MAX_DEPTH),
 * writing the canonical form as it goes. Every read is checked against the
 * end of the document, which need not be NUL-terminated.
 *
 * Objects are written member by member in the order they arrive, each
 * member's span in out remembered on a stack with its unescaped key; when
 * the object closes, members that are not already in strictly increasing
 * key order are sorted (by key, then arrival) and the object's text is
 * rewritten from a copy, keeping the last of equal keys. Nested objects
 * have been rewritten by then, so each level only moves whole members.
 *
 * Unescaped strings are held as WTF-8: UTF-8, except that a lone surrogate
 * from a \u escape is the 3-byte sequence of its code point (ED A0..BF xx),
 * which valid UTF-8 input never contains (it is rejected there). So every
 * distinct string has distinct bytes, keys compare bytewise as canon.h
 * says, and the writer knows which bytes to put back as \uXXXX. */
#include "cache/canon.h"

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/err.h"
#include "util/mem.h"

/* A member of an open object: its key in c->keys, its text in out. */
struct member {
    size_t key_off, key_len;
    size_t off, len; /* '"key":value' in out, without the comma */
    size_t idx;      /* arrival order: ties in the sort keep it, so the last duplicate is found */
    const char *key; /* set just before sorting (c->keys may move while members are parsed) */
};

struct canon {
    const char *p, *end;
    const struct rd_canon_rules *rules;
    struct rd_buf *out;
    struct rd_buf keys; /* unescaped keys of the members of every open object */
    struct rd_buf str;  /* a string value, unescaped */
    struct rd_buf tmp;  /* an object's text while it is rewritten in order */
    struct member *mem; /* members of every open object, innermost last */
    size_t nmem, capmem;
    /* The key of each enclosing member from the top, for rule paths; only
     * path_len of them are meaningful, and only while no array intervenes. */
    struct {
        size_t off, len;
    } path[RD_CANON_MAX_DEPTH];
};

enum rule_hit { HIT_NONE, HIT_DROP, HIT_ROUND };

static int value(struct canon *c, unsigned depth, int path_len);

static int put(struct canon *c, const void *p, size_t n)
{
    return rd_buf_append(c->out, p, n) < 0 ? RD_ETOOBIG : 0;
}

static void skip_ws(struct canon *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}

/* ---- strings ------------------------------------------------------------ */

static int hex4(const char *p, const char *end, unsigned *out)
{
    if (end - p < 4)
        return RD_EPROTO;
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        int d;
        char ch = p[i];
        if (ch >= '0' && ch <= '9')
            d = ch - '0';
        else if (ch >= 'a' && ch <= 'f')
            d = ch - 'a' + 10;
        else if (ch >= 'A' && ch <= 'F')
            d = ch - 'A' + 10;
        else
            return RD_EPROTO;
        v = v * 16 + (unsigned)d;
    }
    *out = v;
    return 0;
}

/* Appends code point cp (surrogates included: WTF-8) to b. */
static int put_cp(struct rd_buf *b, unsigned cp)
{
    unsigned char u[4];
    size_t n;
    if (cp < 0x80) {
        u[0] = (unsigned char)cp;
        n = 1;
    } else if (cp < 0x800) {
        u[0] = (unsigned char)(0xC0 | (cp >> 6));
        u[1] = (unsigned char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        u[0] = (unsigned char)(0xE0 | (cp >> 12));
        u[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (unsigned char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        u[0] = (unsigned char)(0xF0 | (cp >> 18));
        u[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
        u[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        u[3] = (unsigned char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    return rd_buf_append(b, u, n) < 0 ? RD_ETOOBIG : 0;
}

/* The escape after a backslash at c->p (which points past it), appended
 * to b. A high surrogate followed by an escaped low one is one code point;
 * any other surrogate stays alone. */
static int unescape_one(struct canon *c, struct rd_buf *b)
{
    if (c->p >= c->end)
        return RD_EPROTO;
    char e = *c->p++;
    static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
    const char *hit = e ? strchr(from, e) : NULL;
    if (hit)
        return rd_buf_append(b, &to[hit - from], 1) < 0 ? RD_ETOOBIG : 0;
    if (e != 'u')
        return RD_EPROTO;
    unsigned cp, lo;
    if (hex4(c->p, c->end, &cp) < 0)
        return RD_EPROTO;
    c->p += 4;
    if (cp >= 0xD800 && cp <= 0xDBFF && c->end - c->p >= 6 && c->p[0] == '\\' && c->p[1] == 'u' &&
        hex4(c->p + 2, c->end, &lo) == 0 && lo >= 0xDC00 && lo <= 0xDFFF) {
        c->p += 6;
        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
    }
    return put_cp(b, cp);
}

/* Length of the valid UTF-8 sequence starting at p (a byte >= 0x80), or 0:
 * no overlong forms, no surrogates, nothing past U+10FFFF (RFC 3629). */
static size_t utf8_len(const unsigned char *p, const unsigned char *end)
{
    unsigned char b0 = p[0];
    size_t n;
    unsigned char lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    if (b0 >= 0xC2 && b0 <= 0xDF)
        n = 2;
    else if (b0 >= 0xE0 && b0 <= 0xEF) {
        n = 3;
        if (b0 == 0xE0)
            lo = 0xA0;
        else if (b0 == 0xED)
            hi = 0x9F;
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
        n = 4;
        if (b0 == 0xF0)
            lo = 0x90;
        else if (b0 == 0xF4)
            hi = 0x8F;
    } else
        return 0;
    if ((size_t)(end - p) < n || p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if ((p[i] & 0xC0) != 0x80)
            return 0;
    return n;
}

/* True for a byte a string holds as it is: printable ASCII but for the
 * quote and the backslash. */
static inline bool plain_in(unsigned char ch)
{
    return ch >= 0x20 && ch < 0x80 && ch != '"' && ch != '\\';
}

/* The string at c->p (its opening quote), unescaped into b (appended). */
static int string_in(struct canon *c, struct rd_buf *b)
{
    c->p++; /* the opening quote */
    for (;;) {
        /* copy the run of plain ASCII in one append */
        const char *run = c->p;
        while (c->p < c->end && plain_in((unsigned char)*c->p))
            c->p++;
        if (c->p > run && rd_buf_append(b, run, (size_t)(c->p - run)) < 0)
            return RD_ETOOBIG;
        if (c->p >= c->end)
            return RD_EPROTO; /* unterminated */
        unsigned char ch = (unsigned char)*c->p;
        int rc = 0;
        if (ch == '"') {
            c->p++;
            return 0;
        } else if (ch == '\\') {
            c->p++;
            rc = unescape_one(c, b);
        } else if (ch < 0x20) {
            return RD_EPROTO; /* raw control characters must be escaped */
        } else {
            size_t n = utf8_len((const unsigned char *)c->p, (const unsigned char *)c->end);
            if (n == 0)
                return RD_EPROTO;
            rc = rd_buf_append(b, c->p, n) < 0 ? RD_ETOOBIG : 0;
            c->p += n;
        }
        if (rc < 0)
            return rc;
    }
}

/* The escape of s[*i] into esc (advancing *i past a lone surrogate's
 * extra bytes): its length, or 0 when the byte is written as it is. */
static size_t escape_of(const char *s, size_t n, size_t *i, char esc[6])
{
    static const char hexd[] = "0123456789abcdef";
    unsigned char ch = (unsigned char)s[*i];
    esc[0] = '\\';
    switch (ch) {
    case '"': esc[1] = '"'; return 2;
    case '\\': esc[1] = '\\'; return 2;
    case '\n': esc[1] = 'n'; return 2;
    case '\r': esc[1] = 'r'; return 2;
    case '\t': esc[1] = 't'; return 2;
    case '\b': esc[1] = 'b'; return 2;
    case '\f': esc[1] = 'f'; return 2;
    default: break;
    }
    unsigned cp = ch;
    if (ch == 0xED && *i + 2 < n && (unsigned char)s[*i + 1] >= 0xA0) {
        /* a lone surrogate (WTF-8, see above) */
        cp = 0xD000 | (((unsigned char)s[*i + 1] & 0x3Fu) << 6) | ((unsigned char)s[*i + 2] & 0x3Fu);
        *i += 2;
    } else if (ch >= 0x20) {
        return 0;
    }
    esc[1] = 'u';
    for (int k = 0; k < 4; k++)
        esc[2 + k] = hexd[(cp >> (12 - 4 * k)) & 0xF];
    return 6;
}

/* True for a byte written as it is whatever follows (0xED may begin a
 * lone surrogate, escape_of decides). */
static inline bool plain_out(unsigned char ch)
{
    return ch >= 0x20 && ch != '"' && ch != '\\' && ch != 0xED;
}

/* Writes s[0..n) (WTF-8) as a JSON string with the one escaping of canon.h. */
static int string_out(struct canon *c, const char *s, size_t n)
{
    int rc = put(c, "\"", 1);
    size_t run = 0; /* start of the bytes not yet written */
    for (size_t i = 0; i < n && rc == 0; i++) {
        /* skip what is surely written as it is (the common case) */
        while (i < n && plain_out((unsigned char)s[i]))
            i++;
        if (i == n)
            break;
        char esc[6];
        size_t at = i, elen = escape_of(s, n, &i, esc);
        if (elen == 0)
            continue;
        rc = put(c, s + run, at - run);
        if (rc == 0)
            rc = put(c, esc, elen);
        run = i + 1;
    }
    if (rc == 0)
        rc = put(c, s + run, n - run);
    return rc < 0 ? rc : put(c, "\"", 1);
}

/* The string at c->p (its opening quote) when it is plain ASCII without
 * an escape, the common case: its length, with c->p left alone; -1 for
 * any other string (read it the long way). Its canonical form is then
 * its text as it came. */
static ptrdiff_t plain_string(const struct canon *c)
{
    const char *q = c->p + 1;
    while (q < c->end && plain_in((unsigned char)*q))
        q++;
    return q < c->end && *q == '"' ? q - (c->p + 1) : -1;
}

static int string_value(struct canon *c)
{
    ptrdiff_t n = plain_string(c);
    if (n >= 0) {
        int rc = put(c, c->p, (size_t)n + 2); /* with both quotes */
        c->p += n + 2;
        return rc;
    }
    rd_buf_reset(&c->str);
    int rc = string_in(c, &c->str);
    return rc < 0 ? rc : string_out(c, c->str.data, c->str.len);
}

/* ---- numbers and literals ----------------------------------------------- */

static bool is_digit(const char *p, const char *end)
{
    return p < end && *p >= '0' && *p <= '9';
}

/* The number at c->p per RFC 8259's grammar: its text is returned in
 * *s / *n and c->p moves past it. */
static int number_span(struct canon *c, const char **s, size_t *n)
{
    const char *p = c->p, *end = c->end;
    *s = p;
    if (p < end && *p == '-')
        p++;
    if (!is_digit(p, end))
        return RD_EPROTO;
    if (*p == '0')
        p++;
    else
        while (is_digit(p, end))
            p++;
    if (p < end && *p == '.') {
        p++;
        if (!is_digit(p, end))
            return RD_EPROTO;
        while (is_digit(p, end))
            p++;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-'))
            p++;
        if (!is_digit(p, end))
            return RD_EPROTO;
        while (is_digit(p, end))
            p++;
    }
    *n = (size_t)(p - *s);
    c->p = p;
    return 0;
}

/* A number rounded to 2 decimals (canon.h): "%.2f" without trailing zeros
 * or a trailing '.', and "-0" as "0". A number beyond a double's range
 * (1e999) is kept as sent: it has no rounded value. */
/* The common case of put_rounded without strtod and printf: -?D+(.D{1,2})?
 * with at most 15 digits, which a double holds exactly enough that "%.2f"
 * gives back the same digits. Returns false for anything else. */
static bool put_short_decimal(struct canon *c, const char *s, size_t n, int *rc)
{
    size_t i = s[0] == '-', digits = 0, dot = 0;
    bool nonzero = false;
    for (size_t k = i; k < n; k++) {
        if (s[k] == '.' && dot == 0 && k > i) {
            dot = k;
            continue;
        }
        if (s[k] < '0' || s[k] > '9')
            return false;
        nonzero |= s[k] != '0';
        digits++;
    }
    if (digits == 0 || digits > 15 || (dot && (n - dot - 1 == 0 || n - dot - 1 > 2)))
        return false;
    if (!nonzero) { /* 0, -0, 0.00, -0.0 */
        *rc = put(c, "0", 1);
        return true;
    }
    size_t len = n;
    if (dot) {
        while (s[len - 1] == '0')
            len--;
        if (s[len - 1] == '.')
            len--;
    }
    *rc = put(c, s, len);
    return true;
}

static int put_rounded(struct canon *c, const char *s, size_t n)
{
    int fast;
    if (put_short_decimal(c, s, n, &fast))
        return fast;
    char num[400]; /* "%.2f" of a finite double is at most 309 + 4 bytes */
    rd_buf_reset(&c->str);
    if (rd_buf_append(&c->str, s, n) < 0) /* strtod needs the text NUL-terminated */
        return RD_ETOOBIG;
    errno = 0;
    double v = strtod(c->str.data, NULL);
    if (errno == ERANGE && (v > 1.0 || v < -1.0))
        return put(c, s, n); /* overflow (an underflow rounds to 0 below) */
    int len = snprintf(num, sizeof num, "%.2f", v);
    if (len <= 0 || (size_t)len >= sizeof num)
        return put(c, s, n);
    while (num[len - 1] == '0')
        len--;
    if (num[len - 1] == '.')
        len--;
    if (len == 2 && num[0] == '-' && num[1] == '0')
        return put(c, "0", 1);
    return put(c, num, (size_t)len);
}

static int number_value(struct canon *c)
{
    const char *num;
    size_t n;
    int rc = number_span(c, &num, &n);
    return rc < 0 ? rc : put(c, num, n);
}

static int literal(struct canon *c, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, word, n) != 0)
        return RD_EPROTO;
    c->p += n;
    return put(c, word, n);
}

/* ---- rules -------------------------------------------------------------- */

/* True if rule (a dotted path) names the member with key k[0..kn) whose
 * enclosing members' keys are c->path[0..depth). */
static bool rule_matches(const struct canon *c, const char *rule, int depth, const char *k, size_t kn)
{
    const char *r = rule;
    for (int i = 0; i <= depth; i++) {
        const char *dot = strchr(r, '.');
        size_t rn = dot ? (size_t)(dot - r) : strlen(r);
        if (i < depth ? dot == NULL : dot != NULL)
            return false; /* the rule is shorter or longer than the path */
        const char *key = i < depth ? c->keys.data + c->path[i].off : k;
        size_t keyn = i < depth ? c->path[i].len : kn;
        if (!(rn == 1 && r[0] == '*') && (rn != keyn || memcmp(r, key, rn) != 0))
            return false;
        r += rn + 1;
    }
    return true;
}

static bool any_matches(const struct canon *c, const char *const *rules, int depth, const char *k, size_t kn)
{
    for (size_t i = 0; rules && rules[i]; i++)
        if (rule_matches(c, rules[i], depth, k, kn))
            return true;
    return false;
}

/* What the rules say of a member at path depth depth (-1: inside an array,
 * where no rule applies). Drop wins over round. */
static enum rule_hit rule_hit(const struct canon *c, int depth, const char *k, size_t kn)
{
    if (c->rules == NULL || depth < 0)
        return HIT_NONE;
    if (any_matches(c, c->rules->drop, depth, k, kn))
        return HIT_DROP;
    if (any_matches(c, c->rules->round2, depth, k, kn))
        return HIT_ROUND;
    return HIT_NONE;
}

/* ---- containers --------------------------------------------------------- */

static int cmp_member(const void *a, const void *b)
{
    const struct member *x = a, *y = b;
    size_t n = x->key_len < y->key_len ? x->key_len : y->key_len;
    int r = n ? memcmp(x->key, y->key, n) : 0;
    if (r == 0 && x->key_len != y->key_len)
        r = x->key_len < y->key_len ? -1 : 1;
    if (r == 0)
        r = x->idx < y->idx ? -1 : 1;
    return r;
}

static bool same_key(const struct member *x, const struct member *y)
{
    return x->key_len == y->key_len && (x->key_len == 0 || memcmp(x->key, y->key, x->key_len) == 0);
}

/* Puts the members m[0..n) of the object whose text starts at start (just
 * after its '{') in key order, the last of equal keys kept. */
static int order_members(struct canon *c, struct member *m, size_t n, size_t start)
{
    for (size_t i = 0; i < n; i++)
        m[i].key = c->keys.data + m[i].key_off;
    bool sorted = true;
    for (size_t i = 1; i < n && sorted; i++)
        sorted = cmp_member(&m[i - 1], &m[i]) < 0 && !same_key(&m[i - 1], &m[i]);
    if (sorted)
        return 0; /* the common case for small objects: nothing moves */
    if (n <= 16) { /* a request's objects are small: no qsort (and its buffer) */
        for (size_t i = 1; i < n; i++) {
            struct member v = m[i];
            size_t j = i;
            for (; j > 0 && cmp_member(&m[j - 1], &v) > 0; j--)
                m[j] = m[j - 1];
            m[j] = v;
        }
    } else {
        qsort(m, n, sizeof *m, cmp_member);
    }
    rd_buf_reset(&c->tmp);
    if (rd_buf_append(&c->tmp, c->out->data + start, c->out->len - start) < 0)
        return RD_ETOOBIG;
    c->out->len = start;
    bool first = true;
    for (size_t i = 0; i < n; i++) {
        if (i + 1 < n && same_key(&m[i], &m[i + 1]))
            continue; /* a later duplicate follows: it counts */
        int rc = first ? 0 : put(c, ",", 1);
        if (rc == 0)
            rc = put(c, c->tmp.data + (m[i].off - start), m[i].len);
        if (rc < 0)
            return rc;
        first = false;
    }
    return 0;
}

static void push_member(struct canon *c, const struct member *m)
{
    if (c->nmem == c->capmem) {
        c->capmem = c->capmem ? c->capmem * 2 : 32;
        c->mem = rd_realloc(c->mem, c->capmem * sizeof *c->mem);
    }
    c->mem[c->nmem++] = *m;
}

/* A member's value; a number the rules round is rounded. */
static int member_value(struct canon *c, unsigned depth, int path_len, enum rule_hit hit)
{
    if (hit == HIT_ROUND && c->p < c->end && (*c->p == '-' || (*c->p >= '0' && *c->p <= '9'))) {
        const char *num;
        size_t n;
        int rc = number_span(c, &num, &n);
        return rc < 0 ? rc : put_rounded(c, num, n);
    }
    return value(c, depth, path_len);
}

/* One member "key": value at c->p (its key's quote) of an object at path
 * depth path_len (-1: none), after nkept kept members. Returns 1 if it was
 * kept, 0 if a rule dropped it, or a negative code. */
static int member(struct canon *c, unsigned depth, int path_len, size_t nkept)
{
    struct member m = {.key_off = c->keys.len, .idx = c->nmem};
    ptrdiff_t plain = plain_string(c); /* then the key is written as it came */
    const char *raw = c->p;
    int rc = string_in(c, &c->keys);
    if (rc < 0)
        return rc;
    m.key_len = c->keys.len - m.key_off;
    skip_ws(c);
    if (c->p >= c->end || *c->p != ':')
        return RD_EPROTO;
    c->p++;
    skip_ws(c);
    enum rule_hit hit = rule_hit(c, path_len, c->keys.data + m.key_off, m.key_len);
    size_t mark = c->out->len;
    if (hit != HIT_DROP) {
        rc = nkept ? put(c, ",", 1) : 0;
        m.off = c->out->len;
        if (rc == 0)
            rc = plain >= 0 ? put(c, raw, (size_t)plain + 2) : string_out(c, c->keys.data + m.key_off, m.key_len);
        if (rc == 0)
            rc = put(c, ":", 1);
        if (rc < 0)
            return rc;
    }
    /* object() is only entered below RD_CANON_MAX_DEPTH, so the path has room */
    if (path_len >= 0) {
        c->path[path_len].off = m.key_off;
        c->path[path_len].len = m.key_len;
    }
    rc = member_value(c, depth, path_len >= 0 ? path_len + 1 : -1, hit);
    if (rc < 0)
        return rc;
    if (hit == HIT_DROP) {
        /* parsed (so malformed input is still refused) but not written */
        c->out->len = mark;
        c->out->data[mark] = '\0';
        c->keys.len = m.key_off;
        return 0;
    }
    m.len = c->out->len - m.off;
    push_member(c, &m);
    return 1;
}

static int object(struct canon *c, unsigned depth, int path_len)
{
    size_t base = c->nmem, keys_base = c->keys.len;
    int rc = put(c, "{", 1);
    if (rc < 0)
        return rc;
    size_t start = c->out->len, kept = 0;
    c->p++;
    skip_ws(c);
    if (c->p < c->end && *c->p == '}') {
        c->p++;
        return put(c, "}", 1);
    }
    for (;;) {
        if (c->p >= c->end || *c->p != '"')
            return RD_EPROTO;
        rc = member(c, depth, path_len, kept);
        if (rc < 0)
            return rc;
        kept += (size_t)rc;
        skip_ws(c);
        if (c->p < c->end && *c->p == ',') {
            c->p++;
            skip_ws(c);
            continue;
        }
        if (c->p >= c->end || *c->p != '}')
            return RD_EPROTO;
        c->p++;
        break;
    }
    /* c->mem is still NULL when no member was kept anywhere yet */
    rc = c->nmem > base ? order_members(c, c->mem + base, c->nmem - base, start) : 0;
    c->nmem = base;
    c->keys.len = keys_base;
    return rc < 0 ? rc : put(c, "}", 1);
}

static int array(struct canon *c, unsigned depth)
{
    int rc = put(c, "[", 1);
    if (rc < 0)
        return rc;
    c->p++;
    skip_ws(c);
    if (c->p < c->end && *c->p == ']') {
        c->p++;
        return put(c, "]", 1);
    }
    for (bool first = true;; first = false) {
        if (!first && (rc = put(c, ",", 1)) < 0)
            return rc;
        if ((rc = value(c, depth, -1)) < 0)
            return rc;
        skip_ws(c);
        if (c->p < c->end && *c->p == ',') {
            c->p++;
            skip_ws(c);
            continue;
        }
        if (c->p >= c->end || *c->p != ']')
            return RD_EPROTO;
        c->p++;
        break;
    }
    return put(c, "]", 1);
}

/* The value at c->p (no whitespace before it) inside depth containers;
 * path_len keys lead to it from the top (-1: an array is on the way). */
static int value(struct canon *c, unsigned depth, int path_len)
{
    if (c->p >= c->end)
        return RD_EPROTO;
    switch (*c->p) {
    case '{':
    case '[':
        if (depth >= RD_CANON_MAX_DEPTH)
            return RD_ETOOBIG;
        return *c->p == '{' ? object(c, depth + 1, path_len) : array(c, depth + 1);
    case '"': return string_value(c);
    case 't': return literal(c, "true");
    case 'f': return literal(c, "false");
    case 'n': return literal(c, "null");
    default: return number_value(c);
    }
}

int rd_canon_json(const char *doc, size_t len, const struct rd_canon_rules *rules, struct rd_buf *out)
{
    if (doc == NULL)
        return RD_EPROTO; /* no document (and no pointer to offset) */
    struct canon c = {.p = doc, .end = doc + len, .rules = rules, .out = out};
    rd_buf_init(&c.keys, 0);
    rd_buf_init(&c.str, 0);
    rd_buf_init(&c.tmp, 0);
    /* every buffer gets storage up front, so an empty key or an empty out
     * still has a data pointer to index and truncate */
    int rc = put(&c, "", 0);
    if (rd_buf_append(&c.keys, "", 0) < 0 || rd_buf_append(&c.str, "", 0) < 0)
        rc = RD_ETOOBIG;
    if (rc == 0) {
        skip_ws(&c);
        rc = value(&c, 0, 0);
    }
    if (rc == 0) {
        skip_ws(&c);
        if (c.p != c.end)
            rc = RD_EPROTO; /* trailing bytes */
    }
    rd_buf_free(&c.keys);
    rd_buf_free(&c.str);
    rd_buf_free(&c.tmp);
    free(c.mem);
    return rc;
}
