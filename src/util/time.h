/* Clocks. Logic that depends on time takes now_ms as a parameter; only the
 * edges (loops, request start) read these. */
#ifndef RD_UTIL_TIME_H
#define RD_UTIL_TIME_H

#include <stddef.h>
#include <stdint.h>

/* Monotonic milliseconds, for deadlines and durations. */
uint64_t rd_time_mono_ms(void);
/* Wall-clock milliseconds since the Unix epoch, for records. */
int64_t rd_time_wall_ms(void);
/* Formats epoch milliseconds as RFC 3339 UTC ("2026-11-27T16:04:30.123Z").
 * out must hold at least 25 bytes. Returns out. */
char *rd_time_format(int64_t epoch_ms, char *out, size_t len);

#endif
