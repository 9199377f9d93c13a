/* Process log to stderr: one line per event, UTC timestamp, level, message.
 * Never pass secrets (API keys, Authorization values) to these functions. */
#ifndef RD_UTIL_LOG_H
#define RD_UTIL_LOG_H

enum rd_log_level { RD_LOG_TRACE, RD_LOG_DEBUG, RD_LOG_INFO, RD_LOG_WARN, RD_LOG_ERROR };

/* Sets the minimum level printed (default INFO). Call before threads start. */
void rd_log_set_level(enum rd_log_level lvl);
/* Parses "trace|debug|info|warn|error"; returns 0 or RD_EINVAL. */
int rd_log_parse_level(const char *s, enum rd_log_level *out);
int rd_log_enabled(enum rd_log_level lvl);
void rd_log(enum rd_log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define rd_trace(...) do { if (rd_log_enabled(RD_LOG_TRACE)) rd_log(RD_LOG_TRACE, __VA_ARGS__); } while (0)
#define rd_debug(...) do { if (rd_log_enabled(RD_LOG_DEBUG)) rd_log(RD_LOG_DEBUG, __VA_ARGS__); } while (0)
#define rd_info(...) rd_log(RD_LOG_INFO, __VA_ARGS__)
#define rd_warn(...) rd_log(RD_LOG_WARN, __VA_ARGS__)
#define rd_error(...) rd_log(RD_LOG_ERROR, __VA_ARGS__)

#endif
