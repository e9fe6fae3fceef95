/*
 * arch_gptoss.c - the `gpt-oss` architecture (OpenAI gpt-oss-20b/-120b;
 * llama.cpp's LLM_ARCH_OPENAI_MOE).
 *
 * A pre-norm transformer whose every layer is attention plus a mixture of
 * experts, with four departures from the llama block, all of which the
 * shared forward pass and moe.c already know how to do once the tensors
 * and options are set here:
 *
 *   - Attention: biases on Q, K, V and the output projection; NeoX RoPE
 *     with YaRN scaling (read by model.c from rope.scaling.*: factor,
 *     original context; beta fast/slow default to 32/1 as in llama.cpp);
 *     attention sinks (one learned logit per query head added to the
 *     softmax denominator, attn_sinks.weight); a sliding window
 *     (attention.sliding_window keys) on some layers. Which layers: with
 *     a period P (attention.sliding_window_pattern, a scalar; default 2 as
 *     llama.cpp uses when converted files leave it out), layer il is a
 *     window layer iff P == 0 or il % P < P - 1 - i.e. the even layers for
 *     P = 2. An array-valued pattern key is ignored as llama.cpp ignores
 *     it for this architecture.
 *   - The norm before the MoE is stored as post_attention_norm (llama.cpp
 *     calls it attn_post_norm, but it is applied to the residual stream
 *     before the FFN exactly like ffn_norm elsewhere).
 *   - MoE routing: router logits plus ffn_gate_inp.bias; the top
 *     expert_used_count experts by those logits, weighted by the softmax
 *     of just their logits (SOFTMAX_WEIGHT gating; no normalisation and
 *     no scale: llama.cpp reads neither expert_weights_norm nor
 *     expert_weights_scale for this architecture, so neither do we).
 *   - Experts: gate/up/down products each with a per-expert bias, and the
 *     clamped SwiGLU-OAI activation (alpha 1.702, limit 7, the constants
 *     llama.cpp hard-wires for this architecture).
 *
 * The output projection is a separate output.weight (never tied), as
 * llama.cpp requires for this architecture.
 */
#include <stdio.h>

#include "engine/moe.h"
#include "engine/quant.h"

/* llama.cpp's build_moe_ffn constants for LLM_FFN_SWIGLU_OAI_MOE */
#define NUAGE__GPTOSS_SWIGLU_ALPHA 1.702f
#define NUAGE__GPTOSS_SWIGLU_LIMIT 7.0f

/* Read a u32 metadata key "gpt-oss.<suffix>"; false when absent or not a
 * scalar integer. */
static bool nuage__gptoss_u32(const nuage_model *m, const char *suffix, uint32_t *out) {
    char key[160];
    snprintf(key, sizeof key, "%s.%s", m->arch->name, suffix);
    return nuage_gguf_get_u32(m->gguf, key, out);
}

/* Window size, window layers, the window RoPE base and the MoE options
 * (YaRN is read by model.c). */
static int nuage__gptoss_hparams(nuage_model *m, char *err, size_t errlen) {
    nuage_hparams *hp = &m->hp;
    int rc = nuage__moe_read_hparams(m, false, err, errlen);
    if (rc) return rc;
    hp->n_expert_shared = 0;
    hp->n_layer_dense_lead = 0;
    hp->expert_gating = NUAGE_GATING_SOFTMAX_WEIGHT;
    hp->expert_weights_norm = false;
    hp->expert_weights_scale = 0.0f; /* llama.cpp reads no scale key for gpt-oss */
    hp->expert_swiglu_alpha = NUAGE__GPTOSS_SWIGLU_ALPHA;
    hp->expert_swiglu_limit = NUAGE__GPTOSS_SWIGLU_LIMIT;
    uint32_t n_swa = 0, period = 2;
    if (!nuage__gptoss_u32(m, "attention.sliding_window", &n_swa) || n_swa == 0 || n_swa > INT32_MAX) {
        snprintf(err, errlen, "metadata %s.attention.sliding_window missing or zero", m->arch->name);
        return NUAGE_E_FORMAT;
    }
    hp->n_swa = (int32_t)n_swa;
    nuage__gptoss_u32(m, "attention.sliding_window_pattern", &period);
    for (int il = 0; il < hp->n_layer; il++)
        m->layers[il].swa = period == 0 || (uint32_t)il % period < period - 1;
    /* a separate RoPE base for window layers, when the file has one */
    char key[160];
    snprintf(key, sizeof key, "%s.rope.freq_base_swa", m->arch->name);
    hp->rope_freq_base_swa = 0.0f;
    nuage_gguf_get_f32(m->gguf, key, &hp->rope_freq_base_swa);
    if (hp->rope_freq_base_swa == hp->rope_freq_base) hp->rope_freq_base_swa = 0.0f;
    return 0;
}

/* Layer il: attention with all four biases and sinks, the pre-MoE norm,
 * router + bias, the three expert stacks and their biases. */
static int nuage__gptoss_layer(nuage_model *m, int il, char *err, size_t errlen) {
    const nuage_hparams *hp = &m->hp;
    nuage_layer *L = &m->layers[il];
    const int64_t E = hp->n_embd, F = hp->n_ff_exp, NE = hp->n_expert;
    int rc = nuage__load_std_attn(m, il, err, errlen);
    if (rc) return rc;
    if (!L->bq.data || !L->bk.data || !L->bv.data) {
        snprintf(err, errlen, "gpt-oss layer %d: missing attn_q/k/v bias", il);
        return NUAGE_E_FORMAT;
    }
    if ((rc = nuage__weight_get(m, &L->bo, true, E, 0, err, errlen, "blk.%d.attn_output.bias", il)) ||
        (rc = nuage__weight_get(m, &L->attn_sinks, true, hp->n_head, 0, err, errlen, "blk.%d.attn_sinks.weight", il)) ||
        (rc = nuage__weight_get(m, &L->ffn_norm, true, E, 0, err, errlen, "blk.%d.post_attention_norm.weight", il)) ||
        (rc = nuage__weight_get(m, &L->ffn_gate_inp, true, E, NE, err, errlen, "blk.%d.ffn_gate_inp.weight", il)) ||
        (rc = nuage__weight_get(m, &L->ffn_gate_inp_b, true, NE, 0, err, errlen, "blk.%d.ffn_gate_inp.bias", il)) ||
        (rc = nuage__weight_get3(m, &L->ffn_gate_exps, true, E, F, NE, err, errlen, "blk.%d.ffn_gate_exps.weight", il)) ||
        (rc = nuage__weight_get3(m, &L->ffn_up_exps, true, E, F, NE, err, errlen, "blk.%d.ffn_up_exps.weight", il)) ||
        (rc = nuage__weight_get3(m, &L->ffn_down_exps, true, F, E, NE, err, errlen, "blk.%d.ffn_down_exps.weight", il)) ||
        (rc = nuage__weight_get(m, &L->ffn_gate_exps_b, true, F, NE, err, errlen, "blk.%d.ffn_gate_exps.bias", il)) ||
        (rc = nuage__weight_get(m, &L->ffn_up_exps_b, true, F, NE, err, errlen, "blk.%d.ffn_up_exps.bias", il)) ||
        (rc = nuage__weight_get(m, &L->ffn_down_exps_b, true, E, NE, err, errlen, "blk.%d.ffn_down_exps.bias", il)))
        return rc;
    /* the 2-D expert biases are added as floats (moe.c) */
    const nuage_weight *b2[3] = {&L->ffn_gate_exps_b, &L->ffn_up_exps_b, &L->ffn_down_exps_b};
    for (int i = 0; i < 3; i++)
        if (b2[i]->type != NUAGE_TYPE_F32) {
            snprintf(err, errlen, "gpt-oss layer %d: expert biases must be f32", il);
            return NUAGE_E_UNSUPPORTED;
        }
    L->is_moe = true;
    return 0;
}

static int nuage__gptoss_load(nuage_model *m, char *err, size_t errlen) {
    int rc = nuage__gptoss_hparams(m, err, errlen);
    if (!rc) rc = nuage__load_std_io(m, err, errlen);
    if (!rc && m->output.data == m->tok_embd.data) {
        snprintf(err, errlen, "gpt-oss: missing tensor output.weight");
        rc = NUAGE_E_FORMAT;
    }
    for (int il = 0; !rc && il < m->hp.n_layer; il++) rc = nuage__gptoss_layer(m, il, err, errlen);
    return rc;
}

static size_t nuage__gptoss_scratch(const nuage_model *m, int n_batch, int n_threads, int n_ctx) {
    (void)n_threads;
    (void)n_ctx;
    return nuage__moe_scratch_bytes(m, n_batch);
}

const nuage__arch nuage__arch_gptoss = {
    .name = "gpt-oss",
    .rope_style = NUAGE_ROPE_NEOX,
    .load = nuage__gptoss_load,
    .kv_dims = nuage__kv_dims_std,
    .ffn = nuage__moe_ffn,
    .scratch_bytes = nuage__gptoss_scratch,
};
