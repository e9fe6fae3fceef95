/*
 * rng.h - the project's one random generator: xoshiro256** (Blackman and
 * Vigna) seeded through splitmix64, as the reference code describes it.
 * Used by the sampler (seeded, reproducible requests) and by the
 * synthetic-data generator (reproducible datasets); header-only so any
 * component can use it without a link dependency.
 */
#ifndef NUAGE_RNG_H
#define NUAGE_RNG_H

#include <stdint.h>

static inline uint64_t nuage__splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static inline uint64_t nuage__rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

/* State s from seed: four splitmix64 outputs. */
static inline void nuage__xoshiro_seed(uint64_t s[4], uint64_t seed) {
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) s[i] = nuage__splitmix64(&x);
}

static inline uint64_t nuage__xoshiro_next(uint64_t s[4]) {
    const uint64_t result = nuage__rotl(s[1] * 5, 7) * 9;
    const uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = nuage__rotl(s[3], 45);
    return result;
}

#endif
