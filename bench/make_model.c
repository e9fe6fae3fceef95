/*
 * make_model.c - write a random-weight llama-architecture GGUF of any size
 * and weight type, for benchmarks on models larger than the shared ones
 * (e.g. a TinyLlama-1.1B-shaped Q8_0 file of 1.2 GB):
 *
 *   make_model --out big.gguf --type q8_0 --dim 2048 --layers 22 --heads 32
 *              --kv-heads 4 --ff 5632 --vocab-from ../shared/vocab/ggml-vocab-llama-spm.gguf
 *
 * Weights are N(0, 1/cols) so the residual stream stays of order one;
 * norms are 1. The tokenizer metadata (tokenizer.*) is copied from
 * --vocab-from, whose token count sets the vocabulary size.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/gguf.h"
#include "engine/gguf_write.h"
#include "engine/quant.h"

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static double uniform(void) {
    rng_state ^= rng_state << 13; rng_state ^= rng_state >> 7; rng_state ^= rng_state << 17;
    return ((rng_state >> 11) + 0.5) / 9007199254740992.0;
}
static float normal(void) { return (float)(sqrt(-2 * log(uniform())) * cos(2 * M_PI * uniform())); }

static int add_matrix(nuage_gguf_writer *w, const char *name, uint32_t type, int64_t cols, int64_t rows) {
    size_t rb = nuage_row_size(type, cols);
    if (!rb) { fprintf(stderr, "%s: %lld columns do not fit type blocks\n", name, (long long)cols); return -1; }
    uint8_t *data = malloc(rb * (size_t)rows);
    float *row = malloc((size_t)cols * sizeof(float));
    if (!data || !row) { free(data); free(row); return -1; }
    const nuage_type_traits *tt = nuage_type_get(type);
    float sd = 1.0f / sqrtf((float)cols);
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t c = 0; c < cols; c++) row[c] = normal() * sd;
        tt->from_float(row, data + (size_t)r * rb, cols);
    }
    int64_t ne[2] = {cols, rows};
    int rc = nuage_gguf_writer_add_tensor(w, name, type, 2, ne, data, rb * (size_t)rows);
    free(data);
    free(row);
    return rc;
}

static int add_norm(nuage_gguf_writer *w, const char *name, int64_t n) {
    float *v = malloc((size_t)n * sizeof(float));
    for (int64_t i = 0; i < n; i++) v[i] = 1.0f;
    int64_t ne[1] = {n};
    int rc = nuage_gguf_writer_add_tensor(w, name, NUAGE_TYPE_F32, 1, ne, v, (size_t)n * 4);
    free(v);
    return rc;
}

int main(int argc, char **argv) {
    const char *out = NULL, *vocab = NULL, *tname = "q8_0";
    long dim = 2048, layers = 22, heads = 32, kv_heads = 4, ff = 5632, ctx = 2048;
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *a = argv[i], *v = argv[i + 1];
        if (!strcmp(a, "--out")) out = v;
        else if (!strcmp(a, "--vocab-from")) vocab = v;
        else if (!strcmp(a, "--type")) tname = v;
        else if (!strcmp(a, "--dim")) dim = atol(v);
        else if (!strcmp(a, "--layers")) layers = atol(v);
        else if (!strcmp(a, "--heads")) heads = atol(v);
        else if (!strcmp(a, "--kv-heads")) kv_heads = atol(v);
        else if (!strcmp(a, "--ff")) ff = atol(v);
        else if (!strcmp(a, "--ctx")) ctx = atol(v);
        else if (!strcmp(a, "--seed")) rng_state ^= (uint64_t)atoll(v) * 0x2545F4914F6CDD1Dull;
        else { fprintf(stderr, "unknown option %s\n", a); return 2; }
    }
    if (!out || !vocab || dim <= 0 || layers <= 0 || heads <= 0 || kv_heads <= 0 || ff <= 0 || dim % heads) {
        fprintf(stderr, "usage: make_model --out F --vocab-from VOCAB.gguf [--type q8_0] [--dim --layers --heads --kv-heads --ff --ctx --seed]\n");
        return 2;
    }
    uint32_t type = NUAGE_TYPE_COUNT;
    for (uint32_t t = 0; t < NUAGE_TYPE_COUNT; t++) {
        const nuage_type_traits *tt = nuage_type_get(t);
        if (tt && tt->name && tt->supported && !strcasecmp(tt->name, tname)) type = t;
    }
    if (type == NUAGE_TYPE_COUNT) { fprintf(stderr, "unknown weight type %s\n", tname); return 2; }
    char err[256];
    nuage_gguf *vg = NULL;
    if (nuage_gguf_open(vocab, &vg, err, sizeof err)) { fprintf(stderr, "%s: %s\n", vocab, err); return 1; }
    const nuage_gguf_value *toks = nuage_gguf_get_arr(vg, "tokenizer.ggml.tokens", NUAGE_GGUF_STRING);
    if (!toks) { fprintf(stderr, "%s: no tokenizer.ggml.tokens\n", vocab); return 1; }
    int64_t n_vocab = (int64_t)toks->v.arr.n;
    nuage_gguf_writer *w = nuage_gguf_writer_new();
    nuage_gguf_writer_set_str(w, "general.architecture", "llama");
    nuage_gguf_writer_set_str(w, "general.name", "nuage-random-bench");
    nuage_gguf_writer_set_u32(w, "llama.context_length", (uint32_t)ctx);
    nuage_gguf_writer_set_u32(w, "llama.embedding_length", (uint32_t)dim);
    nuage_gguf_writer_set_u32(w, "llama.block_count", (uint32_t)layers);
    nuage_gguf_writer_set_u32(w, "llama.feed_forward_length", (uint32_t)ff);
    nuage_gguf_writer_set_u32(w, "llama.attention.head_count", (uint32_t)heads);
    nuage_gguf_writer_set_u32(w, "llama.attention.head_count_kv", (uint32_t)kv_heads);
    nuage_gguf_writer_set_u32(w, "llama.rope.dimension_count", (uint32_t)(dim / heads));
    nuage_gguf_writer_set_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
    nuage_gguf_writer_set_f32(w, "llama.rope.freq_base", 10000.0f);
    for (uint64_t i = 0; i < nuage_gguf_n_kv(vg); i++) {
        const nuage_gguf_kv *kv = nuage_gguf_kv_at(vg, i);
        if (!strncmp(kv->key.ptr, "tokenizer.", 10)) nuage_gguf_writer_set_value(w, kv->key.ptr, &kv->value);
    }
    int64_t hd = dim / heads;
    int rc = add_matrix(w, "token_embd.weight", type, dim, n_vocab);
    rc |= add_norm(w, "output_norm.weight", dim);
    rc |= add_matrix(w, "output.weight", type, dim, n_vocab);
    char name[128];
    for (long l = 0; l < layers && !rc; l++) {
        fprintf(stderr, "\rlayer %ld/%ld", l + 1, layers);
#define T(fmt) (snprintf(name, sizeof name, fmt, l), name)
        rc |= add_norm(w, T("blk.%ld.attn_norm.weight"), dim);
        rc |= add_matrix(w, T("blk.%ld.attn_q.weight"), type, dim, heads * hd);
        rc |= add_matrix(w, T("blk.%ld.attn_k.weight"), type, dim, kv_heads * hd);
        rc |= add_matrix(w, T("blk.%ld.attn_v.weight"), type, dim, kv_heads * hd);
        rc |= add_matrix(w, T("blk.%ld.attn_output.weight"), type, heads * hd, dim);
        rc |= add_norm(w, T("blk.%ld.ffn_norm.weight"), dim);
        rc |= add_matrix(w, T("blk.%ld.ffn_gate.weight"), type, dim, ff);
        rc |= add_matrix(w, T("blk.%ld.ffn_up.weight"), type, dim, ff);
        rc |= add_matrix(w, T("blk.%ld.ffn_down.weight"), type, ff, dim);
#undef T
    }
    fprintf(stderr, "\n");
    if (rc || nuage_gguf_writer_write_file(w, out, err, sizeof err)) {
        fprintf(stderr, "cannot write %s: %s\n", out, rc ? "bad tensor" : err);
        return 1;
    }
    nuage_gguf_writer_free(w);
    nuage_gguf_close(vg);
    return 0;
}
