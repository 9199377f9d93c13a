/* Error codes shared by every module.
 *
 * Fallible functions return 0 (or a count) on success and a negative code on
 * failure: -errno for system calls, or one of enum rd_err below. rd_strerror()
 * renders both. */
#ifndef RD_UTIL_ERR_H
#define RD_UTIL_ERR_H

#include <stddef.h>

enum rd_err {
    RD_EAGAIN = -10000, /* need more input */
    RD_EPROTO,          /* malformed input */
    RD_ETOOBIG,         /* a size cap was hit */
    RD_ENOTFOUND,       /* no such object */
    RD_ECONFLICT,       /* uniqueness violated (name, port) */
    RD_EINVAL,          /* bad argument or value */
    RD_ESTORE,          /* database failure */
    RD_EUPSTREAM,       /* upstream connect/TLS/reset/garbage */
    RD_ETIMEDOUT,       /* a deadline passed */
    RD_EABORTED,        /* cancelled by the caller or the peer */
    RD_ESTATE,          /* operation not valid in the current state */
};

/* Returns a static message for an rd_err or a -errno value. Thread-safe. */
const char *rd_strerror(int err);

/* Formats a reason into the caller's errbuf[0..errlen) (truncated, always
 * NUL-terminated), for the functions that take an optional error buffer;
 * does nothing when errbuf is NULL or errlen is 0. Thread-safe. */
void rd_seterr(char *errbuf, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
