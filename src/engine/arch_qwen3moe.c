/*
 * arch_qwen3moe.c - the `qwen3moe` architecture (Qwen3-30B-A3B, ...):
 * qwen3's attention (per-head RMSNorm on Q and K before NeoX RoPE, head
 * dimension from attention.key_length, no biases) and, in every layer, a
 * mixture of expert_count SwiGLU experts instead of the dense FFN: softmax
 * over the router logits, the top expert_used_count chosen and their
 * weights divided by their sum (expert_weights_norm, which Qwen3-MoE files
 * do not write and llama.cpp hard-wires on). feed_forward_length is
 * present in the files but unused. The expert FFN is moe.c's.
 */
#include "engine/moe.h"

static int nuage__qwen3moe_load(nuage_model *m, char *err, size_t errlen) {
    int rc = nuage__moe_read_hparams(m, true, err, errlen);
    if (!rc) {
        /* no shared experts or dense layers in this architecture */
        m->hp.n_expert_shared = 0;
        m->hp.n_layer_dense_lead = 0;
        m->hp.expert_gating = NUAGE_GATING_SOFTMAX;
        rc = nuage__load_std_io(m, err, errlen);
    }
    for (int il = 0; !rc && il < m->hp.n_layer; il++) {
        nuage_layer *L = &m->layers[il];
        rc = nuage__load_std_attn(m, il, err, errlen);
        if (!rc) rc = nuage__weight_get(m, &L->q_norm, true, m->hp.head_dim_k, 0, err, errlen,
                                        "blk.%d.attn_q_norm.weight", il);
        if (!rc) rc = nuage__weight_get(m, &L->k_norm, true, m->hp.head_dim_k, 0, err, errlen,
                                        "blk.%d.attn_k_norm.weight", il);
        if (!rc) rc = nuage__moe_load_layer(m, il, err, errlen);
    }
    return rc;
}

static size_t nuage__qwen3moe_scratch(const nuage_model *m, int n_batch, int n_threads, int n_ctx) {
    return nuage__moe_scratch_bytes(m, n_batch);
}

const nuage__arch nuage__arch_qwen3moe = {
    .name = "qwen3moe",
    .rope_style = NUAGE_ROPE_NEOX,
    .load = nuage__qwen3moe_load,
    .kv_dims = nuage__kv_dims_std,
    .ffn = nuage__moe_ffn,
    .scratch_bytes = nuage__qwen3moe_scratch,
};
