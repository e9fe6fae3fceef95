/*
 * sampler.c - token sampling and log-probabilities (include/nuage/sampler.h).
 *
 * Design. The pipeline order and the semantics of each transform are
 * documented in the header; this file is about doing it fast for large
 * vocabularies (150k tokens) without allocating per call.
 *
 * Every sampler owns scratch arrays sized at creation: `w` (a working
 * copy of the logits, only written when a bias or a penalty must change
 * some of them, or when +inf logits must be collapsed), `cand`, an array
 * of (logit, probability, id) records, and with top-p the nucleus
 * histogram below. No call after creation allocates.
 *
 *   - Greedy is O(n): the maximum over eight independent lanes (packed
 *     max instructions; NaN never compares greater, so it needs no test),
 *     then the first index holding it. It reads the raw row directly when
 *     there is nothing to bias or penalize.
 *   - Tokens whose probability would underflow to 0 (logit more than 104*T
 *     below the maximum) are dropped up front; they could never be drawn.
 *   - top-k keeps a bounded min-heap of k records while scanning the row
 *     (O(n + r log k), r = replacements, small in practice) and then
 *     heap-sorts those k: no full sort. Ties are broken towards lower ids,
 *     which falls out of scanning ids in increasing order.
 *   - top-p without top-k needs the set, not its order. While collecting
 *     candidates we histogram their mass into 2048 buckets of equal width
 *     in log-probability; buckets before the one where the cumulative mass
 *     reaches top_p are kept whole, and only the few records of that
 *     crossing bucket are ordered (a heap). Linear and branch-light. If
 *     the crossing bucket is huge (near-uniform logits), a quickselect
 *     weighted by mass takes over (expected O(n), with a heap fallback if
 *     its partitioning degenerates).
 *   - Probabilities are computed with expf while collecting candidates
 *     (one pass); that pass dominates the non-greedy cost at 150k tokens.
 *   - min-p needs no order: the most likely token has unnormalized
 *     probability exp(0) = 1 exactly, so it is a threshold filter at min_p.
 *   - The draw scans the kept records accumulating in double.
 *
 * Penalty history: per token counts over the window plus a list of the
 * distinct tokens present (with each one's slot for O(1) removal), so the
 * penalty step touches only distinct recent tokens; a finite window keeps
 * a ring of its tokens to know what falls out. Nothing is allocated when
 * no penalty is active.
 *
 * Random numbers: xoshiro256** seeded through splitmix64 (see header for
 * why our own). u = top 53 bits / 2^53, uniform in [0, 1).
 */
#include "nuage/sampler.h"
#include "nuage/nuage.h"
#include "engine/rng.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Nucleus histogram: NUAGE__NB buckets of equal width in log-probability
 * over the [0, 104] nats that survive the underflow cut-off, and a stash
 * for the records of the bucket where the nucleus ends. */
#define NUAGE__NB 2048
#define NUAGE__STASH 4096

typedef struct {
    float logit; /* after bias/penalties, before temperature */
    float p;     /* exp((logit - max) / T), unnormalized; the max has 1 */
    int32_t id;
} nuage__cand;

struct nuage_sampler {
    nuage_sampler_params p; /* bias pointers point into bias_tok/bias_val */
    int32_t n_vocab;
    uint64_t seed;
    uint64_t rng[4];
    int32_t *bias_tok;
    float *bias_val;
    /* penalty history (all NULL when pen_on == 0) */
    int pen_on;
    int32_t *counts;   /* (n_vocab) occurrences in the window */
    int32_t *uniq;     /* (n_vocab) distinct tokens with count > 0 */
    int32_t *uniq_pos; /* (n_vocab) slot in uniq of a token with count > 0 */
    int32_t n_uniq;
    int32_t *ring; /* (ring_cap) finite window, oldest at ring_head */
    int32_t ring_cap, ring_len, ring_head;
    /* scratch */
    float *w;          /* (n_vocab) */
    nuage__cand *cand; /* (n_vocab) */
    /* top-p only (NULL otherwise) */
    double *bmass;      /* (NUAGE__NB) probability mass per bucket */
    int32_t *bcnt;      /* (NUAGE__NB) records per bucket */
    nuage__cand *stash; /* (NUAGE__STASH + 1) */
    uint16_t *bkt;      /* (n_vocab) bucket of each record of cand */
};

/* ---- random numbers ------------------------------------------------------ */

static void nuage__seed(nuage_sampler *s, uint64_t seed) {
    nuage__xoshiro_seed(s->rng, seed);
    s->seed = seed;
}

/* ---- parameters ---------------------------------------------------------- */

nuage_sampler_params nuage_sampler_default_params(void) {
    nuage_sampler_params p;
    memset(&p, 0, sizeof p);
    p.temperature = 1.0f;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    p.repetition_penalty = 1.0f;
    p.presence_penalty = 0.0f;
    p.frequency_penalty = 0.0f;
    p.penalty_last_n = -1;
    p.seed = 0;
    return p;
}

/* 1 if every parameter is in range (see the header), else 0. */
static int nuage__params_ok(const nuage_sampler_params *p, int32_t n_vocab) {
    if (n_vocab <= 0) return 0;
    if (!isfinite(p->temperature) || p->temperature < 0.0f) return 0;
    if (!(p->top_p > 0.0f && p->top_p <= 1.0f)) return 0;
    if (!(p->min_p >= 0.0f && p->min_p <= 1.0f)) return 0;
    if (!isfinite(p->repetition_penalty) || !(p->repetition_penalty > 0.0f)) return 0;
    if (!isfinite(p->presence_penalty) || !isfinite(p->frequency_penalty)) return 0;
    if (p->penalty_last_n < -1 || p->penalty_last_n > NUAGE_SAMPLER_MAX_LAST_N) return 0;
    if (p->n_bias < 0) return 0;
    if (p->n_bias > 0) {
        if (!p->bias_tokens || !p->bias_values) return 0;
        for (int32_t i = 0; i < p->n_bias; i++) {
            if (p->bias_tokens[i] < 0 || p->bias_tokens[i] >= n_vocab) return 0;
            if (isnan(p->bias_values[i]) || p->bias_values[i] == INFINITY) return 0;
        }
    }
    return 1;
}

/* ---- creation ------------------------------------------------------------ */

void nuage_sampler_free(nuage_sampler *s) {
    if (!s) return;
    free(s->bias_tok);
    free(s->bias_val);
    free(s->counts);
    free(s->uniq);
    free(s->uniq_pos);
    free(s->ring);
    free(s->w);
    free(s->cand);
    free(s->bmass);
    free(s->bcnt);
    free(s->stash);
    free(s->bkt);
    free(s);
}

/* Allocate a sampler for already validated params; history empty,
 * generator seeded with p->seed. NULL on out-of-memory. */
static nuage_sampler *nuage__sampler_alloc(const nuage_sampler_params *p, int32_t n_vocab) {
    nuage_sampler *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->p = *p;
    s->n_vocab = n_vocab;
    size_t n = (size_t)n_vocab;

    if (p->n_bias > 0) {
        s->bias_tok = malloc((size_t)p->n_bias * sizeof *s->bias_tok);
        s->bias_val = malloc((size_t)p->n_bias * sizeof *s->bias_val);
        if (!s->bias_tok || !s->bias_val) goto fail;
        memcpy(s->bias_tok, p->bias_tokens, (size_t)p->n_bias * sizeof *s->bias_tok);
        memcpy(s->bias_val, p->bias_values, (size_t)p->n_bias * sizeof *s->bias_val);
    }
    s->p.bias_tokens = s->bias_tok;
    s->p.bias_values = s->bias_val;

    s->pen_on = p->penalty_last_n != 0 &&
                (p->repetition_penalty != 1.0f || p->presence_penalty != 0.0f ||
                 p->frequency_penalty != 0.0f);
    if (s->pen_on) {
        s->counts = calloc(n, sizeof *s->counts);
        s->uniq = malloc(n * sizeof *s->uniq);
        s->uniq_pos = malloc(n * sizeof *s->uniq_pos);
        if (!s->counts || !s->uniq || !s->uniq_pos) goto fail;
        if (p->penalty_last_n > 0) {
            s->ring_cap = p->penalty_last_n;
            s->ring = malloc((size_t)s->ring_cap * sizeof *s->ring);
            if (!s->ring) goto fail;
        }
    }
    s->w = malloc(n * sizeof *s->w);
    s->cand = malloc(n * sizeof *s->cand);
    if (!s->w || !s->cand) goto fail;
    if (p->top_p < 1.0f) {
        s->bmass = malloc(NUAGE__NB * sizeof *s->bmass);
        s->bcnt = malloc(NUAGE__NB * sizeof *s->bcnt);
        s->stash = malloc((NUAGE__STASH + 1) * sizeof *s->stash);
        s->bkt = malloc(n * sizeof *s->bkt);
        if (!s->bmass || !s->bcnt || !s->stash || !s->bkt) goto fail;
    }
    nuage__seed(s, p->seed);
    return s;

fail:
    nuage_sampler_free(s);
    return NULL;
}

nuage_sampler *nuage_sampler_new(const nuage_sampler_params *p, int32_t n_vocab) {
    nuage_sampler_params def = nuage_sampler_default_params();
    if (!p) p = &def;
    if (!nuage__params_ok(p, n_vocab)) return NULL;
    return nuage__sampler_alloc(p, n_vocab);
}

nuage_sampler *nuage_sampler_clone(const nuage_sampler *s, uint64_t new_seed) {
    if (!s) return NULL;
    nuage_sampler_params p = s->p;
    p.seed = new_seed;
    nuage_sampler *c = nuage__sampler_alloc(&p, s->n_vocab);
    if (!c) return NULL;
    if (s->pen_on) {
        memcpy(c->counts, s->counts, (size_t)s->n_vocab * sizeof *c->counts);
        memcpy(c->uniq, s->uniq, (size_t)s->n_uniq * sizeof *c->uniq);
        for (int32_t i = 0; i < s->n_uniq; i++) c->uniq_pos[s->uniq[i]] = i;
        c->n_uniq = s->n_uniq;
        if (s->ring_cap > 0) memcpy(c->ring, s->ring, (size_t)s->ring_cap * sizeof *c->ring);
        c->ring_len = s->ring_len;
        c->ring_head = s->ring_head;
    }
    return c;
}

void nuage_sampler_reset(nuage_sampler *s) {
    if (!s) return;
    if (s->pen_on) {
        for (int32_t i = 0; i < s->n_uniq; i++) s->counts[s->uniq[i]] = 0;
    }
    s->n_uniq = 0;
    s->ring_len = 0;
    s->ring_head = 0;
    nuage__seed(s, s->seed);
}

/* ---- penalty history ----------------------------------------------------- */

static void nuage__hist_add(nuage_sampler *s, int32_t t) {
    if (s->counts[t]++ == 0) {
        s->uniq_pos[t] = s->n_uniq;
        s->uniq[s->n_uniq++] = t;
    }
}

static void nuage__hist_remove(nuage_sampler *s, int32_t t) {
    if (--s->counts[t] == 0) {
        int32_t slot = s->uniq_pos[t];
        int32_t last = s->uniq[--s->n_uniq];
        s->uniq[slot] = last;
        s->uniq_pos[last] = slot;
    }
}

void nuage_sampler_accept(nuage_sampler *s, int32_t tok) {
    if (!s || !s->pen_on || tok < 0 || tok >= s->n_vocab) return;
    if (s->ring_cap > 0) {
        if (s->ring_len == s->ring_cap) {
            nuage__hist_remove(s, s->ring[s->ring_head]);
            s->ring[s->ring_head] = tok;
            s->ring_head = (s->ring_head + 1) % s->ring_cap;
        } else {
            s->ring[(s->ring_head + s->ring_len) % s->ring_cap] = tok;
            s->ring_len++;
        }
    } else if (s->counts[tok] == INT32_MAX) {
        return; /* unbounded window saturates instead of overflowing */
    }
    nuage__hist_add(s, tok);
}

/* ---- heaps over candidate records ---------------------------------------- */

/* a ranks before b: larger logit, then lower id. */
static inline int nuage__better(const nuage__cand *a, const nuage__cand *b) {
    /* bitwise, not short-circuit: no branch to mispredict in partitions */
    return (a->logit > b->logit) | ((a->logit == b->logit) & (a->id < b->id));
}

/* Sift down in a heap whose root is the WORST record (bounded top-k). */
static void nuage__sift_worst(nuage__cand *c, int32_t n, int32_t i) {
    nuage__cand x = c[i];
    for (;;) {
        int32_t l = 2 * i + 1;
        if (l >= n) break;
        int32_t r = l + 1;
        int32_t m = (r < n && nuage__better(&c[l], &c[r])) ? r : l;
        if (!nuage__better(&x, &c[m])) break;
        c[i] = c[m];
        i = m;
    }
    c[i] = x;
}

/* Sift down in a heap whose root is the BEST record (nucleus popping). */
static void nuage__sift_best(nuage__cand *c, int32_t n, int32_t i) {
    nuage__cand x = c[i];
    for (;;) {
        int32_t l = 2 * i + 1;
        if (l >= n) break;
        int32_t r = l + 1;
        int32_t m = (r < n && nuage__better(&c[r], &c[l])) ? r : l;
        if (!nuage__better(&c[m], &x)) break;
        c[i] = c[m];
        i = m;
    }
    c[i] = x;
}

/* Keep the k best records of src (ids 0..n-1, logits >= cutoff) in
 * c[0..ret), sorted best first. */
static int32_t nuage__top_k(nuage__cand *c, const float *src, int32_t n, float cutoff,
                            int32_t k) {
    int32_t h = 0;
    for (int32_t i = 0; i < n; i++) {
        float l = src[i];
        if (!(l >= cutoff)) continue; /* also NaN, -inf */
        if (h < k) {
            /* sift up: parent must be worse-or-equal-rank root side */
            int32_t j = h++;
            nuage__cand x = {l, 0.0f, i};
            while (j > 0) {
                int32_t pa = (j - 1) / 2;
                if (!nuage__better(&c[pa], &x)) break;
                c[j] = c[pa];
                j = pa;
            }
            c[j] = x;
        } else if (l > c[0].logit) {
            /* equal logit never replaces: i is a larger id than all kept */
            c[0].logit = l;
            c[0].id = i;
            nuage__sift_worst(c, h, 0);
        }
    }
    /* heap-sort: the worst goes to the end each time -> best first */
    for (int32_t end = h - 1; end > 0; end--) {
        nuage__cand t = c[0];
        c[0] = c[end];
        c[end] = t;
        nuage__sift_worst(c, end, 0);
    }
    return h;
}

/* Fallback of nuage__nucleus on c[0..len): heapify best-first and pop
 * until the popped mass reaches need; returns the number popped, those
 * records moved to c[0..ret) (in no particular order). */
static int32_t nuage__heap_nucleus(nuage__cand *c, int32_t len, double need) {
    for (int32_t i = len / 2 - 1; i >= 0; i--) nuage__sift_best(c, len, i);
    int32_t h = len, kept = 0;
    double cum = 0.0;
    while (h > 0) {
        nuage__cand t = c[0];
        c[0] = c[h - 1];
        c[h - 1] = t;
        h--;
        nuage__sift_best(c, h, 0);
        kept++;
        cum += t.p;
        if (cum >= need) break;
    }
    int32_t u = len - kept, n_sw = u < kept ? u : kept;
    for (int32_t j = 0; j < n_sw; j++) {
        nuage__cand t = c[j];
        c[j] = c[len - 1 - j];
        c[len - 1 - j] = t;
    }
    return kept;
}

/*
 * Nucleus of c[0..m): the shortest best-first prefix (in nuage__better
 * order) whose mass p reaches target, moved to c[0..ret) in no particular
 * order. A quickselect weighted by mass: partition around a pivot, keep
 * the better side whole if its mass is not enough, else recurse into it.
 * Expected O(m); after too many rounds (adversarial input) it finishes
 * the remaining range with the heap method.
 */
static int32_t nuage__nucleus(nuage__cand *c, int32_t m, double target) {
    int32_t lo = 0, hi = m; /* c[0..lo) is in; the cut lies in [lo, hi) */
    double need = target;   /* mass still needed from c[lo..) */
    int rounds = 64;
    while (lo < hi) {
        if (--rounds < 0) return lo + nuage__heap_nucleus(c + lo, hi - lo, need);
        /* median of three, moved to hi-1 */
        int32_t mid = lo + (hi - lo) / 2, a = lo, b = hi - 1, med;
        if (nuage__better(&c[a], &c[mid]))
            med = nuage__better(&c[mid], &c[b]) ? mid : (nuage__better(&c[a], &c[b]) ? b : a);
        else
            med = nuage__better(&c[a], &c[b]) ? a : (nuage__better(&c[mid], &c[b]) ? b : mid);
        nuage__cand t = c[med];
        c[med] = c[b];
        c[b] = t;
        const nuage__cand piv = c[b];
        int32_t k = lo;
        double mass = 0.0;
        for (int32_t j = lo; j < b; j++) {
            /* branch-free Lomuto: c[lo..k) better than the pivot, c[k..j)
             * not; swapping a worse record with c[k] keeps that true */
            nuage__cand x = c[j];
            int bt = nuage__better(&x, &piv);
            c[j] = c[k];
            c[k] = x;
            mass += bt ? (double)x.p : 0.0;
            k += bt;
        }
        c[b] = c[k];
        c[k] = piv;
        if (mass >= need) {
            hi = k; /* need > 0, so k > lo: the range shrinks */
        } else if (mass + piv.p >= need) {
            return k + 1;
        } else {
            need -= mass + piv.p;
            lo = k + 1;
        }
    }
    return lo; /* rounding: everything was needed */
}

/* Histogram bucket of a record whose scaled log-probability is
 * x = (logit - max) / T <= 0: non-decreasing as the record ranks lower. */
static inline int32_t nuage__bucket(float x) {
    float b = -x * ((float)NUAGE__NB / 104.0f);
    return b < (float)(NUAGE__NB - 1) ? (int32_t)b : NUAGE__NB - 1;
}

/*
 * Nucleus of c[0..m) from the per-bucket mass and counts accumulated
 * while the records were built: every bucket before the one where the
 * cumulative mass reaches target is kept whole, without ordering it; only
 * the records of that crossing bucket are ordered (heap, best first) until
 * the remaining mass is reached. Two linear passes plus a small heap. When
 * the crossing bucket holds more than the stash, falls back to the
 * quickselect. Kept records end in c[0..ret), unordered.
 */
static int32_t nuage__nucleus_buckets(nuage_sampler *s, int32_t m, double target) {
    nuage__cand *c = s->cand;
    double cum = 0.0;
    int32_t bc = -1;
    for (int32_t b = 0; b < NUAGE__NB; b++) {
        if (cum + s->bmass[b] >= target) {
            bc = b;
            break;
        }
        cum += s->bmass[b];
    }
    if (bc < 0) return m; /* rounding: everything was needed */
    if (s->bcnt[bc] > NUAGE__STASH) return nuage__nucleus(c, m, target);

    /* branch-free compaction: earlier buckets to the front of c, the
     * crossing bucket to the stash (which has one spare slot) */
    nuage__cand *restrict st = s->stash;
    const uint16_t *restrict bkt = s->bkt;
    int32_t o = 0, q = 0;
    for (int32_t j = 0; j < m; j++) {
        nuage__cand r = c[j];
        int32_t b = bkt[j];
        c[o] = r;
        o += b < bc;
        st[q] = r;
        q += b == bc;
    }
    int32_t k = nuage__heap_nucleus(st, q, target - cum);
    memcpy(c + o, st, (size_t)k * sizeof *c);
    return o + k;
}

/* ---- the pipeline -------------------------------------------------------- */

/*
 * Run steps 1-9 of the header's pipeline. On success returns the number
 * of kept records (>= 1) in s->cand[0..ret) with unnormalized p, and
 * their sum in *zsum. NUAGE_E_INVAL when no token can be chosen.
 */
static int32_t nuage__prepare(nuage_sampler *s, const float *logits, const uint32_t *mask,
                              double *zsum) {
    const int32_t n = s->n_vocab;
    const nuage_sampler_params *P = &s->p;
    const float T = P->temperature;
    nuage__cand *c = s->cand;
    const float *src = logits;

    /* 1-3: copy only when something must change; the mask (before
     * everything else) makes disallowed tokens -inf */
    if (P->n_bias > 0 || s->n_uniq > 0 || mask) {
        float *w = s->w;
        for (int32_t i = 0; i < n; i++) {
            float v = logits[i];
            w[i] = (v == v) ? v : -INFINITY;
        }
        if (mask)
            for (int32_t i0 = 0; i0 < n; i0 += 32) {
                uint32_t word = mask[i0 >> 5];
                if (word == UINT32_MAX) continue;
                int32_t lim = n - i0 < 32 ? n - i0 : 32;
                for (int32_t k = 0; k < lim; k++)
                    if (!(word >> k & 1u)) w[i0 + k] = -INFINITY;
            }
        for (int32_t j = 0; j < P->n_bias; j++) {
            float b = s->bias_val[j];
            int32_t t = s->bias_tok[j];
            if (b <= -100.0f) w[t] = -INFINITY;
            else w[t] += b;
        }
        const float rp = P->repetition_penalty;
        for (int32_t j = 0; j < s->n_uniq; j++) {
            int32_t t = s->uniq[j];
            float x = w[t];
            if (rp != 1.0f) x = x > 0.0f ? x / rp : x * rp;
            x -= P->frequency_penalty * (float)s->counts[t] + P->presence_penalty;
            w[t] = (x == x) ? x : -INFINITY;
        }
        src = w;
    }

    /* arg-max in two passes: the maximum (eight independent lanes, which
     * the compiler turns into packed max; NaN never compares greater),
     * then its first index */
    float mx[8] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY,
                   -INFINITY, -INFINITY, -INFINITY, -INFINITY};
    int32_t i8 = n & ~7;
    for (int32_t i = 0; i < i8; i += 8) {
        for (int k = 0; k < 8; k++) {
            float v = src[i + k];
            mx[k] = v > mx[k] ? v : mx[k];
        }
    }
    for (int32_t i = i8; i < n; i++) mx[0] = src[i] > mx[0] ? src[i] : mx[0];
    float maxv = mx[0];
    for (int k = 1; k < 8; k++) maxv = mx[k] > maxv ? mx[k] : maxv;
    if (!(maxv > -INFINITY)) return NUAGE_E_INVAL;
    int32_t best = 0;
    while (src[best] != maxv) best++;

    /* 4: greedy */
    if (T == 0.0f) {
        c[0].logit = maxv;
        c[0].p = 1.0f;
        c[0].id = best;
        *zsum = 1.0;
        return 1;
    }

    /* +inf logits: the limit distribution is uniform over them */
    if (maxv == INFINITY) {
        float *w = s->w;
        for (int32_t i = 0; i < n; i++) w[i] = src[i] == INFINITY ? 0.0f : -INFINITY;
        src = w;
        maxv = 0.0f;
    }

    /* tokens below cutoff have exp((l - max) / T) == 0 in float */
    float cutoff = maxv - 104.0f * T;
    if (!(cutoff > -INFINITY)) cutoff = -FLT_MAX;

    /* 5-7: top-k, temperature, unnormalized softmax */
    int32_t m = 0;
    int sorted = 0;
    double z = 0.0;
    if (P->top_k > 0 && P->top_k < n) {
        m = nuage__top_k(c, src, n, cutoff, P->top_k);
        sorted = 1;
        for (int32_t j = 0; j < m; j++) {
            float p = expf((c[j].logit - maxv) / T);
            c[j].p = p;
            z += p;
        }
    } else if (P->top_p < 1.0f) {
        /* same, also filling the nucleus histogram */
        double *restrict bmass = s->bmass;
        int32_t *restrict bcnt = s->bcnt;
        uint16_t *restrict bkt = s->bkt;
        nuage__cand *restrict cr = c;
        memset(bmass, 0, NUAGE__NB * sizeof *bmass);
        memset(bcnt, 0, NUAGE__NB * sizeof *bcnt);
        for (int32_t i = 0; i < n; i++) {
            float l = src[i];
            if (l >= cutoff) {
                float x = (l - maxv) / T;
                float p = expf(x);
                int32_t b = nuage__bucket(x);
                cr[m].logit = l;
                cr[m].p = p;
                cr[m].id = i;
                bkt[m] = (uint16_t)b;
                m++;
                z += p;
                bmass[b] += p;
                bcnt[b]++;
            }
        }
    } else {
        for (int32_t i = 0; i < n; i++) {
            float l = src[i];
            if (l >= cutoff) {
                float p = expf((l - maxv) / T);
                c[m].logit = l;
                c[m].p = p;
                c[m].id = i;
                m++;
                z += p;
            }
        }
    }

    int changed = 0;
    /* 8: top-p */
    if (P->top_p < 1.0f) {
        const double target = (double)P->top_p * z;
        if (sorted) {
            double cum = 0.0;
            for (int32_t j = 0; j < m; j++) {
                cum += c[j].p;
                if (cum >= target) {
                    m = j + 1;
                    break;
                }
            }
        } else {
            m = nuage__nucleus_buckets(s, m, target);
        }
        changed = 1;
    }

    /* 9: min-p; the most likely token has p == 1 exactly */
    if (P->min_p > 0.0f) {
        const float thr = P->min_p;
        if (sorted) {
            for (int32_t j = 0; j < m; j++) {
                if (c[j].p < thr) {
                    m = j;
                    break;
                }
            }
        } else {
            int32_t o = 0;
            for (int32_t j = 0; j < m; j++)
                if (c[j].p >= thr) c[o++] = c[j];
            m = o;
        }
        changed = 1;
    }

    if (changed) {
        z = 0.0;
        for (int32_t j = 0; j < m; j++) z += c[j].p;
    }
    *zsum = z;
    return m; /* >= 1: the maximum has p == 1 and passes every step */
}

int32_t nuage_sampler_sample(nuage_sampler *s, const float *logits) {
    return nuage_sampler_sample_masked(s, logits, NULL);
}

int32_t nuage_sampler_sample_masked(nuage_sampler *s, const float *logits, const uint32_t *mask) {
    if (!s || !logits) return NUAGE_E_INVAL;
    double z;
    int32_t m = nuage__prepare(s, logits, mask, &z);
    if (m < 0) return m;
    if (s->p.temperature == 0.0f) return s->cand[0].id;

    const double u = (double)(nuage__xoshiro_next(s->rng) >> 11) * 0x1.0p-53;
    const double r = u * z;
    const nuage__cand *c = s->cand;
    double cum = 0.0;
    for (int32_t j = 0; j < m; j++) {
        cum += c[j].p;
        if (r < cum) return c[j].id;
    }
    /* rounding left r at the very top: the last token that has mass */
    for (int32_t j = m - 1; j >= 0; j--)
        if (c[j].p > 0.0f) return c[j].id;
    return c[0].id;
}

int32_t nuage_sampler_candidates(nuage_sampler *s, const float *logits,
                                 int32_t *ids, float *probs, int32_t cap) {
    if (!s || !logits || cap < 0 || (cap > 0 && (!ids || !probs))) return NUAGE_E_INVAL;
    double z;
    int32_t m = nuage__prepare(s, logits, NULL, &z);
    if (m < 0) return m;
    for (int32_t j = 0; j < m && j < cap; j++) {
        ids[j] = s->cand[j].id;
        probs[j] = (float)((double)s->cand[j].p / z);
    }
    return m;
}

/* ---- log-probabilities --------------------------------------------------- */

typedef struct {
    int mode;    /* 0 normal, 1 some +inf, 2 nothing finite */
    double lse;  /* mode 0: log-sum-exp */
    double linf; /* mode 1: -log(number of +inf logits) */
} nuage__lsm;

static inline double nuage__lp(const nuage__lsm *L, float v) {
    if (v != v) return -INFINITY;
    switch (L->mode) {
    case 0: return (double)v - L->lse;
    case 1: return v == INFINITY ? L->linf : -INFINITY;
    default: return -INFINITY;
    }
}

/* rank order for logprob lists: a before b */
static inline int nuage__lp_before(float a, int32_t ia, float b, int32_t ib) {
    return a > b || (a == b && ia < ib);
}

static void nuage__lp_sift(int32_t *id, float *lp, int32_t n, int32_t i) {
    /* heap with the LAST-ranked record at the root */
    int32_t xi = id[i];
    float xl = lp[i];
    for (;;) {
        int32_t l = 2 * i + 1;
        if (l >= n) break;
        int32_t r = l + 1;
        int32_t m = (r < n && nuage__lp_before(lp[l], id[l], lp[r], id[r])) ? r : l;
        if (!nuage__lp_before(xl, xi, lp[m], id[m])) break;
        id[i] = id[m];
        lp[i] = lp[m];
        i = m;
    }
    id[i] = xi;
    lp[i] = xl;
}

float nuage_logprobs(const float *logits, int32_t n_vocab, int32_t tok, int k,
                     int32_t *top_ids, float *top_lp) {
    int kk = (k > 0 && top_ids && top_lp) ? k : 0;
    if (!logits || n_vocab <= 0) {
        for (int j = 0; j < kk; j++) {
            top_ids[j] = -1;
            top_lp[j] = -INFINITY;
        }
        return NAN;
    }

    nuage__lsm L = {2, 0.0, 0.0};
    float maxv = -INFINITY;
    int32_t n_inf = 0;
    for (int32_t i = 0; i < n_vocab; i++) {
        float v = logits[i];
        if (v > maxv) maxv = v;
        if (v == INFINITY) n_inf++;
    }
    if (maxv == INFINITY) {
        L.mode = 1;
        L.linf = -log((double)n_inf);
    } else if (maxv > -INFINITY) {
        double sum = 0.0;
        for (int32_t i = 0; i < n_vocab; i++) {
            float v = logits[i];
            if (v == v) sum += exp((double)v - (double)maxv);
        }
        L.mode = 0;
        L.lse = (double)maxv + log(sum);
    }

    if (kk > 0) {
        int32_t cap = kk < n_vocab ? kk : n_vocab;
        int32_t h = 0;
        for (int32_t i = 0; i < n_vocab; i++) {
            float key = (float)nuage__lp(&L, logits[i]);
            if (h < cap) {
                int32_t j = h++;
                while (j > 0) {
                    int32_t pa = (j - 1) / 2;
                    if (!nuage__lp_before(top_lp[pa], top_ids[pa], key, i)) break;
                    top_ids[j] = top_ids[pa];
                    top_lp[j] = top_lp[pa];
                    j = pa;
                }
                top_ids[j] = i;
                top_lp[j] = key;
            } else if (key > top_lp[0]) {
                top_ids[0] = i;
                top_lp[0] = key;
                nuage__lp_sift(top_ids, top_lp, h, 0);
            }
        }
        for (int32_t end = h - 1; end > 0; end--) {
            int32_t ti = top_ids[0];
            float tl = top_lp[0];
            top_ids[0] = top_ids[end];
            top_lp[0] = top_lp[end];
            top_ids[end] = ti;
            top_lp[end] = tl;
            nuage__lp_sift(top_ids, top_lp, end, 0);
        }
        for (int j = cap; j < kk; j++) {
            top_ids[j] = -1;
            top_lp[j] = -INFINITY;
        }
    }

    if (tok < 0 || tok >= n_vocab) return NAN;
    return (float)nuage__lp(&L, logits[tok]);
}
