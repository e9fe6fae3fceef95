/*
 * trainer.c - the training loop (see train.h).
 *
 * One optimizer step:
 *   1. draw `batch` sequences (uniformly, with replacement) with the
 *      state's RNG: the RNG state is part of the checkpoint, so a resumed
 *      run draws the same batches as an uninterrupted one;
 *   2. deal them into NUAGE_TRAIN_SHARDS shards, each sequence to the
 *      shard with the fewest tokens so far (a fixed rule: it depends only
 *      on the batch), and run forward + backward of each shard's sequences
 *      into that shard's own gradient buffer, one thread per shard at a
 *      time (threads take shards ith, ith + nth, ...);
 *   3. sum the shards in shard order, compute the gradient norm from
 *      fixed 4096-value chunks summed in chunk order, clip to `clip`;
 *   4. AdamW (decoupled weight decay on matrices other than the token
 *      embedding), learning rate with linear warm-up then cosine decay to
 *      lr_min;
 *   5. refresh the transposed weight copies.
 * Every floating-point sum above has an order fixed by the data alone,
 * never by the number of threads or their timing: a run is bit-for-bit
 * the same with 1, 2 or 4 threads (the tests check it).
 *
 * The loss of a step is the mean cross-entropy over the batch's trained
 * tokens (each sequence's gradient is scaled by 1 / their count).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine/clock.h"
#include "engine/threadpool.h"
#include "nuage/nuage.h"
#include "train/train.h"

nuage_topts nuage_topts_default(void) {
    nuage_topts o = {
        .steps = 1000, .batch = 32, .warmup = 100, .threads = 0,
        .lr = 1e-3f, .lr_min = 1e-4f, .wd = 0.1f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f,
        .clip = 1.0f, .seed = 1, .ckpt_every = 0,
    };
    return o;
}

int nuage_tstate_init(nuage_tstate *s, const nuage_tmodel *m, uint64_t seed) {
    memset(s, 0, sizeof *s);
    s->m = calloc(m->n, sizeof *s->m);
    s->v = calloc(m->n, sizeof *s->v);
    if (!s->m || !s->v) {
        nuage_tstate_free(s);
        return NUAGE_E_NOMEM;
    }
    /* the sampler's stream differs from the initialisation's */
    nuage_rng_seed(&s->rng, seed ^ 0x5eed5eed5eed5eedull);
    return 0;
}

void nuage_tstate_free(nuage_tstate *s) {
    free(s->m);
    free(s->v);
    memset(s, 0, sizeof *s);
}

static float nuage__lr_at(const nuage_topts *o, int step) {
    if (o->warmup > 0 && step < o->warmup) return o->lr * (float)(step + 1) / (float)o->warmup;
    int span = o->steps - o->warmup;
    if (span <= 0) return o->lr;
    double p = (double)(step - o->warmup) / span;
    if (p > 1) p = 1;
    return (float)(o->lr_min + 0.5 * (o->lr - o->lr_min) * (1.0 + cos(M_PI * p)));
}

/* ---- one step, in parallel ------------------------------------------------------------- */

#define NUAGE__CHUNK 4096

typedef struct {
    nuage_tmodel *m;
    nuage_tstate *s;
    const nuage_tdata *d;
    const nuage_topts *o;
    nuage_tws **ws;        /* (n_ws) */
    float *grad[NUAGE_TRAIN_SHARDS];
    int *idx;              /* (batch) sampled sequence ids */
    int *shard;            /* (batch) shard of each */
    int32_t *tgt[NUAGE_TRAIN_SHARDS]; /* (n_ctx) target scratch per shard */
    double loss[NUAGE_TRAIN_SHARDS];
    float scale;
    double *chunk_ss;      /* (n_chunks) */
    size_t n_chunks;
    float clip_mul, lr;
    int t;                 /* Adam step number (1-based) */
} nuage__step;

/* Phase 1: forward/backward of each shard. */
static void nuage__job_grad(void *arg, int ith, int nth) {
    nuage__step *st = arg;
    const nuage_tmodel *m = st->m;
    for (int sh = ith; sh < NUAGE_TRAIN_SHARDS; sh += nth) {
        float *g = st->grad[sh];
        memset(g, 0, m->n * sizeof *g);
        double loss = 0;
        for (int b = 0; b < st->o->batch; b++) {
            if (st->shard[b] != sh) continue;
            const nuage_tdata *d = st->d;
            int i = st->idx[b];
            const int32_t *tok = d->tok + d->off[i];
            int n = (int)(d->off[i + 1] - d->off[i]), T = n - 1, np = d->n_prompt[i];
            int32_t *tgt = st->tgt[sh];
            for (int t = 0; t < T; t++) tgt[t] = t + 1 >= np ? tok[t + 1] : -1;
            int n_tgt;
            loss += nuage_tmodel_seq(m, st->ws[ith], tok, tgt, T, st->scale, g, &n_tgt);
        }
        st->loss[sh] = loss;
    }
}

/* Phase 2: sum shards into grad[0] and the squared norm per chunk. */
static void nuage__job_reduce(void *arg, int ith, int nth) {
    nuage__step *st = arg;
    size_t n = st->m->n;
    for (size_t c = (size_t)ith; c < st->n_chunks; c += (size_t)nth) {
        size_t lo = c * NUAGE__CHUNK, hi = lo + NUAGE__CHUNK < n ? lo + NUAGE__CHUNK : n;
        float *g0 = st->grad[0];
        double ss = 0;
        for (size_t i = lo; i < hi; i++) {
            float g = g0[i];
            for (int s = 1; s < NUAGE_TRAIN_SHARDS; s++) g += st->grad[s][i];
            g0[i] = g;
            ss += (double)g * g;
        }
        st->chunk_ss[c] = ss;
    }
}

/* Phase 3: AdamW on chunks. */
static void nuage__job_adam(void *arg, int ith, int nth) {
    nuage__step *st = arg;
    nuage_tmodel *m = st->m;
    const nuage_topts *o = st->o;
    const float b1 = o->beta1, b2 = o->beta2;
    const float c1 = 1.0f / (1.0f - powf(b1, (float)st->t)), c2 = 1.0f / (1.0f - powf(b2, (float)st->t));
    for (int pi = 0; pi < m->n_p; pi++) {
        const nuage_tparam *p = &m->p[pi];
        size_t n = (size_t)(p->rows * p->cols);
        size_t lo = n * (size_t)ith / (size_t)nth, hi = n * (size_t)(ith + 1) / (size_t)nth;
        float *w = m->w + p->off, *g = st->grad[0] + p->off;
        float *mm = st->s->m + p->off, *vv = st->s->v + p->off;
        const float decay = p->decay ? 1.0f - st->lr * o->wd : 1.0f;
        for (size_t i = lo; i < hi; i++) {
            float gi = g[i] * st->clip_mul;
            mm[i] = b1 * mm[i] + (1.0f - b1) * gi;
            vv[i] = b2 * vv[i] + (1.0f - b2) * gi * gi;
            float mh = mm[i] * c1, vh = vv[i] * c2;
            w[i] = w[i] * decay - st->lr * mh / (sqrtf(vh) + o->eps);
        }
    }
}

static void nuage__job_sync(void *arg, int ith, int nth) {
    nuage__step *st = arg;
    nuage_tmodel_sync_range(st->m, ith, nth);
}

/* ---- progress ---------------------------------------------------------------------------- */

static void nuage__fmt_time(double s, char *buf, size_t cap) {
    long t = (long)(s + 0.5);
    if (t >= 3600) snprintf(buf, cap, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else snprintf(buf, cap, "%02ld:%02ld", t / 60, t % 60);
}

static void nuage__progress(const nuage_topts *o, int step, double loss, float lr, double tok_s,
                            double elapsed, int done_here, bool tty, bool final) {
    char eta[32], el[32];
    double left = done_here > 0 ? elapsed / done_here * (o->steps - step) : 0;
    nuage__fmt_time(left, eta, sizeof eta);
    nuage__fmt_time(elapsed, el, sizeof el);
    if (tty) {
        int width = 24, fill = o->steps ? (int)((long)width * step / o->steps) : width;
        char bar[32];
        for (int i = 0; i < width; i++) bar[i] = i < fill ? '#' : '.';
        bar[width] = 0;
        fprintf(stderr, "\r[%s] %d/%d loss %.4f lr %.2e %.0f tok/s elapsed %s ETA %s  ", bar, step,
                o->steps, loss, lr, tok_s, el, eta);
        if (final) fputc('\n', stderr);
    } else {
        fprintf(stderr, "step %d/%d loss %.4f lr %.2e %.0f tok/s elapsed %s ETA %s\n", step, o->steps,
                loss, lr, tok_s, el, eta);
    }
    fflush(stderr);
}

/* ---- the loop ------------------------------------------------------------------------------- */

int nuage_train_run(nuage_tmodel *m, nuage_tstate *s, const nuage_tdata *d, const nuage_topts *o,
                    const struct nuage_gguf *tok_gguf, char *err, size_t errlen) {
    char dummy[8];
    if (!err) { err = dummy; errlen = sizeof dummy; }
    if (o->batch < 1 || o->steps < 0 || d->n < 1) {
        snprintf(err, errlen, "nothing to train (batch %d, steps %d, %d sequences)", o->batch, o->steps, d->n);
        return NUAGE_E_INVAL;
    }
    for (int i = 0; i < d->n; i++)
        if (d->off[i + 1] - d->off[i] > (int64_t)m->c.n_ctx + 1) {
            snprintf(err, errlen, "sequence %d is longer than the context (%d)", i, m->c.n_ctx);
            return NUAGE_E_INVAL;
        }
    int threads = o->threads > 0 ? o->threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (threads < 1) threads = 1;
    int n_ws = threads < NUAGE_TRAIN_SHARDS ? threads : NUAGE_TRAIN_SHARDS;
    int rc = 0;
    nuage__step st = {.m = m, .s = s, .d = d, .o = o};
    st.n_chunks = (m->n + NUAGE__CHUNK - 1) / NUAGE__CHUNK;
    nuage_pool *pool = nuage__pool_new(threads);
    st.ws = calloc((size_t)n_ws, sizeof *st.ws);
    st.idx = malloc((size_t)o->batch * sizeof *st.idx);
    st.shard = malloc((size_t)o->batch * sizeof *st.shard);
    st.chunk_ss = malloc(st.n_chunks * sizeof *st.chunk_ss);
    bool ok = pool && st.ws && st.idx && st.shard && st.chunk_ss;
    for (int i = 0; ok && i < n_ws; i++) ok = (st.ws[i] = nuage_tws_new(m)) != NULL;
    for (int i = 0; ok && i < NUAGE_TRAIN_SHARDS; i++) {
        st.grad[i] = aligned_alloc(64, (m->n * sizeof(float) + 63) / 64 * 64);
        st.tgt[i] = malloc((size_t)m->c.n_ctx * sizeof(int32_t));
        ok = st.grad[i] && st.tgt[i];
    }
    if (!ok) {
        snprintf(err, errlen, "out of memory for the training buffers");
        rc = NUAGE_E_NOMEM;
        goto done;
    }
    nuage__pool_run(pool, nuage__job_sync, &st); /* transposes match the weights */

    const bool tty = isatty(2);
    const int log_every = o->steps >= 20 ? o->steps / 20 : 1;
    double t0 = nuage__now(), last_print = 0, ema = -1;
    long long toks = 0;
    int done_here = 0;
    while (s->step < o->steps) {
        if (o->stop_after > 0 && done_here >= o->stop_after) break;
        /* 1-2: draw the batch and deal it into shards */
        int64_t load[NUAGE_TRAIN_SHARDS] = {0}, n_tgt = 0;
        for (int b = 0; b < o->batch; b++) {
            int i = (int)nuage_rng_below(&s->rng, (uint64_t)d->n);
            int n = (int)(d->off[i + 1] - d->off[i]);
            int best = 0;
            for (int k = 1; k < NUAGE_TRAIN_SHARDS; k++)
                if (load[k] < load[best]) best = k;
            st.idx[b] = i;
            st.shard[b] = best;
            load[best] += n;
            n_tgt += n - d->n_prompt[i];
            toks += n - 1;
        }
        st.scale = 1.0f / (float)(n_tgt > 0 ? n_tgt : 1);
        nuage__pool_run(pool, nuage__job_grad, &st);
        /* 3: reduce and clip */
        nuage__pool_run(pool, nuage__job_reduce, &st);
        double ss = 0, loss = 0;
        for (size_t c = 0; c < st.n_chunks; c++) ss += st.chunk_ss[c];
        for (int k = 0; k < NUAGE_TRAIN_SHARDS; k++) loss += st.loss[k];
        loss /= (double)(n_tgt > 0 ? n_tgt : 1);
        double norm = sqrt(ss);
        st.clip_mul = o->clip > 0 && norm > o->clip ? (float)(o->clip / norm) : 1.0f;
        /* 4-5: update */
        st.lr = nuage__lr_at(o, s->step);
        st.t = s->step + 1;
        nuage__pool_run(pool, nuage__job_adam, &st);
        nuage__pool_run(pool, nuage__job_sync, &st);
        s->step++;
        done_here++;
        s->last_loss = loss;
        ema = ema < 0 ? loss : 0.95 * ema + 0.05 * loss;

        double now = nuage__now(), el = now - t0;
        bool last = s->step == o->steps;
        if (!o->quiet && ((tty && (now - last_print > 0.25 || last)) || (!tty && (s->step % log_every == 0 || last)))) {
            nuage__progress(o, s->step, ema, st.lr, el > 0 ? toks / el : 0, el, done_here, tty, last);
            last_print = now;
        }
        if (o->ckpt_path && ((o->ckpt_every > 0 && s->step % o->ckpt_every == 0) || last)) {
            rc = nuage_train_save_ckpt(o->ckpt_path, m, s, o, tok_gguf, err, errlen);
            if (rc) goto done;
        }
    }
done:
    for (int i = 0; i < NUAGE_TRAIN_SHARDS; i++) {
        free(st.grad[i]);
        free(st.tgt[i]);
    }
    for (int i = 0; st.ws && i < n_ws; i++) nuage_tws_free(st.ws[i]);
    free(st.ws);
    free(st.idx);
    free(st.shard);
    free(st.chunk_ss);
    if (pool) nuage__pool_free(pool);
    return rc;
}
