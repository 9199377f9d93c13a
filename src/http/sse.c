/* See sse.h. Lines are processed straight from the chunk when they are
 * complete in it; only a line cut by the end of a chunk is copied. */
#include "http/sse.h"

#include <string.h>

#define DEFAULT_MAX_EVENT (1024u * 1024u)
#define MAX_ID 1024u
/* Longest line kept across chunks: any longer one is a data or event line
 * over the cap (dropped) or a comment, unknown field or over-long id
 * (ignored), whichever pieces it came in. */
#define LINE_CAP(max) (((max) > MAX_ID ? (max) : MAX_ID) + sizeof "event: ")

void rd_sse_init(struct rd_sse *s, size_t max_event)
{
    memset(s, 0, sizeof *s);
    s->max_event = max_event ? max_event : DEFAULT_MAX_EVENT;
    rd_buf_init(&s->line, LINE_CAP(s->max_event));
    rd_buf_init(&s->data, s->max_event + 1);
    rd_buf_init(&s->event, s->max_event + 1);
    rd_buf_init(&s->id, MAX_ID);
}

void rd_sse_reset(struct rd_sse *s)
{
    rd_buf_reset(&s->line);
    rd_buf_reset(&s->data);
    rd_buf_reset(&s->event);
    rd_buf_reset(&s->id);
    s->after_cr = s->started = s->oversized = s->skip_line = false;
    s->bom = 0;
    s->events = s->dropped = 0;
}

void rd_sse_free(struct rd_sse *s)
{
    if (s == NULL)
        return;
    rd_buf_free(&s->line);
    rd_buf_free(&s->data);
    rd_buf_free(&s->event);
    rd_buf_free(&s->id);
}

bool rd_sse_at_boundary(const struct rd_sse *s)
{
    return s->line.len == 0 && s->data.len == 0 && s->event.len == 0 && !s->oversized && !s->skip_line &&
           !s->ref_on;
}

static void clear_event(struct rd_sse *s)
{
    rd_buf_reset(&s->data);
    rd_buf_reset(&s->event);
    s->oversized = false;
    s->ref_on = false;
}

/* Copies a pending zero-copy data line into the data buffer (before a second
 * data line joins it, or before the chunk it points into goes away). */
static void materialize(struct rd_sse *s)
{
    if (!s->ref_on)
        return;
    s->ref_on = false;
    if (rd_buf_append(&s->data, s->ref, s->ref_len) < 0 || rd_buf_append(&s->data, "\n", 1) < 0) {
        s->oversized = true;
        rd_buf_reset(&s->data);
    }
}

static int dispatch(struct rd_sse *s, rd_sse_event_fn fn, void *ud)
{
    if (s->oversized) {
        s->dropped++;
        clear_event(s);
        return 0;
    }
    if (s->data.len == 0 && !s->ref_on) {
        clear_event(s); /* no data: nothing is dispatched (the name is forgotten too) */
        return 0;
    }
    struct rd_sse_event ev = {
        .event = s->event.data ? s->event.data : "",
        .event_len = s->event.len,
        .data = s->ref_on ? s->ref : s->data.data,
        .data_len = s->ref_on ? s->ref_len : s->data.len - 1, /* without the last LF */
        .id = s->id.data ? s->id.data : "",
        .id_len = s->id.len,
    };
    s->events++;
    int rc = fn ? fn(ud, &ev) : 0;
    clear_event(s);
    return rc;
}

static size_t data_len(const struct rd_sse *s)
{
    if (s->ref_on)
        return s->ref_len;
    return s->data.len ? s->data.len - 1 : 0; /* without the last LF */
}

/* One complete line (without its terminator). direct: p points into the
 * chunk being fed (not into the carried line buffer). */
static int line(struct rd_sse *s, const char *p, size_t n, bool direct, rd_sse_event_fn fn, void *ud)
{
    if (n == 0)
        return dispatch(s, fn, ud);
    if (p[0] == ':')
        return 0; /* comment */
    const char *colon = memchr(p, ':', n);
    size_t flen = colon ? (size_t)(colon - p) : n;
    const char *v = colon ? colon + 1 : p + n;
    size_t vlen = colon ? n - flen - 1 : 0;
    if (vlen && v[0] == ' ') {
        v++;
        vlen--;
    }
    if (flen == 4 && memcmp(p, "data", 4) == 0) {
        if (direct && s->data.len == 0 && !s->ref_on && !s->oversized) {
            if (vlen + s->event.len > s->max_event) {
                s->oversized = true;
            } else {
                s->ref = v;
                s->ref_len = vlen;
                s->ref_on = true;
            }
            return 0;
        }
        materialize(s);
        size_t joined = s->data.len + vlen; /* data_len after this line */
        if (joined + s->event.len > s->max_event || rd_buf_append(&s->data, v, vlen) < 0 ||
            rd_buf_append(&s->data, "\n", 1) < 0) {
            s->oversized = true;
            rd_buf_reset(&s->data);
        }
    } else if (flen == 5 && memcmp(p, "event", 5) == 0) {
        rd_buf_reset(&s->event);
        if (data_len(s) + vlen > s->max_event || rd_buf_append(&s->event, v, vlen) < 0)
            s->oversized = true;
    } else if (flen == 2 && memcmp(p, "id", 2) == 0) {
        if (vlen <= MAX_ID && memchr(v, '\0', vlen) == NULL) {
            rd_buf_reset(&s->id);
            (void)rd_buf_append(&s->id, v, vlen); /* an id over 1 KiB is ignored */
        }
    }
    /* "retry" and unknown fields: nothing to do for a relay. */
    return 0;
}

/* A carried line outgrew the line buffer: it is a data or event line over
 * the cap (its event is dropped) or a line that is ignored anyway. */
static void overflow(struct rd_sse *s)
{
    const char *b = s->line.data;
    size_t n = s->line.len;
    if ((n >= 5 && memcmp(b, "data:", 5) == 0) || (n >= 6 && memcmp(b, "event:", 6) == 0) ||
        (n == 4 && memcmp(b, "data", 4) == 0) || (n == 5 && memcmp(b, "event", 5) == 0))
        s->oversized = true;
    s->skip_line = true;
    rd_buf_reset(&s->line);
}

int rd_sse_feed(struct rd_sse *s, const char *p, size_t n, rd_sse_event_fn fn, void *ud)
{
    size_t i = 0;
    /* The BOM may itself be split: bom counts its bytes seen so far. */
    while (!s->started && i < n) {
        if ((unsigned char)p[i] == (unsigned char)"\xEF\xBB\xBF"[s->bom]) {
            i++;
            if (++s->bom == 3)
                s->started = true;
            continue;
        }
        s->started = true; /* not a BOM: the bytes taken so far start the first line */
        (void)rd_buf_append(&s->line, "\xEF\xBB", s->bom);
    }
    if (s->after_cr && i < n) {
        s->after_cr = false;
        if (p[i] == '\n')
            i++;
    }
    while (i < n) {
        /* Find the end of the line, CR or LF: LF by memchr, then a CR before it. */
        const char *lf = memchr(p + i, '\n', n - i);
        size_t end = lf ? (size_t)(lf - p) : n;
        const char *cr = memchr(p + i, '\r', end - i);
        size_t j = cr ? (size_t)(cr - p) : end;
        if (j == n) {
            materialize(s);
            /* Partial line: keep it for the next chunk (or keep skipping it). */
            if (!s->skip_line) {
                size_t room = s->line.max - s->line.len;
                if (rd_buf_append(&s->line, p + i, n - i < room ? n - i : room) < 0 || n - i > room)
                    overflow(s);
            }
            return 0;
        }
        int rc = 0;
        /* Where this line ends, its terminator included: the event a blank
         * line dispatches ends there (a CR last in the piece pairs with an LF
         * that the next piece skips). */
        s->end = p[j] == '\r' && j + 1 < n && p[j + 1] == '\n' ? j + 2 : j + 1;
        if (s->skip_line) {
            s->skip_line = false; /* the end of a line too long to keep: dropped with its event */
        } else if (s->line.len) {
            size_t room = s->line.max - s->line.len;
            if (j - i > room) {
                (void)rd_buf_append(&s->line, p + i, room);
                overflow(s);
                s->skip_line = false;
            } else {
                (void)rd_buf_append(&s->line, p + i, j - i);
                rc = line(s, s->line.data, s->line.len, false, fn, ud);
            }
            rd_buf_reset(&s->line);
        } else {
            rc = line(s, p + i, j - i, true, fn, ud);
        }
        if (p[j] == '\r') {
            if (j + 1 < n) {
                if (p[j + 1] == '\n')
                    j++;
            } else {
                s->after_cr = true;
            }
        }
        i = j + 1;
        if (rc != 0) {
            materialize(s);
            return rc;
        }
    }
    materialize(s);
    return 0;
}
