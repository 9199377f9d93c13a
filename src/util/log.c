#include "util/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "util/err.h"

static enum rd_log_level min_level = RD_LOG_INFO;
static const char *const names[] = {"trace", "debug", "info", "warn", "error"};

void rd_log_set_level(enum rd_log_level lvl)
{
    min_level = lvl;
}

int rd_log_parse_level(const char *s, enum rd_log_level *out)
{
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (strcmp(s, names[i]) == 0) {
            *out = (enum rd_log_level)i;
            return 0;
        }
    }
    return RD_EINVAL;
}

int rd_log_enabled(enum rd_log_level lvl)
{
    return lvl >= min_level;
}

void rd_log(enum rd_log_level lvl, const char *fmt, ...)
{
    if (lvl < min_level)
        return;
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    char line[2048];
    int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s ", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000,
                     names[lvl]);
    va_list ap;
    va_start(ap, fmt);
    if (n > 0 && (size_t)n < sizeof line)
        vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    /* One fputs per line keeps lines from different threads whole. */
    size_t len = strlen(line);
    if (len + 1 < sizeof line) {
        line[len] = '\n';
        line[len + 1] = '\0';
    }
    fputs(line, stderr);
}
