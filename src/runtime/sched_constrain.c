/*
 * sched_constrain.c - constrained decoding inside the scheduler: one
 * grammar matcher per choice, the token mask applied before sampling, the
 * matcher advanced by every token, lazy engagement on trigger strings, and
 * mask computation overlapped with the forward pass.
 *
 * Where the mask goes. nuage_sampler_sample_masked sets every disallowed
 * logit to -inf before logit bias, penalties and the sampler chain, so
 * greedy picks the best allowed token and temperature sampling draws only
 * among allowed ones; the reported logprobs stay the model's (they are
 * computed from the raw row). End-of-generation tokens are in the mask
 * exactly when the matcher accepts (constrain.h), so a choice can only
 * stop where its output is complete; once the matcher is terminated
 * (nothing may follow) the choice ends with STOP at once.
 *
 * Lazy engagement (tool_choice "auto", or JSON after a reasoning block):
 * the choice samples freely while the text it has written does not
 * contain a trigger; we keep the last (longest trigger - 1) bytes of its
 * output (tokens rendered with special tokens, as the trigger strings are
 * written) plus the new piece and search them. On a hit the matcher starts
 * and is fed the bytes of that piece that follow the trigger; if those
 * bytes already leave the grammar the choice goes on unconstrained (its
 * output then is content, never a wrong call).
 *
 * Preemption and recomputation keep a choice's generated tokens, so the
 * matcher (whose state is a function of those tokens) needs no rollback
 * or replay: it is never touched by KV-cache work.
 *
 * Overlap. A choice's next mask depends only on its matcher, which is
 * final as soon as the previous token was accepted; the logits are what
 * the forward pass is computing. So, for each choice that will sample in
 * this step, nuage__sc_prefetch computes its mask on a helper thread while
 * nuage_decode runs, and nuage__sc_wait joins it before sampling. A
 * choice whose mask was not prefetched by then computes it inline. The
 * helpers (a work queue: each takes the next choice under sc_mu) are
 * started with the scheduler's first constrained step and stopped with the
 * scheduler: half the compute threads, at least one, at most
 * NUAGE__SC_MAX_WORKERS -- during a CPU forward pass they compete with it,
 * with a GPU one the cores would be idle anyway.
 */
#include "runtime/sched_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nuage/tokenizer.h"

static int nuage__mask_words(const nuage_sched *s) {
    int32_t nv = nuage_vocab_n_tokens(s->voc);
    int32_t n = nv > s->n_vocab ? nv : s->n_vocab;
    return (n + 31) / 32;
}

/* ---- per request ------------------------------------------------------------ */

int nuage__sc_init(const nuage_sched *s, nuage__sreq *q, const nuage_sched_request *r) {
    q->r.grammar = NULL;
    q->r.triggers = NULL;
    q->r.require_trigger = r->require_trigger && r->triggers && r->grammar && !r->embedding;
    if (!r->grammar || r->embedding) return 0;
    q->r.grammar = nuage_grammar_retain(r->grammar);
    if (r->triggers) {
        int n = 0;
        while (r->triggers[n]) n++;
        q->trig = calloc((size_t)n + 1, sizeof *q->trig);
        if (!q->trig) return NUAGE_E_NOMEM;
        for (int i = 0; i < n; i++) {
            size_t len = strlen(r->triggers[i]);
            if (!len) return NUAGE_E_INVAL;
            if (!(q->trig[i] = strdup(r->triggers[i]))) return NUAGE_E_NOMEM;
            if ((int)len > q->trig_max) q->trig_max = (int)len;
        }
        q->n_trig = n;
        q->r.triggers = (const char *const *)q->trig;
    }
    const int words = nuage__mask_words(s);
    for (int c = 0; c < q->r.n_choices; c++) {
        nuage__schoice *ch = &q->ch[c];
        ch->mask = malloc((size_t)words * sizeof *ch->mask);
        if (!ch->mask) return NUAGE_E_NOMEM;
        if (q->n_trig) {
            ch->tail = malloc((size_t)q->trig_max + 1);
            if (!ch->tail) return NUAGE_E_NOMEM;
        } else {
            int rc = nuage_matcher_new(q->r.grammar, &ch->m);
            if (rc) return rc;
        }
    }
    return 0;
}

void nuage__sc_free(nuage__sreq *q) {
    if (q->ch)
        for (int c = 0; c < q->r.n_choices; c++) {
            nuage_matcher_free(q->ch[c].m);
            free(q->ch[c].mask);
            free(q->ch[c].tail);
        }
    for (int i = 0; q->trig && q->trig[i]; i++) free(q->trig[i]);
    free(q->trig);
    nuage_grammar_free(q->r.grammar);
}

/* ---- masks ---------------------------------------------------------------- */

static int nuage__fill(nuage_sched *s, nuage__schoice *ch) {
    memset(ch->mask, 0, (size_t)nuage__mask_words(s) * sizeof *ch->mask);
    return nuage_matcher_fill_mask(ch->m, ch->mask);
}

/* Every token but the end-of-generation ones (built once; NULL on OOM). */
static const uint32_t *nuage__noeog(nuage_sched *s) {
    if (s->sc_noeog) return s->sc_noeog;
    const int words = nuage__mask_words(s);
    uint32_t *m = calloc((size_t)words, sizeof *m);
    if (!m) return NULL;
    for (int32_t t = 0; t < s->n_vocab; t++)
        if (!nuage_vocab_is_eog(s->voc, t)) m[t >> 5] |= 1u << (t & 31);
    s->sc_noeog = m;
    return m;
}

const uint32_t *nuage__sc_mask(nuage_sched *s, nuage__sreq *q, int c, int *rc) {
    nuage__schoice *ch = &q->ch[c];
    *rc = 0;
    if (!ch->m) return q->r.require_trigger && !ch->watch_done ? nuage__noeog(s) : NULL;
    if (!ch->mask_ready) {
        *rc = nuage__fill(s, ch);
        if (*rc) return NULL;
    }
    ch->mask_ready = false;   /* used: the next token needs a new one */
    return ch->mask;
}

/* ---- advancing ------------------------------------------------------------ */

/* Lazy choice: look for a trigger in the tail plus this token's text. */
static void nuage__sc_watch(nuage_sched *s, nuage__sreq *q, nuage__schoice *ch, int32_t tok) {
    char piece[256];
    int n = nuage_token_to_piece(s->voc, tok, piece, sizeof piece, true);
    if (n <= 0) return;
    if (n > (int)sizeof piece) n = (int)sizeof piece;
    char buf[512 + 256];
    int keep = q->trig_max - 1;
    if (keep > 512) keep = 512;
    int t0 = ch->tail_n > keep ? ch->tail_n - keep : 0;
    int bn = ch->tail_n - t0;
    memcpy(buf, ch->tail + t0, (size_t)bn);
    memcpy(buf + bn, piece, (size_t)n);
    int total = bn + n;
    /* earliest trigger end inside the new bytes */
    int best_end = -1;
    for (int i = 0; i < q->n_trig; i++) {
        int L = (int)strlen(q->trig[i]);
        for (int p = 0; p + L <= total; p++) {
            if (p + L <= bn) continue;   /* already seen entirely before */
            if (!memcmp(buf + p, q->trig[i], (size_t)L)) {
                if (best_end < 0 || p + L < best_end) best_end = p + L;
                break;
            }
        }
    }
    if (best_end >= 0) {
        nuage_matcher *m = NULL;
        if (nuage_matcher_new(q->r.grammar, &m) == 0) {
            if (best_end < total && nuage_matcher_accept_bytes(m, buf + best_end, (size_t)(total - best_end))) {
                nuage_matcher_free(m);   /* the rest already leaves the grammar: stay free */
                m = NULL;
            }
        }
        ch->m = m;
        ch->mask_ready = false;
        ch->watch_done = true;
        return;
    }
    /* keep the last trig_max - 1 bytes */
    int k = total < keep ? total : keep;
    memcpy(ch->tail, buf + total - k, (size_t)k);
    ch->tail_n = k;
}

int nuage__sc_accept(nuage_sched *s, nuage__sreq *q, int c, int32_t tok, bool *constrained,
                     bool *terminated) {
    nuage__schoice *ch = &q->ch[c];
    *constrained = false;
    *terminated = false;
    if (!q->r.grammar) return 0;
    if (ch->m) {
        *constrained = true;
        int rc = nuage_matcher_accept_token(ch->m, tok);
        if (rc) return rc;
        *terminated = nuage_matcher_is_terminated(ch->m);
        return 0;
    }
    if (q->n_trig && !ch->watch_done) nuage__sc_watch(s, q, ch, tok);
    return 0;
}

/* ---- overlap with the forward pass ------------------------------------------- */

static void *nuage__sc_main(void *arg) {
    nuage_sched *s = arg;
    pthread_mutex_lock(&s->sc_mu);
    for (;;) {
        while (!s->sc_stop && s->sc_next >= s->sc_n) pthread_cond_wait(&s->sc_go, &s->sc_mu);
        if (s->sc_stop) break;
        while (s->sc_next < s->sc_n) {
            nuage__schoice *ch = s->sc_work[s->sc_next++];
            pthread_mutex_unlock(&s->sc_mu);
            bool ok = nuage__fill(s, ch) == 0;
            pthread_mutex_lock(&s->sc_mu);
            ch->mask_ready = ok;
            s->sc_done++;
        }
        if (s->sc_done >= s->sc_n) pthread_cond_broadcast(&s->sc_fin);
    }
    pthread_mutex_unlock(&s->sc_mu);
    return NULL;
}

void nuage__sc_prefetch(nuage_sched *s) {
    int n = 0;
    for (int i = 0; i < s->n_plan; i++) {
        const nuage__splan *e = &s->plan[i];
        nuage__sreq *q = e->q;
        if (!q->r.grammar) continue;
        /* the choices that sample after this batch: the plan entry that
         * computes the last token of its stream (all choices of a fresh
         * request sample from the lead's logits) */
        if (e->pos0 + e->n != nuage__sreq_len(q, e->c)) continue;
        bool fresh = e->c == q->lead && q->ch[e->c].n_gen == 0;
        for (int c = fresh ? 0 : e->c; c < (fresh ? q->r.n_choices : e->c + 1); c++) {
            nuage__schoice *ch = &q->ch[c];
            if (ch->done || !ch->m || ch->mask_ready) continue;
            if (n < s->p.max_running) s->sc_work[n++] = ch;
        }
    }
    if (n == 0) return;
    if (!s->sc_started) {
        if (pthread_mutex_init(&s->sc_mu, NULL)) return;
        pthread_cond_init(&s->sc_go, NULL);
        pthread_cond_init(&s->sc_fin, NULL);
        long nt = s->p.n_threads > 0 ? s->p.n_threads : sysconf(_SC_NPROCESSORS_ONLN);
        int want = (int)(nt / 2);
        if (want < 1) want = 1;
        if (want > NUAGE__SC_MAX_WORKERS) want = NUAGE__SC_MAX_WORKERS;
        s->sc_n_workers = 0;
        while (s->sc_n_workers < want &&
               pthread_create(&s->sc_threads[s->sc_n_workers], NULL, nuage__sc_main, s) == 0)
            s->sc_n_workers++;
        if (s->sc_n_workers == 0) {
            pthread_cond_destroy(&s->sc_go);
            pthread_cond_destroy(&s->sc_fin);
            pthread_mutex_destroy(&s->sc_mu);
            return;
        }
        s->sc_started = true;
    }
    pthread_mutex_lock(&s->sc_mu);
    s->sc_n = n;
    s->sc_next = 0;
    s->sc_done = 0;
    pthread_cond_broadcast(&s->sc_go);
    pthread_mutex_unlock(&s->sc_mu);
}

void nuage__sc_wait(nuage_sched *s) {
    if (!s->sc_started) return;
    pthread_mutex_lock(&s->sc_mu);
    /* take what the helper has not started yet */
    s->sc_n = s->sc_next;
    while (s->sc_done < s->sc_n) pthread_cond_wait(&s->sc_fin, &s->sc_mu);
    s->sc_n = s->sc_next = s->sc_done = 0;
    pthread_mutex_unlock(&s->sc_mu);
}

void nuage__sc_stop(nuage_sched *s) {
    if (!s->sc_started) return;
    pthread_mutex_lock(&s->sc_mu);
    s->sc_stop = true;
    pthread_cond_broadcast(&s->sc_go);
    pthread_mutex_unlock(&s->sc_mu);
    for (int i = 0; i < s->sc_n_workers; i++) pthread_join(s->sc_threads[i], NULL);
    pthread_cond_destroy(&s->sc_go);
    pthread_cond_destroy(&s->sc_fin);
    pthread_mutex_destroy(&s->sc_mu);
    s->sc_started = false;
}

void nuage__sc_release(nuage_sched *s) {
    free(s->sc_noeog);
    s->sc_noeog = NULL;
}
