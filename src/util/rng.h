/* Deterministic random decisions for failure simulation.
 *
 * A decision is a pure function of (seed, sequence number, label): the
 * configuration's seed, the proxy's request sequence number (from an atomic
 * per-proxy counter, so it does not depend on which worker took the request)
 * and a label naming the decision ("error_injection", "response_delay"...).
 * The same seed and request sequence therefore give the same outcomes with 1
 * or N workers, and two decisions about one request are independent. Not for
 * secrets: the mixing is splitmix64, fast and statistically good, not
 * cryptographic. Every function here is pure and thread-safe. */
#ifndef RD_UTIL_RNG_H
#define RD_UTIL_RNG_H

#include <stddef.h>
#include <stdint.h>

/* A stream of draws for one decision. Callers fill it with rd_rng_init and
 * only read it through the functions below. */
struct rd_rng {
    uint64_t state;
};

/* A label's 64-bit identifier (FNV-1a of the NUL-terminated name). */
uint64_t rd_rng_label(const char *label);
/* Starts the stream of decision `label` for request `seq` under `seed`. */
void rd_rng_init(struct rd_rng *r, uint64_t seed, uint64_t seq, uint64_t label);
/* The next 64 uniformly distributed bits of the stream. */
uint64_t rd_rng_next(struct rd_rng *r);
/* The first draw of the stream (seed, seq, label): rd_rng_init + rd_rng_next. */
uint64_t rd_rng_draw(uint64_t seed, uint64_t seq, uint64_t label);
/* A double in [0, 1) with 53 random bits. */
double rd_rng_unit(struct rd_rng *r);
/* A uniform integer in [min, max] (min <= max, else min is returned), without
 * modulo bias (Lemire's multiply-and-reject; may take more draws). */
uint64_t rd_rng_range(struct rd_rng *r, uint64_t min, uint64_t max);
/* One draw picks an outcome among n with the given rates (each in [0, 1],
 * their sum <= 1, as the configuration validator checks): returns i with
 * probability rates[i], or -1 (no outcome) with probability 1 - sum. Rates
 * are compared as 53-bit fixed point (truncated), so a rate of 0 never fires
 * and a rate of 1 always does. */
int rd_rng_pick(struct rd_rng *r, const double *rates, size_t n);
/* A seed for a configuration without one, from the system's secure random
 * source. Returns 0 or RD_EINVAL. */
int rd_rng_seed_random(uint64_t *seed);

#endif
