#include "util/hash.h"

/* The one-shot SHA256() is deprecated in OpenSSL 3 in favour of EVP, but
 * EVP_Digest fetches the algorithm, allocates a context and takes a
 * read lock on every call: three times the cost of the hash itself for
 * the short inputs hashed per request (cache keys, credentials). */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <stdlib.h>

#include "util/err.h"

void rd_sha256(const void *data, size_t len, uint8_t out[RD_SHA256_LEN])
{
    (void)SHA256(data, len, out);
}

void rd_hex(const uint8_t *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

int rd_random_bytes(void *buf, size_t n)
{
    if (n > (size_t)INT32_MAX)
        return RD_EINVAL;
    return RAND_bytes(buf, (int)n) == 1 ? 0 : RD_EINVAL;
}

int rd_hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}
