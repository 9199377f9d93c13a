/* See logfan.h. */
#include "obs/logfan.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/mem.h"

/* One formatted event: a record's JSON is a few KiB at most (its fields are
 * fixed-size arrays, escaped at most 6 bytes per byte). */
#define LINE_MAX (64u * 1024u)

void rd_log_fan_init(struct rd_log_fan *f, const struct rd_log_source *src)
{
    memset(f, 0, sizeof *f);
    f->src = *src;
    f->chunk = rd_calloc(RD_LOG_FAN_CHUNK, sizeof *f->chunk);
    rd_buf_init(&f->line, LINE_MAX);
}

void rd_log_fan_free(struct rd_log_fan *f)
{
    if (f == NULL)
        return;
    free(f->chunk);
    f->chunk = NULL;
    rd_buf_free(&f->line);
}

void rd_log_sub_init(struct rd_log_sub *sub, const struct rd_log_out *out, size_t bound)
{
    sub->prev = sub->next = NULL;
    sub->out = *out;
    sub->bound = bound;
    sub->last_seq = 0;
    sub->lossy = sub->failed = false;
    sub->missed = sub->missed_from = sub->sent = sub->lost_events = 0;
}

static void emit(struct rd_log_sub *sub, const struct rd_buf *b)
{
    if (sub->failed)
        return;
    if (sub->out.write(sub->out.ud, b->data, b->len) != 0)
        sub->failed = true;
}

int rd_log_sse_event(struct rd_buf *out, const struct rd_log_rec *r)
{
    if (rd_buf_appends(out, "id: ") != 0 || rd_buf_append_u64(out, r->seq) != 0 ||
        rd_buf_appends(out, "\nevent: log\ndata: ") != 0 || rd_log_rec_json(out, r) != 0 ||
        rd_buf_appends(out, "\n\n") != 0)
        return -1;
    return 0;
}

/* The history no longer holds the rows after the subscriber's position:
 * say so, and go on from the oldest it holds. A lossy subscriber counts
 * the gap as missed rows of unknown number: its own `lost` event says
 * where it resumes. */
static void history_gap(struct rd_log_fan *f, struct rd_log_sub *sub, uint64_t first_kept)
{
    uint64_t from = sub->last_seq + 1;
    sub->last_seq = first_kept - 1;
    if (sub->lossy)
        return;
    rd_buf_reset(&f->line);
    (void)rd_buf_printf(&f->line,
                        "event: lost\ndata: {\"reason\":\"history\",\"missed_from\":%llu,\"resumed_at\":%llu}\n\n",
                        (unsigned long long)from, (unsigned long long)first_kept);
    emit(sub, &f->line);
    sub->lost_events++;
}

static void deliver(struct rd_log_fan *f, struct rd_log_sub *sub, const struct rd_log_rec *r)
{
    sub->last_seq = r->seq;
    if (sub->failed || !rd_log_filter_match(&sub->q.f, r))
        return;
    if (!sub->lossy && sub->out.pending(sub->out.ud) >= sub->bound) {
        sub->lossy = true;
        sub->missed = 0;
        sub->missed_from = r->seq;
    }
    if (sub->lossy) {
        sub->missed++;
        return;
    }
    rd_buf_reset(&f->line);
    if (rd_log_sse_event(&f->line, r) != 0)
        return; /* cannot happen for a fixed-size record; skipped rather than cut */
    emit(sub, &f->line);
    sub->sent++;
}

/* Hands the source's rows to the subscribers from `only` (NULL: all). */
static void pump(struct rd_log_fan *f, struct rd_log_sub *only)
{
    for (;;) {
        bool any = false;
        uint64_t lo = UINT64_MAX;
        for (struct rd_log_sub *s = f->head; s; s = s->next) {
            if ((only && s != only) || s->failed)
                continue;
            any = true;
            if (s->last_seq < lo)
                lo = s->last_seq;
        }
        if (!any)
            return;
        uint64_t first_kept = 0;
        size_t n = f->src.since(f->src.ud, lo, f->chunk, RD_LOG_FAN_CHUNK, &first_kept);
        for (struct rd_log_sub *s = f->head; s; s = s->next) {
            if ((only && s != only) || s->failed)
                continue;
            if (first_kept > 0 && s->last_seq + 1 < first_kept)
                history_gap(f, s, first_kept);
        }
        uint64_t prev = lo;
        for (size_t i = 0; i < n; i++) {
            const struct rd_log_rec *r = &f->chunk[i];
            /* The source promises increasing seqs; a row out of order is
             * not passed on twice. */
            if (r->seq <= prev)
                continue;
            prev = r->seq;
            for (struct rd_log_sub *s = f->head; s; s = s->next) {
                if ((only && s != only) || s->last_seq >= r->seq)
                    continue;
                deliver(f, s, r);
            }
        }
        /* A short read is the end of the history; a full one whose rows
         * all were at or below lo would not advance (a broken source). */
        if (n < RD_LOG_FAN_CHUNK || prev == lo)
            return;
    }
}

void rd_log_fan_add(struct rd_log_fan *f, struct rd_log_sub *sub, bool resume, uint64_t after_seq)
{
    uint64_t last = f->src.last_seq(f->src.ud);
    sub->last_seq = resume && after_seq < last ? after_seq : last;
    sub->prev = NULL;
    sub->next = f->head;
    if (f->head)
        f->head->prev = sub;
    f->head = sub;
    f->n++;
    if (sub->last_seq < last)
        pump(f, sub);
}

void rd_log_fan_remove(struct rd_log_fan *f, struct rd_log_sub *sub)
{
    if (sub->prev)
        sub->prev->next = sub->next;
    else if (f->head == sub)
        f->head = sub->next;
    else
        return; /* not in the list */
    if (sub->next)
        sub->next->prev = sub->prev;
    sub->prev = sub->next = NULL;
    f->n--;
}

void rd_log_fan_pump(struct rd_log_fan *f)
{
    for (struct rd_log_sub *s = f->head; s; s = s->next)
        rd_log_sub_poke(s);
    pump(f, NULL);
}

void rd_log_sub_poke(struct rd_log_sub *sub)
{
    if (!sub->lossy || sub->failed || sub->out.pending(sub->out.ud) > sub->bound / 2)
        return;
    char line[192];
    int len = snprintf(
        line, sizeof line,
        "event: lost\ndata: {\"reason\":\"slow\",\"missed\":%llu,\"missed_from\":%llu,\"resumed_at\":%llu}\n\n",
        (unsigned long long)sub->missed, (unsigned long long)sub->missed_from, (unsigned long long)(sub->last_seq + 1));
    sub->lossy = false;
    sub->missed = 0;
    if (sub->out.write(sub->out.ud, line, (size_t)len) != 0)
        sub->failed = true;
    sub->lost_events++;
}

void rd_log_sub_heartbeat(struct rd_log_sub *sub, int64_t now_ms)
{
    if (sub->failed || sub->out.pending(sub->out.ud) >= sub->bound)
        return;
    char ts[32];
    rd_log_iso8601(now_ms, ts, sizeof ts);
    char line[64];
    int len = snprintf(line, sizeof line, ": heartbeat %s\n\n", ts);
    if (sub->out.write(sub->out.ud, line, (size_t)len) != 0)
        sub->failed = true;
}
