/* Process log to stderr: one line per event, structured and levelled.
 *
 * Text (the default) is logfmt:
 *   ts=2026-12-04T14:56:18.123Z level=info msg="..." proxy=NAME req=req_...
 * JSON is one object per line:
 *   {"ts":"2026-12-04T14:56:18.123Z","level":"info","msg":"...","proxy":"NAME","req":"req_..."}
 * The message is always quoted and escaped (quotes, backslashes, control
 * characters, invalid UTF-8), so one event is exactly one line whatever it
 * holds. proxy and req appear only on request-scoped lines (rd_log_req).
 * Never pass secrets (API keys, Authorization values) to these functions. */
#ifndef RD_UTIL_LOG_H
#define RD_UTIL_LOG_H

#include <stdarg.h>
#include <stdint.h>

enum rd_log_level { RD_LOG_TRACE, RD_LOG_DEBUG, RD_LOG_INFO, RD_LOG_WARN, RD_LOG_ERROR };
enum rd_log_format { RD_LOG_TEXT, RD_LOG_JSON };

/* Messages longer than this (before escaping) are cut. */
#define RD_LOG_MSG_MAX 2048

/* Sets the minimum level printed (default INFO). Call before threads start. */
void rd_log_set_level(enum rd_log_level lvl);
/* Parses "trace|debug|info|warn|error"; returns 0 or RD_EINVAL. */
int rd_log_parse_level(const char *s, enum rd_log_level *out);
/* Sets the line format (default RD_LOG_TEXT). Call before threads start. */
void rd_log_set_format(enum rd_log_format fmt);
/* Parses "text|json"; returns 0 or RD_EINVAL. */
int rd_log_parse_format(const char *s, enum rd_log_format *out);
/* Sets the file descriptor lines are written to (default 2, stderr); for
 * tests. The descriptor stays the caller's. Call before threads start. */
void rd_log_set_fd(int fd);
int rd_log_enabled(enum rd_log_level lvl);

/* Logs one event if lvl is enabled. Any thread: each line goes out in one
 * write(2), so lines of different threads never interleave. */
void rd_log(enum rd_log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The same with the proxy's name and the request's id (the X-Request-Id and
 * request log id) as fields; either may be NULL or "" to leave it out.
 * Both are borrowed for the call. */
void rd_log_req(enum rd_log_level lvl, const char *proxy, const char *req, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Appends one line (newline included) to out for the given time in ms
 * since the epoch; proxy and req as for rd_log_req, msg any bytes up to its
 * NUL. Returns 0 or RD_ETOOBIG (out's maximum reached; out then holds a
 * partial line). Pure: rd_log uses it, and so do the tests. */
struct rd_buf;
int rd_log_render(struct rd_buf *out, enum rd_log_format fmt, uint64_t now_ms, enum rd_log_level lvl, const char *proxy,
                  const char *req, const char *msg);

#define rd_trace(...) do { if (rd_log_enabled(RD_LOG_TRACE)) rd_log(RD_LOG_TRACE, __VA_ARGS__); } while (0)
#define rd_debug(...) do { if (rd_log_enabled(RD_LOG_DEBUG)) rd_log(RD_LOG_DEBUG, __VA_ARGS__); } while (0)
#define rd_info(...) rd_log(RD_LOG_INFO, __VA_ARGS__)
#define rd_warn(...) rd_log(RD_LOG_WARN, __VA_ARGS__)
#define rd_error(...) rd_log(RD_LOG_ERROR, __VA_ARGS__)

/* Request-scoped (src/proxy/req.h wraps them as rd_req_warn(req, ...) and co.).
 * rd_log_req checks the level before any formatting; the trace and debug
 * macros check it before the call too, so their arguments are not even
 * evaluated when the level is off. */
#define rd_trace_req(proxy, req, ...)                                                                                  \
    do {                                                                                                               \
        if (rd_log_enabled(RD_LOG_TRACE))                                                                              \
            rd_log_req(RD_LOG_TRACE, proxy, req, __VA_ARGS__);                                                         \
    } while (0)
#define rd_debug_req(proxy, req, ...)                                                                                  \
    do {                                                                                                               \
        if (rd_log_enabled(RD_LOG_DEBUG))                                                                              \
            rd_log_req(RD_LOG_DEBUG, proxy, req, __VA_ARGS__);                                                         \
    } while (0)
#define rd_info_req(proxy, req, ...) rd_log_req(RD_LOG_INFO, proxy, req, __VA_ARGS__)
#define rd_warn_req(proxy, req, ...) rd_log_req(RD_LOG_WARN, proxy, req, __VA_ARGS__)
#define rd_error_req(proxy, req, ...) rd_log_req(RD_LOG_ERROR, proxy, req, __VA_ARGS__)

#endif
