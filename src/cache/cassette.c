/* Cassette lines (cassette.h): an entry to one JSON line and back.
 *
 * Writing goes through the entry's image (image.h); reading builds an
 * image from the line, checking every field, and lets rd_cache_image_build
 * check the rest, so a hostile or hand-edited line is refused with the
 * field and the reason, never half-read. */
#include "cache/cassette.h"

#include <openssl/evp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cache/image.h"
#include "util/err.h"
#include "util/json.h"
#include "util/mem.h"
#include "util/time.h"

/* ---- text helpers ---- */

/* Strict UTF-8 (RFC 3629: no overlong forms, no surrogates, at most
 * U+10FFFF): only such bytes can be written as a JSON string and read back
 * unchanged; anything else goes out as base64. */
static bool is_utf8(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        size_t len;
        uint32_t cp, min;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            len = 2, cp = c & 0x1f, min = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
            len = 3, cp = c & 0x0f, min = 0x800;
        } else if ((c & 0xf8) == 0xf0) {
            len = 4, cp = c & 0x07, min = 0x10000;
        } else {
            return false;
        }
        if (n - i < len)
            return false;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return false;
            cp = cp << 6 | (s[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += len;
    }
    return true;
}

static struct json_object *base64_of(const char *p, size_t n)
{
    size_t out_len = 4 * ((n + 2) / 3);
    unsigned char *b = rd_malloc(out_len + 1);
    /* EVP_EncodeBlock takes an int: pieces are bounded by RD_CACHE_IMAGE_MAX_BODY (1 GiB). */
    int len = EVP_EncodeBlock(b, (const unsigned char *)p, (int)n);
    struct json_object *s = rd_json_new_strn((const char *)b, (size_t)len);
    free(b);
    return s;
}

static bool is_b64_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/';
}

/* Strict base64 (RFC 4648 4, padded, no whitespace) appended to out.
 * EVP_DecodeBlock alone skips whitespace and counts padding as zero bytes. */
static bool base64_append(const char *s, size_t n, struct rd_buf *out)
{
    if (n % 4 != 0)
        return false;
    size_t pad = 0;
    if (n >= 1 && s[n - 1] == '=')
        pad++;
    if (n >= 2 && s[n - 2] == '=')
        pad++;
    for (size_t i = 0; i < n - pad; i++) {
        if (!is_b64_char((unsigned char)s[i]))
            return false;
    }
    if (n == 0)
        return true;
    unsigned char *b = rd_malloc(n / 4 * 3 + 1);
    int len = EVP_DecodeBlock(b, (const unsigned char *)s, (int)n);
    bool ok = len >= 0 && (size_t)len >= pad && rd_buf_append(out, b, (size_t)len - pad) == 0;
    free(b);
    return ok;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? (unsigned)-3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static bool digits(const char *s, size_t n, unsigned *out)
{
    unsigned v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    *out = v;
    return true;
}

/* "YYYY-MM-DDTHH:MM:SS.mmmZ" (what rd_time_format writes; the fraction may
 * be left out), 1970 or later, to epoch ms. */
static bool parse_time(const char *s, size_t n, int64_t *out)
{
    unsigned y, mo, d, h, mi, sec, ms = 0;
    if ((n != 24 && n != 20) || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' ||
        s[n - 1] != 'Z' || (n == 24 && s[19] != '.'))
        return false;
    if (!digits(s, 4, &y) || !digits(s + 5, 2, &mo) || !digits(s + 8, 2, &d) || !digits(s + 11, 2, &h) ||
        !digits(s + 14, 2, &mi) || !digits(s + 17, 2, &sec) || (n == 24 && !digits(s + 20, 3, &ms)))
        return false;
    static const unsigned mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    /* Epoch ms before 1970 are no entry's, and rd_time_format writes only 1970 on. */
    if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h > 23 || mi > 59 || sec > 59)
        return false;
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (mo == 2 && d == 29 && !leap)
        return false;
    int64_t days = days_from_civil(y, mo, d);
    *out = ((days * 24 + h) * 60 + mi) * 60000 + (int64_t)sec * 1000 + ms;
    return true;
}

/* ---- writing ---- */

static const char *content_type(const struct rd_cache_image *im)
{
    for (size_t i = 0; i < im->nhdrs; i++) {
        if (im->hdrs[i].name_len == 12 && strncasecmp(im->hdrs[i].name, "content-type", 12) == 0)
            return im->hdrs[i].value;
    }
    return "";
}

/* One piece of a stream: its bytes as "text" when they are UTF-8 (and
 * base64 is not asked for), else "base64"; with "t_ms" when it ends on a
 * mark, or "unmarked":true for bytes after the last mark. */
static struct json_object *piece(const char *p, size_t n, const struct rd_cache_mark *m, bool b64)
{
    struct json_object *o = json_object_new_object();
    if (m)
        json_object_object_add(o, "t_ms", json_object_new_int64(m->t_ms));
    else
        json_object_object_add(o, "unmarked", json_object_new_boolean(1));
    if (!b64 && is_utf8((const unsigned char *)p, n))
        json_object_object_add(o, "text", rd_json_new_strn(p, n));
    else
        json_object_object_add(o, "base64", base64_of(p, n));
    return o;
}

static void add_stream(struct json_object *line, const struct rd_cache_image *im)
{
    /* AWS event-stream frames are binary; SSE events are text. */
    bool frames = strstr(content_type(im), "vnd.amazon.eventstream") != NULL;
    struct json_object *arr = json_object_new_array();
    const char *body = im->body ? im->body : ""; /* empty events of an empty body */
    uint64_t at = 0;
    for (size_t i = 0; i < im->nmarks; i++) {
        uint64_t end = im->marks[i].end;
        json_object_array_add(arr, piece(body + at, (size_t)(end - at), &im->marks[i], frames));
        at = end;
    }
    if (at < im->body_len)
        json_object_array_add(arr, piece(body + at, (size_t)(im->body_len - at), NULL, frames));
    json_object_object_add(line, frames ? "frames" : "events", arr);
}

/* Nesting depth of v (1 for a scalar), counted up to limit. */
static int depth_of(struct json_object *v, int limit)
{
    if (limit <= 0)
        return 1;
    int d = 0;
    if (json_object_is_type(v, json_type_object)) {
        json_object_object_foreach(v, k, child)
        {
            (void)k;
            int cd = depth_of(child, limit - 1);
            d = cd > d ? cd : d;
        }
    } else if (json_object_is_type(v, json_type_array)) {
        for (size_t i = 0; i < json_object_array_length(v); i++) {
            int cd = depth_of(json_object_array_get_idx(v, i), limit - 1);
            d = cd > d ? cd : d;
        }
    }
    return d + 1;
}

static void add_body(struct json_object *line, const struct rd_cache_image *im)
{
    if (im->stream) {
        add_stream(line, im);
        return;
    }
    const char *b = im->body ? im->body : "";
    struct json_object *parsed = NULL;
    if (strstr(content_type(im), "json") != NULL && rd_json_parse(b, im->body_len, SIZE_MAX, &parsed, NULL) == 0 &&
        depth_of(parsed, RD_JSON_MAX_DEPTH) >= RD_JSON_MAX_DEPTH) {
        /* Inside the line it sits one level deeper: it would not read back. */
        json_object_put(parsed);
        parsed = NULL;
    }
    if (parsed != NULL) {
        size_t len;
        const char *again = rd_json_str(parsed, &len);
        bool same = len == im->body_len && memcmp(again, b, len) == 0;
        json_object_object_add(line, "body", parsed);
        /* It parsed, so it is UTF-8 and fits in a JSON string as it is. */
        if (!same)
            json_object_object_add(line, "body_raw", rd_json_new_strn(b, im->body_len));
    } else if (is_utf8((const unsigned char *)b, im->body_len)) {
        json_object_object_add(line, "body_text", rd_json_new_strn(b, im->body_len));
    } else {
        json_object_object_add(line, "body_base64", base64_of(b, im->body_len));
    }
}

static void add_time(struct json_object *line, const char *name, int64_t ms)
{
    char t[32];
    json_object_object_add(line, name, json_object_new_string(rd_time_format(ms, t, sizeof t)));
}

static struct json_object *line_of(const struct rd_cache_entry *e, const struct rd_cache_image *im)
{
    char key[RD_CACHE_KEY_TEXT_MAX];
    rd_cache_key_text(e, key);
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "key", json_object_new_string(key));
    json_object_object_add(o, "model", json_object_new_string(im->model));
    json_object_object_add(o, "kind", json_object_new_string(rd_cache_kind_name(im->kind)));
    json_object_object_add(o, "method", json_object_new_string(im->method));
    json_object_object_add(o, "path", json_object_new_string(im->path));
    json_object_object_add(o, "status", json_object_new_int(im->status));
    json_object_object_add(o, "headers", rd_cache_image_hdrs_json(im));
    json_object_object_add(o, "stream", json_object_new_boolean(im->stream));
    add_time(o, "created", im->created_ms);
    add_time(o, "expires", im->expires_ms);
    json_object_object_add(o, "ttl_s", json_object_new_int64(im->ttl_s));
    json_object_object_add(o, "hits", json_object_new_uint64(im->hits));
    struct json_object *u = json_object_new_object();
    json_object_object_add(u, "input", json_object_new_int64(im->usage.input));
    json_object_object_add(u, "output", json_object_new_int64(im->usage.output));
    json_object_object_add(u, "cached", json_object_new_int64(im->usage.cached));
    json_object_object_add(u, "cache_write", json_object_new_int64(im->usage.cache_write));
    json_object_object_add(u, "reasoning", json_object_new_int64(im->usage.reasoning));
    json_object_object_add(o, "usage", u);
    if (im->upstream_model[0])
        json_object_object_add(o, "upstream_model", json_object_new_string(im->upstream_model));
    if (im->finish[0])
        json_object_object_add(o, "finish", json_object_new_string(im->finish));
    add_body(o, im);
    return o;
}

int rd_cassette_write(const struct rd_cache_entry *e, struct rd_buf *out)
{
    struct rd_cache_image im;
    rd_cache_image_of(e, &im);
    struct json_object *o = line_of(e, &im);
    size_t len;
    const char *s = rd_json_str(o, &len);
    size_t at = out->len;
    int rc = rd_buf_append(out, s, len);
    if (rc == 0 && (rc = rd_buf_append(out, "\n", 1)) < 0)
        out->len = at; /* never half a line */
    if (out->data)
        out->data[out->len] = '\0';
    json_object_put(o);
    free((char *)im.body);
    return rc;
}

/* ---- reading ---- */

/* What a line is read into; owns what the image borrows. */
struct reading {
    struct rd_cache_image im;
    struct rd_cache_hdr *hdrs;
    struct rd_buf body;
    struct rd_cache_mark *marks;
    size_t nmarks, cap_marks;
    char *err;
    size_t errlen;
};

static bool fail(struct reading *r, const char *field, const char *why)
{
    rd_seterr(r->err, r->errlen, "%s: %s", field, why);
    return false;
}

static bool get_str(struct reading *r, struct json_object *o, const char *name, bool required, const char **out)
{
    struct json_object *v = rd_json_get(o, name);
    if (v == NULL && !required) {
        *out = "";
        return true;
    }
    if (!json_object_is_type(v, json_type_string))
        return fail(r, name, v ? "not a string" : "missing");
    /* The entry keeps C strings: an embedded NUL would cut them silently. */
    if (strlen(json_object_get_string(v)) != (size_t)json_object_get_string_len(v))
        return fail(r, name, "holds a NUL");
    *out = json_object_get_string(v);
    return true;
}

static bool get_int(struct reading *r, struct json_object *o, const char *name, bool required, int64_t lo, int64_t hi,
                    int64_t *out)
{
    struct json_object *v = rd_json_get(o, name);
    if (v == NULL && !required) {
        *out = 0;
        return true;
    }
    if (v == NULL)
        return fail(r, name, "missing");
    if (!rd_json_is_int(v))
        return fail(r, name, "not an integer");
    int64_t x = json_object_get_int64(v);
    /* json-c saturates past int64; a uint64 above INT64_MAX reads as INT64_MAX. */
    if (x < lo || x > hi || (x == INT64_MAX && hi < INT64_MAX))
        return fail(r, name, "out of range");
    *out = x;
    return true;
}

static bool read_key(struct reading *r, struct json_object *o)
{
    const char *text;
    if (!get_str(r, o, "key", true, &text) || !get_str(r, o, "model", true, &r->im.model))
        return false;
    size_t ml = strlen(r->im.model);
    /* The key names its model ("<model>:<64 hex>"): both must agree, or a
     * pattern delete by model would miss it. */
    if (strlen(text) != ml + 65 || strncmp(text, r->im.model, ml) != 0 || text[ml] != ':' ||
        !rd_cache_key_parse(text, r->im.key))
        return fail(r, "key", "not \"<model>:<64 hex>\" with the line's model");
    return true;
}

static bool read_head(struct reading *r, struct json_object *o)
{
    const char *kind;
    int64_t status;
    if (!read_key(r, o) || !get_str(r, o, "kind", true, &kind) || !get_str(r, o, "method", true, &r->im.method) ||
        !get_str(r, o, "path", true, &r->im.path) || !get_int(r, o, "status", true, 200, 299, &status) ||
        !get_str(r, o, "upstream_model", false, &r->im.upstream_model) ||
        !get_str(r, o, "finish", false, &r->im.finish))
        return false;
    if (!rd_cache_kind_parse(kind, &r->im.kind))
        return fail(r, "kind", "not a request type (chat, completion, embedding, ...)");
    r->im.status = (int)status;
    struct json_object *stream = rd_json_get(o, "stream");
    if (!json_object_is_type(stream, json_type_boolean))
        return fail(r, "stream", stream ? "not true or false" : "missing");
    r->im.stream = json_object_get_boolean(stream);
    struct json_object *h = rd_json_get(o, "headers");
    if (h == NULL)
        return fail(r, "headers", "missing");
    return rd_cache_image_hdrs_parse(h, &r->hdrs, &r->im.nhdrs, r->err, r->errlen) == 0;
}

static bool read_time(struct reading *r, struct json_object *o, const char *name, int64_t *out)
{
    const char *s;
    if (!get_str(r, o, name, true, &s))
        return false;
    if (!parse_time(s, strlen(s), out))
        return fail(r, name, "not a UTC time like 2026-12-02T10:00:00.000Z");
    return true;
}

static bool read_meta(struct reading *r, struct json_object *o)
{
    int64_t ttl, hits;
    if (!read_time(r, o, "created", &r->im.created_ms) || !read_time(r, o, "expires", &r->im.expires_ms) ||
        !get_int(r, o, "ttl_s", true, 1, UINT32_MAX, &ttl) || !get_int(r, o, "hits", false, 0, INT64_MAX, &hits))
        return false;
    r->im.ttl_s = (uint32_t)ttl;
    r->im.hits = (uint64_t)hits;
    struct json_object *u = rd_json_get(o, "usage");
    if (!json_object_is_type(u, json_type_object))
        return fail(r, "usage", u ? "not an object" : "missing");
    struct rd_usage *us = &r->im.usage;
    return get_int(r, u, "input", false, -1, INT64_MAX, &us->input) &&
           get_int(r, u, "output", false, -1, INT64_MAX, &us->output) &&
           get_int(r, u, "cached", false, -1, INT64_MAX, &us->cached) &&
           get_int(r, u, "cache_write", false, -1, INT64_MAX, &us->cache_write) &&
           get_int(r, u, "reasoning", false, -1, INT64_MAX, &us->reasoning);
}

/* A string's bytes appended to the body, as text or as base64. */
static bool append_str(struct reading *r, struct json_object *v, bool b64, const char *field)
{
    const char *s = json_object_get_string(v);
    size_t n = (size_t)json_object_get_string_len(v);
    if (b64 ? !base64_append(s, n, &r->body) : rd_buf_append(&r->body, s, n) < 0)
        return fail(r, field, b64 ? "not base64, or the body passes its cap" : "the body passes its cap");
    return true;
}

static bool read_piece(struct reading *r, struct json_object *p, bool last, const char *field)
{
    if (!json_object_is_type(p, json_type_object))
        return fail(r, field, "an element is not an object");
    struct json_object *text = rd_json_get(p, "text"), *b64 = rd_json_get(p, "base64");
    if ((text == NULL) == (b64 == NULL) || !json_object_is_type(text ? text : b64, json_type_string))
        return fail(r, field, "an element needs one string, \"text\" or \"base64\"");
    if (!append_str(r, text ? text : b64, b64 != NULL, field))
        return false;
    if (rd_json_get_bool(p, "unmarked", false)) {
        if (!last)
            return fail(r, field, "only the last element may be unmarked");
        return true;
    }
    int64_t t;
    if (!get_int(r, p, "t_ms", true, 0, UINT32_MAX, &t))
        return false;
    if (r->nmarks == RD_CACHE_IMAGE_MAX_MARKS)
        return fail(r, field, "too many events");
    if (r->nmarks == r->cap_marks) {
        r->cap_marks = r->cap_marks ? 2 * r->cap_marks : 16;
        r->marks = rd_realloc(r->marks, r->cap_marks * sizeof *r->marks);
    }
    r->marks[r->nmarks++] = (struct rd_cache_mark){.end = r->body.len, .t_ms = (uint32_t)t};
    return true;
}

static bool read_stream(struct reading *r, struct json_object *arr, const char *field)
{
    if (!json_object_is_type(arr, json_type_array))
        return fail(r, field, "not an array");
    size_t n = json_object_array_length(arr);
    for (size_t i = 0; i < n; i++) {
        if (!read_piece(r, json_object_array_get_idx(arr, i), i + 1 == n, field))
            return false;
    }
    return true;
}

/* "body" (with "body_raw" when re-serializing it does not give the bytes). */
static bool read_json_body(struct reading *r, struct json_object *body, struct json_object *raw)
{
    if (raw == NULL) {
        size_t len;
        const char *s = rd_json_str(body, &len);
        return rd_buf_append(&r->body, s, len) == 0 || fail(r, "body", "larger than the body cap");
    }
    if (!json_object_is_type(raw, json_type_string))
        return fail(r, "body_raw", "not a string");
    struct json_object *parsed = NULL;
    const char *s = json_object_get_string(raw);
    size_t n = (size_t)json_object_get_string_len(raw);
    if (rd_json_parse(s, n, SIZE_MAX, &parsed, NULL) < 0)
        return fail(r, "body_raw", "not JSON");
    /* Someone edited "body": the edit wins over the stale raw copy. */
    bool same = json_object_equal(parsed, body) != 0;
    json_object_put(parsed);
    if (!same)
        return read_json_body(r, body, NULL);
    return rd_buf_append(&r->body, s, n) == 0 || fail(r, "body_raw", "larger than the body cap");
}

static bool read_body(struct reading *r, struct json_object *o)
{
    static const char *const forms[] = {"body", "body_text", "body_base64", "events", "frames"};
    struct json_object *v = NULL;
    size_t which = 0, found = 0;
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
        struct json_object *x = NULL;
        if (json_object_object_get_ex(o, forms[i], &x)) {
            v = x, which = i;
            found++;
        }
    }
    if (found != 1)
        return fail(r, "body", "a line needs exactly one of body, body_text, body_base64, events, frames");
    bool stream_form = which >= 3;
    if (stream_form != r->im.stream)
        return fail(r, forms[which], "events and frames go with \"stream\":true, the body forms with false");
    if (rd_json_get(o, "body_raw") && which != 0)
        return fail(r, "body_raw", "only goes with \"body\"");
    switch (which) {
    case 0: return read_json_body(r, v, rd_json_get(o, "body_raw"));
    case 1:
    case 2:
        if (!json_object_is_type(v, json_type_string))
            return fail(r, forms[which], "not a string");
        return append_str(r, v, which == 2, forms[which]);
    default: return read_stream(r, v, forms[which]);
    }
}

struct rd_cache_entry *rd_cassette_read(const char *line, size_t len, char *err, size_t errlen)
{
    struct reading r = {.err = err, .errlen = errlen};
    rd_buf_init(&r.body, RD_CACHE_IMAGE_MAX_BODY);
    struct rd_cache_entry *e = NULL;
    struct json_object *o = NULL;
    struct rd_json_err jerr = {0};
    int rc = rd_json_parse(line, len, RD_CASSETTE_LINE_MAX, &o, &jerr);
    if (rc < 0) {
        rd_seterr(err, errlen, "line: %s at byte %zu", jerr.msg ? jerr.msg : rd_strerror(rc), jerr.pos);
        goto out;
    }
    if (!json_object_is_type(o, json_type_object)) {
        rd_seterr(err, errlen, "line: not a JSON object");
        goto out;
    }
    if (!read_head(&r, o) || !read_meta(&r, o) || !read_body(&r, o))
        goto out;
    r.im.hdrs = r.hdrs;
    r.im.body = r.body.data;
    r.im.body_len = r.body.len;
    r.im.marks = r.marks;
    r.im.nmarks = r.nmarks;
    e = rd_cache_image_build(&r.im, err, errlen);
out:
    json_object_put(o);
    free(r.hdrs);
    free(r.marks);
    rd_buf_free(&r.body);
    return e;
}
