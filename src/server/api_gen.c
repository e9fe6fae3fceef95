/*
 * api_gen.c - a generation job: the bridge between the HTTP threads and
 * the scheduler thread, shared by /v1/chat/completions, /v1/completions
 * and /v1/embeddings; and the server-sent-events writer of streamed
 * answers.
 *
 * A job (nuage__gen) holds one scheduler request per prompt (a completions
 * request may carry several prompts) and the output of every choice.
 *
 * Threads and locks. The scheduler calls on_token / on_finish /
 * on_complete on its own thread. Those callbacks turn tokens into text
 * right there -- streaming detokenization, stop-sequence matching, the
 * <think> split -- because on_token's return value must say at once
 * whether a stop sequence ended the choice; this is a few hundred
 * nanoseconds of work per token and never blocks. The results are
 * appended to the choice's buffers under the job's mutex `mu`, and the
 * condition variable wakes the HTTP thread, which formats and sends them.
 * `mu` is a leaf lock: nothing else is locked while it is held, and in
 * particular the scheduler (whose own mutex is taken by submit and cancel)
 * is never called with `mu` held. The detokenizer, stopper and splitter of
 * a choice belong to the scheduler thread alone (only callbacks touch
 * them; the HTTP side reads only the buffers, under `mu`).
 *
 * Lifetime. A job is reference counted: one reference for the HTTP request
 * that made it, one for its streamed response if any, one per submitted
 * scheduler request (dropped by on_complete, the scheduler's last call).
 * Whoever drops the last reference frees it, so a client that disconnects
 * mid-stream, a stream that finishes after the request context went away,
 * and a scheduler that completes after the client left are all safe.
 *
 * Client gone. While the HTTP thread waits for output it wakes every
 * 200 ms and peeks at the socket; a closed connection cancels every
 * prompt of the job (nuage_sched_cancel), so their KV blocks return to the
 * pool within one scheduler step.
 *
 * Deployment, quota, metering. A job holds a reference on the deployment
 * instance it runs on (its scheduler and vocabulary stay valid for the
 * job's whole life, even if the deployment is replaced meanwhile). Before
 * submitting, the rate limiter reserves prompt + max_tokens tokens for the
 * caller's tenant on that deployment; nuage__gen_finish settles the
 * reservation with what was used and writes the usage record -- for a
 * stream before "data: [DONE]" goes out, for a plain answer before its
 * first byte, so a response the client saw complete is always metered,
 * even if the process is killed right after. Each scheduler request
 * carries the tenant id and weight (weighted fair queuing) and a
 * prefix-cache salt derived from the tenant, so tenants never share cached
 * prompt blocks.
 */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "constrain/toolcall.h"
#include "server/http.h"

/* ---- references ---------------------------------------------------------- */

static void nuage__gen_destroy(nuage__gen *g) {
    for (int i = 0; i < g->n_choices; i++) {
        nuage__gchoice *c = &g->ch[i];
        nuage__sb_free(&c->text);
        nuage__sb_free(&c->reasoning);
        nuage__sb_free(&c->scratch);
        nuage__sb_free(&c->scratch2);
        nuage_toolparse_free(c->tp);
        for (int k = 0; k < c->n_calls; k++) {
            free(c->calls[k].name);
            free(c->calls[k].final_args);
            nuage__sb_free(&c->calls[k].args);
        }
        free(c->calls);
        free(c->toks);
        nuage_detok_free(c->dt);
        nuage__stopper_free(&c->stop);
        nuage__think_free(&c->think);
    }
    for (int j = 0; j < g->n_jobs; j++) {
        free(g->jobs[j].ptoks);
        free(g->jobs[j].prompt);
        free(g->jobs[j].echo_text);
        if (g->embd) free(g->embd[j]);
    }
    free(g->embd);
    free(g->ch);
    free(g->jobs);
    nuage__gen_params_free(&g->gp);
    nuage__structured_free(&g->st);
    pthread_cond_destroy(&g->cv);
    pthread_mutex_destroy(&g->mu);
    nuage_deployment_release(g->dep);
    free(g);
}

void nuage__gen_ref(nuage__gen *g) {
    pthread_mutex_lock(&g->mu);
    g->refs++;
    pthread_mutex_unlock(&g->mu);
}

void nuage__gen_unref(nuage__gen *g) {
    if (!g) return;
    pthread_mutex_lock(&g->mu);
    int left = --g->refs;
    pthread_mutex_unlock(&g->mu);
    if (left == 0) nuage__gen_destroy(g);
}

nuage__gen *nuage__gen_new(nuage__hreq *q, int n_jobs, int32_t *const *prompts,
                           const int *n_prompt, nuage__gen_params *gp, bool reasoning,
                           bool think_open, bool embedding) {
    nuage_server *s = q->srv;
    nuage__gen *g = calloc(1, sizeof *g);
    if (!g) return NULL;
    g->dep = q->dep;
    nuage_deployment_ref(g->dep);
    g->auth = q->auth;
    g->t_arrival = q->t0;
    g->priority = q->priority;
    g->think_budget = -1;
    g->gp = *gp;                          /* moved: the job frees the arrays */
    memset(gp, 0, sizeof *gp);
    if (pthread_mutex_init(&g->mu, NULL)) goto fail_mu;
    if (pthread_cond_init(&g->cv, NULL)) goto fail_cv;
    g->srv = s;
    g->refs = 1;
    g->n_jobs = n_jobs;
    g->n_per = embedding ? 1 : g->gp.n;
    g->n_choices = n_jobs * g->n_per;
    g->reasoning = reasoning;
    g->think_open = think_open;
    g->embedding = embedding;
    g->n_embd = g->dep->n_embd;
    g->t_start = nuage__now();
    g->jobs = calloc((size_t)n_jobs, sizeof *g->jobs);
    g->ch = calloc((size_t)g->n_choices, sizeof *g->ch);
    if (!g->jobs || !g->ch) goto fail;
    if (embedding) {
        g->embd = calloc((size_t)n_jobs, sizeof *g->embd);
        if (!g->embd) goto fail;
    }
    for (int j = 0; j < n_jobs; j++) {
        nuage__gjob *jb = &g->jobs[j];
        jb->gen = g;
        jb->index = j;
        jb->n_prompt = n_prompt[j];
        jb->prompt = malloc((size_t)(n_prompt[j] > 0 ? n_prompt[j] : 1) * sizeof *jb->prompt);
        if (!jb->prompt) goto fail;
        if (n_prompt[j] > 0) memcpy(jb->prompt, prompts[j], (size_t)n_prompt[j] * sizeof *jb->prompt);
        if (g->gp.echo && g->gp.top_logprobs >= 0 && n_prompt[j] > 0) {
            jb->ptoks = calloc((size_t)n_prompt[j], sizeof *jb->ptoks);
            if (!jb->ptoks) goto fail;
        }
    }
    for (int i = 0; i < g->n_choices; i++) {
        nuage__gchoice *c = &g->ch[i];
        c->finish = -1;
        nuage__stopper_init(&c->stop, g->gp.stops, g->gp.n_stops);
        nuage__think_init(&c->think, think_open);
        if (!embedding) {
            c->dt = nuage_detok_new(g->dep->voc, false);
            if (!c->dt) goto fail;
        }
    }
    return g;
fail:
    g->refs = 0;
    nuage__gen_destroy(g);
    return NULL;
fail_cv:
    pthread_mutex_destroy(&g->mu);
fail_mu:
    nuage__gen_params_free(&g->gp);
    nuage_deployment_release(g->dep);
    free(g);
    return NULL;
}

/* ---- scheduler callbacks (scheduler thread) -------------------------------- */

/* ---- tool calls in the output (scheduler thread, under g->mu) ---------------- */

typedef struct {
    nuage__gen *g;
    nuage__gchoice *c;
} nuage__tpctx;

static int nuage__tp_event(const nuage_tp_event *ev, void *ud) {
    nuage__tpctx *x = ud;
    nuage__gchoice *c = x->c;
    if (ev->kind == NUAGE_TP_CONTENT || ev->kind == NUAGE_TP_REASONING) {
        nuage__sb_put(ev->kind == NUAGE_TP_CONTENT ? &c->text : &c->reasoning, ev->text, ev->len);
        return 0;
    }
    if (ev->index < 0) return 0;
    if (ev->kind == NUAGE_TP_CALL_START || ev->index >= c->n_calls) {
        if (ev->index != c->n_calls) return 0; /* calls arrive in order */
        if (c->n_calls == c->cap_calls) {
            int cap = c->cap_calls ? 2 * c->cap_calls : 4;
            nuage__gcall *nc = realloc(c->calls, (size_t)cap * sizeof *nc);
            if (!nc) return NUAGE_E_NOMEM;
            c->calls = nc;
            c->cap_calls = cap;
        }
        nuage__gcall *k = &c->calls[c->n_calls];
        memset(k, 0, sizeof *k);
        char id[64];
        nuage__new_id(x->g->srv, "call", id, sizeof id);
        const char *hex = strchr(id, '-');
        snprintf(k->id, sizeof k->id, "call_%.24s", hex ? hex + 1 : id);
        k->name = strdup(ev->name ? ev->name : "");
        if (!k->name) return NUAGE_E_NOMEM;
        c->n_calls++;
    }
    nuage__gcall *k = &c->calls[ev->index];
    if (ev->kind == NUAGE_TP_CALL_ARGS) nuage__sb_put(&k->args, ev->text, ev->len);
    if (ev->kind == NUAGE_TP_CALL_END) {
        free(k->final_args);
        k->final_args = malloc(ev->len + 1);
        if (!k->final_args) return NUAGE_E_NOMEM;
        memcpy(k->final_args, ev->text, ev->len);
        k->final_args[ev->len] = 0;
        /* a stream that saw no fragments still gets the arguments */
        if (k->args.n == 0) nuage__sb_put(&k->args, ev->text, ev->len);
    }
    return 0;
}

/* Content text of choice c: through the tool-call parser when tools are on. */
static void nuage__content(nuage__gen *g, nuage__gchoice *c, const char *t, size_t n, bool final) {
    if (!c->tp) {
        nuage__sb_put(&c->text, t, n);
        return;
    }
    nuage__tpctx x = {g, c};
    nuage_toolparse_feed(c->tp, t, n, final, nuage__tp_event, &x);
}

/* Under g->mu: run text through the stop filter (not for tokens sampled
 * under a grammar: a stop string must not cut a constrained output), the
 * <think> splitter and the tool-call parser into the choice's buffers.
 * Returns true once a stop sequence matched. */
static bool nuage__filter(nuage__gen *g, nuage__gchoice *c, const char *t, size_t n, bool constrained) {
    bool stopped = false;
    c->scratch.n = 0;
    if (constrained) {
        nuage__stopper_flush(&c->stop, &c->scratch);
        nuage__sb_put(&c->scratch, t, n);
    } else {
        stopped = nuage__stopper_feed(&c->stop, t, n, &c->scratch);
    }
    if (!c->scratch.n) return stopped;
    if (!g->reasoning) {
        nuage__content(g, c, c->scratch.p, c->scratch.n, false);
        return stopped;
    }
    c->scratch2.n = 0;
    nuage__think_feed(&c->think, c->scratch.p, c->scratch.n, &c->scratch2, &c->reasoning);
    if (c->scratch2.n) nuage__content(g, c, c->scratch2.p, c->scratch2.n, false);
    return stopped;
}

bool nuage__gen_set_structured(nuage__gen *g, nuage__structured *st) {
    g->st = *st;
    memset(st, 0, sizeof *st);
    /* harmony output is channels (analysis -> reasoning_content, final ->
     * content) even without tools; calls only count when tools are on */
    if (!g->st.tools_on && !g->st.harmony) return true;
    for (int i = 0; i < g->n_choices; i++) {
        nuage__gchoice *c = &g->ch[i];
        /* tool markup may be special tokens: render them */
        nuage_detok_free(c->dt);
        c->dt = nuage_detok_new(g->dep->voc, true);
        c->tp = nuage_toolparse_new((nuage_toolfmt)g->st.fmt, (const char *const *)g->st.names,
                                    g->st.tools_on ? g->st.n_names : 0);
        if (!c->dt || !c->tp) return false;
        /* a grammar forces calls to be well-formed: stream their arguments
         * as they arrive */
        if (g->st.grammar && g->st.choice != NUAGE_TOOLCHOICE_NONE)
            nuage_toolparse_set_eager(c->tp, true,
                                      g->st.choice == NUAGE_TOOLCHOICE_REQUIRED || g->st.choice == NUAGE_TOOLCHOICE_NAMED);
    }
    return true;
}

static bool nuage__on_token(void *ud, int choice, const nuage_sched_token *tok) {
    nuage__gjob *jb = ud;
    nuage__gen *g = jb->gen;
    if (choice < 0 || choice >= g->n_per) return false;
    nuage__gchoice *c = &g->ch[jb->index * g->n_per + choice];
    double now = nuage__now();
    if (c->t_last > 0) nuage__hist_observe(&g->srv->metrics.itl, now - c->t_last);
    c->t_last = now;
    size_t n = 0;
    const char *piece = NULL;
    bool eog = !g->gp.ignore_eos && nuage_vocab_is_eog(g->dep->voc, tok->token);
    if (!eog && !c->stop.matched) piece = nuage_detok_push(c->dt, tok->token, &n);
    pthread_mutex_lock(&g->mu);
    bool inside = nuage__think_inside(&c->think) || nuage_toolparse_in_reasoning(c->tp);
    bool stopped = c->stop.matched;
    if (piece && n) stopped = nuage__filter(g, c, piece, n, tok->constrained);
    if (g->reasoning && (inside || nuage__think_inside(&c->think) || nuage_toolparse_in_reasoning(c->tp)))
        c->n_reasoning++;
    c->n_gen++;
    if (g->gp.top_logprobs >= 0) {
        if (c->n_toks == c->cap_toks) {
            int cap = c->cap_toks ? 2 * c->cap_toks : 64;
            nuage_sched_token *nt = realloc(c->toks, (size_t)cap * sizeof *nt);
            if (nt) {
                c->toks = nt;
                c->cap_toks = cap;
            }
        }
        if (c->n_toks < c->cap_toks) c->toks[c->n_toks++] = *tok;
    }
    pthread_cond_signal(&g->cv);
    pthread_mutex_unlock(&g->mu);
    return !stopped;
}

static void nuage__on_prompt_token(void *ud, int index, const nuage_sched_token *tok) {
    nuage__gjob *jb = ud;
    if (!jb->ptoks || index < 0 || index >= jb->n_prompt) return;
    pthread_mutex_lock(&jb->gen->mu);
    jb->ptoks[index] = *tok;
    pthread_mutex_unlock(&jb->gen->mu);
}

static void nuage__on_embedding(void *ud, const float *embd, int n) {
    nuage__gjob *jb = ud;
    nuage__gen *g = jb->gen;
    if (!g->embd || n <= 0) return;
    float *copy = malloc((size_t)n * sizeof *copy);
    if (copy) memcpy(copy, embd, (size_t)n * sizeof *copy);
    pthread_mutex_lock(&g->mu);
    free(g->embd[jb->index]);
    g->embd[jb->index] = copy;
    g->n_embd = n;
    pthread_mutex_unlock(&g->mu);
}

static void nuage__on_finish(void *ud, int choice, nuage_finish reason) {
    nuage__gjob *jb = ud;
    nuage__gen *g = jb->gen;
    if (choice < 0 || choice >= g->n_per) return;
    nuage__gchoice *c = &g->ch[jb->index * g->n_per + choice];
    size_t n = 0;
    const char *rest = c->dt && !c->stop.matched ? nuage_detok_flush(c->dt, &n) : NULL;
    pthread_mutex_lock(&g->mu);
    /* the detokenizer's last bytes belong to the last token: constrained
     * when the whole output is */
    if (rest && n) nuage__filter(g, c, rest, n, g->st.grammar && !g->st.triggers);
    bool matched = c->stop.matched;
    c->scratch.n = 0;
    c->scratch2.n = 0;
    nuage__stopper_flush(&c->stop, &c->scratch);
    if (g->reasoning) {
        if (c->scratch.n) nuage__think_feed(&c->think, c->scratch.p, c->scratch.n, &c->scratch2, &c->reasoning);
        nuage__think_flush(&c->think, &c->scratch2, &c->reasoning);
    } else {
        nuage__sb_put(&c->scratch2, c->scratch.p ? c->scratch.p : "", c->scratch.n);
    }
    nuage__content(g, c, c->scratch2.p ? c->scratch2.p : "", c->scratch2.n, true);
    c->finish = matched && reason != NUAGE_FINISH_CANCELLED ? (int)NUAGE_FINISH_STOP : (int)reason;
    if (reason == NUAGE_FINISH_ERROR) g->failed = true;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

static void nuage__on_complete(void *ud, const nuage_sched_usage *u) {
    nuage__gjob *jb = ud;
    nuage__gen *g = jb->gen;
    if (!g->embedding && u->ttft_ms > 0 && u->completion_tokens > 0)
        nuage__hist_observe(&g->srv->metrics.ttft, u->ttft_ms / 1e3);
    pthread_mutex_lock(&g->mu);
    jb->usage = *u;
    jb->complete = true;
    g->n_complete++;
    for (int c = 0; c < g->n_per; c++) {
        nuage__gchoice *ch = &g->ch[jb->index * g->n_per + c];
        if (ch->finish < 0) ch->finish = NUAGE_FINISH_CANCELLED;
        if (ch->finish == NUAGE_FINISH_ERROR) g->failed = true;
    }
    if (g->failed && !g->error[0])
        snprintf(g->error, sizeof g->error, "%s", u->error[0] ? u->error : "engine error");
    if (g->n_complete == g->n_jobs)
        nuage__hist_observe(&g->srv->metrics.e2e, nuage__now() - g->t_start);
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
    nuage__gen_unref(g);
}

/* ---- submit / cancel / wait ------------------------------------------------- */

static uint64_t nuage__random_seed(nuage_server *s) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t x = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30) ^
                 (atomic_fetch_add(&s->id_counter, 1) * 0x9E3779B97F4A7C15ULL) ^ s->id_salt;
    x ^= x >> 31;
    x *= 0xBF58476D1CE4E5B9ULL;
    return x ^ (x >> 29);
}

/* Under g->mu: wait up to ms milliseconds. */
void nuage__gen_timedwait(nuage__gen *g, int ms) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += (long)ms * 1000000L;
    while (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&g->cv, &g->mu, &ts);
}

/* ---- shared by the streamed bodies (chat/completions SSE here, the
 * Responses API's typed events in api_responses_stream.c) ---- */

bool nuage__gen_stream_gone(nuage__gen *g, int fd, bool *cancelled) {
    pthread_mutex_unlock(&g->mu);
    if (nuage__client_gone(fd)) {
        *cancelled = true;
        atomic_fetch_add(&g->srv->metrics.cancelled, 1);
        nuage__gen_cancel(g);
        return true;
    }
    pthread_mutex_lock(&g->mu);
    return false;
}

ssize_t nuage__gen_stream_take(nuage__sb *out, size_t *off, char *buf, size_t max) {
    if (out->oom) return -2;
    if (*off >= out->n) return -1;
    size_t k = out->n - *off;
    if (k > max) k = max;
    memcpy(buf, out->p + *off, k);
    *off += k;
    return (ssize_t)k;
}

void nuage__gen_stream_close(nuage__gen *g, bool cancelled) {
    bool done;
    pthread_mutex_lock(&g->mu);
    done = g->n_complete >= g->n_jobs;
    pthread_mutex_unlock(&g->mu);
    if (!done) {
        if (!cancelled) atomic_fetch_add(&g->srv->metrics.cancelled, 1);
        nuage__gen_cancel(g);
    }
    nuage__gen_unref(g);
}

/* Tokens the rate limiter reserves: every prompt, plus max_tokens for
 * each choice. */
static int64_t nuage__reserve(const nuage__gen *g) {
    int64_t t = 0;
    for (int j = 0; j < g->n_jobs; j++) {
        t += g->jobs[j].n_prompt;
        if (!g->embedding) t += (int64_t)g->n_per * g->jobs[j].max_tokens;
    }
    return t;
}

int nuage__gen_submit(nuage__gen *g, nuage__hreq *q) {
    nuage_server *s = g->srv;
    nuage_deployment *d = g->dep;
    /* 1. max_tokens of every prompt (the reservation depends on it). */
    int rc = 0;
    for (int j = 0; j < g->n_jobs && !rc; j++) {
        nuage__gjob *jb = &g->jobs[j];
        if (jb->n_prompt <= 0) rc = NUAGE_E_INVAL;
        else if (g->embedding) {
            if (jb->n_prompt > d->n_ctx) rc = NUAGE_E_CTX;
        } else {
            int64_t room = (int64_t)d->n_ctx - jb->n_prompt;
            int64_t mt = g->gp.max_tokens;
            if (mt < 0) {
                mt = room < d->max_tokens_default ? room : d->max_tokens_default;
                if (mt < 1) rc = NUAGE_E_CTX;
            } else if (mt > room) {
                rc = NUAGE_E_CTX;
            }
            jb->max_tokens = mt;
        }
    }
    /* 2. The rate limiter. */
    if (!rc && s->quota) { /* tenant limits, and the deployment's own (quota.h) */
        int qrc = nuage_quota_admit(s->quota, g->auth.tenant_id, d->name, g->auth.tpm, g->auth.rpm,
                                    nuage__reserve(g), nuage__mono_ms(), &g->rl, &g->ticket);
        g->has_rl = true;
        if (qrc == NUAGE_E_BUSY || qrc == NUAGE_E_RANGE) {
            g->quota_rc = qrc;
            atomic_fetch_add(&s->metrics.rate_limited, 1);
            rc = NUAGE__E_QUOTA;
        } else if (qrc) {
            rc = qrc;
        }
    }
    if (q && g->has_rl) {
        q->rl = g->rl;
        q->has_rl = true;
    }
    if (rc) {
        pthread_mutex_lock(&g->mu);
        for (int k = 0; k < g->n_jobs; k++) {
            g->jobs[k].complete = true;
        }
        g->n_complete = g->n_jobs;
        pthread_mutex_unlock(&g->mu);
        return rc;
    }
    g->admitted = true;
    /* 3. The scheduler. */
    uint64_t salt = nuage_auth_cache_salt(g->auth.tenant_id);
    for (int j = 0; j < g->n_jobs; j++) {
        nuage__gjob *jb = &g->jobs[j];
        nuage_sched_request r;
        memset(&r, 0, sizeof r);
        r.prompt = jb->prompt;
        r.n_prompt = jb->n_prompt;
        if (g->embedding) {
            r.embedding = true;
            r.n_choices = 1;
            r.top_logprobs = -1;
        } else {
            int64_t mt = jb->max_tokens;
            r.max_tokens = (int)(mt > 0 && mt < INT32_MAX ? mt : 1);
            r.n_choices = g->n_per;
            r.sampling = g->gp.sp;
            if (!g->gp.seed_given) r.sampling.seed = nuage__random_seed(s);
            r.top_logprobs = g->gp.top_logprobs;
            r.prompt_logprobs = jb->ptoks != NULL;
            r.ignore_eos = g->gp.ignore_eos;
            r.grammar = g->st.grammar;
            r.triggers = (const char *const *)g->st.triggers;
            /* JSON after a reasoning block: the answer must come */
            r.require_trigger = g->st.triggers && !strcmp(g->st.triggers[0], "</think>");
        }
        if (!g->embedding && g->think_budget >= 0) {
            /* Thinking budget: only for vocabularies with the markers. */
            r.think_budget = g->think_budget;
            if (nuage_sched_think_markers(d->voc, &r)) {
                r.think_budget = 0;
                r.n_think_end = 0;
            }
        }
        r.priority = g->priority == 1 ? 1 : 0;
        r.cache_salt = salt;
        r.tenant = (int32_t)(g->auth.tenant_id > 0 && g->auth.tenant_id < INT32_MAX ? g->auth.tenant_id : 0);
        r.weight = g->auth.weight > 0 ? (float)g->auth.weight : 1.0f;
        r.cb.ud = jb;
        r.cb.on_token = nuage__on_token;
        r.cb.on_prompt_token = jb->ptoks ? nuage__on_prompt_token : NULL;
        r.cb.on_embedding = nuage__on_embedding;
        r.cb.on_finish = nuage__on_finish;
        r.cb.on_complete = nuage__on_complete;
        nuage__gen_ref(g); /* the scheduler's reference, dropped by on_complete */
        uint64_t id = 0;
        rc = nuage_sched_submit(d->sched, &r, &id);
        if (rc) {
            nuage__gen_unref(g);
            nuage__gen_cancel(g);
            /* Jobs never submitted count as complete: nobody waits on them. */
            pthread_mutex_lock(&g->mu);
            for (int k = j; k < g->n_jobs; k++) {
                g->jobs[k].complete = true;
                g->n_complete++;
            }
            pthread_mutex_unlock(&g->mu);
            /* Admitted but not served: give the reservation back (the
             * request never ran, or only partly) and meter the failure. */
            if (j == 0 && g->ticket) {
                nuage_quota_cancel(s->quota, g->ticket, nuage__mono_ms());
                g->ticket = 0;
            }
            nuage__gen_wait_done(g, 10000);
            nuage__gen_finish(g, rc == NUAGE_E_BUSY ? 503 : rc == NUAGE_E_NOMEM ? 500 : 400);
            return rc;
        }
        pthread_mutex_lock(&g->mu);
        jb->id = id;
        jb->submitted = true;
        pthread_mutex_unlock(&g->mu);
        atomic_fetch_add(&s->metrics.requests_started, 1);
    }
    return 0;
}

bool nuage__gen_wait_done(nuage__gen *g, int timeout_ms) {
    int64_t end = nuage__mono_ms() + timeout_ms;
    pthread_mutex_lock(&g->mu);
    while (g->n_complete < g->n_jobs && nuage__mono_ms() < end) nuage__gen_timedwait(g, 100);
    bool done = g->n_complete >= g->n_jobs;
    pthread_mutex_unlock(&g->mu);
    return done;
}

int nuage__gen_status(nuage__gen *g) {
    pthread_mutex_lock(&g->mu);
    int st = g->failed ? 500 : 200;
    for (int i = 0; st == 200 && i < g->n_choices; i++)
        if (g->ch[i].finish == NUAGE_FINISH_CANCELLED) st = 503;
    pthread_mutex_unlock(&g->mu);
    return st;
}

void nuage__gen_finish(nuage__gen *g, int status) {
    nuage_server *s = g->srv;
    nuage_usage_record u;
    memset(&u, 0, sizeof u);
    pthread_mutex_lock(&g->mu);
    bool run = g->admitted && !g->finalized;
    g->finalized = true;
    if (run) {
        for (int j = 0; j < g->n_jobs; j++) {
            u.prompt_tokens += g->jobs[j].n_prompt;
            u.cached_tokens += g->jobs[j].usage.cached_tokens;
        }
        for (int i = 0; i < g->n_choices; i++) {
            u.completion_tokens += g->ch[i].n_gen;
            u.reasoning_tokens += g->ch[i].n_reasoning;
        }
    }
    pthread_mutex_unlock(&g->mu);
    if (!run) return;
    if (g->ticket && s->quota) {
        nuage_quota_settle(s->quota, g->ticket, u.prompt_tokens + u.completion_tokens, nuage__mono_ms());
        g->ticket = 0;
    }
    if (!s->store) return;
    u.time_ms = nuage__wall_ms();
    u.tenant_id = g->auth.tenant_id;
    u.key_id = g->auth.key_id;
    snprintf(u.request_id, sizeof u.request_id, "%.47s", g->req_id);
    snprintf(u.deployment, sizeof u.deployment, "%s", g->dep->name);
    snprintf(u.model_version, sizeof u.model_version, "%s", g->dep->version);
    u.status = status;
    u.latency_ms = (nuage__now() - g->t_arrival) * 1e3;
    if (nuage_store_usage_add(s->store, &u)) {
        atomic_fetch_add(&s->metrics.usage_failures, 1);
        fprintf(stderr, "nuage serve: warning: usage record of %s not written: %s\n", g->req_id,
                nuage_store_errmsg(s->store));
    }
}

void nuage__gen_cancel(nuage__gen *g) {
    uint64_t ids[64];
    int n = 0;
    for (int j0 = 0; j0 < g->n_jobs; j0 += 64) {
        n = 0;
        pthread_mutex_lock(&g->mu);
        for (int j = j0; j < g->n_jobs && j < j0 + 64; j++)
            if (g->jobs[j].submitted && !g->jobs[j].complete) ids[n++] = g->jobs[j].id;
        pthread_mutex_unlock(&g->mu);
        for (int i = 0; i < n; i++) nuage_sched_cancel(g->dep->sched, ids[i]);
    }
}

bool nuage__gen_wait(nuage__gen *g, int fd) {
    bool gone = false;
    pthread_mutex_lock(&g->mu);
    while (g->n_complete < g->n_jobs) {
        nuage__gen_timedwait(g, 200);
        if (g->n_complete >= g->n_jobs || gone) continue;
        pthread_mutex_unlock(&g->mu);
        if (nuage__client_gone(fd)) {
            gone = true;
            atomic_fetch_add(&g->srv->metrics.cancelled, 1);
            nuage__gen_cancel(g);
        }
        pthread_mutex_lock(&g->mu);
    }
    pthread_mutex_unlock(&g->mu);
    return !gone;
}

/* a + b without signed overflow (max_tokens may be any positive int64). */
static long long nuage__sat_add(long long a, long long b) {
    if (b > 0 && a > LLONG_MAX - b) return LLONG_MAX;
    return a + b;
}

void nuage__sched_error(nuage__gen *g, int rc, int n_prompt, int64_t max_tokens,
                        nuage__apierr *e, nuage__hresp *r) {
    nuage_server *s = g->srv;
    const nuage_deployment *d = g->dep;
    r->retry_after = 0;
    switch (rc) {
    case NUAGE__E_QUOTA: {
        const nuage_quota_info *in = &g->rl;
        bool tokens = in->limit_tokens > 0 && !(in->limit_requests > 0 && in->remaining_requests <= 0);
        if (g->quota_rc == NUAGE_E_RANGE) {
            nuage__err(e, 429, "tokens", "rate_limit_exceeded", NULL,
                       "Request too large for %s on tokens per min (TPM): Limit %lld, Requested %lld. "
                       "Reduce the prompt or max_tokens.", d->name, (long long)in->limit_tokens,
                       (long long)nuage__reserve(g));
            break;
        }
        int64_t ms = in->retry_after_ms > 0 ? in->retry_after_ms : 1000;
        r->retry_after_ms = ms;
        r->retry_after = (int)((ms + 999) / 1000);
        if (tokens)
            nuage__err(e, 429, "tokens", "rate_limit_exceeded", NULL,
                       "Rate limit reached for %s on tokens per min (TPM): Limit %lld, Remaining %lld, "
                       "Requested %lld. Please try again in %.3gs.", d->name, (long long)in->limit_tokens,
                       (long long)(in->remaining_tokens > 0 ? in->remaining_tokens : 0),
                       (long long)nuage__reserve(g), (double)ms / 1e3);
        else
            nuage__err(e, 429, "requests", "rate_limit_exceeded", NULL,
                       "Rate limit reached for %s on requests per min (RPM): Limit %lld. Please try again in %.3gs.",
                       d->name, (long long)in->limit_requests, (double)ms / 1e3);
        break;
    }
    case NUAGE_E_BUSY:
        r->retry_after = 1;
        if (atomic_load(&s->state) != NUAGE__STATE_READY)
            nuage__err(e, 503, "server_error", "server_shutting_down", NULL, "The server is shutting down.");
        else
            nuage__err(e, 503, "server_error", "server_busy", NULL,
                       "The server is busy: too many requests are waiting. Retry later.");
        break;
    case NUAGE_E_CTX:
        if (max_tokens >= 0)
            nuage__err(e, 400, "invalid_request_error", "context_length_exceeded", "messages",
                       "This model's maximum context length is %d tokens. However, you requested %lld tokens (%d in the messages, %lld in the completion). Please reduce the length of the messages or completion.",
                       d->n_ctx, nuage__sat_add(n_prompt, max_tokens), n_prompt, (long long)max_tokens);
        else
            nuage__err(e, 400, "invalid_request_error", "context_length_exceeded", "messages",
                       "This model's maximum context length is %d tokens. However, your messages resulted in %d tokens. Please reduce the length of the messages.",
                       d->n_ctx, n_prompt);
        break;
    case NUAGE_E_RANGE:
        nuage__err(e, 400, "invalid_request_error", NULL, "prompt", "A token id is outside the vocabulary [0, %d).", d->n_vocab);
        break;
    case NUAGE_E_INVAL:
        nuage__err(e, 400, "invalid_request_error", NULL, NULL, "Invalid request parameters (empty prompt or unsupported sampling settings).");
        break;
    case NUAGE_E_NOMEM:
        nuage__err(e, 500, "server_error", NULL, NULL, "The server ran out of memory.");
        break;
    case NUAGE_E_IO: /* only the shared rate limiter's database (quota_shared.c): fail closed, not run */
        r->retry_after = 1;
        nuage__err(e, 503, "server_error", "quota_unavailable", NULL,
                   "The rate limiter cannot reach its database, so the request was not run. Retry later.");
        break;
    default:
        nuage__err(e, 500, "server_error", NULL, NULL, "The scheduler refused the request: %s.", nuage_strerror(rc));
        break;
    }
}

/* ---- output formatting --------------------------------------------------- */

const char *nuage__finish_text(int finish) {
    switch (finish) {
    case NUAGE_FINISH_STOP: return "stop";
    case NUAGE_FINISH_LENGTH: return "length";
    default: return NULL;
    }
}

const char *nuage__choice_finish_text(const nuage__gchoice *c) {
    if (c->finish == NUAGE_FINISH_STOP && c->n_calls > 0) return "tool_calls";
    return nuage__finish_text(c->finish);
}

json_t *nuage__tool_calls_json(const nuage__gchoice *c) {
    json_t *a = json_array();
    for (int k = 0; a && k < c->n_calls; k++) {
        const nuage__gcall *t = &c->calls[k];
        /* a call cut short by max_tokens keeps the arguments written so far,
         * as OpenAI (finish_reason "length") and as the stream sent them;
         * otherwise an unfinished call is not a call */
        json_t *args = t->final_args ? json_string(t->final_args)
                       : c->finish == NUAGE_FINISH_LENGTH && t->args.n ? nuage__json_text(t->args.p, t->args.n)
                                                                         : NULL;
        if (!args) continue;
        json_array_append_new(a, json_pack("{s:s,s:s,s:{s:s,s:o}}", "id", t->id, "type", "function", "function",
                                           "name", t->name, "arguments", args));
    }
    return a;
}

size_t nuage__token_piece(const nuage_deployment *d, int32_t tok, char *buf, size_t cap) {
    int n = nuage_token_to_piece(d->voc, tok, buf, cap, true);
    if (n < 0) return 0;
    return (size_t)n < cap ? (size_t)n : cap;
}

json_t *nuage__gen_usage(nuage__gen *g, bool chat) {
    long long prompt = 0, cached = 0, completion = 0, reasoning = 0;
    for (int j = 0; j < g->n_jobs; j++) {
        prompt += g->jobs[j].n_prompt;
        cached += g->jobs[j].usage.cached_tokens;
    }
    for (int i = 0; i < g->n_choices; i++) {
        completion += g->ch[i].n_gen;
        reasoning += g->ch[i].n_reasoning;
    }
    json_t *u = json_pack("{s:I,s:I,s:I,s:{s:I}}", "prompt_tokens", (json_int_t)prompt,
                          "completion_tokens", (json_int_t)completion, "total_tokens",
                          (json_int_t)(prompt + completion), "prompt_tokens_details",
                          "cached_tokens", (json_int_t)cached);
    if (u && chat)
        json_object_set_new(u, "completion_tokens_details",
                            json_pack("{s:I}", "reasoning_tokens", (json_int_t)reasoning));
    return u;
}

static json_t *nuage__bytes_array(const char *p, size_t n) {
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++) json_array_append_new(a, json_integer((unsigned char)p[i]));
    return a;
}

json_t *nuage__chat_logprobs(nuage__gen *g, const nuage_sched_token *t, int n) {
    json_t *content = json_array();
    char buf[256];
    for (int i = 0; content && i < n; i++) {
        size_t len = nuage__token_piece(g->dep, t[i].token, buf, sizeof buf);
        json_t *top = json_array();
        for (int k = 0; top && k < t[i].n_top && k < NUAGE_SCHED_MAX_TOP; k++) {
            if (t[i].top_ids[k] < 0) continue;
            char b2[256];
            size_t l2 = nuage__token_piece(g->dep, t[i].top_ids[k], b2, sizeof b2);
            json_array_append_new(top, json_pack("{s:o,s:f,s:o}", "token", nuage__json_text(b2, l2),
                                                 "logprob", isfinite(t[i].top_lp[k]) ? (double)t[i].top_lp[k] : -9999.0,
                                                 "bytes", nuage__bytes_array(b2, l2)));
        }
        json_array_append_new(content, json_pack("{s:o,s:f,s:o,s:o}", "token", nuage__json_text(buf, len),
                                                 "logprob", isfinite(t[i].logprob) ? (double)t[i].logprob : -9999.0,
                                                 "bytes", nuage__bytes_array(buf, len),
                                                 "top_logprobs", top ? top : json_array()));
    }
    return json_pack("{s:o}", "content", content ? content : json_array());
}

json_t *nuage__legacy_logprobs(nuage__gen *g, const int32_t *ids, const nuage_sched_token *t,
                               int n, bool first_null, size_t *offset, json_t *into) {
    json_t *lp = into ? into : json_pack("{s:[],s:[],s:[],s:[]}", "tokens", "token_logprobs",
                                         "top_logprobs", "text_offset");
    if (!lp) return NULL;
    json_t *tokens = json_object_get(lp, "tokens"), *tlp = json_object_get(lp, "token_logprobs");
    json_t *top = json_object_get(lp, "top_logprobs"), *off = json_object_get(lp, "text_offset");
    char buf[256];
    for (int i = 0; i < n; i++) {
        int32_t id = ids ? ids[i] : t[i].token;
        size_t len = nuage__token_piece(g->dep, id, buf, sizeof buf);
        json_array_append_new(tokens, nuage__json_text(buf, len));
        json_array_append_new(off, json_integer((json_int_t)*offset));
        *offset += len;
        if (i == 0 && first_null) {
            json_array_append_new(tlp, json_null());
            json_array_append_new(top, json_null());
            continue;
        }
        json_array_append_new(tlp, json_real(isfinite(t[i].logprob) ? t[i].logprob : -9999.0));
        json_t *d = json_object();
        for (int k = 0; d && k < t[i].n_top && k < NUAGE_SCHED_MAX_TOP; k++) {
            if (t[i].top_ids[k] < 0) continue;
            char b2[256];
            size_t l2 = nuage__token_piece(g->dep, t[i].top_ids[k], b2, sizeof b2);
            json_t *key = nuage__json_text(b2, l2);
            if (key && !json_object_get(d, json_string_value(key)))
                json_object_set_new(d, json_string_value(key),
                                    json_real(isfinite(t[i].top_lp[k]) ? t[i].top_lp[k] : -9999.0));
            json_decref(key);
        }
        json_array_append_new(top, d ? d : json_null());
    }
    return lp;
}

/* ---- server-sent events ---------------------------------------------------- */

struct nuage__sse {
    nuage__gen *g;
    int fd;
    bool chat;
    bool include_usage;
    nuage__sb prefix;      /* {"id":...,"choices":[ */
    nuage__sb out;         /* formatted, not yet handed to MHD */
    size_t out_off;
    bool eof;
    bool cancelled;        /* the client went away (counted once) */
    bool need_finish;      /* every job completed: meter before the last event */
};

static void nuage__sse_append_json(nuage__sb *b, json_t *j) {
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    if (s) nuage__sb_puts(b, s);
    else nuage__sb_puts(b, "null");
    free(s);
    json_decref(j);
}

/* Under g->mu: format every event that became available. */
static void nuage__sse_produce(nuage__sse *e) {
    nuage__gen *g = e->g;
    nuage__sb *o = &e->out;
    for (int i = 0; i < g->n_choices; i++) {
        nuage__gchoice *c = &g->ch[i];
        nuage__gjob *jb = &g->jobs[i / g->n_per];
        if (e->chat && !c->role_sent) {
            nuage__sb_puts(o, "data: ");
            nuage__sb_put(o, e->prefix.p, e->prefix.n);
            nuage__sb_printf(o, "{\"index\":%d,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"logprobs\":null,\"finish_reason\":null}]}\n\n", i);
            c->role_sent = true;
        }
        if (!e->chat && g->gp.echo && !c->echo_sent) {
            c->echo_sent = true;
            if (jb->echo_len) {
                nuage__sb_puts(o, "data: ");
                nuage__sb_put(o, e->prefix.p, e->prefix.n);
                nuage__sb_puts(o, "{\"text\":");
                nuage__sb_json_str(o, jb->echo_text, jb->echo_len);
                nuage__sb_printf(o, ",\"index\":%d,\"logprobs\":null,\"finish_reason\":null}]}\n\n", i);
                c->lp_offset = jb->echo_len;
            }
        }
        size_t nt = c->text.n - c->text_sent, nr = c->reasoning.n - c->reasoning_sent;
        int nk = c->n_toks - c->toks_sent;
        if (nt || nr || (nk > 0 && c->finish < 0)) {
            nuage__sb_puts(o, "data: ");
            nuage__sb_put(o, e->prefix.p, e->prefix.n);
            if (e->chat) {
                nuage__sb_printf(o, "{\"index\":%d,\"delta\":{", i);
                bool comma = false;
                if (nt) {
                    nuage__sb_puts(o, "\"content\":");
                    nuage__sb_json_str(o, c->text.p + c->text_sent, nt);
                    comma = true;
                }
                if (nr) {
                    if (comma) nuage__sb_puts(o, ",");
                    nuage__sb_puts(o, "\"reasoning_content\":");
                    nuage__sb_json_str(o, c->reasoning.p + c->reasoning_sent, nr);
                }
                nuage__sb_puts(o, "},\"logprobs\":");
                if (g->gp.top_logprobs >= 0) nuage__sse_append_json(o, nuage__chat_logprobs(g, c->toks + c->toks_sent, nk));
                else nuage__sb_puts(o, "null");
            } else {
                nuage__sb_puts(o, "{\"text\":");
                nuage__sb_json_str(o, c->text.p + c->text_sent, nt);
                nuage__sb_printf(o, ",\"index\":%d,\"logprobs\":", i);
                if (g->gp.top_logprobs >= 0)
                    nuage__sse_append_json(o, nuage__legacy_logprobs(g, NULL, c->toks + c->toks_sent, nk, false, &c->lp_offset, NULL));
                else nuage__sb_puts(o, "null");
            }
            nuage__sb_puts(o, ",\"finish_reason\":null}]}\n\n");
            c->text_sent = c->text.n;
            c->reasoning_sent = c->reasoning.n;
            c->toks_sent = c->n_toks;
        }
        /* tool calls: id, type and name first, then argument fragments */
        for (int k = 0; e->chat && k < c->n_calls; k++) {
            nuage__gcall *t = &c->calls[k];
            if (t->head_sent && t->args.n == t->args_sent) continue;
            nuage__sb_puts(o, "data: ");
            nuage__sb_put(o, e->prefix.p, e->prefix.n);
            nuage__sb_printf(o, "{\"index\":%d,\"delta\":{\"tool_calls\":[{\"index\":%d,", i, k);
            if (!t->head_sent) {
                nuage__sb_printf(o, "\"id\":\"%s\",\"type\":\"function\",\"function\":{\"name\":", t->id);
                nuage__sb_json_str(o, t->name, strlen(t->name));
                nuage__sb_puts(o, ",\"arguments\":");
                t->head_sent = true;
            } else {
                nuage__sb_puts(o, "\"function\":{\"arguments\":");
            }
            nuage__sb_json_str(o, t->args.p ? t->args.p + t->args_sent : "", t->args.n - t->args_sent);
            t->args_sent = t->args.n;
            nuage__sb_puts(o, "}}]},\"logprobs\":null,\"finish_reason\":null}]}\n\n");
        }
        const char *fr = nuage__choice_finish_text(c);
        if (fr && !c->finish_sent) {
            nuage__sb_puts(o, "data: ");
            nuage__sb_put(o, e->prefix.p, e->prefix.n);
            if (e->chat) nuage__sb_printf(o, "{\"index\":%d,\"delta\":{},\"logprobs\":", i);
            else nuage__sb_printf(o, "{\"text\":\"\",\"index\":%d,\"logprobs\":", i);
            /* Tokens that produced no visible text still get their logprobs. */
            nk = c->n_toks - c->toks_sent;
            if (g->gp.top_logprobs >= 0 && nk > 0) {
                if (e->chat) nuage__sse_append_json(o, nuage__chat_logprobs(g, c->toks + c->toks_sent, nk));
                else nuage__sse_append_json(o, nuage__legacy_logprobs(g, NULL, c->toks + c->toks_sent, nk, false, &c->lp_offset, NULL));
                c->toks_sent = c->n_toks;
            } else {
                nuage__sb_puts(o, "null");
            }
            nuage__sb_printf(o, ",\"finish_reason\":\"%s\"}]}\n\n", fr);
            c->finish_sent = true;
        }
    }
    if (g->n_complete < g->n_jobs) return;
    if (!g->finalized) {
        /* The usage record goes first: the caller writes it without the
         * lock and calls again for the last events. */
        e->need_finish = true;
        return;
    }
    if (g->failed) {
        nuage__apierr er;
        nuage__err(&er, 500, "server_error", NULL, NULL, "%s", g->error[0] ? g->error : "engine error");
        nuage__sb_puts(o, "data: ");
        nuage__sse_append_json(o, nuage__err_json(&er));
        nuage__sb_puts(o, "\n\n");
        e->eof = true;
        return;
    }
    if (e->include_usage) {
        nuage__sb_puts(o, "data: ");
        nuage__sb_put(o, e->prefix.p, e->prefix.n);
        nuage__sb_puts(o, "],\"usage\":");
        nuage__sse_append_json(o, nuage__gen_usage(g, e->chat));
        nuage__sb_puts(o, "}\n\n");
    }
    nuage__sb_puts(o, "data: [DONE]\n\n");
    e->eof = true;
}

static ssize_t nuage__sse_read(void *self, char *buf, size_t max) {
    nuage__sse *e = self;
    if (e->out_off >= e->out.n) {
        e->out.n = 0;
        e->out_off = 0;
        if (e->eof) return -1;
        nuage__gen *g = e->g;
        pthread_mutex_lock(&g->mu);
        for (;;) {
            nuage__sse_produce(e);
            if (e->need_finish) {
                e->need_finish = false;
                pthread_mutex_unlock(&g->mu);
                nuage__gen_finish(g, nuage__gen_status(g));
                pthread_mutex_lock(&g->mu);
                continue;
            }
            if (e->out.n || e->eof) break;
            nuage__gen_timedwait(g, 200);
            if (g->n_complete >= g->n_jobs) continue;
            if (nuage__gen_stream_gone(g, e->fd, &e->cancelled)) return -2;
        }
        pthread_mutex_unlock(&g->mu);
    }
    return nuage__gen_stream_take(&e->out, &e->out_off, buf, max);
}

static void nuage__sse_close(void *self) {
    nuage__sse *e = self;
    /* If the stream did not reach its end the client went away: stop the
     * generation so its KV blocks go back to the pool. */
    nuage__gen_stream_close(e->g, e->cancelled);
    nuage__sb_free(&e->prefix);
    nuage__sb_free(&e->out);
    free(e);
}

nuage__stream nuage__sse_new(nuage__gen *g, int fd, bool chat, const char *id, int64_t created,
                             bool *ok) {
    nuage__stream st = {0};
    *ok = false;
    nuage__sse *e = calloc(1, sizeof *e);
    if (!e) return st;
    e->g = g;
    e->fd = fd;
    e->chat = chat;
    e->include_usage = g->gp.include_usage;
    nuage__sb_puts(&e->prefix, "{\"id\":");
    nuage__sb_json_str(&e->prefix, id, strlen(id));
    nuage__sb_printf(&e->prefix, ",\"object\":\"%s\",\"created\":%lld,\"model\":",
                     chat ? "chat.completion.chunk" : "text_completion", (long long)created);
    nuage__sb_json_str(&e->prefix, g->dep->name, strlen(g->dep->name));
    nuage__sb_puts(&e->prefix, ",\"system_fingerprint\":");
    const char *fp = nuage__fingerprint(g->dep);
    nuage__sb_json_str(&e->prefix, fp, strlen(fp));
    nuage__sb_puts(&e->prefix, ",\"choices\":[");
    if (e->prefix.oom) {
        nuage__sb_free(&e->prefix);
        free(e);
        return st;
    }
    nuage__gen_ref(g);
    st.read = nuage__sse_read;
    st.close = nuage__sse_close;
    st.self = e;
    *ok = true;
    return st;
}

void nuage__gen_respond(nuage__gen *g, nuage__hreq *q, nuage__hresp *r, bool chat, const char *id,
                        json_t *(*build)(nuage__gen *g, const char *id, int64_t created)) {
    int64_t created = (int64_t)time(NULL);
    if (g->gp.stream) {
        bool ok;
        r->stream = nuage__sse_new(g, q->fd, chat, id, created, &ok);
        if (!ok) {
            nuage__gen_cancel(g);
            nuage__resp_error(r, 500, "server_error", NULL, NULL, "out of memory");
        } else {
            r->streaming = true;
            r->status = 200;
        }
    } else if (!nuage__gen_wait(g, q->fd)) {
        nuage__gen_finish(g, 499);
        nuage__resp_error(r, 499, "invalid_request_error", "client_closed_request", NULL, "client closed the connection");
    } else if (g->failed) {
        nuage__gen_finish(g, 500);
        nuage__resp_error(r, 500, "server_error", NULL, NULL, "%s", g->error[0] ? g->error : "engine error");
    } else {
        nuage__gen_finish(g, nuage__gen_status(g));
        nuage__resp_json(r, 200, build(g, id, created));
    }
}
