/*
 * arch_qwen3.c - the `qwen3` architecture: no biases, a per-head RMSNorm
 * on Q and K (attn_q_norm / attn_k_norm, head_dim wide) applied before
 * RoPE, NeoX-style RoPE, and a head dimension set explicitly by
 * attention.key_length (so n_head * head_dim may differ from n_embd).
 */
#include "engine/model.h"

static int nuage__qwen3_load(nuage_model *m, char *err, size_t errlen) {
    int rc = nuage__load_std_io(m, err, errlen);
    for (int il = 0; !rc && il < m->hp.n_layer; il++) {
        nuage_layer *L = &m->layers[il];
        rc = nuage__load_std_attn(m, il, err, errlen);
        if (!rc) rc = nuage__weight_get(m, &L->q_norm, true, m->hp.head_dim_k, 0, err, errlen,
                                        "blk.%d.attn_q_norm.weight", il);
        if (!rc) rc = nuage__weight_get(m, &L->k_norm, true, m->hp.head_dim_k, 0, err, errlen,
                                        "blk.%d.attn_k_norm.weight", il);
        if (!rc) rc = nuage__load_std_ffn(m, il, err, errlen);
    }
    return rc;
}

const nuage__arch nuage__arch_qwen3 = {
    .name = "qwen3",
    .rope_style = NUAGE_ROPE_NEOX,
    .load = nuage__qwen3_load,
    .kv_dims = nuage__kv_dims_std,
};
