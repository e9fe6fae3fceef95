/*
 * model.c - loading a model from GGUF: architecture dispatch,
 * hyper-parameters from metadata, weight views, vocabulary.
 *
 * Nothing is trusted: every tensor the forward pass will touch is checked
 * for presence, shape and type here, so the forward pass itself needs no
 * checks. Hyper-parameters are range-checked (a head count of zero or a
 * head dimension that does not divide the width is a format error, not a
 * division by zero later).
 */
#include "engine/model.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/quant.h"
#include "nuage/tokenizer.h"

static const nuage__arch *const nuage__archs[] = {
    &nuage__arch_llama, &nuage__arch_qwen2, &nuage__arch_qwen3,
    &nuage__arch_qwen3moe, &nuage__arch_deepseek2,
    &nuage__arch_gptoss,
    &nuage__arch_gemma3,
};

nuage_model_params nuage_model_default_params(void) {
    nuage_model_params p = {0};
    return p;
}

static int nuage__check_weight(nuage_model *m, nuage_weight *w, const nuage_gguf_tensor *t,
                               const char *name, int64_t cols, int64_t rows, int64_t n_mat,
                               char *err, size_t errlen) {
    int want_dims = n_mat > 0 ? 3 : rows > 0 ? 2 : 1;
    int64_t want[3] = {cols, rows > 0 ? rows : 1, n_mat > 0 ? n_mat : 1};
    bool ok = (int)t->n_dims <= want_dims || (t->n_dims == 2 && want_dims == 1 && t->ne[1] == 1);
    for (int d = 0; d < 3 && ok; d++) ok = t->ne[d] == want[d];
    for (int d = 3; d < NUAGE_GGUF_MAX_DIMS && ok; d++) ok = t->ne[d] == 1;
    if (!ok) {
        snprintf(err, errlen,
                 "tensor %s: shape [%lld, %lld, %lld, %lld], expected [%lld, %lld, %lld]", name,
                 (long long)t->ne[0], (long long)t->ne[1], (long long)t->ne[2],
                 (long long)t->ne[3], (long long)want[0], (long long)want[1], (long long)want[2]);
        return NUAGE_E_FORMAT;
    }
    const nuage_type_traits *tt = nuage_type_get(t->type);
    if (!tt || !tt->name || !tt->supported) {
        snprintf(err, errlen, "tensor %s: type %s is not supported by this engine", name,
                 tt && tt->name ? tt->name : "unknown");
        return NUAGE_E_UNSUPPORTED;
    }
    if (want_dims == 1 && t->type != NUAGE_TYPE_F32) {
        snprintf(err, errlen, "tensor %s: 1-D tensors must be f32, found %s", name, tt->name);
        return NUAGE_E_UNSUPPORTED;
    }
    w->type = t->type;
    w->cols = cols;
    w->rows = want[1] * want[2];
    w->row_bytes = nuage_row_size(t->type, cols);
    w->data = t->data;
    m->n_params += (uint64_t)(cols * want[1] * want[2]);
    m->weight_bytes += t->nbytes;
    return 0;
}

static int nuage__weight_vget(nuage_model *m, nuage_weight *w, bool required, int64_t cols,
                              int64_t rows, int64_t n_mat, char *err, size_t errlen,
                              const char *fmt, va_list ap) {
    char name[256];
    vsnprintf(name, sizeof name, fmt, ap);
    memset(w, 0, sizeof *w);
    const nuage_gguf_tensor *t = nuage_gguf_find_tensor(m->gguf, name);
    if (!t) {
        if (!required) return 0;
        snprintf(err, errlen, "missing tensor %s", name);
        return NUAGE_E_FORMAT;
    }
    return nuage__check_weight(m, w, t, name, cols, rows, n_mat, err, errlen);
}

int nuage__weight_get(nuage_model *m, nuage_weight *w, bool required, int64_t cols, int64_t rows,
                      char *err, size_t errlen, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int rc = nuage__weight_vget(m, w, required, cols, rows, 0, err, errlen, fmt, ap);
    va_end(ap);
    return rc;
}

int nuage__weight_get3(nuage_model *m, nuage_weight *w, bool required, int64_t cols, int64_t rows,
                       int64_t n_mat, char *err, size_t errlen, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int rc = nuage__weight_vget(m, w, required, cols, rows, n_mat, err, errlen, fmt, ap);
    va_end(ap);
    return rc;
}

/* ---- hyper-parameters --------------------------------------------------- */

static bool nuage__hp_u32(const nuage_model *m, const char *suffix, int32_t *out) {
    char key[160];
    snprintf(key, sizeof key, "%s.%s", m->arch->name, suffix);
    uint32_t v;
    if (!nuage_gguf_get_u32(m->gguf, key, &v) || v > INT32_MAX) return false;
    *out = (int32_t)v;
    return true;
}

static bool nuage__hp_f32(const nuage_model *m, const char *suffix, float *out) {
    char key[160];
    snprintf(key, sizeof key, "%s.%s", m->arch->name, suffix);
    return nuage_gguf_get_f32(m->gguf, key, out);
}

static int nuage__read_hparams(nuage_model *m, char *err, size_t errlen) {
    nuage_hparams *hp = &m->hp;
    const char *a = m->arch->name;
    struct { const char *key; int32_t *dst; } req[] = {
        {"embedding_length", &hp->n_embd},
        {"block_count", &hp->n_layer},
        {"attention.head_count", &hp->n_head},
    };
    for (size_t i = 0; i < sizeof req / sizeof req[0]; i++) {
        if (!nuage__hp_u32(m, req[i].key, req[i].dst) || *req[i].dst <= 0) {
            snprintf(err, errlen, "metadata %s.%s missing or not a positive integer", a, req[i].key);
            return NUAGE_E_FORMAT;
        }
    }
    hp->n_ctx_train = 2048;
    nuage__hp_u32(m, "context_length", &hp->n_ctx_train);
    hp->n_head_kv = hp->n_head;
    nuage__hp_u32(m, "attention.head_count_kv", &hp->n_head_kv);
    hp->n_ff = 0;
    nuage__hp_u32(m, "feed_forward_length", &hp->n_ff);
    if (hp->n_head_kv <= 0 || hp->n_head % hp->n_head_kv) {
        snprintf(err, errlen, "attention.head_count_kv %d does not divide head_count %d",
                 hp->n_head_kv, hp->n_head);
        return NUAGE_E_FORMAT;
    }
    hp->head_dim_k = hp->n_embd / hp->n_head;
    hp->head_dim_v = hp->head_dim_k;
    nuage__hp_u32(m, "attention.key_length", &hp->head_dim_k);
    nuage__hp_u32(m, "attention.value_length", &hp->head_dim_v);
    if (hp->head_dim_k <= 0 || hp->head_dim_v <= 0 || hp->head_dim_k > 4096) {
        snprintf(err, errlen, "bad head dimension %d/%d", hp->head_dim_k, hp->head_dim_v);
        return NUAGE_E_FORMAT;
    }
    hp->norm_eps = 1e-5f;
    nuage__hp_f32(m, "attention.layer_norm_rms_epsilon", &hp->norm_eps);
    if (!(hp->norm_eps >= 0 && hp->norm_eps < 1)) {
        snprintf(err, errlen, "bad rms epsilon %g", hp->norm_eps);
        return NUAGE_E_FORMAT;
    }
    /* RoPE */
    hp->rope_style = m->arch->rope_style;
    hp->rope_dim = hp->head_dim_k;
    nuage__hp_u32(m, "rope.dimension_count", &hp->rope_dim);
    if (hp->rope_dim <= 0 || hp->rope_dim > hp->head_dim_k || hp->rope_dim % 2) {
        snprintf(err, errlen, "bad rope.dimension_count %d (head dim %d)", hp->rope_dim, hp->head_dim_k);
        return NUAGE_E_FORMAT;
    }
    hp->rope_freq_base = 10000.0f;
    nuage__hp_f32(m, "rope.freq_base", &hp->rope_freq_base);
    hp->rope_freq_scale = 1.0f;
    hp->rope_orig_ctx = hp->n_ctx_train;
    hp->yarn_ext_factor = 0.0f;
    hp->yarn_attn_factor = 1.0f;
    hp->yarn_beta_fast = 32.0f;
    hp->yarn_beta_slow = 1.0f;
    char key[160];
    snprintf(key, sizeof key, "%s.rope.scaling.type", a);
    const char *st = nuage_gguf_get_str(m->gguf, key, NULL);
    float factor = 0;
    if (!nuage__hp_f32(m, "rope.scaling.factor", &factor)) factor = 0;
    if (st && !strcmp(st, "linear")) hp->rope_scaling = NUAGE_ROPE_SCALING_LINEAR;
    else if (st && !strcmp(st, "yarn")) hp->rope_scaling = NUAGE_ROPE_SCALING_YARN;
    else if (st && strcmp(st, "none")) {
        snprintf(err, errlen, "rope scaling type '%s' is not supported", st);
        return NUAGE_E_UNSUPPORTED;
    }
    if (hp->rope_scaling != NUAGE_ROPE_SCALING_NONE && factor > 0) hp->rope_freq_scale = 1.0f / factor;
    nuage__hp_u32(m, "rope.scaling.original_context_length", &hp->rope_orig_ctx);
    if (hp->rope_scaling == NUAGE_ROPE_SCALING_YARN) {
        hp->yarn_ext_factor = 1.0f;
        nuage__hp_f32(m, "rope.scaling.yarn_ext_factor", &hp->yarn_ext_factor);
        nuage__hp_f32(m, "rope.scaling.yarn_attn_factor", &hp->yarn_attn_factor);
        nuage__hp_f32(m, "rope.scaling.yarn_beta_fast", &hp->yarn_beta_fast);
        nuage__hp_f32(m, "rope.scaling.yarn_beta_slow", &hp->yarn_beta_slow);
    }
    hp->kq_scale = 1.0f / sqrtf((float)hp->head_dim_k);
    /* Vocabulary size: the embedding matrix decides. */
    const nuage_gguf_tensor *te = nuage_gguf_find_tensor(m->gguf, "token_embd.weight");
    if (!te || te->n_dims != 2 || te->ne[0] != hp->n_embd || te->ne[1] <= 0 || te->ne[1] > INT32_MAX) {
        snprintf(err, errlen, "missing or malformed tensor token_embd.weight");
        return NUAGE_E_FORMAT;
    }
    hp->n_vocab = (int32_t)te->ne[1];
    return 0;
}

/* ---- standard tensors ---------------------------------------------------- */

int nuage__load_std_io(nuage_model *m, char *err, size_t errlen) {
    const nuage_hparams *hp = &m->hp;
    int rc;
    if ((rc = nuage__weight_get(m, &m->tok_embd, true, hp->n_embd, hp->n_vocab, err, errlen, "token_embd.weight")))
        return rc;
    if ((rc = nuage__weight_get(m, &m->output_norm, true, hp->n_embd, 0, err, errlen, "output_norm.weight")))
        return rc;
    if ((rc = nuage__weight_get(m, &m->output, false, hp->n_embd, hp->n_vocab, err, errlen, "output.weight")))
        return rc;
    if (!m->output.data) m->output = m->tok_embd; /* tied embeddings */
    if ((rc = nuage__weight_get(m, &m->rope_freqs, false, hp->rope_dim / 2, 0, err, errlen, "rope_freqs.weight")))
        return rc;
    return 0;
}

int nuage__load_std_attn(nuage_model *m, int il, char *err, size_t errlen) {
    const nuage_hparams *hp = &m->hp;
    nuage_layer *L = &m->layers[il];
    int64_t E = hp->n_embd, q = (int64_t)hp->n_head * hp->head_dim_k;
    int64_t k = (int64_t)hp->n_head_kv * hp->head_dim_k, v = (int64_t)hp->n_head_kv * hp->head_dim_v;
    int64_t o = (int64_t)hp->n_head * hp->head_dim_v;
    int rc;
    if ((rc = nuage__weight_get(m, &L->attn_norm, true, E, 0, err, errlen, "blk.%d.attn_norm.weight", il)) ||
        (rc = nuage__weight_get(m, &L->wq, true, E, q, err, errlen, "blk.%d.attn_q.weight", il)) ||
        (rc = nuage__weight_get(m, &L->wk, true, E, k, err, errlen, "blk.%d.attn_k.weight", il)) ||
        (rc = nuage__weight_get(m, &L->wv, true, E, v, err, errlen, "blk.%d.attn_v.weight", il)) ||
        (rc = nuage__weight_get(m, &L->wo, true, o, E, err, errlen, "blk.%d.attn_output.weight", il)) ||
        (rc = nuage__weight_get(m, &L->bq, false, q, 0, err, errlen, "blk.%d.attn_q.bias", il)) ||
        (rc = nuage__weight_get(m, &L->bk, false, k, 0, err, errlen, "blk.%d.attn_k.bias", il)) ||
        (rc = nuage__weight_get(m, &L->bv, false, v, 0, err, errlen, "blk.%d.attn_v.bias", il)))
        return rc;
    return 0;
}

int nuage__load_std_ffn(nuage_model *m, int il, char *err, size_t errlen) {
    const nuage_hparams *hp = &m->hp;
    nuage_layer *L = &m->layers[il];
    int64_t E = hp->n_embd, F = hp->n_ff;
    if (F <= 0) {
        snprintf(err, errlen, "metadata %s.feed_forward_length missing", m->arch->name);
        return NUAGE_E_FORMAT;
    }
    int rc;
    if ((rc = nuage__weight_get(m, &L->ffn_norm, true, E, 0, err, errlen, "blk.%d.ffn_norm.weight", il)) ||
        (rc = nuage__weight_get(m, &L->ffn_gate, true, E, F, err, errlen, "blk.%d.ffn_gate.weight", il)) ||
        (rc = nuage__weight_get(m, &L->ffn_up, true, E, F, err, errlen, "blk.%d.ffn_up.weight", il)) ||
        (rc = nuage__weight_get(m, &L->ffn_down, true, F, E, err, errlen, "blk.%d.ffn_down.weight", il)))
        return rc;
    return 0;
}

void nuage__kv_dims_std(const nuage_model *m, int64_t *k_dim, int64_t *v_dim) {
    *k_dim = (int64_t)m->hp.n_head_kv * m->hp.head_dim_k;
    *v_dim = (int64_t)m->hp.n_head_kv * m->hp.head_dim_v;
}

/* ---- load / free ----------------------------------------------------------- */

int nuage_model_load(const char *path, const nuage_model_params *params, nuage_model **out,
                     char *err, size_t errlen) {
    char dummy[8];
    if (!err) { err = dummy; errlen = sizeof dummy; }
    *out = NULL;
    nuage_model_params p = params ? *params : nuage_model_default_params();
    nuage_quant_init();
    nuage_model *m = calloc(1, sizeof *m);
    if (!m) return NUAGE_E_NOMEM;
    int rc = nuage_gguf_open(path, &m->gguf, err, errlen);
    if (rc) goto fail_gguf;

    const char *arch = nuage_gguf_get_str(m->gguf, "general.architecture", NULL);
    if (!arch) {
        snprintf(err, errlen, "metadata general.architecture missing");
        rc = NUAGE_E_FORMAT;
        goto fail_arch;
    }
    for (size_t i = 0; i < sizeof nuage__archs / sizeof nuage__archs[0]; i++)
        if (!strcmp(arch, nuage__archs[i]->name)) m->arch = nuage__archs[i];
    if (!m->arch) {
        snprintf(err, errlen, "architecture '%s' is not supported", arch);
        rc = NUAGE_E_UNSUPPORTED;
        goto fail_arch;
    }

    rc = nuage_vocab_from_gguf(m->gguf, &m->vocab, err, errlen);
    if (rc) goto fail_arch;

    const char *name = nuage_gguf_get_str(m->gguf, "general.name", NULL);
    if (!name) {
        const char *slash = strrchr(path, '/');
        name = slash ? slash + 1 : path;
    }
    m->name = strdup(name);
    if (!m->name) { rc = NUAGE_E_NOMEM; goto fail_name; }
    m->chat_template = nuage_gguf_get_str(m->gguf, "tokenizer.chat_template", NULL);

    if (p.vocab_only) {
        *out = m;
        return 0;
    }
    rc = nuage__read_hparams(m, err, errlen);
    if (rc) goto fail_hparams;
    if (nuage_vocab_n_tokens(m->vocab) > m->hp.n_vocab) {
        snprintf(err, errlen, "vocabulary has %d tokens but token_embd.weight only %d rows",
                 nuage_vocab_n_tokens(m->vocab), m->hp.n_vocab);
        rc = NUAGE_E_FORMAT;
        goto fail_hparams;
    }
    m->layers = calloc((size_t)m->hp.n_layer, sizeof *m->layers);
    if (!m->layers) { rc = NUAGE_E_NOMEM; goto fail_hparams; }
    rc = m->arch->load(m, err, errlen);
    if (rc) goto fail_load;
    *out = m;
    return 0;

fail_load:
    free(m->layers);
fail_hparams:
    free(m->name);
fail_name:
    nuage_vocab_free(m->vocab);
fail_arch:
    nuage_gguf_close(m->gguf);
fail_gguf:
    free(m);
    return rc;
}

void nuage_model_free(nuage_model *m) {
    if (!m) return;
    free(m->layers);
    free(m->name);
    nuage_vocab_free(m->vocab);
    nuage_gguf_close(m->gguf);
    free(m);
}

const char *nuage_model_arch(const nuage_model *m) { return m->arch->name; }
const char *nuage_model_name(const nuage_model *m) { return m->name; }
int32_t nuage_model_n_vocab(const nuage_model *m) { return m->hp.n_vocab; }
int32_t nuage_model_n_ctx_train(const nuage_model *m) { return m->hp.n_ctx_train; }
int32_t nuage_model_n_embd(const nuage_model *m) { return m->hp.n_embd; }
int32_t nuage_model_n_layer(const nuage_model *m) { return m->hp.n_layer; }
uint64_t nuage_model_n_params(const nuage_model *m) { return m->n_params; }
uint64_t nuage_model_size_bytes(const nuage_model *m) { return m->weight_bytes; }
const struct nuage_vocab *nuage_model_vocab(const nuage_model *m) { return m->vocab; }
const char *nuage_model_chat_template(const nuage_model *m) { return m->chat_template; }

uint64_t nuage_model_kv_bytes_per_token(const nuage_model *m, int elem_size) {
    int64_t k, v;
    m->arch->kv_dims(m, &k, &v);
    return (uint64_t)(k + v) * (uint64_t)elem_size * (uint64_t)m->hp.n_layer;
}
