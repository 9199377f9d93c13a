/* See record.h. STUB: the request-log helper writes this file. */
#include "obs/record.h"

#include <string.h>

#include "proxy/req.h"

void rd_log_rec_from_req(struct rd_log_rec *r, struct rd_req *req)
{
    memset(r, 0, sizeof *r);
    (void)req;
}

int rd_log_rec_json(struct rd_buf *out, const struct rd_log_rec *r)
{
    (void)out, (void)r;
    return -1;
}

const char *rd_log_cache_name(enum rd_log_cache c)
{
    (void)c;
    return NULL;
}

int rd_log_cache_parse(const char *s)
{
    (void)s;
    return -1;
}

void rd_log_iso8601(int64_t ms, char *buf, size_t len)
{
    (void)ms;
    if (len)
        buf[0] = '\0';
}

int rd_log_parse_time(const char *s, int64_t *ms)
{
    (void)s, (void)ms;
    return -1;
}
