/* Hashes and random bytes, from OpenSSL (never hand-written). */
#ifndef RD_UTIL_HASH_H
#define RD_UTIL_HASH_H

#include <stddef.h>
#include <stdint.h>

#define RD_SHA256_LEN 32

void rd_sha256(const void *data, size_t len, uint8_t out[RD_SHA256_LEN]);
/* Lower-case hex of n bytes; out must hold 2n+1 bytes. */
void rd_hex(const uint8_t *in, size_t n, char *out);
/* The value of hex digit c (either case), or -1. Pure. */
int rd_hex_value(char c);
/* Fills buf with cryptographically secure random bytes. Returns 0 or RD_EINVAL. */
int rd_random_bytes(void *buf, size_t n);

#endif
