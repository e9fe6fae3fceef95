/*
 * sched.h - the scheduler: one thread that owns a nuage_context (every
 * sequence and the KV cache) and runs continuous batching over it.
 *
 * Threading model (as llama-server documents its own): HTTP threads parse,
 * template and tokenize, then call nuage_sched_submit, which only appends
 * to a queue under the scheduler's mutex and signals it. The scheduler
 * thread takes requests from that queue, builds one batch per step from
 * every running sequence's next token plus chunks of waiting prompts
 * (chunked prefill bounded by step_tokens while streams decode, by
 * max_batch_tokens otherwise), decodes it, samples, and
 * reports each token through the request's callbacks -- which therefore
 * run on the scheduler thread and must be quick and non-blocking (copy
 * into a per-request queue and signal the HTTP thread; never call back
 * into the scheduler from a callback except through the return value).
 *
 * Lock order: sched->mu (queue, cancel flags, stats) is the only lock
 * inside the scheduler; callbacks are invoked with it NOT held, so a
 * callback may take its own request lock. Nothing else is locked while
 * sched->mu is held.
 *
 * KV memory: a paged pool (see nuage.h). When blocks run out, waiting
 * requests wait; a running sequence that cannot grow preempts the youngest
 * running request, whose blocks are freed and whose tokens (prompt +
 * generated so far) are recomputed when it is resumed -- its sampler state
 * is kept, so its output is unchanged. Full blocks of finished prompts are
 * kept in a prefix cache keyed by a hash of (cache_salt, all tokens up to
 * and including the block), re-attached to new requests that share the
 * prefix (reported as cached_tokens) and evicted least-recently-used when
 * the pool needs blocks.
 */
#ifndef NUAGE_SCHED_H
#define NUAGE_SCHED_H

#include <stdbool.h>
#include <stdint.h>

#include "nuage/constrain.h"
#include "nuage/nuage.h"
#include "nuage/sampler.h"

typedef struct nuage_sched nuage_sched;

typedef struct {
    int n_threads;          /* compute threads (0 = all cores) */
    int n_ctx;              /* max tokens per sequence (prompt + output); 0: the model's
                               training context, at most 4096 */
    int max_running;        /* max sequences decoding at once (context n_seq_max) */
    int max_batch_tokens;   /* max tokens per decode step */
    int max_queue;          /* max waiting requests; beyond: NUAGE_E_BUSY */
    int kv_blocks;          /* KV pool size in blocks (0: from kv_memory) */
    uint64_t kv_memory;     /* KV pool size in bytes (0 with kv_blocks 0: n_ctx * max_running / 4 tokens,
                               at least one full n_ctx sequence) */
    int kv_block_size;      /* tokens per block (default 16) */
    nuage_kv_type kv_type;  /* default f16 */
    bool prefix_cache;      /* default true */
    int max_batch_running;  /* max priority-1 (batch) requests running at once; 0 = no
                               limit beyond max_running. Batch requests also give way:
                               an interactive request that cannot be admitted preempts
                               the youngest running batch request. */
    int step_tokens;        /* token budget of a step that carries decode tokens: one token
                               per decoding stream first, then prompt chunks of running and
                               waiting requests, oldest first, up to this many tokens in all
                               (at least step_tokens / 4 of prompt, so that prompts always
                               advance; capped by max_batch_tokens). A step with no decode
                               token takes up to max_batch_tokens of prompt. Small: running
                               streams keep their inter-token latency while prompts are
                               prefilled; large: fewer, longer steps. */
} nuage_sched_params;

/* Defaults: all cores, n_ctx 0, max_running 8, max_batch_tokens 512 (raised to
 * max_running if smaller), max_queue 256, pool from the rule above, blocks of
 * 16 tokens, f16 KV, prefix cache on, max_batch_running 0, step_tokens 256
 * (0 or negative: 256; above max_batch_tokens: max_batch_tokens). */
nuage_sched_params nuage_sched_default_params(void);

typedef enum {
    NUAGE_FINISH_STOP = 0,      /* end-of-generation token or on_token returned false */
    NUAGE_FINISH_LENGTH = 1,    /* max_tokens or context reached */
    NUAGE_FINISH_CANCELLED = 2, /* nuage_sched_cancel */
    NUAGE_FINISH_ERROR = 3,     /* engine error (message in usage.error) */
} nuage_finish;

#define NUAGE_SCHED_MAX_TOP 20
#define NUAGE_SCHED_MAX_THINK_END 4

typedef struct {
    int32_t token;
    float logprob;                          /* log-softmax of the raw logits */
    int n_top;                              /* requested top_logprobs (0..20) */
    int32_t top_ids[NUAGE_SCHED_MAX_TOP];
    float top_lp[NUAGE_SCHED_MAX_TOP];
    bool constrained;                       /* sampled under a grammar's mask */
} nuage_sched_token;

typedef struct {
    int prompt_tokens;
    int cached_tokens;      /* prompt tokens served from the prefix cache */
    int completion_tokens;  /* over all choices */
    double queue_ms;        /* submit -> first scheduled */
    double ttft_ms;         /* submit -> first token */
    char error[160];        /* for NUAGE_FINISH_ERROR */
} nuage_sched_usage;

typedef struct {
    void *ud;
    /* A generated token of choice `choice`. Return false to end that choice
     * with NUAGE_FINISH_STOP (e.g. a stop string matched). An
     * end-of-generation token is not reported: the choice just finishes
     * with NUAGE_FINISH_STOP (unless ignore_eos). logprob/top lists are
     * filled only when top_logprobs >= 0. */
    bool (*on_token)(void *ud, int choice, const nuage_sched_token *tok);
    /* Optional: logprob of each prompt token (index 1..n_prompt-1), sent
     * before any generated token when prompt_logprobs is set. */
    void (*on_prompt_token)(void *ud, int index, const nuage_sched_token *tok);
    /* Optional: the pooled embedding (n floats) for embedding requests. */
    void (*on_embedding)(void *ud, const float *embd, int n);
    /* One choice ended. */
    void (*on_finish)(void *ud, int choice, nuage_finish reason);
    /* The whole request ended (after every on_finish): the last call that
     * touches ud; the request's memory may be freed by its owner after it. */
    void (*on_complete)(void *ud, const nuage_sched_usage *usage);
} nuage_sched_callbacks;

typedef struct {
    const int32_t *prompt;      /* copied by submit */
    int n_prompt;
    int max_tokens;             /* per choice; > 0 (ignored for embeddings) */
    int n_choices;              /* 1..max_running; choices share the prompt's KV blocks */
    nuage_sampler_params sampling; /* choice i uses seed + i; bias arrays copied */
    int top_logprobs;           /* -1: no logprobs; 0..20 */
    bool prompt_logprobs;       /* report prompt token logprobs (completions echo; the
                                   prompt is then computed in full, no cache reuse) */
    bool ignore_eos;
    bool embedding;             /* embeddings request: no generation; mean-pooled final hidden state */
    uint64_t cache_salt;        /* prefix-cache scope (tenant); 0 = global */
    int32_t tenant;             /* fair-queuing key (issue 6); 0 = default */
    float weight;               /* tenant weight (> 0; 0 or invalid: 1) */
    int priority;               /* 0 interactive, 1 batch (admitted only while no
                                   interactive request waits); else NUAGE_E_INVAL */
    /* Thinking budget (reasoning_effort), on when n_think_end > 0. A choice
     * is "inside" a reasoning block after a think_start token (or from its
     * first token when the prompt's last think_start / think_end[0] token is
     * a think_start) until a think_end[0] token. Once a choice has generated
     * think_budget tokens inside (in all, over every block; the markers
     * themselves not counted), the tokens think_end[0..n_think_end) (e.g.
     * "</think>" and a newline) are fed as its next tokens instead of
     * sampling. They are reported through on_token like sampled tokens (with
     * their model log-probabilities) and count towards max_tokens.
     * think_budget 0 closes the block at once; < 0 with n_think_end > 0,
     * n_think_end > NUAGE_SCHED_MAX_THINK_END: NUAGE_E_INVAL; a marker id
     * outside the vocabulary: NUAGE_E_RANGE. */
    int think_budget;
    int32_t think_start;
    int32_t think_end[NUAGE_SCHED_MAX_THINK_END];
    int n_think_end;
    /* Constrained decoding (nuage/constrain.h), optional. Each choice gets
     * its own matcher on `grammar` (submit takes a reference): tokens are
     * sampled under its mask (EOS only where the output is complete) and
     * the choice ends with NUAGE_FINISH_STOP once the matcher is
     * terminated. With `triggers` (NULL-terminated strings, copied) a
     * choice samples freely until its output (special tokens rendered)
     * contains one of them; the matcher then starts on the text after it. */
    nuage_grammar *grammar;
    const char *const *triggers;
    /* With triggers: no end-of-generation token before a trigger (the
     * output must reach the constrained part, e.g. JSON after </think>;
     * it can then only end there or at max_tokens). */
    bool require_trigger;
    nuage_sched_callbacks cb;
} nuage_sched_request;

/* Bytes of KV cache nuage_sched_new(m, p) allocates (its defaults
 * resolved the same way; see nuage_context_kv_bytes), 0 when it would
 * refuse p. Deployments budget memory with it. */
uint64_t nuage_sched_kv_bytes(const nuage_model *m, const nuage_sched_params *p);
/* Start the scheduler thread over model m (not owned). 0 or negative code
 * with message. */
int nuage_sched_new(const nuage_model *m, const nuage_sched_params *p, nuage_sched **out,
                    char *err, size_t errlen);
/* Cancel everything still running or waiting (their callbacks run, with
 * NUAGE_FINISH_CANCELLED), stop the thread, free. */
void nuage_sched_free(nuage_sched *s);

/*
 * Queue a request. Returns 0 and its id, or: NUAGE_E_BUSY (queue full ->
 * HTTP 503), NUAGE_E_CTX (n_prompt + max_tokens > n_ctx -> 400
 * context_length_exceeded), NUAGE_E_INVAL (bad fields), NUAGE_E_RANGE
 * (token id out of vocabulary). On error no callback is ever called.
 */
int nuage_sched_submit(nuage_sched *s, const nuage_sched_request *r, uint64_t *id);

/* Ask to end request id (client gone). Its sequences are removed and their
 * blocks freed within one scheduler step; callbacks end with
 * on_finish(CANCELLED) and on_complete. Unknown/finished ids are ignored. */
void nuage_sched_cancel(nuage_sched *s, uint64_t id);

/* Stop accepting (submit returns NUAGE_E_BUSY) and wait until everything in
 * flight has completed or deadline_ms passed; then cancel the rest.
 * Returns the number of requests cancelled. */
int nuage_sched_drain(nuage_sched *s, int deadline_ms);

typedef struct {
    int queued, running;
    int kv_blocks_total, kv_blocks_free, kv_blocks_cached; /* cached: held only by the prefix cache */
    uint64_t prompt_tokens, cached_tokens, generated_tokens; /* totals */
    uint64_t steps, preemptions;
    int n_ctx;
} nuage_sched_stats;

void nuage_sched_get_stats(nuage_sched *s, nuage_sched_stats *st);

struct nuage_vocab;
/* Fill r's think_start / think_end / n_think_end with the vocabulary's
 * "<think>", "</think>" and newline tokens (sched_think.c); the caller
 * sets think_budget. 0, or NUAGE_E_RANGE when the vocabulary lacks a
 * marker (no budget possible). */
int nuage_sched_think_markers(const struct nuage_vocab *v, nuage_sched_request *r);

#endif
