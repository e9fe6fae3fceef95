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
 *
 * Real shapes of other architectures (--arch): random files with the
 * exact tensor list, shapes and types of a released model, for the speed
 * comparison with llama.cpp (bench/compare_llamacpp.sh):
 *
 *   make_model --arch gpt-oss-20b --out /big/disk/gptoss-20b-mxfp4.gguf
 *              --template ../shared/models/rand-gptoss-mxfp4.gguf
 *   make_model --arch gemma3-1b --out g1b.gguf
 *              --template ../shared/models/rand-gemma3-q8_0.gguf [--type q8_0]
 *
 *   gpt-oss-20b  24 layers, hidden 2880, 64 query / 8 KV heads of 64, 32
 *                experts (4 active) of width 2880, window 128 on even
 *                layers, vocabulary 201,088, YaRN x32 from 4096; experts
 *                MXFP4, attention, embeddings and output Q8_0, router,
 *                biases, sinks and norms F32 (llama-quantize's MXFP4_MOE
 *                layout): 12.1 GB.
 *   gemma3-1b    26 layers, hidden 1152, 4 / 1 heads of 256, FF 6912,
 *                window 512, vocabulary 262,144, tied embeddings.
 *   gemma3-4b    34 layers, hidden 2560, 8 / 4 heads of 256, FF 10240,
 *                window 1024, vocabulary 262,144, tied embeddings.
 * The metadata is the template's (a small file of the same architecture,
 * which llama.cpp loads) with the shape keys replaced; its tokenizer is
 * padded with unused tokens to the real vocabulary size. The files are
 * too big to build in memory (the GGUF writer holds every tensor), so the
 * header is serialised first and the tensors are streamed after it. The
 * random quantized blocks are drawn directly (random codes, scales that
 * give N(0, 1/cols)-like rows), which takes seconds per GB instead of
 * minutes; only types without such a shortcut go through from_float.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <math.h>
#include <stdint.h>

#include "engine/gguf.h"
#include "engine/gguf_write.h"
#include "engine/quant.h"
#include "engine/random_llama.h"

/* ------------------------------------------------------- real shapes */

enum { FILL_MATRIX, FILL_ONES, FILL_NORMAL };

typedef struct {
    char name[80];
    uint32_t type;
    int nd;
    int64_t ne[3];
    int fill;
    float sd; /* FILL_MATRIX / FILL_NORMAL */
} rs_tensor;

typedef struct {
    rs_tensor *t;
    int n, cap;
} rs_list;

static uint64_t g_rs = 0x9E3779B97F4A7C15ull;
static inline uint64_t rs_next(void) {
    g_rs ^= g_rs << 13;
    g_rs ^= g_rs >> 7;
    g_rs ^= g_rs << 17;
    return g_rs;
}

/* N(0, 1) from a table of Box-Muller draws (two entries per value): fast
 * and plenty random for weights that only have to look like weights. */
static float g_ntab[4096];
static void rs_init_normal(void) {
    for (int i = 0; i < 4096; i += 2) {
        double u = ((rs_next() >> 11) + 0.5) / 9007199254740992.0;
        double v = ((rs_next() >> 11) + 0.5) / 9007199254740992.0;
        g_ntab[i] = (float)(sqrt(-2 * log(u)) * cos(2 * M_PI * v));
        g_ntab[i + 1] = (float)(sqrt(-2 * log(u)) * sin(2 * M_PI * v));
    }
}
static inline float rs_normal(void) {
    uint64_t r = rs_next();
    return (g_ntab[r & 4095] + g_ntab[(r >> 12) & 4095]) * 0.70710678f;
}

static int rs_add(rs_list *l, uint32_t type, int fill, float sd, int nd, int64_t n0, int64_t n1,
                  int64_t n2, const char *fmt, long long layer) {
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 256;
        rs_tensor *t = realloc(l->t, (size_t)l->cap * sizeof *t);
        if (!t) return -1;
        l->t = t;
    }
    rs_tensor *t = &l->t[l->n++];
    snprintf(t->name, sizeof t->name, fmt, layer);
    t->type = type;
    t->fill = fill;
    t->sd = sd;
    t->nd = nd;
    t->ne[0] = n0;
    t->ne[1] = n1;
    t->ne[2] = n2;
    return 0;
}

static size_t rs_bytes(const rs_tensor *t) {
    size_t b = nuage_row_size(t->type, t->ne[0]);
    for (int d = 1; d < t->nd; d++) b *= (size_t)t->ne[d];
    return b;
}

/* One row of `cols` values of the tensor's type, random. */
static void rs_row(const rs_tensor *t, uint8_t *out, float *tmp) {
    const int64_t cols = t->ne[0];
    if (t->fill == FILL_MATRIX && t->type == NUAGE_TYPE_MXFP4) {
        /* random nibbles have RMS 5.85 x 2^(e-128): pick e for sd */
        const int e0 = 128 + (int)lrintf(log2f(t->sd / 5.85f));
        for (int64_t b = 0; b < cols / 32; b++) {
            uint8_t *blk = out + b * 17;
            uint64_t r0 = rs_next(), r1 = rs_next();
            blk[0] = (uint8_t)(e0 + (int)(r1 >> 62) - 1);
            memcpy(blk + 1, &r0, 8);
            r1 = rs_next();
            memcpy(blk + 9, &r1, 8);
        }
        return;
    }
    if (t->fill == FILL_MATRIX && t->type == NUAGE_TYPE_Q8_0) {
        /* uniform int8 codes have RMS 73.9 */
        const nuage_fp16 d = nuage_fp32_to_fp16(t->sd / 73.9f);
        for (int64_t b = 0; b < cols / 32; b++) {
            uint8_t *blk = out + b * 34;
            memcpy(blk, &d, 2);
            for (int k = 0; k < 4; k++) {
                uint64_t r = rs_next();
                memcpy(blk + 2 + 8 * k, &r, 8);
            }
        }
        return;
    }
    for (int64_t c = 0; c < cols; c++)
        tmp[c] = t->fill == FILL_ONES ? 1.0f : rs_normal() * t->sd;
    nuage_type_get(t->type)->from_float(tmp, out, cols);
}

typedef struct {
    const char *arch; /* gguf architecture */
    int64_t layers, dim, heads, kv_heads, head_dim, ff, vocab, window, ctx;
    int64_t experts, experts_used; /* gpt-oss */
} rs_shape;

static const rs_shape k_shapes[] = {
    {"gpt-oss", 24, 2880, 64, 8, 64, 2880, 201088, 128, 131072, 32, 4},
    {"gemma3", 26, 1152, 4, 1, 256, 6912, 262144, 512, 32768, 0, 0},
    {"gemma3", 34, 2560, 8, 4, 256, 10240, 262144, 1024, 131072, 0, 0},
};
static const char *k_shape_names[] = {"gpt-oss-20b", "gemma3-1b", "gemma3-4b"};

static int rs_tensors(const rs_shape *s, uint32_t mtype, rs_list *l) {
    const int64_t E = s->dim, q = s->heads * s->head_dim, kv = s->kv_heads * s->head_dim;
    const float se = 1.0f / sqrtf((float)E);
    int rc = 0;
    if (s->experts) { /* gpt-oss: MXFP4_MOE layout */
        const uint32_t Q8 = NUAGE_TYPE_Q8_0, F = NUAGE_TYPE_F32, MX = NUAGE_TYPE_MXFP4;
        const int64_t X = s->experts, ffx = s->ff;
        rc |= rs_add(l, Q8, FILL_MATRIX, 1.0f, 2, E, s->vocab, 1, "token_embd.weight", 0);
        rc |= rs_add(l, F, FILL_ONES, 0, 1, E, 1, 1, "output_norm.weight", 0);
        rc |= rs_add(l, Q8, FILL_MATRIX, se, 2, E, s->vocab, 1, "output.weight", 0);
        for (long long i = 0; i < s->layers; i++) {
            rc |= rs_add(l, F, FILL_ONES, 0, 1, E, 1, 1, "blk.%lld.attn_norm.weight", i);
            rc |= rs_add(l, Q8, FILL_MATRIX, se, 2, E, q, 1, "blk.%lld.attn_q.weight", i);
            rc |= rs_add(l, F, FILL_NORMAL, 0.1f, 1, q, 1, 1, "blk.%lld.attn_q.bias", i);
            rc |= rs_add(l, Q8, FILL_MATRIX, se, 2, E, kv, 1, "blk.%lld.attn_k.weight", i);
            rc |= rs_add(l, F, FILL_NORMAL, 0.1f, 1, kv, 1, 1, "blk.%lld.attn_k.bias", i);
            rc |= rs_add(l, Q8, FILL_MATRIX, se, 2, E, kv, 1, "blk.%lld.attn_v.weight", i);
            rc |= rs_add(l, F, FILL_NORMAL, 0.1f, 1, kv, 1, 1, "blk.%lld.attn_v.bias", i);
            rc |= rs_add(l, Q8, FILL_MATRIX, 1.0f / sqrtf((float)q), 2, q, E, 1, "blk.%lld.attn_output.weight", i);
            rc |= rs_add(l, F, FILL_NORMAL, 0.1f, 1, E, 1, 1, "blk.%lld.attn_output.bias", i);
            rc |= rs_add(l, F, FILL_NORMAL, 1.0f, 1, s->heads, 1, 1, "blk.%lld.attn_sinks.weight", i);
            rc |= rs_add(l, F, FILL_ONES, 0, 1, E, 1, 1, "blk.%lld.post_attention_norm.weight", i);
            rc |= rs_add(l, F, FILL_NORMAL, se, 2, E, X, 1, "blk.%lld.ffn_gate_inp.weight", i);
            rc |= rs_add(l, F, FILL_NORMAL, 1.0f, 1, X, 1, 1, "blk.%lld.ffn_gate_inp.bias", i);
            rc |= rs_add(l, MX, FILL_MATRIX, se, 3, E, ffx, X, "blk.%lld.ffn_gate_exps.weight", i);
            rc |= rs_add(l, F, FILL_NORMAL, 0.1f, 2, ffx, X, 1, "blk.%lld.ffn_gate_exps.bias", i);
            rc |= rs_add(l, MX, FILL_MATRIX, se, 3, E, ffx, X, "blk.%lld.ffn_up_exps.weight", i);
            rc |= rs_add(l, F, FILL_NORMAL, 0.1f, 2, ffx, X, 1, "blk.%lld.ffn_up_exps.bias", i);
            rc |= rs_add(l, MX, FILL_MATRIX, 1.0f / sqrtf((float)ffx), 3, ffx, E, X, "blk.%lld.ffn_down_exps.weight", i);
            rc |= rs_add(l, F, FILL_NORMAL, 0.1f, 2, E, X, 1, "blk.%lld.ffn_down_exps.bias", i);
        }
        return rc;
    }
    /* gemma3: tied embeddings, q/k norms, post norms */
    const uint32_t F = NUAGE_TYPE_F32;
    rc |= rs_add(l, mtype, FILL_MATRIX, 0.25f, 2, E, s->vocab, 1, "token_embd.weight", 0);
    rc |= rs_add(l, F, FILL_ONES, 0, 1, E, 1, 1, "output_norm.weight", 0);
    for (long long i = 0; i < s->layers; i++) {
        rc |= rs_add(l, F, FILL_ONES, 0, 1, E, 1, 1, "blk.%lld.attn_norm.weight", i);
        rc |= rs_add(l, mtype, FILL_MATRIX, se, 2, E, q, 1, "blk.%lld.attn_q.weight", i);
        rc |= rs_add(l, mtype, FILL_MATRIX, se, 2, E, kv, 1, "blk.%lld.attn_k.weight", i);
        rc |= rs_add(l, mtype, FILL_MATRIX, se, 2, E, kv, 1, "blk.%lld.attn_v.weight", i);
        rc |= rs_add(l, F, FILL_ONES, 0, 1, s->head_dim, 1, 1, "blk.%lld.attn_q_norm.weight", i);
        rc |= rs_add(l, F, FILL_ONES, 0, 1, s->head_dim, 1, 1, "blk.%lld.attn_k_norm.weight", i);
        rc |= rs_add(l, mtype, FILL_MATRIX, 1.0f / sqrtf((float)q), 2, q, E, 1, "blk.%lld.attn_output.weight", i);
        rc |= rs_add(l, F, FILL_ONES, 0, 1, E, 1, 1, "blk.%lld.post_attention_norm.weight", i);
        rc |= rs_add(l, F, FILL_ONES, 0, 1, E, 1, 1, "blk.%lld.ffn_norm.weight", i);
        rc |= rs_add(l, mtype, FILL_MATRIX, se, 2, E, s->ff, 1, "blk.%lld.ffn_gate.weight", i);
        rc |= rs_add(l, mtype, FILL_MATRIX, se, 2, E, s->ff, 1, "blk.%lld.ffn_up.weight", i);
        rc |= rs_add(l, mtype, FILL_MATRIX, 1.0f / sqrtf((float)s->ff), 2, s->ff, E, 1, "blk.%lld.ffn_down.weight", i);
        rc |= rs_add(l, F, FILL_ONES, 0, 1, E, 1, 1, "blk.%lld.post_ffw_norm.weight", i);
    }
    return rc;
}

/* The template's metadata with the shape keys replaced and the tokenizer
 * padded to s->vocab tokens. */
static int rs_metadata(nuage_gguf_writer *w, const nuage_gguf *tg, const rs_shape *s,
                       const char *name, char *err, size_t errlen) {
    const nuage_gguf_value *toks = nuage_gguf_get_arr(tg, "tokenizer.ggml.tokens", NUAGE_GGUF_STRING);
    const nuage_gguf_value *ttype = nuage_gguf_get_arr(tg, "tokenizer.ggml.token_type", NUAGE_GGUF_INT32);
    const nuage_gguf_value *arch = nuage_gguf_get(tg, "general.architecture");
    if (!toks || !ttype || !arch || arch->type != NUAGE_GGUF_STRING || strcmp(arch->v.str.ptr, s->arch) ||
        (int64_t)toks->v.arr.n > s->vocab) {
        snprintf(err, errlen, "the template must be a small %s file with a tokenizer", s->arch);
        return -1;
    }
    const int64_t n0 = (int64_t)toks->v.arr.n, nv = s->vocab;
    char **strs = calloc((size_t)nv, sizeof *strs);
    float *scores = calloc((size_t)nv, sizeof *scores);
    int32_t *types = calloc((size_t)nv, sizeof *types);
    int rc = -1;
    if (!strs || !scores || !types) goto out;
    const nuage_gguf_str *ts = toks->v.arr.data;
    for (int64_t i = 0; i < nv; i++) {
        char buf[32];
        if (i >= n0) snprintf(buf, sizeof buf, "<unused%lld>", (long long)(i - n0));
        strs[i] = strdup(i < n0 ? ts[i].ptr : buf);
        if (!strs[i]) goto out;
        types[i] = i < n0 ? ((const int32_t *)ttype->v.arr.data)[i] : 5; /* unused */
        scores[i] = i < n0 ? 0.0f : -1e4f;
    }
    const nuage_gguf_value *sc = nuage_gguf_get_arr(tg, "tokenizer.ggml.scores", NUAGE_GGUF_FLOAT32);
    if (sc) memcpy(scores, sc->v.arr.data, (size_t)n0 * sizeof(float));
    rc = 0;
    for (uint64_t i = 0; i < nuage_gguf_n_kv(tg) && !rc; i++) {
        const nuage_gguf_kv *kv = nuage_gguf_kv_at(tg, i);
        const char *k = kv->key.ptr;
        if (!strcmp(k, "tokenizer.ggml.tokens"))
            rc = nuage_gguf_writer_set_arr_str(w, k, (const char *const *)strs, (size_t)nv);
        else if (!strcmp(k, "tokenizer.ggml.scores"))
            rc = nuage_gguf_writer_set_arr(w, k, NUAGE_GGUF_FLOAT32, scores, (size_t)nv);
        else if (!strcmp(k, "tokenizer.ggml.token_type"))
            rc = nuage_gguf_writer_set_arr(w, k, NUAGE_GGUF_INT32, types, (size_t)nv);
        else rc = nuage_gguf_writer_set_value(w, k, &kv->value);
    }
    char key[128];
#define RS_U32(suffix, v) \
    (snprintf(key, sizeof key, "%s." suffix, s->arch), rc |= nuage_gguf_writer_set_u32(w, key, (uint32_t)(v)))
    RS_U32("context_length", s->ctx);
    RS_U32("embedding_length", s->dim);
    RS_U32("block_count", s->layers);
    RS_U32("attention.head_count", s->heads);
    RS_U32("attention.head_count_kv", s->kv_heads);
    RS_U32("attention.key_length", s->head_dim);
    RS_U32("attention.value_length", s->head_dim);
    RS_U32("attention.sliding_window", s->window);
    RS_U32("feed_forward_length", s->ff);
    RS_U32("vocab_size", s->vocab);
    if (s->experts) {
        RS_U32("expert_count", s->experts);
        RS_U32("expert_used_count", s->experts_used);
        RS_U32("expert_feed_forward_length", s->ff);
        RS_U32("rope.scaling.original_context_length", 4096);
        snprintf(key, sizeof key, "%s.rope.scaling.factor", s->arch);
        rc |= nuage_gguf_writer_set_f32(w, key, 32.0f);
    }
#undef RS_U32
    rc |= nuage_gguf_writer_set_str(w, "general.name", name);
out:
    if (strs)
        for (int64_t i = 0; i < nv; i++) free(strs[i]);
    free(strs);
    free(scores);
    free(types);
    if (rc && !*err) snprintf(err, errlen, "cannot build the metadata");
    return rc;
}

static int rs_put_u64(FILE *f, uint64_t v) { return fwrite(&v, 8, 1, f) == 1 ? 0 : -1; }
static int rs_put_u32(FILE *f, uint32_t v) { return fwrite(&v, 4, 1, f) == 1 ? 0 : -1; }
static int rs_pad(FILE *f, uint64_t n) {
    static const uint8_t z[32];
    return n && fwrite(z, 1, (size_t)n, f) != n ? -1 : 0;
}

static int write_real_shape(int which, const char *tmpl, const char *out, uint32_t mtype) {
    const rs_shape *s = &k_shapes[which];
    char err[256] = "";
    nuage_gguf *tg = NULL;
    if (nuage_gguf_open(tmpl, &tg, err, sizeof err)) {
        fprintf(stderr, "cannot open the template %s: %s\n", tmpl, err);
        return 1;
    }
    rs_init_normal();
    rs_list l = {0};
    nuage_gguf_writer *w = nuage_gguf_writer_new();
    void *hdr = NULL;
    size_t hlen = 0;
    FILE *f = NULL;
    uint8_t *row = NULL;
    float *tmp = NULL;
    char tmp_path[4096];
    snprintf(tmp_path, sizeof tmp_path, "%s.tmp", out);
    int rc = 1;
    if (!w || rs_tensors(s, mtype, &l) || rs_metadata(w, tg, s, k_shape_names[which], err, sizeof err) ||
        nuage_gguf_writer_to_buffer(w, &hdr, &hlen)) {
        fprintf(stderr, "make_model: %s\n", *err ? err : "out of memory");
        goto done;
    }
    /* the writer's header has no tensors: patch the count, append ours */
    const uint64_t nt = (uint64_t)l.n;
    memcpy((uint8_t *)hdr + 8, &nt, 8);
    if (!(f = fopen(tmp_path, "wb"))) {
        fprintf(stderr, "cannot create %s\n", tmp_path);
        goto done;
    }
    setvbuf(f, NULL, _IOFBF, 1 << 22);
    int bad = fwrite(hdr, 1, hlen, f) != hlen;
    uint64_t off = 0, total = 0;
    for (int i = 0; i < l.n && !bad; i++) {
        const rs_tensor *t = &l.t[i];
        const uint64_t len = strlen(t->name);
        bad |= rs_put_u64(f, len) || fwrite(t->name, 1, len, f) != len || rs_put_u32(f, (uint32_t)t->nd);
        for (int d = 0; d < t->nd; d++) bad |= rs_put_u64(f, (uint64_t)t->ne[d]);
        bad |= rs_put_u32(f, t->type) || rs_put_u64(f, off);
        off = (off + rs_bytes(t) + 31) & ~(uint64_t)31;
    }
    long pos = ftell(f);
    bad |= pos < 0 || rs_pad(f, (uint64_t)((32 - pos % 32) % 32));
    size_t maxrow = 0;
    int64_t maxcols = 0;
    for (int i = 0; i < l.n; i++) {
        size_t rb = nuage_row_size(l.t[i].type, l.t[i].ne[0]);
        if (rb > maxrow) maxrow = rb;
        if (l.t[i].ne[0] > maxcols) maxcols = l.t[i].ne[0];
    }
    row = malloc(maxrow);
    tmp = malloc((size_t)maxcols * sizeof(float));
    bad |= !row || !tmp;
    for (int i = 0; i < l.n && !bad; i++) {
        const rs_tensor *t = &l.t[i];
        const size_t rb = nuage_row_size(t->type, t->ne[0]);
        const int64_t rows = (int64_t)(rs_bytes(t) / rb);
        for (int64_t r = 0; r < rows && !bad; r++) {
            rs_row(t, row, tmp);
            bad |= fwrite(row, 1, rb, f) != rb;
        }
        bad |= rs_pad(f, (32 - rs_bytes(t) % 32) % 32);
        total += rs_bytes(t);
        if (i % 16 == 0) fprintf(stderr, "\r%s: %d/%d tensors, %.2f GB", out, i + 1, l.n, total / 1e9);
    }
    fprintf(stderr, "\n");
    if (bad || fclose(f)) {
        f = NULL;
        fprintf(stderr, "cannot write %s\n", tmp_path);
        remove(tmp_path);
        goto done;
    }
    f = NULL;
    if (rename(tmp_path, out)) {
        fprintf(stderr, "cannot rename %s\n", tmp_path);
        goto done;
    }
    fprintf(stderr, "%s: %s, %d tensors, %.2f GB of weights\n", out, k_shape_names[which], l.n, total / 1e9);
    rc = 0;
done:
    if (f) fclose(f);
    free(row);
    free(tmp);
    free(hdr);
    free(l.t);
    nuage_gguf_writer_free(w);
    nuage_gguf_close(tg);
    return rc;
}

int main(int argc, char **argv) {
    const char *arch = NULL, *tmpl = NULL;
    const char *out = NULL, *tname = "q8_0";
    nuage_random_llama_params p = nuage_random_llama_default_params();
    p.progress = true;
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *a = argv[i], *v = argv[i + 1];
        if (!strcmp(a, "--out")) out = v;
        else if (!strcmp(a, "--vocab-from")) p.vocab_from = v;
        else if (!strcmp(a, "--arch")) arch = v;
        else if (!strcmp(a, "--template")) tmpl = v;
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
    if (arch) {
        int which = -1;
        for (int k = 0; k < 3; k++)
            if (!strcmp(arch, k_shape_names[k])) which = k;
        if (which < 0 || !out || !tmpl || p.type == NUAGE_TYPE_COUNT) {
            fprintf(stderr, "usage: make_model --arch gpt-oss-20b|gemma3-1b|gemma3-4b --out F --template SMALL.gguf [--type q8_0]\n");
            return 2;
        }
        return write_real_shape(which, tmpl, out, p.type);
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
