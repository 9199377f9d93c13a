/* See logwriter.h. STUB: the request-log helper writes this file. */
#include "obs/logwriter.h"

#include "util/err.h"

int rd_log_writer_start(const char *store_url, const struct rd_log_writer_cfg *cfg, struct rd_log_writer **out,
                        char *errbuf, size_t errlen)
{
    (void)store_url, (void)cfg;
    *out = NULL;
    rd_seterr(errbuf, errlen, "not built yet");
    return RD_ESTATE;
}

void rd_log_writer_stop(struct rd_log_writer *w)
{
    (void)w;
}

bool rd_log_push(struct rd_log_writer *w, unsigned slot, const struct rd_log_rec *r)
{
    (void)w, (void)slot, (void)r;
    return false;
}

void rd_log_writer_stats(struct rd_log_writer *w, struct rd_log_writer_stats *out)
{
    (void)w;
    *out = (struct rd_log_writer_stats){0};
}

void rd_log_writer_set_notify(struct rd_log_writer *w, uv_loop_t *loop, void (*fn)(void *ud), void *ud)
{
    (void)w, (void)loop, (void)fn, (void)ud;
}

size_t rd_log_history_since(struct rd_log_writer *w, uint64_t after_seq, struct rd_log_rec *out, size_t max,
                            uint64_t *first_kept)
{
    (void)w, (void)after_seq, (void)out, (void)max;
    *first_kept = 0;
    return 0;
}

uint64_t rd_log_last_seq(struct rd_log_writer *w)
{
    (void)w;
    return 0;
}

int rd_log_writer_flush(struct rd_log_writer *w, uint64_t timeout_ms)
{
    (void)w, (void)timeout_ms;
    return 0;
}
