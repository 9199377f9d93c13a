/* CSV rendering of request-log records (record.h). STUB: the log API helper writes this file. */
#include "obs/record.h"

int rd_log_csv_header(struct rd_buf *out)
{
    (void)out;
    return -1;
}

int rd_log_rec_csv(struct rd_buf *out, const struct rd_log_rec *r)
{
    (void)out, (void)r;
    return -1;
}
