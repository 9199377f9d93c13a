#include "util/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *rd_strerror(int err)
{
    switch (err) {
    case 0: return "success";
    case RD_EAGAIN: return "need more input";
    case RD_EPROTO: return "malformed input";
    case RD_ETOOBIG: return "too large";
    case RD_ENOTFOUND: return "not found";
    case RD_ECONFLICT: return "conflict";
    case RD_EINVAL: return "invalid value";
    case RD_ESTORE: return "database error";
    case RD_EUPSTREAM: return "upstream failure";
    case RD_ETIMEDOUT: return "timed out";
    case RD_EABORTED: return "aborted";
    case RD_ESTATE: return "invalid state";
    default: break;
    }
    if (err < 0 && err > -4096)
        return strerror(-err); /* glibc's strerror is thread-safe for known codes */
    return "unknown error";
}

void rd_seterr(char *errbuf, size_t errlen, const char *fmt, ...)
{
    if (errbuf == NULL || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errbuf, errlen, fmt, ap);
    va_end(ap);
}
