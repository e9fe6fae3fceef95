/*
 * sched_internal.h - data shared by the scheduler's files (sched.c: thread,
 * queue and step loop; sched_prefix.c: the prefix cache; sched_fair.c:
 * weighted fair queuing by tenant). Nothing here is public.
 *
 * A request moves through: the inbox (filled by nuage_sched_submit under
 * the mutex) -> a waiting queue (per tenant and priority, or the front
 * "resume" queue for preempted requests) -> the running array (it holds
 * sequence ids and KV blocks) -> the completed list (its last callback is
 * pending) -> freed. Only the scheduler thread touches a request after it
 * left the inbox, except `cancel_req`, which is written and read under the
 * mutex.
 *
 * Token stream of a choice: prompt[0..n_prompt) followed by gen[0..n_gen).
 * Its KV cache holds the first n_kv tokens of that stream. While
 * n_kv < n_prompt + n_gen the missing tokens are computed (in chunks); the
 * logits of the last one give the next sample. Decoding is the special case
 * of exactly one missing token, prefill and recomputation after a
 * preemption are the general case; the code does not tell them apart.
 */
#ifndef NUAGE_SCHED_INTERNAL_H
#define NUAGE_SCHED_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "runtime/sched.h"

typedef struct nuage__sreq nuage__sreq;
typedef struct nuage__stenant nuage__stenant;

typedef struct {
    int seq;             /* sequence id, -1 when it holds none */
    int n_kv;            /* tokens of the stream in the KV cache */
    int n_gen;           /* tokens generated so far */
    bool done;
    nuage_sampler *smp;  /* owned */
    int32_t *gen;        /* (max_tokens) generated tokens, owned */
    /* thinking budget (r.n_think_end > 0) */
    bool in_think;       /* inside a reasoning block */
    int think_n;         /* tokens generated inside reasoning blocks */
    int force_i;         /* next think_end index to force, -1: sampling */
    /* constrained decoding (sched_constrain.c; r.grammar set) */
    nuage_matcher *m;    /* engaged matcher, or NULL (unconstrained / not yet triggered) */
    uint32_t *mask;      /* mask scratch of this choice */
    bool mask_ready;     /* mask holds the current allowed set (prefetched) */
    char *tail;          /* lazy: last bytes of output, for the trigger search */
    int tail_n;
    bool watch_done;     /* lazy: a trigger was seen (engaged or given up) */
} nuage__schoice;

enum { NUAGE__SREQ_WAITING = 0, NUAGE__SREQ_RUNNING = 1, NUAGE__SREQ_DONE = 2 };

struct nuage__sreq {
    uint64_t id;
    nuage_sched_request r;     /* copy; r.prompt points at `prompt` */
    int32_t *prompt;           /* (n_prompt) owned copy */
    nuage__schoice *ch;        /* (n_choices) owned */
    int lead;                  /* choice whose sequence computes the prompt */
    bool forked;               /* the other choices have their prompt KV */
    int state;
    bool admitted_once;
    bool got_first;            /* first token / embedding reported */
    bool cancel_req;           /* under sched->mu */
    bool cancelled;            /* copied from cancel_req by the scheduler thread */
    int prompt_lp_next;        /* next prompt index to report (prompt_logprobs) */
    double *embd_sum;          /* (n_embd) embedding requests */
    uint64_t admit_seq;        /* admission order: larger = younger */
    double t_submit;           /* ms, monotonic */
    nuage_sched_usage usage;
    nuage__stenant *tenant;
    int run_idx;               /* index in the running array */
    char **trig;               /* lazy-grammar triggers (owned, NULL-terminated) */
    int n_trig, trig_max;
    nuage__sreq *qprev, *qnext;  /* inbox / waiting-queue / completed links */
    nuage__sreq *lprev, *lnext;  /* live list (under sched->mu) */
};

/* Length of choice c's token stream (prompt + generated). */
static inline int nuage__sreq_len(const nuage__sreq *q, int c) {
    return q->r.n_prompt + q->ch[c].n_gen;
}
/* Token i of choice c's stream. */
static inline int32_t nuage__sreq_tok(const nuage__sreq *q, int c, int i) {
    return i < q->r.n_prompt ? q->prompt[i] : q->ch[c].gen[i - q->r.n_prompt];
}

/* ---- doubly linked FIFO of requests (links qprev/qnext) ---------------- */
typedef struct {
    nuage__sreq *head, *tail;
    int n;
} nuage__squeue;

void nuage__squeue_push_back(nuage__squeue *q, nuage__sreq *r);
void nuage__squeue_push_front(nuage__squeue *q, nuage__sreq *r);
void nuage__squeue_remove(nuage__squeue *q, nuage__sreq *r);

/* ---- weighted fair queuing (sched_fair.c) ------------------------------ */
struct nuage__stenant {
    int32_t id;
    float weight;
    double vt;              /* virtual time: tokens served / weight */
    nuage__squeue q[2];     /* waiting, by priority (0 interactive, 1 batch) */
    int n_running;          /* requests of this tenant holding slots */
    int n_refs;             /* requests pointing here (until released) */
};

typedef struct {
    nuage__stenant **t;     /* (n) tenants with waiting or running requests */
    int n, cap;
    nuage__squeue resume[2]; /* preempted requests, by priority: served first */
    double vnow;            /* system virtual time (min vt of active tenants) */
    int n_waiting;          /* requests in every waiting queue */
} nuage__sfair;

/* Add a newly submitted request to its tenant's queue (creating the
 * tenant; a tenant coming back from idle starts at the system virtual time
 * so it neither banks credit nor carries debt). 0 or NUAGE_E_NOMEM. */
int nuage__fair_enqueue(nuage__sfair *f, nuage__sreq *r);
/* Put a preempted request at the front of everything of its priority. */
void nuage__fair_requeue_front(nuage__sfair *f, nuage__sreq *r);
/* The request to admit next (not removed): preempted interactive, then the
 * interactive tenant with the lowest virtual time, then preempted batch,
 * then batch work (only when no interactive request waits). NULL if none. */
nuage__sreq *nuage__fair_peek(nuage__sfair *f);
/* Remove r from whichever waiting queue holds it. */
void nuage__fair_remove(nuage__sfair *f, nuage__sreq *r);
/* r got a running slot / left it. */
void nuage__fair_started(nuage__sfair *f, nuage__sreq *r);
void nuage__fair_stopped(nuage__sfair *f, nuage__sreq *r);
/* r was served `tokens` tokens this step: advance its tenant's clock. */
void nuage__fair_charge(nuage__sfair *f, nuage__sreq *r, int tokens);
/* r is gone: drop its tenant when no request refers to it any more. */
void nuage__fair_release(nuage__sfair *f, nuage__sreq *r);
void nuage__fair_free(nuage__sfair *f);

/* ---- prefix cache (sched_prefix.c) ------------------------------------- */
typedef struct nuage__sprefix nuage__sprefix;

/* A cache for ctx's block pool (capacity: every block). NULL on OOM. */
nuage__sprefix *nuage__prefix_new(nuage_context *ctx);
/* Drop every reference the cache holds and free it. */
void nuage__prefix_free(nuage__sprefix *pc);
/* Longest cached chain of full blocks matching tokens[0 .. n_max*bs)
 * under salt: writes its block ids to blocks and returns their number
 * (<= n_max); marks them recently used. */
int nuage__prefix_lookup(nuage__sprefix *pc, uint64_t salt, const int32_t *tokens, int n_max,
                         int32_t *blocks);
/* Keep the n full blocks (ids in blocks, contents tokens[0 .. n*bs)) of a
 * sequence: the cache takes a reference on each block it did not know. */
void nuage__prefix_register(nuage__sprefix *pc, uint64_t salt, const int32_t *tokens, int n,
                            const int32_t *blocks);
/* Blocks held only by the cache (what eviction could free). */
int nuage__prefix_evictable(const nuage__sprefix *pc);
/* Free up to n blocks held only by the cache, least recently used first.
 * Returns the number freed. */
int nuage__prefix_evict(nuage__sprefix *pc, int n);
/* Entries in the cache. */
int nuage__prefix_size(const nuage__sprefix *pc);

/* ---- the scheduler object ---------------------------------------------- */
#include <pthread.h>

#define NUAGE__SC_MAX_WORKERS 8

/* Default step_tokens (sched.h). Measured with bench/ab_serving.sh
 * (TinyLlama Q4_0, 2 threads, 16 and 32 clients, 200-token prompts): the
 * old single budget of 512 gave inter-token latency p99 of 15-20 s on a
 * loaded machine; 128 cut it to 5-7 s but slowed prompts (every step
 * carries the decode tokens, so more steps mean more decode work before
 * the last prompt is in: TTFT p50 up to 2x worse at 32 clients); 256 kept
 * most of the p99 gain (6 s vs 13 s at 32 clients) with better TTFT p50
 * than 512, and TTFT p99 within ~15 % of it (one run each, loaded
 * machine). The budget trades a stream's gaps against prompt latency. */
#define NUAGE__STEP_TOKENS 256

/* One sequence's share of a step's batch. */
typedef struct {
    nuage__sreq *q;
    int c;               /* choice */
    int pos0, n;         /* stream positions pos0 .. pos0+n-1 */
    int b0;              /* index of the first one in the batch */
} nuage__splan;

/* Test hook: called on the scheduler thread with each step's plan (before
 * it is decoded; entries in batch order, decode tokens first). `step` is
 * the number of steps decoded before this one. */
typedef void (*nuage__sched_trace_fn)(void *ud, uint64_t step, const nuage__splan *plan, int n_plan);
/* Install (or with fn NULL remove) the hook; it takes effect at the
 * scheduler's next wake-up. Takes sched->mu. */
void nuage__sched_set_trace(nuage_sched *s, nuage__sched_trace_fn fn, void *ud);

struct nuage_sched {
    /* fixed after creation */
    const nuage_model *m;
    nuage_sched_params p;
    nuage_context *ctx;
    const struct nuage_vocab *voc;
    int n_vocab, n_embd, bs, n_ctx;
    bool swa;                  /* the model has sliding-window layers */
    pthread_t thread;
    bool thread_started;

    /* under mu */
    pthread_mutex_t mu;
    pthread_cond_t wake;       /* scheduler: work or a flag arrived */
    pthread_cond_t idle;       /* drain(): a request completed */
    nuage__squeue inbox;       /* submitted, not yet seen by the thread */
    nuage__sreq *live;         /* every request from submit to completion */
    int n_live;
    int n_cancel_pending;
    bool stop, draining, cancel_all;
    int drain_cancelled;
    uint64_t next_id;
    nuage_sched_stats pub;     /* published at the end of each step */
    nuage__sched_trace_fn trace_fn; /* nuage__sched_set_trace */
    void *trace_ud;

    /* scheduler thread only */
    nuage__sfair fair;
    nuage__sprefix *pc;        /* NULL when the prefix cache is off */
    nuage__sreq **run;         /* (max_running) admission order; NULL holes */
    int n_run;                 /* used entries of run (holes included) */
    int n_running;             /* requests running */
    int n_batch_running;       /* of which priority 1 */
    int *free_seqs;            /* (max_running) stack of free sequence ids */
    int n_free_seqs;
    nuage_batch *batch;
    nuage__splan *plan;        /* (max_running) */
    int n_plan;
    int32_t *stream;           /* (n_ctx) scratch token stream */
    int32_t *blk;              /* (n_ctx / bs + 1) scratch block ids */
    float *embd_out;           /* (n_embd) */
    nuage__squeue done;        /* completed, on_complete pending */
    uint64_t admit_counter;
    int evictable;             /* cache-only blocks, kept current in a step */
    uint64_t st_prompt, st_cached, st_gen, st_steps, st_preempt;
    nuage__sched_trace_fn tr_fn; /* copy of trace_fn taken at wake-up */
    void *tr_ud;
    /* mask helper threads (sched_constrain.c) */
    bool sc_started, sc_stop;
    pthread_t sc_threads[NUAGE__SC_MAX_WORKERS];
    int sc_n_workers;
    pthread_mutex_t sc_mu;
    pthread_cond_t sc_go, sc_fin;
    nuage__schoice **sc_work;  /* (max_running) masks to compute this step */
    uint32_t *sc_noeog;        /* every token but the end-of-generation ones (lazily built) */
    int sc_n, sc_next, sc_done;
};

/* ---- constrained decoding (sched_constrain.c) ----------------------------- */
/* Take r's grammar (a reference) and triggers for q; matchers and masks
 * per choice. 0 or NUAGE_E_NOMEM / NUAGE_E_INVAL (empty trigger). */
int nuage__sc_init(const nuage_sched *s, nuage__sreq *q, const nuage_sched_request *r);
void nuage__sc_free(nuage__sreq *q);
/* The mask for choice c's next sample, or NULL (unconstrained, or *rc < 0
 * when it could not be computed). */
const uint32_t *nuage__sc_mask(nuage_sched *s, nuage__sreq *q, int c, int *rc);
/* Choice c took token tok: advance its matcher (or watch for a trigger).
 * *constrained: tok was under a mask; *terminated: nothing may follow.
 * 0, or NUAGE_E_INVAL when the matcher refuses tok. */
int nuage__sc_accept(nuage_sched *s, nuage__sreq *q, int c, int32_t tok, bool *constrained,
                     bool *terminated);
/* Compute, on the helper thread, the masks the planned batch will sample
 * with; nuage__sc_wait joins (call it before any sampling or freeing). */
void nuage__sc_prefetch(nuage_sched *s);
void nuage__sc_wait(nuage_sched *s);
/* Stop the helper threads (nuage_sched_free). */
void nuage__sc_stop(nuage_sched *s);
/* Free the constrained-decoding buffers of s (nuage_sched_free). */
void nuage__sc_release(nuage_sched *s);

/* Prompt tokens a step may take beside n_dec decode tokens (p resolved):
 * up to step_tokens in all while streams decode (at least step_tokens / 4
 * of prompt), the whole batch when none does; never past max_batch_tokens. */
int nuage__step_budget(const nuage_sched_params *p, int n_dec);

/* sched_step.c: one scheduler step (cancellations, admission, batch,
 * decode, sampling, callbacks). Called without the mutex. */
void nuage__sched_step(nuage_sched *s);
/* Cancel every running and waiting request flagged `cancelled`. */
void nuage__sched_apply_cancels(nuage_sched *s);
/* End request q: every open choice gets on_finish(reason); its sequences
 * are released; it moves to the completed list. */
void nuage__sched_finish_request(nuage_sched *s, nuage__sreq *q, nuage_finish reason,
                                 const char *error);
/* Milliseconds on the monotonic clock. */
double nuage__sched_now_ms(void);

#endif
