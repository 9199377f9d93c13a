#include "util/hash.h"

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdlib.h>

#include "util/err.h"

void rd_sha256(const void *data, size_t len, uint8_t out[RD_SHA256_LEN])
{
    unsigned int n = 0;
    /* EVP_Digest cannot fail for SHA-256 with valid arguments short of OOM. */
    if (EVP_Digest(data, len, out, &n, EVP_sha256(), NULL) != 1)
        abort();
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
