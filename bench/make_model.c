/*
 * make_model.c - write a random-weight llama-architecture GGUF of any size
 * and weight type, for benchmarks on models larger than the shared ones
 * (e.g. a TinyLlama-1.1B-shaped Q8_0 file of 1.2 GB):
 *
 *   make_model --out big.gguf --type q8_0 --dim 2048 --layers 22 --heads 32
 *              --kv-heads 4 --ff 5632 --vocab-from models/nuage-fast.gguf
 *
 * The generator is src/engine/random_llama.c (the tests use it too); this
 * is its command line.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "engine/quant.h"
#include "engine/random_llama.h"

int main(int argc, char **argv) {
    const char *out = NULL, *tname = "q8_0";
    nuage_random_llama_params p = nuage_random_llama_default_params();
    p.progress = true;
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *a = argv[i], *v = argv[i + 1];
        if (!strcmp(a, "--out")) out = v;
        else if (!strcmp(a, "--vocab-from")) p.vocab_from = v;
        else if (!strcmp(a, "--type")) tname = v;
        else if (!strcmp(a, "--dim")) p.dim = atol(v);
        else if (!strcmp(a, "--layers")) p.layers = atol(v);
        else if (!strcmp(a, "--heads")) p.heads = atol(v);
        else if (!strcmp(a, "--kv-heads")) p.kv_heads = atol(v);
        else if (!strcmp(a, "--ff")) p.ff = atol(v);
        else if (!strcmp(a, "--ctx")) p.ctx = atol(v);
        else if (!strcmp(a, "--seed")) p.seed = (uint64_t)atoll(v);
        else { fprintf(stderr, "unknown option %s\n", a); return 2; }
    }
    p.type = NUAGE_TYPE_COUNT;
    for (uint32_t t = 0; t < NUAGE_TYPE_COUNT; t++) {
        const nuage_type_traits *tt = nuage_type_get(t);
        if (tt && tt->name && tt->supported && !strcasecmp(tt->name, tname)) p.type = t;
    }
    if (!out || !p.vocab_from) {
        fprintf(stderr, "usage: make_model --out F --vocab-from VOCAB.gguf [--type q8_0] [--dim --layers --heads --kv-heads --ff --ctx --seed]\n");
        return 2;
    }
    if (p.type == NUAGE_TYPE_COUNT) { fprintf(stderr, "unknown weight type %s\n", tname); return 2; }
    char err[256];
    if (nuage_random_llama_write(&p, out, err, sizeof err)) {
        fprintf(stderr, "cannot write %s: %s\n", out, err);
        return 1;
    }
    return 0;
}
