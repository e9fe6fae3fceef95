/*
 * arch_llama.c - the `llama` architecture (Llama 1/2/3, Mistral, TinyLlama,
 * llama2.c's stories models): pre-norm decoder, grouped-query attention,
 * RoPE in llama.cpp's "normal" style (rotating adjacent pairs 2i, 2i+1, as
 * its converter permutes Q and K for), SwiGLU FFN, untied output (tied
 * when output.weight is absent), optional rope_freqs (Llama 3.1).
 */
#include "engine/model.h"

static int nuage__llama_load(nuage_model *m, char *err, size_t errlen) {
    int rc = nuage__load_std_io(m, err, errlen);
    for (int il = 0; !rc && il < m->hp.n_layer; il++) {
        rc = nuage__load_std_attn(m, il, err, errlen);
        if (!rc) rc = nuage__load_std_ffn(m, il, err, errlen);
    }
    return rc;
}

const nuage__arch nuage__arch_llama = {
    .name = "llama",
    .rope_style = NUAGE_ROPE_NORM,
    .load = nuage__llama_load,
    .kv_dims = nuage__kv_dims_std,
};
