/*
 * train.h - training llama-architecture models from scratch on the CPU.
 *
 * Pieces (one file each):
 *   tmodel.c   the model: parameter table, initialisation, forward and
 *              hand-written backward of one sequence (tops.h kernels)
 *   tdata.c    the data set: JSONL chats rendered with the chat template,
 *              tokenized, with a loss mask on the last assistant message
 *   tckpt.c    GGUF export (the llama tensors and metadata the engine
 *              loads) and checkpoints (weights + Adam moments + step + RNG
 *              state, written atomically)
 *   trainer.c  the loop: batches split over threads into a fixed number of
 *              gradient shards, reduced in a fixed order (so a run is
 *              bit-for-bit reproducible for any thread count), gradient
 *              clipping, AdamW with warm-up and cosine decay, progress
 *
 * The model is exactly what src/engine runs for general.architecture =
 * "llama": token embedding, n_layer pre-norm blocks (RMSNorm, GQA with
 * RoPE rotating adjacent pairs, SwiGLU), final RMSNorm, untied output.
 * Weights are kept in the engine's layout (a matrix has one row per
 * output), plus a transposed copy for the forward pass refreshed after
 * every update.
 */
#ifndef NUAGE_TRAIN_TRAIN_H
#define NUAGE_TRAIN_TRAIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "train/synth.h"

struct nuage_gguf_writer;
struct nuage_gguf;
struct nuage_vocab;

/* ---- model ----------------------------------------------------------------- */

typedef struct {
    int n_vocab, dim, n_layer, n_head, n_head_kv, n_ff, n_ctx;
    float norm_eps, rope_base;
} nuage_tcfg;

typedef struct {
    char name[48];        /* GGUF tensor name */
    int64_t rows, cols;   /* rows = 1 for vectors */
    size_t off;           /* offset in the parameter array (floats) */
    bool decay;           /* AdamW weight decay applies */
    bool matrix;          /* 2-D: has a transposed copy */
} nuage_tparam;

typedef struct {
    int attn_norm, wq, wk, wv, wo, ffn_norm, wg, wu, wd; /* indices in the table */
} nuage_tlayer;

typedef struct {
    nuage_tcfg c;
    int hd;               /* head dimension */
    int n_p;
    nuage_tparam *p;      /* parameter table */
    size_t n;             /* total parameters */
    float *w;             /* weights */
    float *wt;            /* transposed matrices (same offsets; vectors unused) */
    nuage_tlayer *L;
    int tok_embd, out_norm, out;
    float *rope_cs;       /* (n_ctx, hd): cos, sin of each pair per position */
} nuage_tmodel;

/* Check the configuration and allocate (weights zero). Returns 0 or
 * NUAGE_E_INVAL (message in err) / NUAGE_E_NOMEM. */
int nuage_tmodel_init(nuage_tmodel *m, const nuage_tcfg *c, char *err, size_t errlen);
void nuage_tmodel_free(nuage_tmodel *m);
/* Random initialisation from seed (normal 0.02, residual outputs scaled
 * by 1/sqrt(2 n_layer), norms 1), then nuage_tmodel_sync. */
void nuage_tmodel_random(nuage_tmodel *m, uint64_t seed);
/* Refresh the transposed copies of matrices (all of them, or rows [lo,
 * hi) of the parameter array's matrices: used by threads). */
void nuage_tmodel_sync(nuage_tmodel *m);
void nuage_tmodel_sync_range(nuage_tmodel *m, int ith, int nth);
/* Parameter index by name, or -1. */
int nuage_tmodel_find(const nuage_tmodel *m, const char *name);

/* Per-thread scratch for one sequence of up to n_ctx tokens. */
typedef struct nuage_tws nuage_tws;
nuage_tws *nuage_tws_new(const nuage_tmodel *m);
void nuage_tws_free(nuage_tws *ws);

/*
 * Forward and backward of one sequence: tok (T tokens, 1 <= T <= n_ctx),
 * tgt (T; the token expected after position t, or -1 for no loss there).
 * Adds scale * d(sum of losses)/d(weights) into grad (m->n floats) and
 * returns the summed cross-entropy; *n_tgt receives the number of
 * positions with a target. grad may be NULL (forward only).
 */
double nuage_tmodel_seq(const nuage_tmodel *m, nuage_tws *ws, const int32_t *tok, const int32_t *tgt,
                        int T, float scale, float *grad, int *n_tgt);
/* Forward only: logits of every position into out (T, n_vocab). */
void nuage_tmodel_logits(const nuage_tmodel *m, nuage_tws *ws, const int32_t *tok, int T, float *out);

/* ---- GGUF: export, checkpoints (tckpt.c) ------------------------------------ */

/* Write the llama.* metadata and the weights (F32, or F16 for 2-D
 * matrices when f16) into w. 0 or NUAGE_E_NOMEM. */
int nuage_tmodel_to_gguf(const nuage_tmodel *m, struct nuage_gguf_writer *w, bool f16);
/* Copy every tokenizer.* key of g into w. */
int nuage_train_copy_tokenizer(const struct nuage_gguf *g, struct nuage_gguf_writer *w);
/* Read a model's configuration from llama.* metadata and its F32 weights
 * (the checkpoint format). Allocates m. 0 or NUAGE_E_FORMAT/_NOMEM. */
int nuage_tmodel_from_gguf(nuage_tmodel *m, const struct nuage_gguf *g, char *err, size_t errlen);

/* ---- data (tdata.c) ------------------------------------------------------------ */

typedef struct {
    int n;                /* sequences */
    int64_t *off;         /* (n + 1) offsets into tok */
    int32_t *tok;         /* tokens of all sequences */
    int32_t *n_prompt;    /* (n) tokens before the trained answer */
    int64_t n_tgt;        /* trained tokens in all */
    int n_truncated;      /* sequences cut at n_ctx */
} nuage_tdata;

/*
 * Read a JSONL file of {"messages": [...]} chats, render each with the
 * chat template (ChatML by default) and tokenize it: the prompt (all
 * messages but the last, with the generation prompt) and the answer (the
 * last message, up to and including the end-of-turn token) separately,
 * exactly as generation will see them. Sequences longer than max_len + 1
 * tokens are cut. Returns 0 or NUAGE_E_IO / _FORMAT (line number in err)
 * / _TEMPLATE / _NOMEM.
 */
int nuage_tdata_load(nuage_tdata *d, const char *path, const struct nuage_vocab *v,
                     const char *chat_template, int max_len, char *err, size_t errlen);
void nuage_tdata_free(nuage_tdata *d);

/* The raw texts of a JSONL chat file rendered with a template (for the
 * tokenizer trainer): *texts (n), caller frees each and the array. */
int nuage_tdata_render_file(const char *path, const char *chat_template, char ***texts,
                            size_t **lens, size_t *n, char *err, size_t errlen);

/* ---- trainer (trainer.c) --------------------------------------------------------- */

typedef struct {
    int steps, batch, warmup, threads;
    float lr, lr_min, wd, beta1, beta2, eps, clip;
    uint64_t seed;
    int ckpt_every;        /* steps between checkpoints; 0 = only at the end */
    const char *ckpt_path; /* NULL = no checkpoints */
    bool quiet;            /* no progress output */
    int stop_after;        /* testing: return after this many steps (0 = off) */
    const char *chat_template; /* NULL, or the tokenizer.chat_template checkpoints get
                                  instead of the tokenizer GGUF's */
} nuage_topts;

/* Defaults: lr 1e-3 -> 1e-4, warm-up 100, wd 0.1, betas 0.9/0.95, clip 1. */
nuage_topts nuage_topts_default(void);

/* Gradient shards: a step's sequences are split into this many fixed
 * groups whatever the thread count (see trainer.c). */
#define NUAGE_TRAIN_SHARDS 4

typedef struct {
    int step;              /* completed optimizer steps */
    nuage_rng rng;         /* batch sampling */
    float *m, *v;          /* Adam moments (n) */
    double last_loss;
} nuage_tstate;

/* Fresh optimizer state for m (moments zero, rng from seed). */
int nuage_tstate_init(nuage_tstate *s, const nuage_tmodel *m, uint64_t seed);
void nuage_tstate_free(nuage_tstate *s);

/*
 * Train m on d from state s until s->step == o->steps (or stop_after more
 * steps), writing checkpoints (with the tokenizer metadata of tok_gguf,
 * when given) every ckpt_every steps and at the end. Returns 0, or a
 * negative NUAGE_E_* with err set (checkpoint write failure).
 */
int nuage_train_run(nuage_tmodel *m, nuage_tstate *s, const nuage_tdata *d, const nuage_topts *o,
                    const struct nuage_gguf *tok_gguf, char *err, size_t errlen);

/* Write / read a checkpoint: the model as F32 GGUF + "adam.m.*",
 * "adam.v.*" tensors + nuage.train.* metadata (step, rng state, the
 * options that shape the run). Loading allocates m and s; when o is not
 * NULL, the stored options (steps, batch, warmup, seed, lr, lr_min, wd,
 * betas, eps, clip) overwrite those fields of *o. */
int nuage_train_save_ckpt(const char *path, const nuage_tmodel *m, const nuage_tstate *s,
                          const nuage_topts *o, const struct nuage_gguf *tok_gguf, char *err,
                          size_t errlen);
int nuage_train_load_ckpt(const char *path, nuage_tmodel *m, nuage_tstate *s, nuage_topts *o,
                          char *err, size_t errlen);

#endif
