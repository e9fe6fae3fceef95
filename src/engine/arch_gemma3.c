/*
 * arch_gemma3.c - the `gemma3` architecture (Google Gemma 3 text models),
 * as llama.cpp's src/models/gemma3.cpp runs it.
 *
 * Gemma 3 is the llama block with five changes, all options of the shared
 * forward pass (forward.c) set here:
 *   - the input embedding is multiplied by sqrt(n_embd) (hp.embd_scale);
 *   - q and k get a per-head RMSNorm (attn_q_norm / attn_k_norm) before
 *     NeoX RoPE, as in qwen3;
 *   - each sub-layer's output is RMS-normalised again before the residual
 *     add (post_attention_norm, post_ffw_norm);
 *   - the FFN is GeGLU with tanh GELU, which ggml evaluates through an f16
 *     table; we do the same (NUAGE_ACT_GELU_F16) because the reference
 *     logits move by 0.02 otherwise;
 *   - local/global attention: most layers see only the last n_swa positions
 *     (attention.sliding_window) and use their own RoPE base
 *     (rope.freq_base_swa, default 10000) with no RoPE scaling; every
 *     `sliding_window_pattern`-th layer (default 6: il % 6 == 5) is global
 *     and uses rope.freq_base and the model's RoPE scaling.
 * The output projection is usually tied to token_embd. Gemma's RMSNorm
 * multiplies by (1 + w), but GGUF converters store 1 + w, so the norms are
 * plain multipliers here. The attention scale is 1/sqrt(head_dim), except
 * for the 62-layer (27B) model where llama.cpp uses 1/sqrt(n_embd/n_head).
 * An optional final_logit_softcapping (Gemma 2 style) is honoured.
 */
#include <math.h>
#include <stdio.h>

#include "engine/model.h"

static bool nuage__g3_u32(const nuage_model *m, const char *suffix, uint32_t *out) {
    char key[160];
    snprintf(key, sizeof key, "gemma3.%s", suffix);
    return nuage_gguf_get_u32(m->gguf, key, out);
}

static bool nuage__g3_f32(const nuage_model *m, const char *suffix, float *out) {
    char key[160];
    snprintf(key, sizeof key, "gemma3.%s", suffix);
    return nuage_gguf_get_f32(m->gguf, key, out);
}

/* Window size, layer pattern and per-layer RoPE settings. Returns 0 or
 * NUAGE_E_FORMAT. */
static int nuage__gemma3_hparams(nuage_model *m, char *err, size_t errlen) {
    nuage_hparams *hp = &m->hp;
    uint32_t n_swa = 0;
    if (nuage__g3_u32(m, "attention.sliding_window", &n_swa) && n_swa > 0) {
        if (n_swa > INT32_MAX) {
            snprintf(err, errlen, "gemma3.attention.sliding_window %u out of range", n_swa);
            return NUAGE_E_FORMAT;
        }
        hp->n_swa = (int32_t)n_swa;
        /* layer il is a window layer iff il % period < period - 1; a period
         * of 0 makes every layer a window layer (llama.cpp's rule) */
        uint32_t period = 6;
        const nuage_gguf_value *arr =
            nuage_gguf_get_arr(m->gguf, "gemma3.attention.sliding_window_pattern", NUAGE_GGUF_BOOL);
        if (arr) {
            /* one flag per layer */
            if ((int64_t)arr->v.arr.n != hp->n_layer) {
                snprintf(err, errlen, "gemma3.attention.sliding_window_pattern has %llu entries, expected %d",
                         (unsigned long long)arr->v.arr.n, hp->n_layer);
                return NUAGE_E_FORMAT;
            }
            for (int il = 0; il < hp->n_layer; il++) m->layers[il].swa = ((const uint8_t *)arr->v.arr.data)[il] != 0;
        } else {
            if (nuage_gguf_get(m->gguf, "gemma3.attention.sliding_window_pattern") &&
                !nuage__g3_u32(m, "attention.sliding_window_pattern", &period)) {
                snprintf(err, errlen, "gemma3.attention.sliding_window_pattern: expected an integer "
                                      "period or one bool per layer");
                return NUAGE_E_FORMAT;
            }
            for (int il = 0; il < hp->n_layer; il++)
                m->layers[il].swa = period == 0 || (uint32_t)il % period < period - 1;
        }
        hp->rope_freq_base_swa = 10000.0f;
        nuage__g3_f32(m, "rope.freq_base_swa", &hp->rope_freq_base_swa);
        hp->rope_freq_scale_swa = 1.0f;
        if (!(hp->rope_freq_base_swa > 0)) {
            snprintf(err, errlen, "bad gemma3.rope.freq_base_swa %g", hp->rope_freq_base_swa);
            return NUAGE_E_FORMAT;
        }
    }
    hp->embd_scale = sqrtf((float)hp->n_embd);
    hp->ffn_act = NUAGE_ACT_GELU_F16;
    hp->logit_softcap = 0.0f;
    nuage__g3_f32(m, "final_logit_softcapping", &hp->logit_softcap);
    if (!(hp->logit_softcap >= 0)) {
        snprintf(err, errlen, "bad gemma3.final_logit_softcapping %g", hp->logit_softcap);
        return NUAGE_E_FORMAT;
    }
    if (hp->n_layer == 62) hp->kq_scale = 1.0f / sqrtf((float)(hp->n_embd / hp->n_head));
    return 0;
}

static int nuage__gemma3_load(nuage_model *m, char *err, size_t errlen) {
    const int64_t E = m->hp.n_embd, hd = m->hp.head_dim_k;
    int rc = nuage__gemma3_hparams(m, err, errlen);
    if (!rc) rc = nuage__load_std_io(m, err, errlen);
    for (int il = 0; !rc && il < m->hp.n_layer; il++) {
        nuage_layer *L = &m->layers[il];
        rc = nuage__load_std_attn(m, il, err, errlen);
        if (!rc) rc = nuage__weight_get(m, &L->q_norm, true, hd, 0, err, errlen, "blk.%d.attn_q_norm.weight", il);
        if (!rc) rc = nuage__weight_get(m, &L->k_norm, true, hd, 0, err, errlen, "blk.%d.attn_k_norm.weight", il);
        if (!rc) rc = nuage__weight_get(m, &L->attn_post_norm, true, E, 0, err, errlen,
                                        "blk.%d.post_attention_norm.weight", il);
        if (!rc) rc = nuage__load_std_ffn(m, il, err, errlen);
        if (!rc) rc = nuage__weight_get(m, &L->ffn_post_norm, true, E, 0, err, errlen,
                                        "blk.%d.post_ffw_norm.weight", il);
    }
    return rc;
}

const nuage__arch nuage__arch_gemma3 = {
    .name = "gemma3",
    .rope_style = NUAGE_ROPE_NEOX,
    .load = nuage__gemma3_load,
    .kv_dims = nuage__kv_dims_std,
};
