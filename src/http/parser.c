/* HTTP/1.1 request parser: llhttp in its strict default mode (no lenient
 * flags) plus the checks llhttp 8.1 leaves out. Measured against llhttp 8.1,
 * llhttp by itself rejects Content-Length with Transfer-Encoding, duplicate
 * Content-Length, NUL in values and most invalid header-name bytes; it
 * accepts obs-fold, "Name :" (space before the colon), an empty field name,
 * control bytes in the request-target and in values, a CR followed by any
 * byte at the end of the head, bare LF line ends, "Transfer-Encoding: gzip,
 * chunked", Transfer-Encoding in HTTP/1.0 and versions 0.9/2.0. The callbacks
 * below reject all of those. parser.h states the event contract. */
#include "http/parser.h"

#include <limits.h>
#include <llhttp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/err.h"
#include "util/mem.h"

enum phase {
    PH_READ,       /* reading head or body */
    PH_HEAD_EVENT, /* EV_HEAD reported; llhttp paused */
    PH_DONE,       /* EV_MESSAGE reported; llhttp paused */
    PH_ERROR,      /* failed; sticky until rd_http_parser_next() */
};

struct rd_http_parser {
    llhttp_t ll;
    struct rd_http_request req;
    size_t max_head;
    size_t max_body_default;
    size_t max_body;     /* current message's cap */
    size_t head_bytes;   /* bytes of this message's head consumed so far */
    size_t trailer_bytes;
    struct rd_buf acc;   /* target or "name" + "value" being assembled */
    size_t name_len;     /* length of the name at the front of acc */
    enum phase phase;
    enum rd_http_event ev; /* set by a callback during llhttp_execute */
    bool in_message;
    bool head_done;
    char framing_prev;   /* the last framing byte scanned, '\0' if none */
    const char *scan;    /* framing bytes before this were checked */
    int err;
    int status;
    const char *errmsg;
    int pending_status;      /* error found by a callback that has no */
    const char *pending_msg; /* position; raised in execute(), see defer() */
};

static struct rd_http_parser *from_ll(llhttp_t *ll)
{
    return ll->data;
}

/* Records the first error; callbacks then return non-zero to stop llhttp. */
static int fail(struct rd_http_parser *p, int status, const char *msg)
{
    if (p->phase != PH_ERROR) {
        p->phase = PH_ERROR;
        p->status = status;
        p->errmsg = msg;
        p->err = (status == 413 || status == 431) ? RD_ETOOBIG : RD_EPROTO;
    }
    return p->err;
}

/* For errors found in callbacks that get no byte position (on_url_complete,
 * on_header_field_complete, on_headers_complete): the callback pauses llhttp instead, and execute()
 * first checks the framing up to where llhttp stopped, then raises this.
 * That keeps errors in byte order whatever the feed split (see scan_to). */
static int defer(struct rd_http_parser *p, int status, const char *msg)
{
    if (p->pending_status == 0) {
        p->pending_status = status;
        p->pending_msg = msg;
    }
    return -1;
}

/* Checks the framing bytes from p->scan up to end (request line, header and
 * trailer lines, chunk-size lines; on_body moves p->scan past body data, so
 * this never sees it): every CR must start a CRLF, every LF must end one, and
 * no line may start with SP or HTAB. In the framing a line that starts with
 * whitespace is always a continuation line (obs-fold), whichever state llhttp
 * thinks it is in: llhttp 8.1 accepts folds, and for "Name:" CRLF SP "value"
 * it even reports "value" as if it were on the first line.
 *
 * It runs once per execute() over what was consumed, and on_body runs it up
 * to the body data. So that errors come out in byte order whatever the feed
 * split, a callback about to fail first scans up to its span (span_fail), a
 * callback without a position defers its error (defer), and execute() scans
 * up to llhttp's own error position. */
static int scan_to(struct rd_http_parser *p, const char *end)
{
    const char *from = p->scan;
    if (end <= from)
        return 0;
    p->scan = end;
    /* memchr passes (SIMD in glibc) rather than a byte loop: this runs over
     * every head, and valid framing has few CRs and LFs. */
    char prev = p->framing_prev;
    if (prev == '\r' && from[0] != '\n')
        return fail(p, 400, "bare CR in request framing");
    for (const char *q = from; (q = memchr(q, '\r', (size_t)(end - q))) != NULL; q++)
        if (q + 1 < end && q[1] != '\n')
            return fail(p, 400, "bare CR in request framing");
    for (const char *q = from; (q = memchr(q, '\n', (size_t)(end - q))) != NULL; q++) {
        if ((q > from ? q[-1] : prev) != '\r')
            return fail(p, 400, "bare LF in request framing");
        if (q + 1 < end && (q[1] == ' ' || q[1] == '\t'))
            return fail(p, 400, "obsolete line folding in header");
    }
    if (prev == '\n' && (from[0] == ' ' || from[0] == '\t'))
        return fail(p, 400, "obsolete line folding in header");
    p->framing_prev = end[-1];
    return 0;
}

/* True if s[0..n) has a control byte other than HTAB, or DEL. Eight bytes at
 * a time: a word with no byte below 0x20 and none equal to 0x7f skips the
 * per-byte check (the usual case for header values). */
static bool has_ctl(const char *s, size_t n)
{
    const uint64_t ones = 0x0101010101010101u, highs = 0x8080808080808080u;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t x;
        memcpy(&x, s + i, sizeof x);
        uint64_t low = (x - 0x20 * ones) & ~x & highs;
        uint64_t y = x ^ (0x7f * ones);
        uint64_t del = (y - ones) & ~y & highs;
        if (low | del)
            break;
    }
    for (; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return true;
    }
    return false;
}

/* Fails from a data callback whose span is at[0..n): a framing error in
 * the bytes before takes precedence. Returns the value for llhttp. */
static int span_fail(struct rd_http_parser *p, const char *at, size_t n, int status, const char *msg)
{
    if (scan_to(p, at + n) == 0)
        fail(p, status, msg);
    return HPE_USER;
}

static int acc_append(struct rd_http_parser *p, const char *at, size_t n)
{
    if (rd_buf_append(&p->acc, at, n) < 0)
        return span_fail(p, at, n, 431, "request header fields too large");
    return 0;
}

static int on_message_begin(llhttp_t *ll)
{
    from_ll(ll)->in_message = true;
    return 0;
}

static int on_url(llhttp_t *ll, const char *at, size_t n)
{
    struct rd_http_parser *p = from_ll(ll);
    /* llhttp lets control bytes through in the target; we only accept
     * visible ASCII (RFC 9112 3.2, RFC 3986). */
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)at[i];
        if (c <= 0x20 || c >= 0x7f)
            return span_fail(p, at, n, 400, "invalid character in request target");
    }
    return acc_append(p, at, n);
}

/* Fills path and query from the target (also used by the HTTP/2 front end
 * for :path, so both protocols split alike). Origin-form "/p?q" is the usual
 * case; for absolute-form "http://host/p?q" the path starts after the
 * authority; "*" (OPTIONS) stays "*". A fragment, which clients must not
 * send, ends the path or query. */
void rd_http_split_target(struct rd_http_request *r, const char *t, size_t n)
{
    size_t start = 0;
    if (t[0] != '/' && t[0] != '*') {
        const char *sep = memmem(t, n, "://", 3);
        if (sep != NULL) {
            start = (size_t)(sep + 3 - t);
            while (start < n && t[start] != '/' && t[start] != '?' && t[start] != '#')
                start++;
        }
    }
    size_t end = start;
    while (end < n && t[end] != '?' && t[end] != '#')
        end++;
    r->path = end > start ? rd_arena_strndup(&r->arena, t + start, end - start) : "/";
    r->query = "";
    if (end < n && t[end] == '?') {
        size_t q = end + 1, qe = q;
        while (qe < n && t[qe] != '#')
            qe++;
        r->query = rd_arena_strndup(&r->arena, t + q, qe - q);
    }
}

static int on_url_complete(llhttp_t *ll)
{
    struct rd_http_parser *p = from_ll(ll);
    struct rd_http_request *r = &p->req;
    switch (llhttp_get_method(ll)) {
    case HTTP_GET:
    case HTTP_HEAD:
    case HTTP_POST:
    case HTTP_PUT:
    case HTTP_DELETE:
    case HTTP_OPTIONS:
    case HTTP_PATCH:
        break;
    default:
        defer(p, 501, "unsupported request method");
        return HPE_PAUSED;
    }
    if (p->acc.len == 0) {
        defer(p, 400, "empty request target");
        return HPE_PAUSED;
    }
    r->method = llhttp_method_name((llhttp_method_t)llhttp_get_method(ll));
    r->target = rd_arena_strndup(&r->arena, p->acc.data, p->acc.len);
    rd_http_split_target(r, r->target, p->acc.len);
    rd_buf_reset(&p->acc);
    return 0;
}

/* Trailer fields are validated like header fields but discarded: letting
 * them into req->headers after the head was inspected invites smuggling. */
static int count_trailer(struct rd_http_parser *p, const char *at, size_t n)
{
    if (!p->head_done)
        return 0;
    p->trailer_bytes += n;
    if (p->trailer_bytes > p->max_head)
        return span_fail(p, at, n, 431, "trailer fields too large");
    return 0;
}

static int on_header_field(llhttp_t *ll, const char *at, size_t n)
{
    struct rd_http_parser *p = from_ll(ll);
    int rc = count_trailer(p, at, n);
    return rc ? rc : acc_append(p, at, n);
}

static int on_header_field_complete(llhttp_t *ll)
{
    struct rd_http_parser *p = from_ll(ll);
    p->name_len = p->acc.len;
    if (p->name_len == 0) {
        defer(p, 400, "empty header name");
        return HPE_PAUSED;
    }
    /* llhttp keeps "Name :" as "Name " (RFC 9112 5.1 says reject). */
    if (memchr(p->acc.data, ' ', p->name_len) || memchr(p->acc.data, '\t', p->name_len)) {
        defer(p, 400, "whitespace between header name and colon");
        return HPE_PAUSED;
    }
    return 0;
}

static int on_header_value(llhttp_t *ll, const char *at, size_t n)
{
    struct rd_http_parser *p = from_ll(ll);
    if (has_ctl(at, n))
        return span_fail(p, at, n, 400, "invalid character in header value");
    int rc = count_trailer(p, at, n);
    return rc ? rc : acc_append(p, at, n);
}

static int on_header_value_complete(llhttp_t *ll)
{
    struct rd_http_parser *p = from_ll(ll);
    if (!p->head_done)
        rd_hdrs_add(&p->req.headers, p->acc.data, p->name_len, p->acc.data + p->name_len, p->acc.len - p->name_len);
    rd_buf_reset(&p->acc);
    p->name_len = 0;
    return 0;
}

/* Transfer-Encoding: the codings across all fields must be exactly
 * "chunked" (RFC 9112 6.1). llhttp already rejects codings after chunked. */
static int check_transfer_encoding(struct rd_http_parser *p)
{
    const struct rd_hdrs *h = &p->req.headers;
    size_t fields = 0, codings = 0;
    bool chunked_last = false;
    for (size_t i = 0; i < h->n; i++) {
        if (!rd_hdr_name_eq(h->v[i].name, h->v[i].name_len, "transfer-encoding"))
            continue;
        fields++;
        const char *s = h->v[i].value;
        while (*s) {
            while (*s == ' ' || *s == '\t' || *s == ',')
                s++;
            const char *b = s;
            while (*s && *s != ',')
                s++;
            const char *e = s;
            while (e > b && (e[-1] == ' ' || e[-1] == '\t'))
                e--;
            if (e > b) {
                codings++;
                chunked_last = (size_t)(e - b) == 7 && strncasecmp(b, "chunked", 7) == 0;
            }
        }
    }
    if (fields == 0 && !(p->ll.flags & F_TRANSFER_ENCODING))
        return 0;
    if (p->ll.http_minor == 0)
        return defer(p, 400, "Transfer-Encoding in an HTTP/1.0 request");
    if (!chunked_last)
        return defer(p, 400, "Transfer-Encoding without final chunked");
    if (codings > 1)
        return defer(p, 501, "unsupported transfer coding");
    return 0;
}

static int check_head(struct rd_http_parser *p)
{
    if (p->ll.http_major != 1)
        return defer(p, 505, "HTTP version not supported");
    if (rd_hdrs_count(&p->req.headers, "host") > 1)
        return defer(p, 400, "duplicate Host header");
    if (p->ll.flags & F_CONTENT_LENGTH && p->ll.content_length > (uint64_t)INT64_MAX)
        return defer(p, 413, "request body too large");
    return check_transfer_encoding(p);
}

static int on_headers_complete(llhttp_t *ll)
{
    struct rd_http_parser *p = from_ll(ll);
    struct rd_http_request *r = &p->req;
    if (check_head(p) < 0)
        return HPE_PAUSED;
    r->version_major = ll->http_major;
    r->version_minor = ll->http_minor;
    r->chunked = (ll->flags & F_CHUNKED) != 0;
    r->content_length = (ll->flags & F_CONTENT_LENGTH) ? (int64_t)ll->content_length : -1;
    r->keep_alive = llhttp_should_keep_alive(ll) != 0;
    const char *expect = rd_hdrs_get(&r->headers, "expect");
    r->expect_continue = expect && ll->http_minor >= 1 && strcasecmp(expect, "100-continue") == 0;
    /* We never switch protocols: an Upgrade request is served as a plain
     * request (RFC 9110 7.8 lets a server ignore Upgrade), so clear the flag
     * that would make llhttp stop at HPE_PAUSED_UPGRADE. CONNECT, the other
     * source of the flag, was refused with 501 in on_url_complete. */
    ll->upgrade = 0;
    p->head_done = true;
    p->ev = RD_HTTP_EV_HEAD;
    return HPE_PAUSED;
}

static int on_body(llhttp_t *ll, const char *at, size_t n)
{
    struct rd_http_parser *p = from_ll(ll);
    /* Framing before body data must end in CRLF; a CR here is bare. */
    if (scan_to(p, at) < 0)
        return HPE_USER;
    if (p->framing_prev == '\r') {
        fail(p, 400, "bare CR in request framing");
        return HPE_USER;
    }
    /* body data may start with anything, including whitespace */
    p->framing_prev = '\0';
    p->scan = at + n;
    if (rd_buf_append(&p->req.body, at, n) < 0) {
        fail(p, 413, "request body too large");
        return HPE_USER;
    }
    return 0;
}

static int on_message_complete(llhttp_t *ll)
{
    struct rd_http_parser *p = from_ll(ll);
    p->ev = RD_HTTP_EV_MESSAGE;
    p->in_message = false;
    return HPE_PAUSED;
}

static const llhttp_settings_t settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_url_complete = on_url_complete,
    .on_header_field = on_header_field,
    .on_header_field_complete = on_header_field_complete,
    .on_header_value = on_header_value,
    .on_header_value_complete = on_header_value_complete,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

static void reset_request(struct rd_http_parser *p)
{
    struct rd_http_request *r = &p->req;
    rd_arena_reset(&r->arena);
    rd_hdrs_clear(&r->headers);
    /* A large body buffer is not kept for an idle keep-alive connection. */
    if (r->body.cap > 64u * 1024u)
        rd_buf_free(&r->body);
    else
        rd_buf_reset(&r->body);
    p->max_body = p->max_body_default;
    r->body.max = p->max_body;
    r->method = r->target = r->path = r->query = "";
    r->version_major = r->version_minor = 0;
    r->content_length = -1;
    r->chunked = r->keep_alive = r->expect_continue = false;
    rd_buf_reset(&p->acc);
    p->name_len = 0;
    p->head_bytes = p->trailer_bytes = 0;
    p->phase = PH_READ;
    p->in_message = p->head_done = false;
    p->framing_prev = '\0';
    p->err = p->status = p->pending_status = 0;
    p->errmsg = p->pending_msg = NULL;
}

struct rd_http_parser *rd_http_parser_new(size_t max_head, size_t max_body)
{
    struct rd_http_parser *p = rd_calloc(1, sizeof *p);
    p->max_head = max_head ? max_head : RD_HTTP_MAX_HEAD_DEFAULT;
    p->max_body_default = max_body;
    llhttp_init(&p->ll, HTTP_REQUEST, &settings);
    p->ll.data = p;
    rd_arena_init(&p->req.arena);
    rd_hdrs_init(&p->req.headers, &p->req.arena);
    rd_buf_init(&p->req.body, 0);
    rd_buf_init(&p->acc, p->max_head);
    reset_request(p);
    return p;
}

void rd_http_parser_free(struct rd_http_parser *p)
{
    if (p == NULL)
        return;
    rd_hdrs_free(&p->req.headers);
    rd_buf_free(&p->req.body);
    rd_buf_free(&p->acc);
    rd_arena_free(&p->req.arena);
    free(p);
}

void rd_http_parser_set_max_body(struct rd_http_parser *p, size_t max_body)
{
    p->max_body = max_body;
    p->req.body.max = max_body;
}

/* Maps an llhttp error that none of our callbacks raised. */
static int fail_llhttp(struct rd_http_parser *p, llhttp_errno_t e, const char *data, size_t n)
{
    const char *pos = llhttp_get_error_pos(&p->ll);
    unsigned char c = pos && pos >= data && pos < data + n ? (unsigned char)*pos : 0;
    /* A token that is no method we know is "501 Not Implemented" (RFC 9110
     * 15.6.2); non-token bytes (a TLS hello, binary junk) are malformed. */
    if (e == HPE_INVALID_METHOD && rd_http_is_tchar(c))
        return fail(p, 501, "unsupported request method");
    const char *reason = llhttp_get_error_reason(&p->ll);
    /* llhttp gives this reason only for a well-formed "HTTP/d.d" that it
     * does not support (1.2, 3.0); 0.9 and 2.0 are caught in check_head. */
    if (e == HPE_INVALID_VERSION && reason && strcmp(reason, "Invalid HTTP version") == 0)
        return fail(p, 505, "HTTP version not supported");
    return fail(p, 400, reason ? reason : "malformed request");
}

/* Runs llhttp over data[0..n) and turns the outcome into bytes consumed. */
static int execute(struct rd_http_parser *p, const char *data, size_t n)
{
    p->scan = data;
    p->ev = RD_HTTP_EV_NONE;
    llhttp_errno_t e = llhttp_execute(&p->ll, data, n);
    size_t used = n;
    if (e == HPE_PAUSED) {
        used = (size_t)(llhttp_get_error_pos(&p->ll) - data);
        if (p->pending_status) {
            if (scan_to(p, data + used) < 0)
                return p->err;
            return fail(p, p->pending_status, p->pending_msg);
        }
    } else if (e != HPE_OK) {
        if (p->phase == PH_ERROR)
            return p->err; /* raised by a callback */
        const char *pos = llhttp_get_error_pos(&p->ll);
        if (pos >= p->scan && pos <= data + n && scan_to(p, pos) < 0)
            return p->err; /* an earlier byte was already wrong */
        return fail_llhttp(p, e, data, n);
    }
    if (scan_to(p, data + used) < 0)
        return p->err;
    return (int)used;
}

int rd_http_parser_feed(struct rd_http_parser *p, const char *data, size_t len, enum rd_http_event *ev)
{
    *ev = RD_HTTP_EV_NONE;
    if (p->phase == PH_ERROR)
        return p->err;
    if (p->phase == PH_DONE) {
        *ev = RD_HTTP_EV_MESSAGE;
        return 0;
    }
    if (p->phase == PH_HEAD_EVENT) {
        if (p->req.content_length >= 0 && (uint64_t)p->req.content_length > p->max_body)
            return fail(p, 413, "request body too large");
        p->phase = PH_READ;
        llhttp_resume(&p->ll);
    }
    if (data == NULL || len == 0) {
        data = "";
        len = 0;
    }
    size_t n = len < (size_t)INT_MAX ? len : (size_t)INT_MAX;
    bool head = !p->head_done;
    /* The head is never given more than its remaining allowance, so llhttp
     * cannot buffer-bloat us and the limit is exact: if llhttp eats the whole
     * allowance without finding the end of the head and more bytes are
     * waiting, the head is too large. */
    bool capped = head && len > p->max_head - p->head_bytes;
    if (capped)
        n = p->max_head - p->head_bytes;
    int used = execute(p, data, n);
    if (used < 0)
        return used;
    if (head)
        p->head_bytes += (size_t)used;
    if (p->ev == RD_HTTP_EV_NONE && capped)
        return fail(p, 431, "request header fields too large");
    if (p->ev != RD_HTTP_EV_NONE && p->framing_prev == '\r')
        return fail(p, 400, "bare CR in request framing");
    if (p->ev == RD_HTTP_EV_HEAD)
        p->phase = PH_HEAD_EVENT;
    else if (p->ev == RD_HTTP_EV_MESSAGE)
        p->phase = PH_DONE;
    *ev = p->ev;
    return used;
}

struct rd_http_request *rd_http_parser_request(struct rd_http_parser *p)
{
    return &p->req;
}

void rd_http_parser_next(struct rd_http_parser *p)
{
    /* A fresh llhttp state rather than llhttp_resume(): after a message that
     * is not keep-alive, llhttp 8.1 resumed from the pause silently swallows
     * whatever follows. Resetting also covers next() after an error or in
     * the middle of a message, and costs a small memset. */
    llhttp_reset(&p->ll);
    reset_request(p);
}

bool rd_http_parser_in_message(const struct rd_http_parser *p)
{
    return p->in_message;
}

bool rd_http_parser_head_done(const struct rd_http_parser *p)
{
    return p->head_done;
}

int rd_http_parser_status(const struct rd_http_parser *p)
{
    return p->status;
}

const char *rd_http_parser_errmsg(const struct rd_http_parser *p)
{
    return p->errmsg;
}
