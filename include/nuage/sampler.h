/*
 * sampler.h - choosing the next token from a row of logits, and the
 * log-probabilities reported to API clients.
 *
 * A nuage_sampler holds one generation's sampling settings, its penalty
 * history and its own random generator, so that a request's output depends
 * only on its seed and the sequence of calls, never on other requests
 * running beside it. Creating one is the only step that allocates; after
 * that, accept/sample/reset touch preallocated memory only.
 *
 * Pipeline of nuage_sampler_sample, in this order (each step sees the
 * result of the previous ones):
 *
 *   1. copy the logits; a NaN logit becomes -inf (never chosen);
 *   2. logit bias: logit += bias; a bias <= -100 bans the token (-inf);
 *      a token listed twice gets both entries;
 *   3. penalties, for each distinct token seen in the penalty window
 *      (the last penalty_last_n accepted tokens; -1 = all, 0 = none),
 *      with count = its occurrences in the window:
 *        repetition (llama.cpp / CTRL): logit > 0 ? logit / rp : logit * rp
 *        frequency and presence (OpenAI):
 *          logit -= frequency * count + presence * (count > 0)
 *   4. temperature == 0: greedy, the arg-max (lowest id on ties); the
 *      remaining steps and the random generator are skipped;
 *   5. top-k: keep the k largest logits (ties broken towards lower ids);
 *   6. temperature: logit / T;
 *   7. softmax over the kept tokens;
 *   8. top-p (nucleus): sort by probability and keep the shortest prefix
 *      whose cumulative probability reaches top_p (always >= 1 token);
 *   9. min-p: keep tokens whose probability (after temperature) is at
 *      least min_p times the most likely token's;
 *  10. draw one token from the kept ones in proportion to their
 *      probabilities, with one 53-bit uniform number from the sampler's
 *      generator.
 *
 * If some logits are +inf after steps 1-3, the distribution is the limit
 * one: uniform over those tokens. Steps 5, 8 and 9 never change the
 * outcome of greedy decoding; top_k = 1 and a tiny top_p both reduce to it.
 *
 * Random numbers: xoshiro256** (Blackman & Vigna), its 256-bit state
 * filled from the 64-bit seed by splitmix64. It is implemented here
 * because no library we may use offers a seeded, per-object, reproducible
 * generator (rand() is global and its sequence differs between C
 * libraries; random_r/drand48_r are glibc-only). Greedy sampling draws no
 * number; any other sample call draws exactly one.
 *
 * Threads: a sampler belongs to one thread at a time; nuage_logprobs is
 * pure and thread-safe.
 */
#ifndef NUAGE_SAMPLER_H
#define NUAGE_SAMPLER_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Longest finite penalty window accepted (tokens); use -1 for "all". */
#define NUAGE_SAMPLER_MAX_LAST_N (1 << 20)

typedef struct {
    float temperature;        /* >= 0; 0 = greedy (arg-max, lowest id on ties) */
    int32_t top_k;            /* <= 0: off */
    float top_p;              /* in (0, 1]; 1 = off */
    float min_p;              /* in [0, 1]; 0 = off */
    float repetition_penalty; /* > 0; 1 = off */
    float presence_penalty;   /* finite; 0 = off */
    float frequency_penalty;  /* finite; 0 = off */
    int32_t penalty_last_n;   /* -1 = all accepted tokens, 0 = no penalties,
                                 n = the last n (<= NUAGE_SAMPLER_MAX_LAST_N) */
    uint64_t seed;            /* seed of this sampler's generator */
    const int32_t *bias_tokens; /* (n_bias) ids in [0, n_vocab) */
    const float *bias_values;   /* (n_bias) not NaN nor +inf; <= -100 bans */
    int32_t n_bias;
} nuage_sampler_params;

/* Neutral settings, as an OpenAI request without sampling fields:
 * temperature 1, top_k off, top_p 1, min_p 0, no penalties (window -1 =
 * all accepted tokens), seed 0, no bias. */
nuage_sampler_params nuage_sampler_default_params(void);

typedef struct nuage_sampler nuage_sampler;

/*
 * Create a sampler for a vocabulary of n_vocab tokens. p == NULL means the
 * default parameters. Everything needed is copied out of p (including the
 * bias arrays). Returns NULL if a parameter is out of the ranges noted
 * above, n_vocab <= 0, or memory runs out. Caller owns the result.
 */
nuage_sampler *nuage_sampler_new(const nuage_sampler_params *p, int32_t n_vocab);
void nuage_sampler_free(nuage_sampler *s);

/* Record a token as part of the context (prompt tokens the caller wants
 * penalized, then each generated token). Sampling does not record the
 * token it returns: call this with it. Ids outside [0, n_vocab) are
 * ignored. Costs nothing when no penalty is enabled. */
void nuage_sampler_accept(nuage_sampler *s, int32_t tok);

/*
 * Sample the next token from logits (n_vocab floats, not modified), going
 * through the pipeline described at the top of this file. Deterministic
 * given the seed and the sequence of accept/sample calls. Returns a token
 * id in [0, n_vocab), or NUAGE_E_INVAL when s or logits is NULL or no
 * token can be chosen (every logit NaN or -inf, e.g. all banned).
 */
int32_t nuage_sampler_sample(nuage_sampler *s, const float *logits);

/*
 * The same with a token mask applied first (constrained decoding): mask
 * is a bit set over the vocabulary, bit (tok & 31) of word (tok >> 5) set
 * = tok allowed; every other token's logit becomes -inf before step 2, so
 * logit bias, penalties, greedy and the sampler chain see only allowed
 * tokens. mask NULL = sample(). NUAGE_E_INVAL when no allowed token can
 * be chosen. Draws exactly as sample() does (one number unless greedy).
 */
int32_t nuage_sampler_sample_masked(nuage_sampler *s, const float *logits, const uint32_t *mask);

/*
 * The distribution sample() would draw from, without drawing (the
 * generator is not advanced): writes up to cap (id, probability) pairs of
 * the tokens kept by the pipeline, probabilities normalized over the kept
 * set, in the order the draw scans them: descending probability (ties:
 * lower id first) when top-k is active, otherwise unspecified (by id
 * unless top-p reordered them). Greedy gives one token with
 * probability 1. Returns the number of kept tokens (which may exceed
 * cap), or NUAGE_E_INVAL as sample() does.
 */
int32_t nuage_sampler_candidates(nuage_sampler *s, const float *logits,
                                 int32_t *ids, float *probs, int32_t cap);

/* A copy with the same parameters and penalty history but its own
 * generator, seeded with new_seed (which also becomes the clone's seed
 * for nuage_sampler_reset). For n > 1 choices: accept the prompt once,
 * then clone per choice. NULL on out-of-memory. Caller owns the result. */
nuage_sampler *nuage_sampler_clone(const nuage_sampler *s, uint64_t new_seed);

/* Forget the penalty history and reseed the generator with the sampler's
 * seed: the sampler then behaves exactly as a freshly created one. */
void nuage_sampler_reset(nuage_sampler *s);

/*
 * Log-probabilities: the log-softmax of the raw logits (before any
 * sampling transform, as OpenAI reports them), computed in double. NaN
 * logits count as -inf; if some logits are +inf, those share the mass
 * equally. Returns the log-probability of tok, or NaN if tok is outside
 * [0, n_vocab) (pass -1 when only the top list is wanted). With k > 0,
 * also writes the k most likely tokens to top_ids/top_lp sorted by
 * descending log-probability, ties by ascending id; when k > n_vocab the
 * extra slots get id -1 and -inf. If every logit is NaN or -inf, every
 * log-probability is -inf.
 */
float nuage_logprobs(const float *logits, int32_t n_vocab, int32_t tok, int k,
                     int32_t *top_ids, float *top_lp);

#ifdef __cplusplus
}
#endif
#endif
