/*
 * sched_step.c - one scheduler step: build a batch, decode it, sample,
 * report.
 *
 * A step, in order:
 *   1. Decode tokens. Every running choice with exactly one token left to
 *      compute (its last sample) goes into the batch first, so running
 *      streams never wait behind prompts. If the pool (free blocks plus
 *      blocks held only by the prefix cache) cannot give each of them the
 *      block it may need, the youngest running request is preempted -- its
 *      blocks go back (full ones through the prefix cache), its tokens and
 *      samplers are kept, and it waits at the front of the queue -- and the
 *      step is planned again. A request alone in the pool that still
 *      cannot grow ends with NUAGE_FINISH_LENGTH: the pool is its context.
 *   2. Admission. While sequence ids, batch room and blocks remain, the
 *      next request chosen by fair queuing (sched_fair.c) starts: it takes
 *      one sequence per open choice, re-attaches the longest cached prefix
 *      of its stream (full blocks only, always leaving at least one token
 *      to compute so that there are logits to sample from), and is charged
 *      its uncached prompt tokens on its tenant's clock. A request is only
 *      admitted when the blocks it will need fit beside what running
 *      prefills still need; otherwise it waits (waiting requests never
 *      take blocks from running ones) -- unless nothing runs at all.
 *   3. Prefill. Choices with several tokens left (new prompts, streams
 *      being recomputed after a preemption) get chunks, oldest request
 *      first, bounded by the step's budget and by the blocks left. The
 *      budget is chunked prefill as vLLM does it: a step that carries
 *      decode tokens takes step_tokens in all (the decode tokens first,
 *      then prompt chunks fill the rest, at least step_tokens / 4 of
 *      them so prompts always advance), so running streams keep their
 *      pace while long prompts are spread over several steps and new
 *      requests' first tokens arrive one after another instead of in one
 *      long step; a step with nothing to decode takes max_batch_tokens
 *      of prompt (nobody waits on it, and fewer, larger steps read the
 *      weights fewer times).
 *   4. Decode the batch; afterwards every choice's KV length grows by its
 *      share. A lead choice whose KV now covers the prompt forks it into
 *      its sibling choices (nuage_kv_seq_fork: full blocks shared, the
 *      partial one copied; planned in step 3) and registers the prompt's
 *      full blocks in the prefix cache. Then each choice that computed its
 *      last token samples (choice-own sampler; for a fresh request with
 *      n > 1 every choice samples from the lead's prompt logits), reports,
 *      and may finish.
 *
 * Identical output under batching, caching and preemption follows from
 * the engine's guarantee that a token's logits depend only on its own
 * sequence's tokens: a sequence's K/V rows are the same whether computed
 * in a prompt chunk, in a decode step, by another sequence with the same
 * prefix or again after a preemption, and each choice's sampler sees the
 * same logits in the same order.
 *
 * Batch work (priority 1) runs in idle capacity: fair queuing offers it
 * only when no interactive request waits, at most max_batch_running of
 * it runs at once, and an interactive request that cannot be admitted
 * (no sequence id or not enough blocks) preempts the youngest running
 * batch request -- which resumes later with its output unchanged, like
 * any preempted request. Under memory pressure batch requests are also
 * the first to be preempted.
 *
 * Thinking budget: a choice whose request carries think_end tokens counts
 * the tokens it generates inside a reasoning block; once the budget is
 * spent, nuage__sample feeds the think_end tokens one per step instead
 * of sampling (the sampler still accepts them, so penalties see them).
 * The state lives in the choice and survives preemption.
 *
 * Costs per step: O(running sequences) bookkeeping plus the cache's
 * evictable count (O(cached blocks)); O(n_vocab) only inside sampling and
 * when logprobs are requested. Nothing allocates in steady state.
 */
#include "runtime/sched_internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "nuage/tokenizer.h"

/* Logit rows a prompt_logprobs request may ask for in one step (the
 * engine keeps n_vocab floats per row). */
#define NUAGE__PLP_CHUNK 128

/* ---- sequences and choices ------------------------------------------------- */

static bool nuage__open(const nuage__sreq *q, int c) {
    const nuage__schoice *ch = &q->ch[c];
    return !ch->done && ch->seq >= 0 && (c == q->lead || q->forked);
}

/* The first n tokens of choice c's stream, contiguous. */
static const int32_t *nuage__seq_tokens(nuage_sched *s, const nuage__sreq *q, int c, int n) {
    int np = q->r.n_prompt;
    if (n <= np) return q->prompt;
    memcpy(s->stream, q->prompt, (size_t)np * sizeof *s->stream);
    memcpy(s->stream + np, q->ch[c].gen, (size_t)(n - np) * sizeof *s->stream);
    return s->stream;
}

/* Give back choice c's sequence: its full blocks to the prefix cache (if
 * on), the rest to the pool. */
static void nuage__choice_release(nuage_sched *s, nuage__sreq *q, int c) {
    nuage__schoice *ch = &q->ch[c];
    if (ch->seq < 0) return;
    int nfull = ch->n_kv / s->bs;
    if (s->pc && !q->r.embedding && nfull > 0) {
        const int32_t *blocks;
        if (nuage_kv_seq_blocks(s->ctx, ch->seq, &blocks) >= nfull)
            nuage__prefix_register(s->pc, q->r.cache_salt, nuage__seq_tokens(s, q, c, nfull * s->bs),
                                   nfull, blocks);
    }
    nuage_kv_seq_truncate(s->ctx, ch->seq, 0);
    s->free_seqs[s->n_free_seqs++] = ch->seq;
    ch->seq = -1;
    ch->n_kv = 0;
}

static void nuage__request_done(nuage_sched *s, nuage__sreq *q) {
    if (q->state == NUAGE__SREQ_RUNNING && q->run_idx >= 0) {
        s->run[q->run_idx] = NULL;
        q->run_idx = -1;
        s->n_running--;
        if (q->r.priority == 1) s->n_batch_running--;
        nuage__fair_stopped(&s->fair, q);
    } else if (q->state == NUAGE__SREQ_WAITING) {
        nuage__fair_remove(&s->fair, q);
    }
    q->state = NUAGE__SREQ_DONE;
    nuage__squeue_push_back(&s->done, q);
}

static void nuage__choice_finish(nuage_sched *s, nuage__sreq *q, int c, nuage_finish reason) {
    nuage__schoice *ch = &q->ch[c];
    if (ch->done) return;
    ch->done = true;
    nuage__choice_release(s, q, c);
    if (q->r.cb.on_finish) q->r.cb.on_finish(q->r.cb.ud, c, reason);
    for (int i = 0; i < q->r.n_choices; i++)
        if (!q->ch[i].done) return;
    nuage__request_done(s, q);
}

void nuage__sched_finish_request(nuage_sched *s, nuage__sreq *q, nuage_finish reason,
                                 const char *error) {
    if (q->state == NUAGE__SREQ_DONE) return;
    if (error && !q->usage.error[0]) snprintf(q->usage.error, sizeof q->usage.error, "%s", error);
    for (int c = 0; c < q->r.n_choices && q->state != NUAGE__SREQ_DONE; c++)
        nuage__choice_finish(s, q, c, reason);
}

/* Choice c cannot get the KV it needs even with the whole pool. */
static void nuage__choice_starved(nuage_sched *s, nuage__sreq *q, int c) {
    if (q->ch[c].n_gen > 0) {
        nuage__choice_finish(s, q, c, NUAGE_FINISH_LENGTH);
    } else {
        if (!q->usage.error[0])
            snprintf(q->usage.error, sizeof q->usage.error,
                     "the prompt (%d tokens) does not fit in the KV cache (%d blocks of %d)",
                     q->r.n_prompt, nuage_kv_blocks_total(s->ctx), s->bs);
        nuage__choice_finish(s, q, c, NUAGE_FINISH_ERROR);
    }
}

/* Take q's sequences away and queue it again at the front. */
static void nuage__preempt(nuage_sched *s, nuage__sreq *q) {
    for (int c = 0; c < q->r.n_choices; c++) nuage__choice_release(s, q, c);
    q->forked = false;
    if (q->embd_sum) memset(q->embd_sum, 0, (size_t)s->n_embd * sizeof *q->embd_sum);
    s->run[q->run_idx] = NULL;
    q->run_idx = -1;
    s->n_running--;
    if (q->r.priority == 1) s->n_batch_running--;
    nuage__fair_stopped(&s->fair, q);
    q->state = NUAGE__SREQ_WAITING;
    nuage__fair_requeue_front(&s->fair, q);
    s->st_preempt++;
    if (s->pc) s->evictable = nuage__prefix_evictable(s->pc);
}

/* The request to preempt first: the youngest batch request, else the
 * youngest of all. */
static nuage__sreq *nuage__youngest(nuage_sched *s) {
    if (s->n_batch_running > 0)
        for (int i = s->n_run - 1; i >= 0; i--)
            if (s->run[i] && s->run[i]->r.priority == 1) return s->run[i];
    for (int i = s->n_run - 1; i >= 0; i--)
        if (s->run[i]) return s->run[i];
    return NULL;
}

/* The youngest running batch request, or NULL. */
static nuage__sreq *nuage__youngest_batch(nuage_sched *s) {
    if (s->n_batch_running == 0) return NULL;
    for (int i = s->n_run - 1; i >= 0; i--)
        if (s->run[i] && s->run[i]->r.priority == 1) return s->run[i];
    return NULL;
}

static void nuage__run_compact(nuage_sched *s) {
    int j = 0;
    for (int i = 0; i < s->n_run; i++)
        if (s->run[i]) {
            s->run[j] = s->run[i];
            s->run[j]->run_idx = j;
            j++;
        }
    s->n_run = j;
}

void nuage__sched_apply_cancels(nuage_sched *s) {
    for (int i = 0; i < s->n_run; i++) {
        nuage__sreq *q = s->run[i];
        if (q && q->cancelled) nuage__sched_finish_request(s, q, NUAGE_FINISH_CANCELLED, NULL);
    }
    nuage__sfair *f = &s->fair;
    for (int p = 0; p < 2; p++)
        for (nuage__sreq *q = f->resume[p].head, *next; q; q = next) {
            next = q->qnext;
            if (q->cancelled) nuage__sched_finish_request(s, q, NUAGE_FINISH_CANCELLED, NULL);
        }
    for (int i = 0; i < f->n; i++)
        for (int p = 0; p < 2; p++)
            for (nuage__sreq *q = f->t[i]->q[p].head, *next; q; q = next) {
                next = q->qnext;
                if (q->cancelled) nuage__sched_finish_request(s, q, NUAGE_FINISH_CANCELLED, NULL);
            }
    if (s->pc) s->evictable = nuage__prefix_evictable(s->pc);
}

/* ---- prompt completion: forks and cache registration ---------------------------- */

/* The lead's KV covers the prompt: the sibling choices get it, and its
 * full blocks enter the prefix cache. 0 or NUAGE_E_KV_FULL (then some
 * siblings may have their copy; calling again finishes the job). */
static int nuage__prompt_done(nuage_sched *s, nuage__sreq *q) {
    const int np = q->r.n_prompt;
    const int lseq = q->ch[q->lead].seq;
    for (int c = 0; c < q->r.n_choices; c++) {
        nuage__schoice *ch = &q->ch[c];
        if (c == q->lead || ch->done || ch->seq < 0 || ch->n_kv > 0) continue;
        int rc = nuage_kv_seq_fork(s->ctx, ch->seq, lseq, np);
        if (rc == NUAGE_E_KV_FULL && s->pc && nuage__prefix_evict(s->pc, 1) == 1) {
            s->evictable--;
            rc = nuage_kv_seq_fork(s->ctx, ch->seq, lseq, np);
        }
        if (rc) return rc;
        ch->n_kv = np;
    }
    q->forked = true;
    int nfull = np / s->bs;
    if (s->pc && !q->r.embedding && nfull > 0) {
        const int32_t *blocks;
        if (nuage_kv_seq_blocks(s->ctx, lseq, &blocks) >= nfull)
            nuage__prefix_register(s->pc, q->r.cache_salt, q->prompt, nfull, blocks);
    }
    return 0;
}

/* ---- admission ---------------------------------------------------------------- */

/* Start q if sequences and blocks allow. *avail: blocks that admissions
 * may still promise. */
static bool nuage__admit(nuage_sched *s, nuage__sreq *q, int *avail) {
    const int bs = s->bs, np = q->r.n_prompt;
    int n_seqs = 0, lead = -1;
    for (int c = 0; c < q->r.n_choices; c++)
        if (!q->ch[c].done) {
            n_seqs++;
            if (lead < 0) lead = c;
        }
    if (lead < 0 || n_seqs > s->n_free_seqs) return false;
    const int L = nuage__sreq_len(q, lead);
    int n_hit = 0;
    bool use_cache = s->pc && !q->r.embedding &&
                     !(q->r.prompt_logprobs && q->prompt_lp_next < np);
    if (use_cache) {
        int n_max = (L - 1) / bs;
        /* sliding-window model, several choices: the fork at the prompt's
         * end needs the window rows there, so no hit may reach past it */
        if (s->swa && n_seqs > 1 && n_max > np / bs) n_max = np / bs;
        if (n_max > 0)
            n_hit = nuage__prefix_lookup(s->pc, q->r.cache_salt, nuage__seq_tokens(s, q, lead, n_max * bs),
                                         n_max, s->blk);
    }
    /* Blocks still to allocate: the lead's stream beyond the cached part,
     * each sibling's stream beyond the shared full prompt blocks. */
    int need = (L + bs - 1) / bs - n_hit;
    for (int c = 0; c < q->r.n_choices; c++)
        if (c != lead && !q->ch[c].done) need += (nuage__sreq_len(q, c) + bs - 1) / bs - np / bs;
    /* Cached blocks held by nobody else stop being evictable once attached. */
    int was_free = 0;
    for (int i = 0; i < n_hit; i++) was_free += nuage_kv_block_refcount(s->ctx, s->blk[i]) == 1;
    if (need + was_free > *avail && s->n_running > 0) return false;

    nuage__fair_remove(&s->fair, q);
    q->lead = lead;
    q->forked = false;
    for (int c = 0; c < q->r.n_choices; c++)
        if (!q->ch[c].done) {
            q->ch[c].seq = s->free_seqs[--s->n_free_seqs];
            q->ch[c].n_kv = 0;
        }
    if (n_hit > 0) {
        if (nuage_kv_seq_attach(s->ctx, q->ch[lead].seq, s->blk, n_hit) == 0) {
            q->ch[lead].n_kv = n_hit * bs;
            s->evictable -= was_free;
            *avail -= was_free;
        } else {
            n_hit = 0;
        }
    }
    q->state = NUAGE__SREQ_RUNNING;
    q->admit_seq = ++s->admit_counter;
    q->run_idx = s->n_run;
    s->run[s->n_run++] = q;
    s->n_running++;
    if (q->r.priority == 1) s->n_batch_running++;
    nuage__fair_started(&s->fair, q);
    if (!q->admitted_once) {
        q->admitted_once = true;
        q->usage.queue_ms = nuage__sched_now_ms() - q->t_submit;
        q->usage.cached_tokens = n_hit * bs;
        s->st_prompt += (uint64_t)np;
        s->st_cached += (uint64_t)(n_hit * bs);
        nuage__fair_charge(&s->fair, q, np - n_hit * bs);
    }
    *avail -= need;
    if (q->ch[lead].n_kv >= np) nuage__prompt_done(s, q); /* resumed past the prompt */
    return true;
}

/* ---- outputs -------------------------------------------------------------------- */

static void nuage__first_out(nuage__sreq *q) {
    if (q->got_first) return;
    q->got_first = true;
    q->usage.ttft_ms = nuage__sched_now_ms() - q->t_submit;
}

/* Thinking budget: account for choice ch's new token tok (forced or not). */
static void nuage__think_track(const nuage__sreq *q, nuage__schoice *ch, int32_t tok, bool forced) {
    if (forced) {
        if (ch->force_i >= q->r.n_think_end) {
            ch->force_i = -1;
            ch->in_think = false;
        }
        return;
    }
    if (tok == q->r.think_end[0]) {
        ch->in_think = false;
        return;
    }
    if (tok == q->r.think_start) ch->in_think = true;
    else if (ch->in_think) ch->think_n++;
    if (ch->in_think && ch->think_n >= q->r.think_budget) ch->force_i = 0;
}

/* Sample choice c's next token from logits (or take the forced one) and
 * report it. */
static void nuage__sample(nuage_sched *s, nuage__sreq *q, int c, const float *logits) {
    nuage__schoice *ch = &q->ch[c];
    if (ch->done || !logits) return;
    const bool forced = q->r.n_think_end > 0 && ch->force_i >= 0;
    int mrc = 0;
    const uint32_t *mask = q->r.grammar && !forced ? nuage__sc_mask(s, q, c, &mrc) : NULL;
    int32_t tok = forced ? q->r.think_end[ch->force_i++]
                 : mrc ? mrc : nuage_sampler_sample_masked(ch->smp, logits, mask);
    if (tok < 0) {
        if (!q->usage.error[0])
            snprintf(q->usage.error, sizeof q->usage.error, "%s",
                     mrc ? "the grammar's token mask could not be computed"
                     : mask ? "no token allowed by the grammar can be sampled"
                            : "no token can be sampled (all banned)");
        nuage__choice_finish(s, q, c, NUAGE_FINISH_ERROR);
        return;
    }
    bool constrained = false, terminated = false;
    if (q->r.grammar && nuage__sc_accept(s, q, c, tok, &constrained, &terminated) && !forced) {
        if (!q->usage.error[0])
            snprintf(q->usage.error, sizeof q->usage.error, "the grammar refused a token it allowed");
        nuage__choice_finish(s, q, c, NUAGE_FINISH_ERROR);
        return;
    }
    nuage_sampler_accept(ch->smp, tok);
    ch->gen[ch->n_gen++] = tok;
    if (q->r.n_think_end > 0) nuage__think_track(q, ch, tok, forced);
    nuage__first_out(q);
    nuage__fair_charge(&s->fair, q, 1);
    if (!forced && !q->r.ignore_eos && nuage_vocab_is_eog(s->voc, tok)) {
        nuage__choice_finish(s, q, c, NUAGE_FINISH_STOP);
        return;
    }
    nuage_sched_token st;
    st.token = tok;
    st.n_top = 0;
    st.logprob = 0.0f;
    st.constrained = constrained;
    if (q->r.top_logprobs >= 0) {
        st.n_top = q->r.top_logprobs;
        st.logprob = nuage_logprobs(logits, s->n_vocab, tok, st.n_top, st.top_ids, st.top_lp);
    }
    q->usage.completion_tokens++;
    s->st_gen++;
    bool keep = !q->r.cb.on_token || q->r.cb.on_token(q->r.cb.ud, c, &st);
    if (!keep || terminated) nuage__choice_finish(s, q, c, NUAGE_FINISH_STOP);
    else if (ch->n_gen >= q->r.max_tokens) nuage__choice_finish(s, q, c, NUAGE_FINISH_LENGTH);
}

static void nuage__embedding_done(nuage_sched *s, nuage__sreq *q) {
    double norm = 0;
    const double inv_n = 1.0 / q->r.n_prompt;
    for (int i = 0; i < s->n_embd; i++) {
        double v = q->embd_sum[i] * inv_n;
        norm += v * v;
    }
    double scale = norm > 0 ? inv_n / sqrt(norm) : 0;
    for (int i = 0; i < s->n_embd; i++) s->embd_out[i] = (float)(q->embd_sum[i] * scale);
    nuage__first_out(q);
    if (q->r.cb.on_embedding) q->r.cb.on_embedding(q->r.cb.ud, s->embd_out, s->n_embd);
    nuage__choice_finish(s, q, 0, NUAGE_FINISH_STOP);
}

static void nuage__outputs(nuage_sched *s, const nuage__splan *e) {
    nuage__sreq *q = e->q;
    const int np = q->r.n_prompt;
    if (q->state != NUAGE__SREQ_RUNNING || q->ch[e->c].done) return;
    if (q->r.embedding) {
        for (int i = 0; i < e->n; i++) {
            const float *h = nuage_get_embedding(s->ctx, e->b0 + i);
            if (h)
                for (int k = 0; k < s->n_embd; k++) q->embd_sum[k] += h[k];
        }
        if (q->ch[0].n_kv >= np) nuage__embedding_done(s, q);
        return;
    }
    if (q->r.prompt_logprobs && e->c == q->lead) {
        for (int i = 0; i < e->n; i++) {
            int p = e->pos0 + i;
            if (p >= np - 1 || p + 1 < q->prompt_lp_next) continue;
            const float *lg = nuage_get_logits(s->ctx, e->b0 + i);
            if (!lg) continue;
            nuage_sched_token st;
            st.token = q->prompt[p + 1];
            st.n_top = q->r.top_logprobs > 0 ? q->r.top_logprobs : 0;
            st.logprob = nuage_logprobs(lg, s->n_vocab, st.token, st.n_top, st.top_ids, st.top_lp);
            q->r.cb.on_prompt_token(q->r.cb.ud, p + 1, &st);
            q->prompt_lp_next = p + 2;
        }
    }
    const nuage__schoice *ch = &q->ch[e->c];
    if (ch->n_kv != nuage__sreq_len(q, e->c)) return;
    const float *lg = nuage_get_logits(s->ctx, e->b0 + e->n - 1);
    if (e->c == q->lead && ch->n_gen == 0) {
        /* Fresh request: every choice draws its first token from the
         * prompt's logits. */
        for (int c = 0; c < q->r.n_choices && q->state == NUAGE__SREQ_RUNNING; c++)
            nuage__sample(s, q, c, lg);
    } else {
        nuage__sample(s, q, e->c, lg);
    }
}

/* ---- the step ------------------------------------------------------------------- */

/* Largest x <= want such that appending x tokens to seq needs at most
 * avail new blocks. */
static int nuage__fit(nuage_sched *s, int seq, int want, int avail) {
    if (want <= 0 || avail < 0) return 0;
    const int32_t *blocks;
    int nb = nuage_kv_seq_blocks(s->ctx, seq, &blocks);
    long room = (long)nb * s->bs - nuage_kv_seq_len(s->ctx, seq);
    long x = room + (long)avail * s->bs;
    if (x > want) x = want;
    while (x > 0 && nuage_kv_blocks_needed(s->ctx, seq, (int)x) > avail) x--;
    return (int)x;
}

static void nuage__plan_add(nuage_sched *s, nuage__sreq *q, int c, int n) {
    nuage__schoice *ch = &q->ch[c];
    nuage_batch *b = s->batch;
    const int np = q->r.n_prompt, L = nuage__sreq_len(q, c);
    const bool plp = q->r.prompt_logprobs && c == q->lead && q->prompt_lp_next < np;
    nuage__splan *e = &s->plan[s->n_plan++];
    e->q = q;
    e->c = c;
    e->pos0 = ch->n_kv;
    e->n = n;
    e->b0 = b->n_tokens;
    for (int p = ch->n_kv; p < ch->n_kv + n; p++) {
        int8_t out = NUAGE_OUT_NONE;
        if (q->r.embedding) out = NUAGE_OUT_EMBD;
        else if (p == L - 1 || (plp && p < np - 1 && p + 1 >= q->prompt_lp_next)) out = NUAGE_OUT_LOGITS;
        int i = b->n_tokens++;
        b->token[i] = nuage__sreq_tok(q, c, p);
        b->pos[i] = p;
        b->seq[i] = ch->seq;
        b->logits[i] = out;
    }
}

int nuage__step_budget(const nuage_sched_params *p, int n_dec) {
    int room = p->max_batch_tokens - n_dec;
    if (n_dec == 0) return room;
    int floor = p->step_tokens / 4 > 0 ? p->step_tokens / 4 : 1;
    int want = p->step_tokens - n_dec > floor ? p->step_tokens - n_dec : floor;
    return want < room ? want : room;
}

/* Number of sibling choices still waiting for their copy of the prompt. */
static int nuage__unforked(const nuage__sreq *q) {
    int n = 0;
    for (int c = 0; c < q->r.n_choices; c++)
        if (c != q->lead && !q->ch[c].done && q->ch[c].seq >= 0 && q->ch[c].n_kv == 0) n++;
    return n;
}

/* Plan the batch (steps 1-3 of the top comment). Returns the number of
 * blocks the batch and its forks will take from the pool, or -1 when
 * nothing could be planned and nothing is left to run. */
static int nuage__plan(nuage_sched *s) {
    const int bs = s->bs;
    for (;;) {
        nuage_batch_clear(s->batch);
        s->n_plan = 0;
        nuage__run_compact(s);
        /* 1. decode tokens */
        int need = 0, reserve = 0;
        for (int i = 0; i < s->n_run; i++) {
            nuage__sreq *q = s->run[i];
            for (int c = 0; c < q->r.n_choices; c++) {
                if (q->ch[c].done || q->ch[c].seq < 0) continue;
                if (!nuage__open(q, c)) {
                    reserve += (nuage__sreq_len(q, c) + bs - 1) / bs - q->r.n_prompt / bs;
                    continue;
                }
                int rem = nuage__sreq_len(q, c) - q->ch[c].n_kv;
                if (rem == 1) {
                    need += nuage_kv_blocks_needed(s->ctx, q->ch[c].seq, 1);
                    /* the last prompt token: the siblings' copies follow it */
                    if (c == q->lead && !q->forked && q->ch[c].n_kv + 1 >= q->r.n_prompt &&
                        q->r.n_prompt % bs)
                        need += nuage__unforked(q);
                } else if (rem > 1) reserve += nuage_kv_blocks_needed(s->ctx, q->ch[c].seq, rem);
            }
        }
        int avail = nuage_kv_blocks_free(s->ctx) + s->evictable;
        if (need > avail) {
            nuage__sreq *y = nuage__youngest(s);
            if (s->n_running > 1) {
                nuage__preempt(s, y);
            } else {
                /* Alone: the pool is this request's context. */
                bool ended = false;
                for (int c = y->r.n_choices - 1; c >= 0 && need > avail; c--) {
                    if (!nuage__open(y, c) || nuage__sreq_len(y, c) - y->ch[c].n_kv != 1) continue;
                    int nb = nuage_kv_blocks_needed(s->ctx, y->ch[c].seq, 1);
                    if (nb == 0) continue;
                    need -= nb;
                    nuage__choice_starved(s, y, c);
                    ended = true;
                }
                /* (what is missing are the siblings' prompt copies) */
                for (int c = y->r.n_choices - 1; c >= 0 && !ended; c--)
                    if (!y->ch[c].done && c != y->lead) {
                        nuage__choice_starved(s, y, c);
                        ended = true;
                    }
                if (!ended) nuage__sched_finish_request(s, y, NUAGE_FINISH_LENGTH, NULL);
            }
            continue;
        }
        for (int i = 0; i < s->n_run; i++) {
            nuage__sreq *q = s->run[i];
            for (int c = 0; c < q->r.n_choices; c++)
                if (nuage__open(q, c) && nuage__sreq_len(q, c) - q->ch[c].n_kv == 1) nuage__plan_add(s, q, c, 1);
        }
        avail -= need;
        int used = need;
        int budget = nuage__step_budget(&s->p, s->batch->n_tokens);

        /* 2. admission */
        const int n_old = s->n_run;
        int adm_avail = avail - reserve, adm_budget = budget;
        bool replan = false;
        while (adm_budget > 0) {
            nuage__sreq *q = nuage__fair_peek(&s->fair);
            if (!q) break;
            if (q->r.priority == 1 && s->p.max_batch_running > 0 &&
                s->n_batch_running >= s->p.max_batch_running)
                break;
            if (s->n_free_seqs > 0 && nuage__admit(s, q, &adm_avail)) {
                int lead_rem = nuage__sreq_len(q, q->lead) - q->ch[q->lead].n_kv;
                adm_budget -= lead_rem > 0 ? lead_rem : 1;
                continue;
            }
            /* An interactive request that does not fit takes the place of
             * running batch work; plan again without it. */
            nuage__sreq *b = q->r.priority == 0 ? nuage__youngest_batch(s) : NULL;
            if (b) {
                nuage__preempt(s, b);
                replan = true;
            }
            break;
        }
        if (replan) continue;

        /* Attaching cached blocks and forking at admission changed the
         * pool: count again. */
        avail = nuage_kv_blocks_free(s->ctx) + s->evictable - need;

        /* 3. prompt chunks, recomputation */
        for (int i = 0; i < s->n_run && budget > 0; i++) {
            nuage__sreq *q = s->run[i];
            if (!q) continue;
            const int np = q->r.n_prompt;
            for (int c = 0; c < q->r.n_choices && budget > 0; c++) {
                if (!nuage__open(q, c)) continue;
                nuage__schoice *ch = &q->ch[c];
                int rem = nuage__sreq_len(q, c) - ch->n_kv;
                if (rem <= 0 || (rem == 1 && i < n_old)) continue;
                int want = rem < budget ? rem : budget;
                if (q->r.prompt_logprobs && c == q->lead && q->prompt_lp_next < np && want > NUAGE__PLP_CHUNK)
                    want = NUAGE__PLP_CHUNK;
                /* sliding-window model: stop an unforked lead at the prompt's
                 * end, where the fork needs the window rows (kv_cache.h) */
                if (s->swa && c == q->lead && !q->forked && ch->n_kv < np && ch->n_kv + want > np &&
                    nuage__unforked(q) > 0)
                    want = np - ch->n_kv;
                int fork_need = 0;
                if (c == q->lead && !q->forked && ch->n_kv + want >= np && np % bs)
                    fork_need = nuage__unforked(q);
                int x = nuage__fit(s, ch->seq, want, avail - fork_need);
                if (x <= 0) continue;
                int nb = nuage_kv_blocks_needed(s->ctx, ch->seq, x);
                if (ch->n_kv + x < np) fork_need = 0;
                nuage__plan_add(s, q, c, x);
                avail -= nb + fork_need;
                used += nb + fork_need;
                budget -= x;
            }
        }
        if (s->batch->n_tokens > 0) return used;
        /* Nothing fits: make room by preempting, or give up on a request
         * that cannot fit even alone. */
        if (s->n_running > 1) {
            nuage__preempt(s, nuage__youngest(s));
            continue;
        }
        if (s->n_running == 1) {
            nuage__sreq *y = nuage__youngest(s);
            for (int c = 0; c < y->r.n_choices; c++)
                if (!y->ch[c].done) nuage__choice_starved(s, y, c);
            continue;
        }
        return -1;
    }
}

void nuage__sched_step(nuage_sched *s) {
    /* s->evictable is current: counted at the end of the previous step
     * (and after cancellations), kept up to date by every change since. */
    int used = nuage__plan(s);
    if (used < 0) return;
    if (s->tr_fn) s->tr_fn(s->tr_ud, s->st_steps, s->plan, s->n_plan);
    int lack = used - nuage_kv_blocks_free(s->ctx);
    if (lack > 0 && s->pc) s->evictable -= nuage__prefix_evict(s->pc, lack);

    char err[160];
    err[0] = 0;
    nuage__sc_prefetch(s);   /* grammar masks, computed while the batch decodes */
    int rc = nuage_decode(s->ctx, s->batch, err, sizeof err);
    nuage__sc_wait(s);
    if (rc) {
        char msg[200];
        snprintf(msg, sizeof msg, "decode failed: %s (%s)", nuage_strerror(rc), err);
        for (int i = 0; i < s->n_plan; i++)
            nuage__sched_finish_request(s, s->plan[i].q, NUAGE_FINISH_ERROR, msg);
        return;
    }
    s->st_steps++;
    for (int i = 0; i < s->n_plan; i++) s->plan[i].q->ch[s->plan[i].c].n_kv += s->plan[i].n;
    for (int i = 0; i < s->n_plan; i++) {
        nuage__sreq *q = s->plan[i].q;
        if (q->state != NUAGE__SREQ_RUNNING || q->forked || s->plan[i].c != q->lead ||
            q->ch[q->lead].n_kv < q->r.n_prompt)
            continue;
        if (nuage__prompt_done(s, q)) nuage__preempt(s, q);
    }
    for (int i = 0; i < s->n_plan; i++) nuage__outputs(s, &s->plan[i]);
}
