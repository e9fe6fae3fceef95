/*
 * arch_qwen2.c - the `qwen2` architecture (Qwen1.5 / Qwen2 / Qwen2.5):
 * llama's block with biases on Q, K and V, NeoX-style RoPE (rotating i and
 * i + d/2), and usually tied embeddings (no output.weight).
 */
#include <stdio.h>

#include "engine/model.h"

static int nuage__qwen2_load(nuage_model *m, char *err, size_t errlen) {
    int rc = nuage__load_std_io(m, err, errlen);
    for (int il = 0; !rc && il < m->hp.n_layer; il++) {
        rc = nuage__load_std_attn(m, il, err, errlen);
        if (!rc && (!m->layers[il].bq.data || !m->layers[il].bk.data || !m->layers[il].bv.data)) {
            snprintf(err, errlen, "qwen2 layer %d: missing attn_q/k/v bias", il);
            rc = NUAGE_E_FORMAT;
        }
        if (!rc) rc = nuage__load_std_ffn(m, il, err, errlen);
    }
    return rc;
}

const nuage__arch nuage__arch_qwen2 = {
    .name = "qwen2",
    .rope_style = NUAGE_ROPE_NEOX,
    .load = nuage__qwen2_load,
    .kv_dims = nuage__kv_dims_std,
};
