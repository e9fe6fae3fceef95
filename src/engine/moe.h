/*
 * moe.h - the batched mixture-of-experts FFN shared by qwen3moe and
 * deepseek2 (see moe.c for the design).
 */
#ifndef NUAGE_MOE_H
#define NUAGE_MOE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/context.h"

/* How a token's router logits become expert choices and weights. */
typedef struct {
    int n_expert, n_used;
    int gating;            /* NUAGE_GATING_SOFTMAX, _SIGMOID or _SOFTMAX_WEIGHT */
    bool norm;             /* divide the chosen weights by their sum */
    float scale;           /* then multiply them by this (1 = unchanged) */
    const float *sel_bias; /* (n_expert) added to the scores for choosing only; NULL = none */
} nuage__moe_gate;

/*
 * Read the MoE hyper-parameters ({arch}.expert_count, .expert_used_count,
 * .expert_feed_forward_length, .expert_shared_count,
 * .leading_dense_block_count, .expert_weights_scale, .expert_weights_norm
 * (default norm_default), .expert_gating_func (1 softmax, 2 sigmoid;
 * default softmax)) into m->hp and range-check them. Returns 0 or
 * NUAGE_E_FORMAT / NUAGE_E_UNSUPPORTED with a message in err.
 */
int nuage__moe_read_hparams(nuage_model *m, bool norm_default, char *err, size_t errlen);

/* Fetch layer il's MoE tensors: ffn_norm, the router, the three expert
 * stacks, the optional selection bias exp_probs_b and, when
 * expert_shared_count > 0, the shared expert; sets is_moe. 0 or an error
 * of nuage__weight_get. */
int nuage__moe_load_layer(nuage_model *m, int il, char *err, size_t errlen);

/* The gate of layer il of model m, from its hyper-parameters and tensors. */
nuage__moe_gate nuage__moe_gate_of(const nuage_model *m, int il);

/*
 * Route one token. logits (n_expert) are the router outputs; probs
 * (n_expert) is scratch and receives the gated scores (softmax, sigmoid,
 * or for SOFTMAX_WEIGHT the logits themselves). Writes the n_used chosen
 * expert ids to sel, best first (ties go to the lower id), and their
 * weights to w: the unbiased scores of the chosen experts (SOFTMAX_WEIGHT:
 * the softmax of the chosen logits), normalised and scaled as g says.
 */
void nuage__moe_route(const nuage__moe_gate *g, const float *logits, float *probs, int32_t *sel,
                      float *w);

/*
 * Group the T*n_used choices sel[t*n_used + k] by expert (counting sort).
 * offset (n_expert + 1) receives the start of each expert's group
 * (offset[n_expert] = T*n_used); sorted (T*n_used) the choice indices
 * t*n_used + k in group order, ascending inside a group. Every id in sel
 * must be in [0, n_expert).
 */
void nuage__moe_group(const int32_t *sel, int T, int n_used, int n_expert, int32_t *offset,
                      int32_t *sorted);

/* Scratch bytes nuage__moe_ffn needs for a batch of n_batch tokens. */
size_t nuage__moe_scratch_bytes(const nuage_model *m, int n_batch);

/*
 * The arch `ffn` hook for MoE layers: c->xb2 (T, E) = sum over the chosen
 * experts of weight * SwiGLU_e(c->xb) (with the layer's optional router /
 * expert biases and hp.expert_swiglu_limit's SwiGLU-OAI), plus the shared experts' SwiGLU
 * when the layer has them. Uses c->arch_scratch (nuage__moe_scratch_bytes
 * for c->n_batch_max tokens).
 */
void nuage__moe_ffn(nuage_context *c, const nuage_batch *b, int il);

#endif
