/*
 * random_llama.c - random-weight llama GGUF files (random_llama.h).
 *
 * One matrix at a time: a row of N(0, 1/cols) floats (Box-Muller over an
 * xorshift64 stream) is quantized to the requested type with the type's
 * own from_float and appended; the writer copies the tensor data, so peak
 * memory is one matrix. The stream is seeded per file, so a test that
 * writes the same parameters twice gets the same bytes.
 */
#include "engine/random_llama.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/gguf.h"
#include "engine/gguf_write.h"
#include "engine/quant.h"
#include "nuage/nuage.h"

typedef struct {
    uint64_t s;
} nuage__rl_rng;

static double nuage__rl_uniform(nuage__rl_rng *r) {
    r->s ^= r->s << 13;
    r->s ^= r->s >> 7;
    r->s ^= r->s << 17;
    return ((r->s >> 11) + 0.5) / 9007199254740992.0;
}

static float nuage__rl_normal(nuage__rl_rng *r) {
    double u = nuage__rl_uniform(r), v = nuage__rl_uniform(r);
    return (float)(sqrt(-2 * log(u)) * cos(2 * M_PI * v));
}

static int nuage__rl_matrix(nuage_gguf_writer *w, nuage__rl_rng *g, const char *name, uint32_t type, int64_t cols,
                            int64_t rows, char *err, size_t errlen) {
    size_t rb = nuage_row_size(type, cols);
    if (!rb) {
        snprintf(err, errlen, "%s: %lld columns do not fit the type's blocks", name, (long long)cols);
        return NUAGE_E_INVAL;
    }
    uint8_t *data = malloc(rb * (size_t)rows);
    float *row = malloc((size_t)cols * sizeof(float));
    int rc = NUAGE_E_NOMEM;
    if (!data || !row) goto out;
    const nuage_type_traits *tt = nuage_type_get(type);
    float sd = 1.0f / sqrtf((float)cols);
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t c = 0; c < cols; c++) row[c] = nuage__rl_normal(g) * sd;
        tt->from_float(row, data + (size_t)r * rb, cols);
    }
    int64_t ne[2] = {cols, rows};
    rc = nuage_gguf_writer_add_tensor(w, name, type, 2, ne, data, rb * (size_t)rows);
out:
    if (rc == NUAGE_E_NOMEM) snprintf(err, errlen, "out of memory");
    else if (rc) snprintf(err, errlen, "%s: cannot add the tensor", name);
    free(data);
    free(row);
    return rc;
}

static int nuage__rl_norm(nuage_gguf_writer *w, const char *name, int64_t n, char *err, size_t errlen) {
    float *v = malloc((size_t)n * sizeof(float));
    if (!v) {
        snprintf(err, errlen, "out of memory");
        return NUAGE_E_NOMEM;
    }
    for (int64_t i = 0; i < n; i++) v[i] = 1.0f;
    int64_t ne[1] = {n};
    int rc = nuage_gguf_writer_add_tensor(w, name, NUAGE_TYPE_F32, 1, ne, v, (size_t)n * 4);
    free(v);
    if (rc) snprintf(err, errlen, "%s: cannot add the tensor", name);
    return rc;
}

nuage_random_llama_params nuage_random_llama_default_params(void) {
    nuage_random_llama_params p = {.type = NUAGE_TYPE_Q8_0, .dim = 2048, .layers = 22, .heads = 32,
                                   .kv_heads = 4, .ff = 5632, .ctx = 2048};
    return p;
}

int nuage_random_llama_write(const nuage_random_llama_params *p, const char *out, char *err, size_t errlen) {
    if (!p || !out || !p->vocab_from || p->dim <= 0 || p->layers <= 0 || p->heads <= 0 || p->kv_heads <= 0 ||
        p->ff <= 0 || p->ctx <= 0 || p->dim % p->heads || p->heads % p->kv_heads) {
        snprintf(err, errlen, "bad model shape");
        return NUAGE_E_INVAL;
    }
    const nuage_type_traits *tt = nuage_type_get(p->type);
    if (!tt || !tt->supported || !tt->from_float) {
        snprintf(err, errlen, "unsupported weight type %u", p->type);
        return NUAGE_E_INVAL;
    }
    nuage__rl_rng g = {0x9E3779B97F4A7C15ull ^ (p->seed * 0x2545F4914F6CDD1Dull)};
    if (!g.s) g.s = 1;
    nuage_gguf *vg = NULL;
    int rc = nuage_gguf_open(p->vocab_from, &vg, err, errlen);
    if (rc) return rc;
    nuage_gguf_writer *w = NULL;
    const nuage_gguf_value *toks = nuage_gguf_get_arr(vg, "tokenizer.ggml.tokens", NUAGE_GGUF_STRING);
    if (!toks) {
        snprintf(err, errlen, "%s: no tokenizer.ggml.tokens", p->vocab_from);
        rc = NUAGE_E_FORMAT;
        goto out;
    }
    int64_t n_vocab = (int64_t)toks->v.arr.n;
    if (!(w = nuage_gguf_writer_new())) {
        snprintf(err, errlen, "out of memory");
        rc = NUAGE_E_NOMEM;
        goto out;
    }
    nuage_gguf_writer_set_str(w, "general.architecture", "llama");
    nuage_gguf_writer_set_str(w, "general.name", "nuage-random");
    nuage_gguf_writer_set_u32(w, "llama.context_length", (uint32_t)p->ctx);
    nuage_gguf_writer_set_u32(w, "llama.embedding_length", (uint32_t)p->dim);
    nuage_gguf_writer_set_u32(w, "llama.block_count", (uint32_t)p->layers);
    nuage_gguf_writer_set_u32(w, "llama.feed_forward_length", (uint32_t)p->ff);
    nuage_gguf_writer_set_u32(w, "llama.attention.head_count", (uint32_t)p->heads);
    nuage_gguf_writer_set_u32(w, "llama.attention.head_count_kv", (uint32_t)p->kv_heads);
    nuage_gguf_writer_set_u32(w, "llama.rope.dimension_count", (uint32_t)(p->dim / p->heads));
    nuage_gguf_writer_set_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
    nuage_gguf_writer_set_f32(w, "llama.rope.freq_base", 10000.0f);
    for (uint64_t i = 0; i < nuage_gguf_n_kv(vg); i++) {
        const nuage_gguf_kv *kv = nuage_gguf_kv_at(vg, i);
        if (!strncmp(kv->key.ptr, "tokenizer.", 10)) nuage_gguf_writer_set_value(w, kv->key.ptr, &kv->value);
    }
    int64_t dim = p->dim, hd = p->dim / p->heads, ff = p->ff;
    rc = nuage__rl_matrix(w, &g, "token_embd.weight", p->type, dim, n_vocab, err, errlen);
    if (!rc) rc = nuage__rl_norm(w, "output_norm.weight", dim, err, errlen);
    if (!rc) rc = nuage__rl_matrix(w, &g, "output.weight", p->type, dim, n_vocab, err, errlen);
    char name[128];
    for (int64_t l = 0; l < p->layers && !rc; l++) {
        if (p->progress) fprintf(stderr, "\rlayer %lld/%lld", (long long)l + 1, (long long)p->layers);
#define NUAGE__RL_T(fmt) (snprintf(name, sizeof name, fmt, (long long)l), name)
        rc = nuage__rl_norm(w, NUAGE__RL_T("blk.%lld.attn_norm.weight"), dim, err, errlen);
        if (!rc) rc = nuage__rl_matrix(w, &g, NUAGE__RL_T("blk.%lld.attn_q.weight"), p->type, dim, p->heads * hd, err, errlen);
        if (!rc) rc = nuage__rl_matrix(w, &g, NUAGE__RL_T("blk.%lld.attn_k.weight"), p->type, dim, p->kv_heads * hd, err, errlen);
        if (!rc) rc = nuage__rl_matrix(w, &g, NUAGE__RL_T("blk.%lld.attn_v.weight"), p->type, dim, p->kv_heads * hd, err, errlen);
        if (!rc) rc = nuage__rl_matrix(w, &g, NUAGE__RL_T("blk.%lld.attn_output.weight"), p->type, p->heads * hd, dim, err, errlen);
        if (!rc) rc = nuage__rl_norm(w, NUAGE__RL_T("blk.%lld.ffn_norm.weight"), dim, err, errlen);
        if (!rc) rc = nuage__rl_matrix(w, &g, NUAGE__RL_T("blk.%lld.ffn_gate.weight"), p->type, dim, ff, err, errlen);
        if (!rc) rc = nuage__rl_matrix(w, &g, NUAGE__RL_T("blk.%lld.ffn_up.weight"), p->type, dim, ff, err, errlen);
        if (!rc) rc = nuage__rl_matrix(w, &g, NUAGE__RL_T("blk.%lld.ffn_down.weight"), p->type, ff, dim, err, errlen);
#undef NUAGE__RL_T
    }
    if (p->progress) fprintf(stderr, "\n");
    if (!rc) rc = nuage_gguf_writer_write_file(w, out, err, errlen);
out:
    nuage_gguf_writer_free(w);
    nuage_gguf_close(vg);
    return rc;
}
