/*
 * logits_ref.h - comparing the engine's logits with llama.cpp's reference
 * dumps in ../shared/vectors/logits (see ../shared/README.md for the
 * format and the noise floor). Shared by the dense and MoE reference tests.
 *
 * For every model file of the requested architectures, every prompt's
 * logits are computed in one batch (f32 KV cache) and compared over all
 * prompts together: max |Δlogit|, mean / median KL(reference ‖ nuage),
 * positions with KL > 0.1, and arg-max misses at positions whose reference
 * top1-top2 margin is above the type's threshold. Greedy entries are
 * replayed on the incremental path (prompt in one batch, then one token per
 * decode, fed the reference's own tokens) and compared step by step up to
 * the first step whose reference margin is below the type's tolerance.
 */
#ifndef NUAGE_LOGITS_REF_H
#define NUAGE_LOGITS_REF_H

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nuage/nuage.h"
#include "test_util.h"

typedef struct {
    int n_pos;
    double max_abs, mean_kl, median_kl;
    int n_kl_gt_01;
    int n_checked_argmax, n_argmax_miss;
    double worst_miss_margin;
    int greedy_steps, greedy_compared, greedy_miss;
} nuage_ref_stats;

static inline char *nuage_ref_read(const char *dir, const char *name, size_t *len) {
    char path[4096];
    int w = snprintf(path, sizeof path, "%s/vectors/logits/%s", dir, name);
    if (w < 0 || (size_t)w >= sizeof path) return NULL; /* path too long: as if missing */
    return nuage_test_read_file(path, len);
}

static inline int nuage_ref_parse_ids(const char *s, int32_t *out, int cap) {
    int n = 0;
    char *end;
    for (;;) {
        long v = strtol(s, &end, 10);
        if (end == s) break;
        if (n < cap) out[n] = (int32_t)v;
        n++;
        s = end;
    }
    return n;
}

/* KL(P_ref || P_ours) in nats from raw logits. */
static inline double nuage_ref_kl(const float *ref, const float *ours, int n) {
    double mr = -INFINITY, mo = -INFINITY;
    for (int i = 0; i < n; i++) { if (ref[i] > mr) mr = ref[i]; if (ours[i] > mo) mo = ours[i]; }
    double zr = 0, zo = 0;
    for (int i = 0; i < n; i++) { zr += exp(ref[i] - mr); zo += exp(ours[i] - mo); }
    double lzr = log(zr), lzo = log(zo), kl = 0;
    for (int i = 0; i < n; i++) {
        double lpr = ref[i] - mr - lzr, lpo = ours[i] - mo - lzo;
        kl += exp(lpr) * (lpr - lpo);
    }
    return kl > 0 ? kl : 0;
}

static inline int nuage_ref_argmax(const float *x, int n, double *margin) {
    int b = 0;
    for (int i = 1; i < n; i++) if (x[i] > x[b]) b = i;
    double second = -INFINITY;
    for (int i = 0; i < n; i++) if (i != b && x[i] > second) second = x[i];
    if (margin) *margin = x[b] - second;
    return b;
}

static inline int nuage_ref_cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Evaluate `ids` as one prompt; returns malloc'd (n, n_vocab) logits. */
static inline float *nuage_ref_eval(nuage_model *m, const int32_t *ids, int n, int n_threads) {
    nuage_context_params cp = nuage_context_default_params();
    cp.n_threads = n_threads;
    cp.n_ctx = n + 8;
    cp.n_batch_max = n;
    cp.kv_type = NUAGE_KV_F32;
    nuage_context *ctx = NULL;
    char err[256];
    if (nuage_context_new(m, &cp, &ctx, err, sizeof err)) { fprintf(stderr, "%s\n", err); return NULL; }
    nuage_batch *b = nuage_batch_new(n);
    for (int i = 0; i < n; i++) nuage_batch_add(b, ids[i], i, 0, true);
    int nv = nuage_model_n_vocab(m);
    float *out = NULL;
    if (nuage_decode(ctx, b, err, sizeof err) == 0) {
        out = malloc((size_t)n * nv * sizeof(float));
        for (int i = 0; i < n; i++) memcpy(out + (size_t)i * nv, nuage_get_logits(ctx, i), (size_t)nv * sizeof(float));
    } else {
        fprintf(stderr, "decode: %s\n", err);
    }
    nuage_batch_free(b);
    nuage_context_free(ctx);
    return out;
}

/* Replay a greedy entry on the incremental path. Compares arg-max step by
 * step up to the first step with reference margin < tol. */
static inline void nuage_ref_greedy(nuage_model *m, const char *dir, json_t *e, double tol,
                                    int n_threads, nuage_ref_stats *st) {
    char *tok_txt = nuage_ref_read(dir, json_string_value(json_object_get(e, "tokens_file")), NULL);
    json_t *gen = json_object_get(e, "generated");
    json_t *margins = json_object_get(e, "step_top1_top2_margin");
    if (!tok_txt || !gen) { free(tok_txt); return; }
    int32_t prompt[4096];
    int np = nuage_ref_parse_ids(tok_txt, prompt, 4096);
    free(tok_txt);
    int ng = (int)json_array_size(gen);
    nuage_context_params cp = nuage_context_default_params();
    cp.n_threads = n_threads;
    cp.n_ctx = np + ng + 8;
    cp.n_batch_max = np;
    cp.kv_type = NUAGE_KV_F32;
    nuage_context *ctx = NULL;
    char err[256];
    if (nuage_context_new(m, &cp, &ctx, err, sizeof err)) return;
    nuage_batch *b = nuage_batch_new(np);
    for (int i = 0; i < np; i++) nuage_batch_add(b, prompt[i], i, 0, i == np - 1);
    int nv = nuage_model_n_vocab(m);
    if (nuage_decode(ctx, b, err, sizeof err)) { st->greedy_miss++; goto out; }
    const float *l = nuage_get_logits(ctx, np - 1);
    for (int s = 0; s < ng; s++) {
        double mg = json_number_value(json_array_get(margins, (size_t)s));
        if (mg < tol) break; /* beyond here the reference itself is not decisive */
        int want = (int)json_integer_value(json_array_get(gen, (size_t)s));
        int got = nuage_ref_argmax(l, nv, NULL);
        st->greedy_compared++;
        if (got != want) { st->greedy_miss++; break; }
        nuage_batch_clear(b);
        nuage_batch_add(b, want, np + s, 0, true);
        if (nuage_decode(ctx, b, err, sizeof err)) { st->greedy_miss++; break; }
        l = nuage_get_logits(ctx, 0);
    }
    st->greedy_steps += ng;
out:
    nuage_batch_free(b);
    nuage_context_free(ctx);
}

/* Compare every logits entry (and greedy entry) of `model_key`. Returns 0
 * when the model loaded; fills st. margin_tol: arg-max must agree where the
 * reference margin is >= margin_tol; greedy_tol: see nuage_ref_greedy. */
static inline int nuage_ref_compare_model(const char *dir, json_t *index, const char *model_key,
                                          double margin_tol, double greedy_tol, int n_threads,
                                          nuage_ref_stats *st) {
    memset(st, 0, sizeof *st);
    json_t *mi = json_object_get(json_object_get(index, "models"), model_key);
    char path[4096], err[512];
    snprintf(path, sizeof path, "%s/%s", dir, json_string_value(json_object_get(mi, "file")));
    nuage_model *m = NULL;
    if (nuage_model_load(path, NULL, &m, err, sizeof err)) {
        fprintf(stderr, "load %s: %s\n", path, err);
        return -1;
    }
    int nv = nuage_model_n_vocab(m);
    double *kls = NULL;
    size_t nkl = 0;
    double kl_sum = 0;
    json_t *entries = json_object_get(index, "entries");
    size_t i;
    json_t *e;
    json_array_foreach(entries, i, e) {
        if (strcmp(json_string_value(json_object_get(e, "model")), model_key)) continue;
        const char *kind = json_string_value(json_object_get(e, "kind"));
        if (!strcmp(kind, "greedy")) {
            nuage_ref_greedy(m, dir, e, greedy_tol, n_threads, st);
            continue;
        }
        char *tok_txt = nuage_ref_read(dir, json_string_value(json_object_get(e, "tokens_file")), NULL);
        size_t ref_len = 0;
        float *ref = (float *)nuage_ref_read(dir, json_string_value(json_object_get(e, "logits_file")), &ref_len);
        int32_t ids[4096];
        int n = tok_txt ? nuage_ref_parse_ids(tok_txt, ids, 4096) : 0;
        free(tok_txt);
        if (!ref || n <= 0 || ref_len != (size_t)n * nv * sizeof(float)) {
            free(ref);
            st->n_argmax_miss++;
            continue;
        }
        float *ours = nuage_ref_eval(m, ids, n, n_threads);
        if (!ours) { free(ref); st->n_argmax_miss++; continue; }
        kls = realloc(kls, (nkl + (size_t)n) * sizeof *kls);
        for (int p = 0; p < n; p++) {
            const float *r = ref + (size_t)p * nv, *o = ours + (size_t)p * nv;
            for (int v = 0; v < nv; v++) {
                double d = fabs((double)r[v] - o[v]);
                if (!(d <= st->max_abs)) st->max_abs = d; /* NaN propagates */
            }
            double kl = nuage_ref_kl(r, o, nv);
            kls[nkl++] = kl;
            kl_sum += kl;
            if (kl > 0.1) st->n_kl_gt_01++;
            double margin;
            int ra = nuage_ref_argmax(r, nv, &margin);
            if (margin >= margin_tol) {
                st->n_checked_argmax++;
                if (nuage_ref_argmax(o, nv, NULL) != ra) {
                    st->n_argmax_miss++;
                    if (margin > st->worst_miss_margin) st->worst_miss_margin = margin;
                }
            }
        }
        st->n_pos += n;
        free(ours);
        free(ref);
    }
    if (nkl) {
        st->mean_kl = kl_sum / (double)nkl;
        qsort(kls, nkl, sizeof *kls, nuage_ref_cmp_double);
        st->median_kl = nkl % 2 ? kls[nkl / 2] : 0.5 * (kls[nkl / 2 - 1] + kls[nkl / 2]);
    }
    free(kls);
    nuage_model_free(m);
    return 0;
}

/* A number from noise_floor.json: models[key][comparison][metric]. */
static inline double nuage_ref_noise(json_t *noise, const char *key, const char *cmp, const char *metric) {
    return json_number_value(json_object_get(json_object_get(json_object_get(json_object_get(noise, "models"), key), cmp), metric));
}

#endif
