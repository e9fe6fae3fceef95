/*
 * tckpt.c - a trained model as a GGUF file, and training checkpoints.
 *
 * Export writes what the engine's llama loader (src/engine/model.c,
 * arch_llama.c) reads: general.architecture = "llama", the llama.* shape
 * keys, and the tensors token_embd / blk.N.{attn_norm, attn_q, attn_k,
 * attn_v, attn_output, ffn_norm, ffn_gate, ffn_up, ffn_down} /
 * output_norm / output, matrices with ne = [inputs, outputs] as ggml
 * stores them. The tokenizer.* keys are copied from the tokenizer GGUF,
 * so the result is an ordinary self-contained GGUF model.
 *
 * A checkpoint is the same file in F32 plus the Adam moments as tensors
 * "adam.m.NAME" / "adam.v.NAME" and the loop state in nuage.train.*
 * metadata (step, the batch sampler's RNG state, the options that shape
 * the schedule). It is written through the atomic writer (temp file +
 * rename), so a kill at any moment leaves the previous checkpoint intact;
 * and since it is a GGUF model too, any checkpoint can be run or
 * evaluated directly.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/gguf.h"
#include "engine/gguf_write.h"
#include "engine/quant.h"
#include "nuage/nuage.h"
#include "train/train.h"

int nuage_tmodel_to_gguf(const nuage_tmodel *m, nuage_gguf_writer *w, bool f16) {
    const nuage_tcfg *c = &m->c;
    int rc;
    if ((rc = nuage_gguf_writer_set_str(w, "general.architecture", "llama")) ||
        (rc = nuage_gguf_writer_set_u32(w, "general.file_type", f16 ? 1 : 0)) ||
        (rc = nuage_gguf_writer_set_u32(w, "llama.vocab_size", (uint32_t)c->n_vocab)) ||
        (rc = nuage_gguf_writer_set_u32(w, "llama.context_length", (uint32_t)c->n_ctx)) ||
        (rc = nuage_gguf_writer_set_u32(w, "llama.embedding_length", (uint32_t)c->dim)) ||
        (rc = nuage_gguf_writer_set_u32(w, "llama.block_count", (uint32_t)c->n_layer)) ||
        (rc = nuage_gguf_writer_set_u32(w, "llama.feed_forward_length", (uint32_t)c->n_ff)) ||
        (rc = nuage_gguf_writer_set_u32(w, "llama.attention.head_count", (uint32_t)c->n_head)) ||
        (rc = nuage_gguf_writer_set_u32(w, "llama.attention.head_count_kv", (uint32_t)c->n_head_kv)) ||
        (rc = nuage_gguf_writer_set_u32(w, "llama.rope.dimension_count", (uint32_t)m->hd)) ||
        (rc = nuage_gguf_writer_set_f32(w, "llama.rope.freq_base", c->rope_base)) ||
        (rc = nuage_gguf_writer_set_f32(w, "llama.attention.layer_norm_rms_epsilon", c->norm_eps)))
        return rc;
    uint16_t *h = NULL;
    for (int i = 0; i < m->n_p && !rc; i++) {
        const nuage_tparam *p = &m->p[i];
        int64_t ne[2] = {p->cols, p->rows};
        size_t n = (size_t)(p->rows * p->cols);
        const float *src = m->w + p->off;
        if (f16 && p->matrix) {
            uint16_t *nh = realloc(h, n * sizeof *h);
            if (!nh) { rc = NUAGE_E_NOMEM; break; }
            h = nh;
            for (size_t k = 0; k < n; k++) h[k] = nuage_fp32_to_fp16(src[k]);
            rc = nuage_gguf_writer_add_tensor(w, p->name, NUAGE_TYPE_F16, 2, ne, h, n * 2);
        } else {
            rc = nuage_gguf_writer_add_tensor(w, p->name, NUAGE_TYPE_F32, p->matrix ? 2 : 1, ne, src, n * 4);
        }
    }
    free(h);
    return rc;
}

int nuage_train_copy_tokenizer(const nuage_gguf *g, nuage_gguf_writer *w) {
    for (uint64_t i = 0; i < nuage_gguf_n_kv(g); i++) {
        const nuage_gguf_kv *kv = nuage_gguf_kv_at(g, i);
        if (strncmp(kv->key.ptr, "tokenizer.", 10)) continue;
        int rc = nuage_gguf_writer_set_value(w, kv->key.ptr, &kv->value);
        if (rc) return rc;
    }
    return 0;
}

static bool nuage__get_u32(const nuage_gguf *g, const char *key, int *out) {
    uint32_t v;
    if (!nuage_gguf_get_u32(g, key, &v) || v > (1u << 30)) return false;
    *out = (int)v;
    return true;
}

/* Copy an F32 tensor of exactly n values into dst. */
static int nuage__read_f32(const nuage_gguf *g, const char *name, float *dst, size_t n, char *err, size_t errlen) {
    const nuage_gguf_tensor *t = nuage_gguf_find_tensor(g, name);
    if (!t || t->type != NUAGE_TYPE_F32 || t->nbytes != n * sizeof(float)) {
        snprintf(err, errlen, "tensor %s missing, not F32 or of the wrong size", name);
        return NUAGE_E_FORMAT;
    }
    memcpy(dst, t->data, n * sizeof(float));
    return 0;
}

int nuage_tmodel_from_gguf(nuage_tmodel *m, const nuage_gguf *g, char *err, size_t errlen) {
    nuage_tcfg c = {0};
    const char *arch = nuage_gguf_get_str(g, "general.architecture", NULL);
    const nuage_gguf_tensor *te = nuage_gguf_find_tensor(g, "token_embd.weight");
    if (!arch || strcmp(arch, "llama") || !te || te->n_dims != 2 ||
        !nuage__get_u32(g, "llama.context_length", &c.n_ctx) ||
        !nuage__get_u32(g, "llama.embedding_length", &c.dim) ||
        !nuage__get_u32(g, "llama.block_count", &c.n_layer) ||
        !nuage__get_u32(g, "llama.feed_forward_length", &c.n_ff) ||
        !nuage__get_u32(g, "llama.attention.head_count", &c.n_head) ||
        !nuage__get_u32(g, "llama.attention.head_count_kv", &c.n_head_kv) ||
        !nuage_gguf_get_f32(g, "llama.rope.freq_base", &c.rope_base) ||
        !nuage_gguf_get_f32(g, "llama.attention.layer_norm_rms_epsilon", &c.norm_eps) ||
        te->ne[1] > (1 << 22)) {
        snprintf(err, errlen, "not a llama model written by nuage train (missing llama.* metadata)");
        return NUAGE_E_FORMAT;
    }
    c.n_vocab = (int)te->ne[1];
    int rc = nuage_tmodel_init(m, &c, err, errlen);
    if (rc) return rc == NUAGE_E_INVAL ? NUAGE_E_FORMAT : rc;
    for (int i = 0; i < m->n_p && !rc; i++)
        rc = nuage__read_f32(g, m->p[i].name, m->w + m->p[i].off, (size_t)(m->p[i].rows * m->p[i].cols), err, errlen);
    if (rc) {
        nuage_tmodel_free(m);
        return rc;
    }
    nuage_tmodel_sync(m);
    return 0;
}

/* ---- checkpoints ---------------------------------------------------------------------- */

int nuage_train_save_ckpt(const char *path, const nuage_tmodel *m, const nuage_tstate *s,
                          const nuage_topts *o, const nuage_gguf *tok_gguf, char *err, size_t errlen) {
    nuage_gguf_writer *w = nuage_gguf_writer_new();
    if (!w) return NUAGE_E_NOMEM;
    int rc = nuage_tmodel_to_gguf(m, w, false);
    if (!rc && tok_gguf) rc = nuage_train_copy_tokenizer(tok_gguf, w);
    if (!rc && o->chat_template) rc = nuage_gguf_writer_set_str(w, "tokenizer.chat_template", o->chat_template);
    if (!rc) rc = nuage_gguf_writer_set_str(w, "general.name", "nuage-checkpoint");
    if (!rc) rc = nuage_gguf_writer_set_u32(w, "nuage.train.step", (uint32_t)s->step);
    if (!rc) rc = nuage_gguf_writer_set_arr(w, "nuage.train.rng", NUAGE_GGUF_UINT64, s->rng.s, 4);
    if (!rc) rc = nuage_gguf_writer_set_f64(w, "nuage.train.last_loss", s->last_loss);
    if (!rc) {
        const struct { const char *k; double v; } f[] = {
            {"lr", o->lr}, {"lr_min", o->lr_min}, {"wd", o->wd}, {"beta1", o->beta1},
            {"beta2", o->beta2}, {"eps", o->eps}, {"clip", o->clip},
        };
        char key[64];
        for (size_t i = 0; i < sizeof f / sizeof f[0] && !rc; i++) {
            snprintf(key, sizeof key, "nuage.train.%s", f[i].k);
            rc = nuage_gguf_writer_set_f32(w, key, (float)f[i].v);
        }
        if (!rc) rc = nuage_gguf_writer_set_u32(w, "nuage.train.steps", (uint32_t)o->steps);
        if (!rc) rc = nuage_gguf_writer_set_u32(w, "nuage.train.batch", (uint32_t)o->batch);
        if (!rc) rc = nuage_gguf_writer_set_u32(w, "nuage.train.warmup", (uint32_t)o->warmup);
        if (!rc) rc = nuage_gguf_writer_set_u64(w, "nuage.train.seed", o->seed);
    }
    char name[80];
    for (int i = 0; i < m->n_p && !rc; i++) {
        const nuage_tparam *p = &m->p[i];
        int64_t ne[2] = {p->cols, p->rows};
        size_t n = (size_t)(p->rows * p->cols);
        snprintf(name, sizeof name, "adam.m.%s", p->name);
        rc = nuage_gguf_writer_add_tensor(w, name, NUAGE_TYPE_F32, p->matrix ? 2 : 1, ne, s->m + p->off, n * 4);
        snprintf(name, sizeof name, "adam.v.%s", p->name);
        if (!rc) rc = nuage_gguf_writer_add_tensor(w, name, NUAGE_TYPE_F32, p->matrix ? 2 : 1, ne, s->v + p->off, n * 4);
    }
    if (rc) snprintf(err, errlen, "cannot build the checkpoint: %s", nuage_strerror(rc));
    else rc = nuage_gguf_writer_write_file(w, path, err, errlen);
    nuage_gguf_writer_free(w);
    return rc;
}

int nuage_train_load_ckpt(const char *path, nuage_tmodel *m, nuage_tstate *s, nuage_topts *o, char *err,
                          size_t errlen) {
    nuage_gguf *g = NULL;
    int rc = nuage_gguf_open(path, &g, err, errlen);
    if (rc) return rc;
    rc = nuage_tmodel_from_gguf(m, g, err, errlen);
    if (rc) goto done;
    uint32_t step;
    const nuage_gguf_value *rv = nuage_gguf_get_arr(g, "nuage.train.rng", NUAGE_GGUF_UINT64);
    if (!nuage_gguf_get_u32(g, "nuage.train.step", &step) || !rv || rv->v.arr.n != 4) {
        snprintf(err, errlen, "%s: not a training checkpoint (nuage.train.* missing)", path);
        rc = NUAGE_E_FORMAT;
        goto fail_model;
    }
    rc = nuage_tstate_init(s, m, 0);
    if (rc) goto fail_model;
    s->step = (int)step;
    memcpy(s->rng.s, rv->v.arr.data, sizeof s->rng.s);
    double ll = 0;
    const nuage_gguf_value *lv = nuage_gguf_get(g, "nuage.train.last_loss");
    if (lv && lv->type == NUAGE_GGUF_FLOAT64) ll = lv->v.f64;
    s->last_loss = ll;
    char name[80];
    for (int i = 0; i < m->n_p && !rc; i++) {
        size_t n = (size_t)(m->p[i].rows * m->p[i].cols);
        snprintf(name, sizeof name, "adam.m.%s", m->p[i].name);
        rc = nuage__read_f32(g, name, s->m + m->p[i].off, n, err, errlen);
        snprintf(name, sizeof name, "adam.v.%s", m->p[i].name);
        if (!rc) rc = nuage__read_f32(g, name, s->v + m->p[i].off, n, err, errlen);
    }
    if (rc) {
        nuage_tstate_free(s);
        goto fail_model;
    }
    if (o) {
        struct { const char *k; float *v; } f[] = {
            {"lr", &o->lr}, {"lr_min", &o->lr_min}, {"wd", &o->wd}, {"beta1", &o->beta1},
            {"beta2", &o->beta2}, {"eps", &o->eps}, {"clip", &o->clip},
        };
        char key[64];
        for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
            snprintf(key, sizeof key, "nuage.train.%s", f[i].k);
            nuage_gguf_get_f32(g, key, f[i].v);
        }
        uint32_t u;
        int64_t seed;
        if (nuage_gguf_get_u32(g, "nuage.train.steps", &u)) o->steps = (int)u;
        if (nuage_gguf_get_u32(g, "nuage.train.batch", &u)) o->batch = (int)u;
        if (nuage_gguf_get_u32(g, "nuage.train.warmup", &u)) o->warmup = (int)u;
        if (nuage_gguf_get_i64(g, "nuage.train.seed", &seed)) o->seed = (uint64_t)seed;
    }
    goto done;
fail_model:
    nuage_tmodel_free(m);
done:
    nuage_gguf_close(g);
    return rc;
}
