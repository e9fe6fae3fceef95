/*
 * model.h - the loaded model (internal view of nuage_model).
 *
 * A model is the GGUF mapping, the hyper-parameters read from metadata
 * with llama.cpp's keys ("{arch}.embedding_length", ...), and weight views
 * pointing into the mapping. Each architecture has one file (arch_*.c)
 * that declares its options and fetches its tensors; the forward pass
 * (forward.c) is shared and reads those options.
 */
#ifndef NUAGE_MODEL_H
#define NUAGE_MODEL_H

#include <stdbool.h>
#include <stdint.h>

#include "engine/gguf.h"
#include "engine/matmul.h"
#include "nuage/nuage.h"

struct nuage_vocab;

enum { NUAGE_ROPE_NORM = 0, NUAGE_ROPE_NEOX = 2 };
enum { NUAGE_ROPE_SCALING_NONE = 0, NUAGE_ROPE_SCALING_LINEAR, NUAGE_ROPE_SCALING_YARN };
/* Expert gating, llama.cpp's numbering: softmax over all router logits,
 * sigmoid, or (gpt-oss) softmax over the chosen experts' logits only. */
enum { NUAGE_GATING_SOFTMAX = 1, NUAGE_GATING_SIGMOID = 2, NUAGE_GATING_SOFTMAX_WEIGHT = 3 };
/* FFN gate activation: SiLU (SwiGLU), or tanh-GELU through ggml's f16
 * table (GeGLU, gemma3; see nuage__geglu_f16 in ops.h). */
enum { NUAGE_ACT_SILU = 0, NUAGE_ACT_GELU_F16 = 1 };

typedef struct {
    int32_t n_vocab, n_ctx_train, n_embd, n_layer, n_head, n_head_kv, n_ff;
    int32_t head_dim_k, head_dim_v;   /* per-head widths of K (and Q) and V */
    float norm_eps;
    /* RoPE */
    int rope_style;
    int32_t rope_dim;                 /* rotated dims per head */
    float rope_freq_base, rope_freq_scale; /* theta = pos * freq_scale * base^(-2i/d) */
    int rope_scaling;
    int32_t rope_orig_ctx;
    float yarn_ext_factor, yarn_attn_factor, yarn_beta_fast, yarn_beta_slow;
    float kq_scale;                   /* attention score scale */
    /* Sliding-window attention (gemma3, gpt-oss): a layer with
     * layers[il].swa set lets the query at position i see keys j with
     * i - n_swa < j <= i; 0 = no window layers. Window layers may use
     * their own RoPE base (gemma3: rope.freq_base_swa; 0 = the global one). */
    int32_t n_swa;
    float rope_freq_base_swa;
    float rope_freq_scale_swa;        /* window layers' RoPE scale; 0 = rope_freq_scale */
    /* Gemma: input embeddings times embd_scale (0 = none), the FFN gate's
     * activation, and a final tanh soft-cap of the logits (0 = none). */
    float embd_scale;
    int ffn_act;                      /* NUAGE_ACT_* */
    float logit_softcap;
    /* Mixture of experts (issue 3) */
    int32_t n_expert, n_expert_used, n_ff_exp, n_expert_shared, n_layer_dense_lead;
    int expert_gating;
    bool expert_weights_norm;
    float expert_weights_scale;
    /* Expert activation: 0 = SwiGLU; > 0 = gpt-oss's SwiGLU-OAI with the
     * gate clamped above and the up value clamped to +-limit (see moe.c) */
    float expert_swiglu_limit, expert_swiglu_alpha;
    /* MLA (deepseek2) */
    int32_t q_lora_rank, kv_lora_rank, head_dim_rope; /* head_dim_k = nope + rope */
} nuage_hparams;

typedef struct {
    nuage_weight attn_norm;                /* (n_embd) */
    nuage_weight wq, wk, wv, wo;           /* (n_head*hd, n_embd) ... */
    nuage_weight bq, bk, bv;               /* optional biases */
    nuage_weight bo;                       /* optional (n_embd) output-projection bias (gpt-oss) */
    nuage_weight q_norm, k_norm;           /* optional per-head RMSNorm (head_dim) */
    nuage_weight attn_sinks;               /* optional (n_head) F32 sink logits (gpt-oss) */
    bool swa;                              /* sliding-window layer (see hp.n_swa) */
    nuage_weight ffn_norm;                 /* (n_embd) */
    /* optional (n_embd) post-norms (gemma3): the sub-layer output is
     * RMS-normalised and scaled by these before the residual add */
    nuage_weight attn_post_norm, ffn_post_norm;
    nuage_weight ffn_gate, ffn_up, ffn_down; /* dense SwiGLU FFN */
    /* MoE: router and 3-D expert stacks (expert e = rows e*n_ff_exp ...) */
    nuage_weight ffn_gate_inp;             /* (n_expert, n_embd) */
    nuage_weight ffn_gate_exps, ffn_up_exps, ffn_down_exps;
    nuage_weight exp_probs_b;              /* (n_expert) selection bias */
    /* optional gpt-oss biases: router (n_expert), experts' gate/up
     * (n_expert, n_ff_exp) and down (n_expert, n_embd) */
    nuage_weight ffn_gate_inp_b, ffn_gate_exps_b, ffn_up_exps_b, ffn_down_exps_b;
    nuage_weight ffn_gate_shexp, ffn_up_shexp, ffn_down_shexp;
    /* MLA */
    nuage_weight wq_a, q_a_norm, wq_b, wkv_a_mqa, kv_a_norm, wk_b, wv_b;
    bool is_moe;
} nuage_layer;

struct nuage__arch;

struct nuage_model {
    nuage_gguf *gguf;
    const struct nuage__arch *arch;
    struct nuage_vocab *vocab;
    nuage_hparams hp;
    nuage_weight tok_embd;     /* (n_vocab, n_embd) */
    nuage_weight output_norm;  /* (n_embd) */
    nuage_weight output;       /* (n_vocab, n_embd); = tok_embd when tied */
    nuage_weight rope_freqs;   /* optional per-dim divisors (Llama 3.1) */
    nuage_layer *layers;       /* (n_layer) */
    char *name;
    const char *chat_template;
    uint64_t n_params, weight_bytes;
};

/* One architecture: options for the shared forward pass + its loader. */
typedef struct nuage__arch {
    const char *name;
    int rope_style;
    /* Fetch tensors into m->layers etc.; hparams are already read. */
    int (*load)(nuage_model *m, char *err, size_t errlen);
    /* Per-token KV width for the cache (K, V), all heads of one layer. */
    void (*kv_dims)(const nuage_model *m, int64_t *k_dim, int64_t *v_dim);
    /* Optional sub-layer overrides (NULL = the standard GQA attention /
     * dense SwiGLU FFN of forward.c). Each reads the normalised input
     * c->xb (T, n_embd) and writes the sub-layer output to c->xb2
     * (T, n_embd); forward.c does the norms and the residual adds.
     * Attention must also append the layer's K/V (or latent) rows to the
     * cache for every batch token before attending. */
    void (*attn)(struct nuage_context *c, const nuage_batch *b, int il);
    void (*ffn)(struct nuage_context *c, const nuage_batch *b, int il);
    /* Extra scratch bytes the overrides need for a batch of n_batch tokens
     * on n_threads threads with n_ctx positions (c->arch_scratch). */
    size_t (*scratch_bytes)(const nuage_model *m, int n_batch, int n_threads, int n_ctx);
} nuage__arch;

extern const nuage__arch nuage__arch_llama, nuage__arch_qwen2, nuage__arch_qwen3;
extern const nuage__arch nuage__arch_qwen3moe, nuage__arch_deepseek2;
extern const nuage__arch nuage__arch_gptoss;
extern const nuage__arch nuage__arch_gemma3;

/*
 * Fetch tensor `name` (printf-style with il) into *w, checking it has
 * exactly `cols` values per row and `rows` rows (rows == 0: 1-D tensor of
 * cols values; must then be F32) and a type the kernels support. With
 * required == false a missing tensor leaves w zeroed and returns 0.
 * Returns 0, NUAGE_E_FORMAT (missing/wrong shape) or NUAGE_E_UNSUPPORTED.
 */
int nuage__weight_get(nuage_model *m, nuage_weight *w, bool required, int64_t cols, int64_t rows,
                      char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 8, 9)));

/* Expert stack: 3-D tensor (cols, rows, n_expert); w covers all experts
 * as rows*n_expert rows. */
int nuage__weight_get3(nuage_model *m, nuage_weight *w, bool required, int64_t cols, int64_t rows,
                       int64_t n_mat, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 9, 10)));

/* The standard llama-family tensors of layer il: norms, Q/K/V/O, dense FFN. */
int nuage__load_std_attn(nuage_model *m, int il, char *err, size_t errlen);
int nuage__load_std_ffn(nuage_model *m, int il, char *err, size_t errlen);
/* token_embd, output_norm, output (tied to token_embd when absent). */
int nuage__load_std_io(nuage_model *m, char *err, size_t errlen);
void nuage__kv_dims_std(const nuage_model *m, int64_t *k_dim, int64_t *v_dim);

#endif
