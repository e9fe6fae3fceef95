/*
 * sched.c - the scheduler's public face: creation, the thread and its
 * sleep/wake loop, submit / cancel / drain / stats, and a request's
 * creation and destruction. One step of work lives in sched_step.c, the
 * prefix cache in sched_prefix.c, fair queuing in sched_fair.c.
 *
 * Threads. Any thread may call submit, cancel, drain and get_stats; they
 * only touch the fields "under mu" (sched_internal.h): submit validates
 * and prepares the request (copies, samplers: all allocation happens on
 * the caller's thread), then appends it to the inbox and signals. The
 * scheduler thread wakes, takes the whole inbox and any cancel flags in
 * one short critical section, runs a step without the lock (callbacks
 * included), then publishes stats and retires completed requests under
 * the lock again. With nothing to do it waits on the condition variable:
 * an idle server uses no CPU.
 *
 * Cancellation. nuage_sched_cancel finds the request in the live list and
 * sets its flag; the thread copies flags into the requests at its next
 * wake-up and the step that follows ends them, so a cancelled request
 * leaves within one step. drain() and free() use the same path for every
 * live request at once.
 *
 * Lifetime. A request is on the live list from submit until after its
 * on_complete returned; it is freed by the scheduler thread only after
 * being unlinked under the mutex, so cancel() never sees freed memory.
 *
 * Sampling state. Each choice has its own sampler (choice i seeded with
 * seed + i). As llama.cpp's server does, the prompt's tokens are fed to
 * the sampler before generation, so the repetition/frequency/presence
 * penalties' window starts with the prompt; choices are clones of one
 * sampler that saw the prompt.
 */
#include "runtime/sched_internal.h"
#include "engine/clock.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nuage/tokenizer.h"

double nuage__sched_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* The scheduler's buffers, prefix cache and context (NULL-safe: also the
 * failure path of nuage_sched_new). */
static void nuage__sched_free_buffers(nuage_sched *s) {
    nuage__prefix_free(s->pc);
    free(s->run);
    free(s->free_seqs);
    free(s->plan);
    nuage_batch_free(s->batch);
    free(s->stream);
    free(s->blk);
    free(s->embd_out);
    free(s->sc_work);
    nuage__sc_release(s);
    nuage_context_free(s->ctx);
}

nuage_sched_params nuage_sched_default_params(void) {
    nuage_sched_params p = {0};
    p.n_threads = 0;
    p.n_ctx = 0;
    p.max_running = 8;
    p.max_batch_tokens = 512;
    p.max_queue = 256;
    p.kv_blocks = 0;
    p.kv_memory = 0;
    p.kv_block_size = 16;
    p.kv_type = NUAGE_KV_F16;
    p.prefix_cache = true;
    p.max_batch_running = 0;
    p.step_tokens = NUAGE__STEP_TOKENS;
    return p;
}

/* ---- requests ------------------------------------------------------------ */

static void nuage__sreq_free(nuage__sreq *q) {
    if (!q) return;
    nuage__sc_free(q);
    if (q->ch) {
        for (int c = 0; c < q->r.n_choices; c++) {
            nuage_sampler_free(q->ch[c].smp);
            free(q->ch[c].gen);
        }
        free(q->ch);
    }
    free(q->embd_sum);
    free(q->prompt);
    free(q);
}

/* Validate r and build the scheduler's copy. 0 or a NUAGE_E_* code. */
static int nuage__sreq_new(const nuage_sched *s, const nuage_sched_request *r, nuage__sreq **out) {
    *out = NULL;
    if (!r || !r->prompt || r->n_prompt <= 0) return NUAGE_E_INVAL;
    if (r->top_logprobs < -1 || r->top_logprobs > NUAGE_SCHED_MAX_TOP) return NUAGE_E_INVAL;
    if (r->priority != 0 && r->priority != 1) return NUAGE_E_INVAL;
    if (!r->embedding) {
        if (r->max_tokens <= 0 || r->n_choices < 1) return NUAGE_E_INVAL;
        if (r->n_choices > s->p.max_running) return NUAGE_E_INVAL;
    }
    for (int i = 0; i < r->n_prompt; i++)
        if (r->prompt[i] < 0 || r->prompt[i] >= s->n_vocab) return NUAGE_E_RANGE;
    if (r->n_think_end < 0 || r->n_think_end > NUAGE_SCHED_MAX_THINK_END) return NUAGE_E_INVAL;
    if (r->n_think_end > 0 && !r->embedding) {
        if (r->think_budget < 0) return NUAGE_E_INVAL;
        if (r->think_start < 0 || r->think_start >= s->n_vocab) return NUAGE_E_RANGE;
        for (int i = 0; i < r->n_think_end; i++)
            if (r->think_end[i] < 0 || r->think_end[i] >= s->n_vocab) return NUAGE_E_RANGE;
    }
    long need = (long)r->n_prompt + (r->embedding ? 0 : (long)r->max_tokens);
    if (need > s->n_ctx) return NUAGE_E_CTX;

    nuage__sreq *q = calloc(1, sizeof *q);
    if (!q) return NUAGE_E_NOMEM;
    q->r = *r;
    q->r.grammar = NULL;     /* nuage__sc_init takes its own reference */
    q->r.triggers = NULL;
    if (r->embedding) {
        q->r.n_choices = 1;
        q->r.max_tokens = 0;
        q->r.prompt_logprobs = false;
        q->r.top_logprobs = -1;
        q->r.n_think_end = 0;
    }
    if (!(q->r.weight > 0) || !isfinite(q->r.weight)) q->r.weight = 1.0f;
    if (!q->r.cb.on_prompt_token) q->r.prompt_logprobs = false;
    const int nc = q->r.n_choices;
    int rc = NUAGE_E_NOMEM;
    q->prompt = malloc((size_t)r->n_prompt * sizeof *q->prompt);
    q->ch = calloc((size_t)nc, sizeof *q->ch);
    if (!q->prompt || !q->ch) goto fail;
    memcpy(q->prompt, r->prompt, (size_t)r->n_prompt * sizeof *q->prompt);
    q->r.prompt = q->prompt;
    /* Thinking budget: does the prompt leave a reasoning block open? */
    bool think_open = false;
    if (q->r.n_think_end > 0)
        for (int i = r->n_prompt - 1; i >= 0; i--) {
            if (q->prompt[i] == q->r.think_start) { think_open = true; break; }
            if (q->prompt[i] == q->r.think_end[0]) break;
        }
    for (int c = 0; c < nc; c++) {
        q->ch[c].seq = -1;
        q->ch[c].in_think = think_open;
        q->ch[c].force_i = think_open && q->r.think_budget == 0 ? 0 : -1;
    }
    if (q->r.embedding) {
        q->embd_sum = calloc((size_t)s->n_embd, sizeof *q->embd_sum);
        if (!q->embd_sum) goto fail;
    } else {
        nuage_sampler_params sp = r->sampling;
        nuage_sampler *first = nuage_sampler_new(&sp, s->n_vocab);
        if (!first) {
            rc = NUAGE_E_INVAL; /* out-of-range sampling parameter (or OOM) */
            goto fail;
        }
        q->ch[0].smp = first;
        for (int i = 0; i < r->n_prompt; i++) nuage_sampler_accept(first, q->prompt[i]);
        for (int c = 1; c < nc; c++) {
            q->ch[c].smp = nuage_sampler_clone(first, sp.seed + (uint64_t)c);
            if (!q->ch[c].smp) goto fail;
        }
        for (int c = 0; c < nc; c++) {
            q->ch[c].gen = malloc((size_t)q->r.max_tokens * sizeof *q->ch[c].gen);
            if (!q->ch[c].gen) goto fail;
        }
    }
    rc = nuage__sc_init(s, q, r);
    if (rc) goto fail;
    rc = NUAGE_E_NOMEM;
    /* The sampler copied the bias arrays; do not keep the caller's. */
    q->r.sampling.bias_tokens = NULL;
    q->r.sampling.bias_values = NULL;
    q->r.sampling.n_bias = 0;
    q->prompt_lp_next = 1;
    q->run_idx = -1;
    q->t_submit = nuage__sched_now_ms();
    q->usage.prompt_tokens = r->n_prompt;
    *out = q;
    return 0;
fail:
    nuage__sreq_free(q);
    return rc;
}

/* ---- the thread -------------------------------------------------------------- */

/* Under mu: copy cancel requests into the requests. */
static void nuage__sched_scan_cancels(nuage_sched *s) {
    bool all = s->cancel_all;
    for (nuage__sreq *q = s->live; q; q = q->lnext) {
        if (q->cancelled) continue;
        if (all || q->cancel_req) {
            q->cancelled = true;
            if (all) s->drain_cancelled++;
        }
    }
    s->cancel_all = false;
    s->n_cancel_pending = 0;
}

/* Under mu: stats for get_stats. */
static void nuage__sched_publish(nuage_sched *s) {
    nuage_sched_stats *st = &s->pub;
    st->queued = s->fair.n_waiting;
    st->running = s->n_running;
    st->kv_blocks_total = nuage_kv_blocks_total(s->ctx);
    st->kv_blocks_free = nuage_kv_blocks_free(s->ctx);
    st->kv_blocks_cached = s->evictable;
    st->prompt_tokens = s->st_prompt;
    st->cached_tokens = s->st_cached;
    st->generated_tokens = s->st_gen;
    st->steps = s->st_steps;
    st->preemptions = s->st_preempt;
    st->n_ctx = s->n_ctx;
}

/* Without mu: on_complete of every completed request; then, under mu,
 * unlink and free them. */
static void nuage__sched_retire(nuage_sched *s) {
    /* Stats first, so that whoever wakes up on on_complete sees the KV
     * blocks of its request already back. */
    s->evictable = s->pc ? nuage__prefix_evictable(s->pc) : 0;
    pthread_mutex_lock(&s->mu);
    nuage__sched_publish(s);
    pthread_mutex_unlock(&s->mu);
    for (nuage__sreq *q = s->done.head; q; q = q->qnext)
        if (q->r.cb.on_complete) q->r.cb.on_complete(q->r.cb.ud, &q->usage);
    nuage__sreq *list = s->done.head;
    s->done = (nuage__squeue){0};
    if (!list) return;
    pthread_mutex_lock(&s->mu);
    for (nuage__sreq *q = list; q; q = q->qnext) {
        if (q->lprev) q->lprev->lnext = q->lnext;
        else s->live = q->lnext;
        if (q->lnext) q->lnext->lprev = q->lprev;
        s->n_live--;
    }
    pthread_cond_broadcast(&s->idle);
    pthread_mutex_unlock(&s->mu);
    while (list) {
        nuage__sreq *next = list->qnext;
        nuage__fair_release(&s->fair, list);
        nuage__sreq_free(list);
        list = next;
    }
}

static void *nuage__sched_main(void *arg) {
    nuage_sched *s = arg;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        bool cancels = s->n_cancel_pending > 0 || s->cancel_all;
        if (cancels) nuage__sched_scan_cancels(s);
        nuage__squeue in = s->inbox;
        s->inbox = (nuage__squeue){0};
        s->tr_fn = s->trace_fn;
        s->tr_ud = s->trace_ud;
        if (in.n == 0 && !cancels && s->n_running == 0 && s->fair.n_waiting == 0) {
            if (s->stop) break;
            pthread_cond_wait(&s->wake, &s->mu);
            continue;
        }
        pthread_mutex_unlock(&s->mu);
        for (nuage__sreq *q = in.head, *next; q; q = next) {
            next = q->qnext;
            q->qprev = q->qnext = NULL;
            if (nuage__fair_enqueue(&s->fair, q)) {
                q->state = NUAGE__SREQ_RUNNING; /* not queued: finish directly */
                q->run_idx = -1;
                nuage__sched_finish_request(s, q, NUAGE_FINISH_ERROR, "out of memory");
            }
        }
        if (cancels) nuage__sched_apply_cancels(s);
        if (s->n_running > 0 || s->fair.n_waiting > 0) nuage__sched_step(s);
        nuage__sched_retire(s);
        pthread_mutex_lock(&s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

void nuage__sched_set_trace(nuage_sched *s, nuage__sched_trace_fn fn, void *ud) {
    pthread_mutex_lock(&s->mu);
    s->trace_fn = fn;
    s->trace_ud = ud;
    pthread_mutex_unlock(&s->mu);
}

/* ---- public API -------------------------------------------------------------- */

/* Defaults of p resolved as nuage_sched_new does (in place). */
static void nuage__sched_resolve(const nuage_model *m, nuage_sched_params *pp) {
    nuage_sched_params p = *pp;
    if (p.max_running <= 0) p.max_running = 8;
    if (p.max_batch_tokens <= 0) p.max_batch_tokens = 512;
    if (p.max_batch_tokens < p.max_running) p.max_batch_tokens = p.max_running;
    if (p.step_tokens <= 0) p.step_tokens = NUAGE__STEP_TOKENS;
    if (p.step_tokens > p.max_batch_tokens) p.step_tokens = p.max_batch_tokens;
    if (p.max_queue <= 0) p.max_queue = 256;
    if (p.kv_block_size <= 0) p.kv_block_size = 16;
    if (p.n_ctx <= 0) {
        int train = nuage_model_n_ctx_train(m);
        p.n_ctx = train > 0 && train < 4096 ? train : 4096;
    }
    if (p.kv_blocks <= 0 && p.kv_memory == 0) {
        /* n_ctx * max_running / 4 tokens, but at least one full sequence. */
        long tokens = (long)p.n_ctx * p.max_running / 4;
        if (tokens < p.n_ctx) tokens = p.n_ctx;
        p.kv_blocks = (int)((tokens + p.kv_block_size - 1) / p.kv_block_size);
    }
    *pp = p;
}

/* The context a scheduler with resolved params p runs on. */
static nuage_context_params nuage__sched_context_params(const nuage_sched_params *p) {
    nuage_context_params cp = nuage_context_default_params();
    cp.n_threads = p->n_threads;
    cp.n_ctx = p->n_ctx;
    cp.n_seq_max = p->max_running;
    cp.n_batch_max = p->max_batch_tokens;
    cp.kv_block_size = p->kv_block_size;
    cp.kv_blocks = p->kv_blocks;
    cp.kv_memory = p->kv_memory;
    cp.kv_type = p->kv_type;
    return cp;
}

uint64_t nuage_sched_kv_bytes(const nuage_model *m, const nuage_sched_params *params) {
    if (!m) return 0;
    nuage_sched_params p = params ? *params : nuage_sched_default_params();
    nuage__sched_resolve(m, &p);
    nuage_context_params cp = nuage__sched_context_params(&p);
    return nuage_context_kv_bytes(m, &cp);
}

int nuage_sched_new(const nuage_model *m, const nuage_sched_params *params, nuage_sched **out,
                    char *err, size_t errlen) {
    char dummy[8];
    if (!err) { err = dummy; errlen = sizeof dummy; }
    *out = NULL;
    if (!m) {
        snprintf(err, errlen, "no model");
        return NUAGE_E_INVAL;
    }
    nuage_sched_params p = params ? *params : nuage_sched_default_params();
    nuage__sched_resolve(m, &p);
    nuage_sched *s = calloc(1, sizeof *s);
    if (!s) return NUAGE_E_NOMEM;
    s->m = m;
    s->p = p;
    nuage_context_params cp = nuage__sched_context_params(&p);
    int rc = nuage_context_new(m, &cp, &s->ctx, err, errlen);
    if (rc) goto fail_ctx;
    s->voc = nuage_model_vocab(m);
    s->n_vocab = nuage_model_n_vocab(m);
    s->n_embd = nuage_model_n_embd(m);
    s->bs = nuage_kv_block_size(s->ctx);
    s->n_ctx = nuage_context_n_ctx(s->ctx);
    s->swa = nuage_model_n_swa(m, NULL) > 0;
    rc = NUAGE_E_NOMEM;
    s->run = calloc((size_t)p.max_running, sizeof *s->run);
    s->free_seqs = malloc((size_t)p.max_running * sizeof *s->free_seqs);
    s->plan = malloc((size_t)p.max_running * sizeof *s->plan);
    s->batch = nuage_batch_new(p.max_batch_tokens);
    s->stream = malloc((size_t)s->n_ctx * sizeof *s->stream);
    s->blk = malloc(((size_t)s->n_ctx / (size_t)s->bs + 1) * sizeof *s->blk);
    s->embd_out = malloc((size_t)s->n_embd * sizeof *s->embd_out);
    s->sc_work = malloc((size_t)p.max_running * sizeof *s->sc_work);
    if (!s->run || !s->free_seqs || !s->plan || !s->batch || !s->stream || !s->blk || !s->embd_out ||
        !s->sc_work) {
        snprintf(err, errlen, "out of memory");
        goto fail_alloc;
    }
    for (int i = 0; i < p.max_running; i++) s->free_seqs[i] = p.max_running - 1 - i;
    s->n_free_seqs = p.max_running;
    if (p.prefix_cache) {
        s->pc = nuage__prefix_new(s->ctx);
        if (!s->pc) {
            snprintf(err, errlen, "out of memory for the prefix cache");
            goto fail_alloc;
        }
    }
    s->next_id = 1;
    if (pthread_mutex_init(&s->mu, NULL)) goto fail_alloc;
    if (pthread_cond_init(&s->wake, NULL)) goto fail_wake;
    if (pthread_cond_init(&s->idle, NULL)) goto fail_idle;
    nuage__sched_publish(s);
    if (pthread_create(&s->thread, NULL, nuage__sched_main, s)) {
        snprintf(err, errlen, "cannot start the scheduler thread");
        goto fail_thread;
    }
    s->thread_started = true;
    *out = s;
    return 0;

fail_thread:
    pthread_cond_destroy(&s->idle);
fail_idle:
    pthread_cond_destroy(&s->wake);
fail_wake:
    pthread_mutex_destroy(&s->mu);
fail_alloc:
    nuage__sched_free_buffers(s);
fail_ctx:
    free(s);
    return rc;
}

void nuage_sched_free(nuage_sched *s) {
    if (!s) return;
    if (s->thread_started) {
        pthread_mutex_lock(&s->mu);
        s->stop = true;
        s->draining = true;
        s->cancel_all = true;
        pthread_cond_signal(&s->wake);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->thread, NULL);
        nuage__sc_stop(s);
    }
    pthread_cond_destroy(&s->idle);
    pthread_cond_destroy(&s->wake);
    pthread_mutex_destroy(&s->mu);
    nuage__fair_free(&s->fair);
    nuage__sched_free_buffers(s);
    free(s);
}

int nuage_sched_submit(nuage_sched *s, const nuage_sched_request *r, uint64_t *id) {
    if (!s) return NUAGE_E_INVAL;
    nuage__sreq *q;
    int rc = nuage__sreq_new(s, r, &q);
    if (rc) return rc;
    pthread_mutex_lock(&s->mu);
    if (s->draining || s->stop || s->inbox.n + s->pub.queued >= s->p.max_queue) {
        pthread_mutex_unlock(&s->mu);
        nuage__sreq_free(q);
        return NUAGE_E_BUSY;
    }
    q->id = s->next_id++;
    nuage__squeue_push_back(&s->inbox, q);
    q->lprev = NULL;
    q->lnext = s->live;
    if (s->live) s->live->lprev = q;
    s->live = q;
    s->n_live++;
    if (id) *id = q->id;
    pthread_cond_signal(&s->wake);
    pthread_mutex_unlock(&s->mu);
    return 0;
}

void nuage_sched_cancel(nuage_sched *s, uint64_t id) {
    if (!s) return;
    pthread_mutex_lock(&s->mu);
    for (nuage__sreq *q = s->live; q; q = q->lnext)
        if (q->id == id) {
            if (!q->cancel_req) {
                q->cancel_req = true;
                s->n_cancel_pending++;
                pthread_cond_signal(&s->wake);
            }
            break;
        }
    pthread_mutex_unlock(&s->mu);
}

int nuage_sched_drain(nuage_sched *s, int deadline_ms) {
    if (!s) return 0;
    pthread_mutex_lock(&s->mu);
    s->draining = true;
    s->drain_cancelled = 0;
    struct timespec ts = nuage__deadline_in(deadline_ms);
    while (s->n_live > 0)
        if (pthread_cond_timedwait(&s->idle, &s->mu, &ts)) break;
    if (s->n_live > 0) {
        s->cancel_all = true;
        pthread_cond_signal(&s->wake);
        while (s->n_live > 0) pthread_cond_wait(&s->idle, &s->mu);
    }
    int n = s->drain_cancelled;
    pthread_mutex_unlock(&s->mu);
    return n;
}

void nuage_sched_get_stats(nuage_sched *s, nuage_sched_stats *st) {
    if (!s || !st) return;
    pthread_mutex_lock(&s->mu);
    *st = s->pub;
    st->queued += s->inbox.n;
    pthread_mutex_unlock(&s->mu);
}
