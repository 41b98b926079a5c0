/* rng.h - xorshift64* for deterministic test inputs (one stream per test
 * program; the library itself keeps no global state). A test may define
 * BN_TEST_SEED before including this to pick its stream. */
#ifndef BN_TEST_RNG_H
#define BN_TEST_RNG_H

#include <stdint.h>

#ifndef BN_TEST_SEED
#define BN_TEST_SEED 0x9E3779B97F4A7C15ull
#endif

static uint64_t rng_state = BN_TEST_SEED;

static inline uint64_t rng_u64(void) {
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ull;
}

/* uniform in [-1, 1) with 24 random bits */
static inline float rng_unif(void) { return (float)((rng_u64() >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f; }

#endif
