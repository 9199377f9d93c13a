#include "util/rng.h"

#include "util/hash.h"

#define GOLDEN 0x9e3779b97f4a7c15ULL

/* splitmix64's finaliser: a bijection on 64 bits with full avalanche. */
static uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

uint64_t rd_rng_label(const char *label)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (const unsigned char *p = (const unsigned char *)label; p && *p; p++) {
        h ^= *p;
        h *= 0x100000001b3ULL;
    }
    return h;
}

void rd_rng_init(struct rd_rng *r, uint64_t seed, uint64_t seq, uint64_t label)
{
    /* Each input goes through the mixer before the next is folded in, so
     * (seed, seq, label) and, say, (seed, seq ^ 1, label ^ 1) give unrelated
     * streams. */
    uint64_t x = mix64(seed + GOLDEN);
    x = mix64(x ^ (seq + 2 * GOLDEN));
    x = mix64(x ^ (label + 3 * GOLDEN));
    r->state = x;
}

uint64_t rd_rng_next(struct rd_rng *r)
{
    r->state += GOLDEN;
    return mix64(r->state);
}

uint64_t rd_rng_draw(uint64_t seed, uint64_t seq, uint64_t label)
{
    struct rd_rng r;
    rd_rng_init(&r, seed, seq, label);
    return rd_rng_next(&r);
}

double rd_rng_unit(struct rd_rng *r)
{
    return (double)(rd_rng_next(r) >> 11) * 0x1p-53;
}

uint64_t rd_rng_range(struct rd_rng *r, uint64_t min, uint64_t max)
{
    if (max <= min)
        return min;
    uint64_t span = max - min;
    if (span == UINT64_MAX)
        return rd_rng_next(r);
    uint64_t n = span + 1;
    /* Lemire: the high word of x * n is uniform in [0, n) once the low word
     * is outside the (2^64 mod n) values that would over-represent some. */
    unsigned __int128 m = (unsigned __int128)rd_rng_next(r) * n;
    uint64_t low = (uint64_t)m;
    if (low < n) {
        uint64_t threshold = -n % n;
        while (low < threshold) {
            m = (unsigned __int128)rd_rng_next(r) * n;
            low = (uint64_t)m;
        }
    }
    return min + (uint64_t)(m >> 64);
}

/* A rate as a count of the 2^53 equally likely values of a draw. */
static uint64_t rate_fixed(double rate)
{
    if (!(rate > 0.0))
        return 0;
    if (rate >= 1.0)
        return 1ULL << 53;
    return (uint64_t)(rate * 0x1p53);
}

int rd_rng_pick(struct rd_rng *r, const double *rates, size_t n)
{
    uint64_t u = rd_rng_next(r) >> 11, cum = 0;
    for (size_t i = 0; i < n && i < (size_t)INT32_MAX; i++) {
        cum += rate_fixed(rates[i]);
        if (u < cum)
            return (int)i;
    }
    return -1;
}

int rd_rng_seed_random(uint64_t *seed)
{
    return rd_random_bytes(seed, sizeof *seed);
}
