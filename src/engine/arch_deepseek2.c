/*
 * arch_deepseek2.c - the `deepseek2` architecture (DeepSeek V2, V2-Lite,
 * V3, R1 and their relatives in llama.cpp's split-MLA layout).
 *
 * Attention is multi-head latent attention (mla.c): an optional low-rank
 * query path (attn_q_a -> attn_q_a_norm -> attn_q_b, or plain attn_q when
 * attention.q_lora_rank is 0 as in V2-Lite), the compressed KV path
 * (attn_kv_a_mqa -> attn_kv_a_norm) and the per-head absorbed projections
 * attn_k_b / attn_v_b. The cache keeps kv_lora_rank + n_rot values per
 * token and layer. Head widths: newer files (split k_b / v_b) write the
 * MQA view in attention.key_length / value_length (kv_lora + rope,
 * kv_lora) and the per-head sizes in key_length_mla / value_length_mla;
 * we take the _mla ones when present. Files with the older fused
 * attn_kv_b tensor are refused with a message (re-convert them).
 *
 * RoPE is llama.cpp's "normal" (adjacent pairs) on the n_rot rope
 * dimensions only. With YaRN scaling, llama.cpp keeps the rotation at unit
 * magnitude when rope.scaling.yarn_log_multiplier is set and moves the
 * magnitude correction into the score scale instead:
 *   mscale   = attn_factor_org * (1 + 0.1 * log_mul * ln(factor)),
 *   kq_scale = mscale^2 / sqrt(nope + rope),
 * where log_mul is the file's value divided by 0.1 (its converter stores
 * it pre-multiplied) and attn_factor_org is 1 with log_mul, else the plain
 * YaRN factor 1 + 0.1 ln(factor) (llama.cpp's deepseek2 graph, PR 17945).
 *
 * FFN: the first leading_dense_block_count layers are dense SwiGLU (the
 * standard FFN of forward.c); the others are MoE (moe.c) with softmax or
 * sigmoid gating (expert_gating_func), the exp_probs_b selection bias,
 * expert_weights_norm, expert_weights_scale and expert_shared_count
 * always-on shared experts.
 */
#include <math.h>
#include <stdio.h>

#include "engine/mla.h"
#include "engine/moe.h"

static bool nuage__ds2_u32(const nuage_model *m, const char *suffix, int32_t *out) {
    char key[160];
    snprintf(key, sizeof key, "%s.%s", m->arch->name, suffix);
    uint32_t v;
    if (!nuage_gguf_get_u32(m->gguf, key, &v) || v > INT32_MAX) return false;
    *out = (int32_t)v;
    return true;
}

/* MLA hyper-parameters and the score scale. */
static int nuage__ds2_hparams(nuage_model *m, char *err, size_t errlen) {
    nuage_hparams *hp = &m->hp;
    hp->q_lora_rank = 0;
    nuage__ds2_u32(m, "attention.q_lora_rank", &hp->q_lora_rank);
    if (!nuage__ds2_u32(m, "attention.kv_lora_rank", &hp->kv_lora_rank) || hp->kv_lora_rank <= 0) {
        snprintf(err, errlen, "metadata deepseek2.attention.kv_lora_rank missing");
        return NUAGE_E_FORMAT;
    }
    /* per-head widths: the _mla keys when the file has them */
    nuage__ds2_u32(m, "attention.key_length_mla", &hp->head_dim_k);
    nuage__ds2_u32(m, "attention.value_length_mla", &hp->head_dim_v);
    hp->head_dim_rope = hp->rope_dim;
    if (hp->q_lora_rank < 0 || hp->q_lora_rank > 65536 || hp->kv_lora_rank > 65536 ||
        hp->head_dim_k <= hp->head_dim_rope || hp->head_dim_k > 4096 || hp->head_dim_v <= 0 ||
        hp->head_dim_v > 4096) {
        snprintf(err, errlen, "bad MLA shape: q_lora %d kv_lora %d key %d value %d rope %d",
                 hp->q_lora_rank, hp->kv_lora_rank, hp->head_dim_k, hp->head_dim_v, hp->head_dim_rope);
        return NUAGE_E_FORMAT;
    }
    hp->kq_scale = 1.0f / sqrtf((float)hp->head_dim_k);
    if (hp->rope_scaling == NUAGE_ROPE_SCALING_YARN && hp->yarn_ext_factor != 0.0f) {
        float factor = 1.0f / hp->rope_freq_scale, log_mul = 0.0f;
        float ln_f = factor > 1.0f ? logf(factor) : 0.0f;
        nuage_gguf_get_f32(m->gguf, "deepseek2.rope.scaling.yarn_log_multiplier", &log_mul);
        log_mul /= 0.1f;
        /* llama.cpp's context attn factor: get_mscale ratio, then the YaRN
         * magnitude ggml's rope adds is cancelled */
        float base = log_mul != 0.0f ? 1.0f : 1.0f + 0.1f * ln_f;
        hp->yarn_attn_factor *= base / (1.0f + 0.1f * ln_f);
        float attn_factor_org = hp->yarn_attn_factor * (1.0f + 0.1f * ln_f);
        float mscale = attn_factor_org * (1.0f + 0.1f * log_mul * ln_f);
        hp->kq_scale = mscale * mscale / sqrtf((float)hp->head_dim_k);
    }
    return 0;
}

static int nuage__ds2_attn_layer(nuage_model *m, int il, char *err, size_t errlen) {
    const nuage_hparams *hp = &m->hp;
    nuage_layer *L = &m->layers[il];
    const int64_t E = hp->n_embd, H = hp->n_head, R = hp->kv_lora_rank, rope = hp->head_dim_rope;
    const int64_t Q = H * hp->head_dim_k, nope = hp->head_dim_k - rope;
    int rc;
    if (!nuage_gguf_find_tensor(m->gguf, "blk.0.attn_k_b.weight") &&
        nuage_gguf_find_tensor(m->gguf, "blk.0.attn_kv_b.weight")) {
        snprintf(err, errlen, "this deepseek2 file has the fused attn_kv_b tensor; re-convert it "
                 "with a newer llama.cpp (split attn_k_b / attn_v_b)");
        return NUAGE_E_UNSUPPORTED;
    }
    if ((rc = nuage__weight_get(m, &L->attn_norm, true, E, 0, err, errlen, "blk.%d.attn_norm.weight", il)))
        return rc;
    if (hp->q_lora_rank > 0) {
        if ((rc = nuage__weight_get(m, &L->wq_a, true, E, hp->q_lora_rank, err, errlen, "blk.%d.attn_q_a.weight", il)) ||
            (rc = nuage__weight_get(m, &L->q_a_norm, true, hp->q_lora_rank, 0, err, errlen, "blk.%d.attn_q_a_norm.weight", il)) ||
            (rc = nuage__weight_get(m, &L->wq_b, true, hp->q_lora_rank, Q, err, errlen, "blk.%d.attn_q_b.weight", il)))
            return rc;
    } else if ((rc = nuage__weight_get(m, &L->wq, true, E, Q, err, errlen, "blk.%d.attn_q.weight", il))) {
        return rc;
    }
    if ((rc = nuage__weight_get(m, &L->wkv_a_mqa, true, E, R + rope, err, errlen, "blk.%d.attn_kv_a_mqa.weight", il)) ||
        (rc = nuage__weight_get(m, &L->kv_a_norm, true, R, 0, err, errlen, "blk.%d.attn_kv_a_norm.weight", il)) ||
        (rc = nuage__weight_get3(m, &L->wk_b, true, nope, R, H, err, errlen, "blk.%d.attn_k_b.weight", il)) ||
        (rc = nuage__weight_get3(m, &L->wv_b, true, R, hp->head_dim_v, H, err, errlen, "blk.%d.attn_v_b.weight", il)) ||
        (rc = nuage__weight_get(m, &L->wo, true, H * hp->head_dim_v, E, err, errlen, "blk.%d.attn_output.weight", il)))
        return rc;
    return 0;
}

static int nuage__ds2_load(nuage_model *m, char *err, size_t errlen) {
    int rc = nuage__ds2_hparams(m, err, errlen);
    if (!rc) rc = nuage__moe_read_hparams(m, false, err, errlen);
    if (!rc) rc = nuage__load_std_io(m, err, errlen);
    for (int il = 0; !rc && il < m->hp.n_layer; il++) {
        rc = nuage__ds2_attn_layer(m, il, err, errlen);
        if (rc) break;
        if (il < m->hp.n_layer_dense_lead) rc = nuage__load_std_ffn(m, il, err, errlen);
        else rc = nuage__moe_load_layer(m, il, err, errlen);
    }
    return rc;
}

static size_t nuage__ds2_scratch(const nuage_model *m, int n_batch, int n_threads, int n_ctx) {
    /* attention and FFN run one after the other and share the scratch */
    size_t a = nuage__mla_scratch_bytes(m, n_batch, n_threads, n_ctx);
    size_t f = nuage__moe_scratch_bytes(m, n_batch);
    return a > f ? a : f;
}

const nuage__arch nuage__arch_deepseek2 = {
    .name = "deepseek2",
    .rope_style = NUAGE_ROPE_NORM,
    .load = nuage__ds2_load,
    .kv_dims = nuage__mla_kv_dims,
    .attn = nuage__mla_attn,
    .ffn = nuage__moe_ffn,
    .scratch_bytes = nuage__ds2_scratch,
};
