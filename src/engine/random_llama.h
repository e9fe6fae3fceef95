/*
 * random_llama.h - write a random-weight llama-architecture GGUF of any
 * size and weight type, with the tokenizer of another GGUF file.
 *
 * For benchmarks on models larger than the bundled ones (bench/make_model)
 * and for tests that need a model of a given weight type on a bare clone
 * (tests/test_models.h: the engine's batch invariance for every type).
 * Weights are N(0, 1/cols) from a seeded generator (the same parameters
 * give the same file), so the residual stream stays of order one; norms
 * are 1. The tokenizer metadata (tokenizer.*) is copied from vocab_from,
 * whose token count sets the vocabulary size.
 */
#ifndef NUAGE_ENGINE_RANDOM_LLAMA_H
#define NUAGE_ENGINE_RANDOM_LLAMA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    const char *vocab_from;   /* GGUF whose tokenizer.* keys are copied (required) */
    uint32_t type;            /* weight type of the matrices (nuage_type id) */
    int64_t dim, layers, heads, kv_heads, ff, ctx;
    uint64_t seed;            /* 0: the default stream */
    bool progress;            /* a "layer i/n" line on stderr */
} nuage_random_llama_params;

/* TinyLlama-1.1B's shape, Q8_0 (what bench/make_model writes by default). */
nuage_random_llama_params nuage_random_llama_default_params(void);

/* Write the file `out`. 0, or NUAGE_E_INVAL (bad shape or type: the
 * columns must fit the type's blocks), NUAGE_E_IO / NUAGE_E_FORMAT (the
 * vocabulary file) or NUAGE_E_NOMEM, with a message in err. */
int nuage_random_llama_write(const nuage_random_llama_params *p, const char *out, char *err, size_t errlen);

#endif
