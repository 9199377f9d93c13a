#include "util/log.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util/buf.h"
#include "util/err.h"
#include "util/json.h"

static enum rd_log_level min_level = RD_LOG_INFO;
static enum rd_log_format line_format = RD_LOG_TEXT;
static int out_fd = 2;
static const char *const names[] = {"trace", "debug", "info", "warn", "error"};
static const char *const format_names[] = {"text", "json"};

void rd_log_set_level(enum rd_log_level lvl)
{
    min_level = lvl;
}

/* The index of s in names_[0..n), or -1. */
static int find_name(const char *const *names_, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(s, names_[i]) == 0)
            return (int)i;
    return -1;
}

int rd_log_parse_level(const char *s, enum rd_log_level *out)
{
    int i = find_name(names, sizeof names / sizeof names[0], s);
    if (i < 0)
        return RD_EINVAL;
    *out = (enum rd_log_level)i;
    return 0;
}

void rd_log_set_format(enum rd_log_format fmt)
{
    line_format = fmt;
}

int rd_log_parse_format(const char *s, enum rd_log_format *out)
{
    int i = find_name(format_names, sizeof format_names / sizeof format_names[0], s);
    if (i < 0)
        return RD_EINVAL;
    *out = (enum rd_log_format)i;
    return 0;
}

void rd_log_set_fd(int fd)
{
    out_fd = fd;
}

int rd_log_enabled(enum rd_log_level lvl)
{
    return lvl >= min_level;
}

/* A logfmt value goes out bare when it cannot be mistaken for anything
 * else (proxy names and request ids normally), else quoted like the message. */
static bool is_bare(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= ' ' || c >= 0x7f || c == '"' || c == '=' || c == '\\')
            return false;
    }
    return n > 0;
}

static int text_field(struct rd_buf *out, const char *key, const char *v)
{
    size_t n = strlen(v);
    if (rd_buf_append(out, " ", 1) < 0 || rd_buf_appends(out, key) < 0 || rd_buf_append(out, "=", 1) < 0)
        return RD_ETOOBIG;
    if (is_bare(v, n))
        return rd_buf_append(out, v, n);
    return rd_json_append_str(out, v, n) < 0 ? RD_ETOOBIG : 0;
}

static int json_field(struct rd_buf *out, const char *key, const char *v)
{
    if (rd_buf_append(out, ",\"", 2) < 0 || rd_buf_appends(out, key) < 0 || rd_buf_append(out, "\":", 2) < 0)
        return RD_ETOOBIG;
    return rd_json_append_str(out, v, strlen(v)) < 0 ? RD_ETOOBIG : 0;
}

int rd_log_render(struct rd_buf *out, enum rd_log_format fmt, uint64_t now_ms, enum rd_log_level lvl, const char *proxy,
                  const char *req, const char *msg)
{
    time_t secs = (time_t)(now_ms / 1000u);
    struct tm tm;
    if (gmtime_r(&secs, &tm) == NULL)
        memset(&tm, 0, sizeof tm);
    char ts[80]; /* room for any int fields, which gcc cannot rule out */
    snprintf(ts, sizeof ts, "%04d-%02d-%02dT%02d:%02d:%02d.%03uZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
             tm.tm_hour, tm.tm_min, tm.tm_sec, (unsigned)(now_ms % 1000u));
    const char *level = (unsigned)lvl < sizeof names / sizeof names[0] ? names[lvl] : "error";
    int (*field)(struct rd_buf *, const char *, const char *) = fmt == RD_LOG_JSON ? json_field : text_field;
    int rc;
    if (fmt == RD_LOG_JSON)
        rc = rd_buf_printf(out, "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":", ts, level);
    else
        rc = rd_buf_printf(out, "ts=%s level=%s msg=", ts, level);
    if (rc < 0 || rd_json_append_str(out, msg, strlen(msg)) < 0)
        return RD_ETOOBIG;
    if (proxy && proxy[0] && field(out, "proxy", proxy) < 0)
        return RD_ETOOBIG;
    if (req && req[0] && field(out, "req", req) < 0)
        return RD_ETOOBIG;
    if (fmt == RD_LOG_JSON && rd_buf_append(out, "}", 1) < 0)
        return RD_ETOOBIG;
    return rd_buf_append(out, "\n", 1);
}

static void vlog(enum rd_log_level lvl, const char *proxy, const char *req, const char *fmt, va_list ap)
    __attribute__((format(printf, 4, 0)));

static void vlog(enum rd_log_level lvl, const char *proxy, const char *req, const char *fmt, va_list ap)
{
    char msg[RD_LOG_MSG_MAX];
    if (vsnprintf(msg, sizeof msg, fmt, ap) < 0)
        snprintf(msg, sizeof msg, "(unprintable log message)");
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    uint64_t now_ms = (uint64_t)now.tv_sec * 1000u + (uint64_t)now.tv_nsec / 1000000u;
    /* The message is capped and escaping at most sextuples it, so the line
     * always fits; the cap only guards against a runaway proxy name. */
    struct rd_buf line;
    rd_buf_init(&line, 8 * RD_LOG_MSG_MAX);
    if (rd_log_render(&line, line_format, now_ms, lvl, proxy, req, msg) < 0) {
        rd_buf_reset(&line);
        if (rd_log_render(&line, line_format, now_ms, lvl, NULL, NULL, "(log line too long)") < 0) {
            rd_buf_free(&line);
            return;
        }
    }
    /* One write per line keeps lines from different threads whole (pipes
     * and files opened O_APPEND write up to PIPE_BUF atomically, and a
     * terminal or a regular file in practice all of it). */
    size_t off = 0;
    while (off < line.len) {
        ssize_t n = write(out_fd, line.data + off, line.len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break; /* nowhere left to report it */
        off += (size_t)n;
    }
    rd_buf_free(&line);
}

void rd_log(enum rd_log_level lvl, const char *fmt, ...)
{
    if (lvl < min_level)
        return;
    va_list ap;
    va_start(ap, fmt);
    vlog(lvl, NULL, NULL, fmt, ap);
    va_end(ap);
}

void rd_log_req(enum rd_log_level lvl, const char *proxy, const char *req, const char *fmt, ...)
{
    if (lvl < min_level)
        return;
    va_list ap;
    va_start(ap, fmt);
    vlog(lvl, proxy, req, fmt, ap);
    va_end(ap);
}
