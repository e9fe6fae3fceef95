/*
 * mla.h - multi-head latent attention (DeepSeek V2/V3), the absorbed form
 * over a cache of compressed latents (see mla.c).
 */
#ifndef NUAGE_MLA_H
#define NUAGE_MLA_H

#include <stddef.h>
#include <stdint.h>

#include "engine/context.h"

/* Per-token cache widths: K = kv_lora_rank + rope dims, V = 0 (the values
 * are the latent part of the K row). */
void nuage__mla_kv_dims(const nuage_model *m, int64_t *k_dim, int64_t *v_dim);

/* Scratch bytes nuage__mla_attn needs for n_batch tokens on n_threads
 * with a context of n_ctx positions. */
size_t nuage__mla_scratch_bytes(const nuage_model *m, int n_batch, int n_threads, int n_ctx);

/*
 * The arch `attn` hook: c->xb2 (T, E) = MLA(c->xb) for layer il, after
 * appending every batch token's (normalised latent, roped key) row to the
 * cache. Uses c->q, c->k, c->att and c->arch_scratch.
 */
void nuage__mla_attn(nuage_context *c, const nuage_batch *b, int il);

#endif
