/*
 * nuage.h - the public C API of the nuage inference engine.
 *
 * Objects:
 *   nuage_model    immutable weights + hyper-parameters + vocabulary, loaded
 *                  from a GGUF file (mmap, no copy). Thread-safe to share.
 *   nuage_context  the mutable state for running a model: a block-paged KV
 *                  cache shared by many sequences, scratch buffers and a
 *                  thread pool. NOT thread-safe: one owner thread at a time
 *                  (the server's scheduler thread owns it).
 *   nuage_batch    tokens to evaluate in one forward pass; they may belong
 *                  to several sequences (token, position, sequence id,
 *                  wants-logits), which is what continuous batching feeds.
 *
 * Error convention: functions returning int return 0 (or a count) on
 * success and a negative NUAGE_E_* code on failure. Functions that can fail
 * for reasons a user caused take an `err` buffer and write a one-line
 * message there. Nothing in the library calls exit() or abort() on input.
 */
#ifndef NUAGE_NUAGE_H
#define NUAGE_NUAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The release this tree is (semantic versioning); /health, the console,
 * `nuage --version` and the cluster's replica registry report it. */
#define NUAGE_VERSION "0.2.0"

/* ---- error codes -------------------------------------------------------- */
enum {
    NUAGE_OK = 0,
    NUAGE_E_INVAL = -1,       /* invalid argument */
    NUAGE_E_NOMEM = -2,       /* allocation failed */
    NUAGE_E_IO = -3,          /* open/read/mmap failed */
    NUAGE_E_FORMAT = -4,      /* malformed or hostile file */
    NUAGE_E_UNSUPPORTED = -5, /* valid but not supported (arch, type) */
    NUAGE_E_KV_FULL = -6,     /* no free KV-cache block left */
    NUAGE_E_CTX = -7,         /* position beyond the model's context */
    NUAGE_E_RANGE = -8,       /* token id / sequence id out of range */
    NUAGE_E_TEMPLATE = -9,    /* chat template error (raise_exception, ...) */
    NUAGE_E_STATE = -10,      /* call not valid in the object's state */
    NUAGE_E_BUSY = -11,       /* queue full, try again later */
};

/* Static description of an error code ("invalid argument", ...). */
const char *nuage_strerror(int err);

typedef int32_t nuage_token;

/* ---- model -------------------------------------------------------------- */
typedef struct nuage_model nuage_model;

typedef struct {
    int n_threads;       /* threads for loading checks; 0 = all cores */
    bool vocab_only;     /* load metadata + vocabulary, no weights checks */
} nuage_model_params;

nuage_model_params nuage_model_default_params(void);

/*
 * Load a model. Returns 0 and sets *out (caller owns; nuage_model_free), or
 * a negative code with a message in err: NUAGE_E_IO (cannot open/map),
 * NUAGE_E_FORMAT (corrupt file, missing tensor, wrong shape),
 * NUAGE_E_UNSUPPORTED (architecture or tensor type we do not run).
 */
int nuage_model_load(const char *path, const nuage_model_params *params,
                     nuage_model **out, char *err, size_t errlen);
void nuage_model_free(nuage_model *m);

const char *nuage_model_arch(const nuage_model *m);   /* "llama", "qwen2", ... */
const char *nuage_model_name(const nuage_model *m);   /* general.name or file stem */
int32_t nuage_model_n_vocab(const nuage_model *m);
int32_t nuage_model_n_ctx_train(const nuage_model *m);
int32_t nuage_model_n_embd(const nuage_model *m);
int32_t nuage_model_n_layer(const nuage_model *m);
uint64_t nuage_model_n_params(const nuage_model *m);
uint64_t nuage_model_size_bytes(const nuage_model *m);  /* weight bytes */
/* KV-cache bytes per token per sequence for the given element size
 * (4 = f32, 2 = f16), all layers. */
uint64_t nuage_model_kv_bytes_per_token(const nuage_model *m, int elem_size);
/* KV-cache bytes one sequence of n_tokens costs: every layer for up to
 * the model's sliding window (hp.n_swa), global layers only beyond it
 * (window layers keep the last n_swa positions, rounded to whole blocks of
 * block_size tokens; block_size <= 0 means exact). */
uint64_t nuage_model_kv_bytes_per_seq(const nuage_model *m, int elem_size, int n_tokens, int block_size);
/* The sliding window (0 = none) and how many layers use it. */
int32_t nuage_model_n_swa(const nuage_model *m, int32_t *n_window_layers);
/* The vocabulary (see nuage/tokenizer.h); owned by the model. */
const struct nuage_vocab *nuage_model_vocab(const nuage_model *m);
/* Chat template from tokenizer.chat_template, or NULL. */
const char *nuage_model_chat_template(const nuage_model *m);

/* ---- context, KV cache -------------------------------------------------- */
typedef struct nuage_context nuage_context;

/* q8_0: blocks of 32 values with one f16 scale (34 bytes per 32 values;
 * head widths must be multiples of 32, standard attention only). */
typedef enum { NUAGE_KV_F32 = 0, NUAGE_KV_F16 = 1, NUAGE_KV_Q8_0 = 2 } nuage_kv_type;

typedef struct {
    int n_threads;         /* compute threads; 0 = number of cores */
    int n_ctx;             /* max positions per sequence; 0 = model's train ctx */
    int n_seq_max;         /* max concurrent sequences (ids 0..n_seq_max-1) */
    int n_batch_max;       /* max tokens per nuage_decode call */
    int kv_block_size;     /* tokens per KV block (default 16) */
    int kv_blocks;         /* blocks in the pool; 0 = enough for one full n_ctx
                              sequence (or derived from kv_memory) */
    uint64_t kv_memory;    /* bytes for the KV pool, if kv_blocks == 0 */
    nuage_kv_type kv_type; /* storage type of K and V */
    int kv_window_keep;    /* sliding-window models: window rows kept for this
                              many positions beyond the window, so that
                              nuage_kv_seq_truncate (a rollback) of up to
                              about this many tokens keeps the sequence;
                              0 = only the window (memory: see kv_cache.h) */
} nuage_context_params;

nuage_context_params nuage_context_default_params(void);

/* Bytes of KV cache nuage_context_new(m, p) allocates (global pool plus
 * the sliding-window pool of a window model; 0 when it would refuse p):
 * what a deployment must budget. Window layers cost their window pool,
 * not n_ctx per sequence. */
uint64_t nuage_context_kv_bytes(const nuage_model *m, const nuage_context_params *p);

/* Create a context. 0 and *out on success; NUAGE_E_INVAL for bad params,
 * NUAGE_E_NOMEM when the KV pool or scratch cannot be allocated. */
int nuage_context_new(const nuage_model *m, const nuage_context_params *p,
                      nuage_context **out, char *err, size_t errlen);
void nuage_context_free(nuage_context *ctx);
const nuage_model *nuage_context_model(const nuage_context *ctx);
int nuage_context_n_ctx(const nuage_context *ctx);
int nuage_context_n_seq_max(const nuage_context *ctx);
int nuage_context_n_batch_max(const nuage_context *ctx);

/* Number of tokens currently cached for sequence `seq` (its next position). */
int nuage_kv_seq_len(const nuage_context *ctx, int seq);
/* Drop positions >= p0 of sequence seq (p0 = 0 clears it); frees blocks
 * no longer referenced. Returns 0 or NUAGE_E_RANGE. On a model with
 * sliding-window layers whose window rows for p0 were already freed, the
 * sequence is cleared instead: read nuage_kv_seq_len back. Rows are held
 * for [b - W - keep + 1, len), b = len rounded down to the block size and
 * keep = kv_window_keep, so truncating to any p0 >= b - keep keeps it. */
int nuage_kv_seq_truncate(nuage_context *ctx, int seq, int p0);
/* Make dst share src's first n_tokens cached positions (full blocks are
 * shared by reference count, a partial last block is copied). dst must be
 * empty. Returns 0, NUAGE_E_RANGE, NUAGE_E_STATE or NUAGE_E_KV_FULL
 * (NUAGE_E_STATE too when sliding-window rows for n_tokens are freed). */
int nuage_kv_seq_fork(nuage_context *ctx, int dst, int src, int n_tokens);
int nuage_kv_blocks_total(const nuage_context *ctx);
int nuage_kv_blocks_free(const nuage_context *ctx);
int nuage_kv_block_size(const nuage_context *ctx);
/* Blocks that appending n tokens to seq would need to allocate. */
int nuage_kv_blocks_needed(const nuage_context *ctx, int seq, int n_tokens);

/*
 * Block-level access for a prefix cache (the server keeps finished full
 * blocks alive by holding a reference and re-attaches them to new
 * sequences that start with the same tokens).
 *
 * nuage_kv_seq_blocks: sets *blocks to seq's block table (valid until the
 * sequence changes) and returns its number of blocks, or NUAGE_E_RANGE.
 * nuage_kv_block_ref / _unref: take / drop a reference on a block in use;
 * a block whose last reference goes returns to the pool. NUAGE_E_RANGE
 * for a block id out of range or (ref) not in use.
 * nuage_kv_seq_attach: the empty sequence seq takes a reference on each of
 * the n full blocks and starts with n * block_size cached positions.
 * Returns 0, NUAGE_E_RANGE or NUAGE_E_STATE (seq not empty / too long /
 * sliding-window rows of the last positions not kept, see below).
 * nuage_kv_block_refcount: references held on a block (0 = free).
 */
int nuage_kv_seq_blocks(const nuage_context *ctx, int seq, const int32_t **blocks);
int nuage_kv_block_ref(nuage_context *ctx, int32_t block);
int nuage_kv_block_unref(nuage_context *ctx, int32_t block);
int nuage_kv_block_refcount(const nuage_context *ctx, int32_t block);
int nuage_kv_seq_attach(nuage_context *ctx, int seq, const int32_t *blocks, int n);
/* Sliding-window models: attaching n blocks needs the window rows of the
 * last positions, which only some cached blocks keep (kv_cache.h). Returns
 * the largest m <= n for which nuage_kv_seq_attach(blocks, m) would
 * succeed on that count (n on a model without window layers). */
int nuage_kv_seq_attachable(const nuage_context *ctx, const int32_t *blocks, int n);
/* Window-pool blocks seq holds (0 without window layers). */
int nuage_kv_window_blocks_held(const nuage_context *ctx, int seq);

/* ---- batch and forward pass -------------------------------------------- */
typedef struct {
    int n_tokens;
    int capacity;
    nuage_token *token;  /* (n_tokens) */
    int32_t *pos;        /* (n_tokens) position inside its sequence */
    int32_t *seq;        /* (n_tokens) sequence id */
    int8_t *logits;      /* (n_tokens) NUAGE_OUT_*: what to produce for this token */
} nuage_batch;

enum {
    NUAGE_OUT_NONE = 0,   /* nothing (a prompt token feeding the cache) */
    NUAGE_OUT_LOGITS = 1, /* logits and the final hidden state */
    NUAGE_OUT_EMBD = 2,   /* only the final hidden state (embeddings) */
};

/* Allocate a batch for up to capacity tokens; NULL on out-of-memory. */
nuage_batch *nuage_batch_new(int capacity);
void nuage_batch_free(nuage_batch *b);
void nuage_batch_clear(nuage_batch *b);
/* Append one token; returns its index or NUAGE_E_RANGE when full.
 * logits: true = NUAGE_OUT_LOGITS, false = NUAGE_OUT_NONE (set
 * b->logits[i] = NUAGE_OUT_EMBD afterwards for embeddings only). */
int nuage_batch_add(nuage_batch *b, nuage_token tok, int pos, int seq, bool logits);

/*
 * Evaluate a batch. Per sequence, the batch's tokens must come in position
 * order and continue exactly where the sequence's cache ends (the first new
 * position equals nuage_kv_seq_len). On success returns 0 and the logits of
 * every token that asked for them are readable with nuage_get_logits.
 * Errors leave the KV cache as it was: NUAGE_E_INVAL (malformed batch),
 * NUAGE_E_RANGE (token or sequence id out of range), NUAGE_E_CTX (position
 * beyond n_ctx), NUAGE_E_KV_FULL (not enough free blocks).
 */
int nuage_decode(nuage_context *ctx, const nuage_batch *b, char *err, size_t errlen);

/* Logits (n_vocab floats) of batch token i from the last nuage_decode, or
 * NULL if that token did not ask for logits. Valid until the next decode.
 * Each token's logits depend only on its own sequence: the same sequence
 * gives bit-identical logits whatever else shares the batch. */
const float *nuage_get_logits(const nuage_context *ctx, int i);

/* Embeddings: the final-norm hidden state (n_embd floats) of batch token i
 * from the last decode (tokens that asked for NUAGE_OUT_LOGITS or _EMBD). */
const float *nuage_get_embedding(const nuage_context *ctx, int i);

#ifdef __cplusplus
}
#endif
#endif
