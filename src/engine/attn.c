/*
 * attn.c - the tiled attention driver (units, tiles, gathering the KV
 * rows), its scalar kernels and the kernel dispatch. See attn.h for the
 * design; attn_avx2.c and attn_avx512.c hold the SIMD tile kernels.
 *
 * Threads take units from a shared counter (units are listed latest
 * position first, so the longest ones start first and the short ones fill
 * in at the end); each unit is computed wholly by one thread in a fixed
 * order, so which thread takes it changes nothing.
 */
#include "engine/attn.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "engine/cpu.h"
#include "engine/quant.h"

/* ---- scalar kernels ------------------------------------------------------------- */

float nuage__attn_exp(float x) {
    /* clamp exactly as max_ps(x, -87) then min_ps(x, 88) do (NaN -> -87) */
    x = x > -87.0f ? x : -87.0f;
    x = x < 88.0f ? x : 88.0f;
    /* x = n ln2 + r, n = round(x / ln2), r by Cody-Waite in two steps */
    float fx = nearbyintf(x * 1.44269504088896341f);
    x = fmaf(-fx, 0.693359375f, x);
    x = fmaf(-fx, -2.12194440e-4f, x);
    /* exp(r) ~ 1 + r + r^2 P(r) */
    float y = 1.9875691500e-4f;
    y = fmaf(y, x, 1.3981999507e-3f);
    y = fmaf(y, x, 8.3334519073e-3f);
    y = fmaf(y, x, 4.1665795894e-2f);
    y = fmaf(y, x, 1.6666665459e-1f);
    y = fmaf(y, x, 5.0000001201e-1f);
    float x2 = x * x, x1 = x + 1.0f;
    y = fmaf(y, x2, x1);
    /* times 2^n through the exponent bits */
    union { uint32_t u; float f; } e = {.u = (uint32_t)((int32_t)fx + 127) << 23};
    return y * e.f;
}

void nuage__attn_tile_scalar(int w, const float *kf, const float *vf, int hd, int hdv, int p0, int n,
                             float scale, const float *qt, const int32_t *lo, const int32_t *hi,
                             float *m, float *l, float *ot, float *pbuf) {
    for (int r = 0; r < w; r++) {
        /* s_k = (q . k_k) * scale, -inf where lane r may not see key k */
        float mx = m[r];
        for (int k = 0; k < NUAGE_ATTN_KT; k++) {
            float s = 0.0f;
            for (int d = 0; d < hd; d++) s = fmaf(qt[(size_t)d * w + r], kf[(size_t)k * hd + d], s);
            s = s * scale;
            int p = p0 + k;
            bool valid = k < n && p >= lo[r] && p < hi[r];
            s = valid ? s : -INFINITY;
            pbuf[k * w + r] = s;
            mx = s > mx ? s : mx;
        }
        /* a = exp(m - m'), 1 while nothing was seen */
        float alpha = mx == -INFINITY ? 1.0f : nuage__attn_exp(m[r] - mx);
        /* p_k = exp(s_k - m'), l = l a + sum_k p_k in key order */
        float sum = l[r] * alpha;
        for (int k = 0; k < NUAGE_ATTN_KT; k++) {
            float s = pbuf[k * w + r];
            float pk = s == -INFINITY ? 0.0f : nuage__attn_exp(s - mx);
            pbuf[k * w + r] = pk;
            sum = sum + pk;
        }
        l[r] = sum;
        m[r] = mx;
        /* o = o a + sum_k p_k v_k in key order */
        for (int dv = 0; dv < hdv; dv++) {
            float o = ot[(size_t)dv * w + r] * alpha;
            for (int k = 0; k < NUAGE_ATTN_KT; k++) o = fmaf(pbuf[k * w + r], vf[(size_t)k * hdv + dv], o);
            ot[(size_t)dv * w + r] = o;
        }
    }
}

static void nuage__attn_tile16_scalar(const float *kf, const float *vf, int hd, int hdv, int p0, int n,
                                      float scale, const float *qt, const int32_t *lo, const int32_t *hi,
                                      float *m, float *l, float *ot, float *pbuf) {
    nuage__attn_tile_scalar(16, kf, vf, hd, hdv, p0, n, scale, qt, lo, hi, m, l, ot, pbuf);
}

static void nuage__attn_load_scalar(nuage_kv_type type, const void *src, int n, float *dst) {
    if (type == NUAGE_KV_F32) {
        memcpy(dst, src, (size_t)n * sizeof(float));
    } else if (type == NUAGE_KV_F16) {
        const uint16_t *h = src;
        for (int i = 0; i < n; i++) dst[i] = nuage_fp16_to_fp32(h[i]);
    } else {
        const nuage_block_q8_0 *b = src;
        for (int i = 0; i < n / NUAGE_QK8_0; i++) {
            float d = nuage_fp16_to_fp32(b[i].d);
            for (int j = 0; j < NUAGE_QK8_0; j++) dst[i * NUAGE_QK8_0 + j] = d * (float)b[i].qs[j];
        }
    }
}

/* ---- dispatch --------------------------------------------------------------------- */

static nuage__attn_kernels g_scalar, g_avx2, g_avx512;
static bool g_have_avx2, g_have_avx512;
static const nuage__attn_kernels *g_best;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void nuage__attn_init(void) {
    g_scalar = (nuage__attn_kernels){.w = 16, .tile = nuage__attn_tile16_scalar, .tile8 = NULL,
                                     .load = nuage__attn_load_scalar};
    g_best = &g_scalar;
    int level = nuage_cpu_level();
#if defined(NUAGE_X86)
    if (level >= 1) {
        nuage__attn_fill_avx2(&g_avx2);
        g_have_avx2 = true;
    }
    if (level >= 2) {
        nuage__attn_fill_avx512(&g_avx512);
        g_avx512.tile8 = g_avx2.tile;
        g_have_avx512 = true;
    }
#endif
    /* NUAGE_SIMD_MAX=0|1|2 caps the level, as for the matmul kernels */
    const char *cap = getenv("NUAGE_SIMD_MAX");
    if (cap && *cap >= '0' && *cap <= '2' && !cap[1] && *cap - '0' < level) level = *cap - '0';
    if (level >= 2 && g_have_avx512) g_best = &g_avx512;
    else if (level >= 1 && g_have_avx2) g_best = &g_avx2;
}

const nuage__attn_kernels *nuage__attn_kernels_get(void) {
    pthread_once(&g_once, nuage__attn_init);
    return g_best;
}

const nuage__attn_kernels *nuage__attn_kernels_level(int level) {
    pthread_once(&g_once, nuage__attn_init);
    if (level == 0) return &g_scalar;
    if (level == 1) return g_have_avx2 ? &g_avx2 : NULL;
    if (level == 2) return g_have_avx512 ? &g_avx512 : NULL;
    return NULL;
}

/* ---- the driver -------------------------------------------------------------------- */

bool nuage__attn_tiled_ok(int hd, int hdv, nuage_kv_type type) {
    if (hd <= 0 || hdv <= 0 || hd > NUAGE_ATTN_MAXD || hdv > NUAGE_ATTN_MAXD || hdv % 16) return false;
    if (type == NUAGE_KV_Q8_0 && (hd % NUAGE_QK8_0 || hdv % NUAGE_QK8_0)) return false;
    return true;
}

/* Per-thread scratch: qt (ROWS, hd), ot (ROWS, hdv), m, l, lo, hi (ROWS),
 * kf (KT, hd), vf (KT, hdv), pbuf (KT, 16); in floats, 64-byte aligned. */
static size_t nuage__attn_scratch_floats(int hd, int hdv) {
    size_t n = (size_t)NUAGE_ATTN_ROWS * (size_t)(hd + hdv + 4) + (size_t)NUAGE_ATTN_KT * (size_t)(hd + hdv + 16);
    return (n + 15) & ~(size_t)15;
}

size_t nuage__attn_scratch_bytes(int hd, int hdv) {
    return nuage__attn_scratch_floats(hd, hdv) * sizeof(float);
}

typedef struct {
    int32_t seq, hk;
    int32_t first;  /* index in order[] of the sequence's first batch token */
    int32_t r0, r1; /* rows [r0, r1) of the sequence's (token, head) rows */
} nuage__attn_unit;

size_t nuage__attn_unit_bytes(void) { return sizeof(nuage__attn_unit); }

size_t nuage__attn_units_cap(int n_batch, int n_head, int n_head_kv) {
    size_t group = (size_t)(n_head / n_head_kv);
    return (size_t)n_head_kv * ((size_t)n_batch * group / NUAGE_ATTN_ROWS_MIN + (size_t)n_batch + 1);
}

typedef struct {
    nuage_context *c;
    const nuage_batch *b;
    int il;
    const int32_t *order;        /* batch tokens grouped by sequence */
    const nuage__attn_unit *units;
    int n_units;
    atomic_int next;
} nuage__attn_job;

/* Gather the tile's rows [t0, t0 + KT) of one KV head, widened to f32;
 * positions outside [kmin, kmax) are zero. */
static void nuage__attn_gather(const nuage__kv *kv, const nuage__attn_kernels *kn, int il, int seq, int hk,
                               int hd, int hdv, int t0, int kmin, int kmax, float *kf, float *vf) {
    const size_t ko = kv->type == NUAGE_KV_Q8_0 ? (size_t)hk * hd / NUAGE_QK8_0 * sizeof(nuage_block_q8_0)
                                                 : (size_t)hk * hd * kv->elem;
    const size_t vo = kv->type == NUAGE_KV_Q8_0 ? (size_t)hk * hdv / NUAGE_QK8_0 * sizeof(nuage_block_q8_0)
                                                 : (size_t)hk * hdv * kv->elem;
    for (int k = 0; k < NUAGE_ATTN_KT; k++) {
        int p = t0 + k;
        if (p < kmin || p >= kmax) {
            memset(kf + (size_t)k * hd, 0, (size_t)hd * sizeof(float));
            memset(vf + (size_t)k * hdv, 0, (size_t)hdv * sizeof(float));
            continue;
        }
        kn->load(kv->type, (const uint8_t *)nuage__kv_k(kv, il, seq, p) + ko, hd, kf + (size_t)k * hd);
        kn->load(kv->type, (const uint8_t *)nuage__kv_v(kv, il, seq, p) + vo, hdv, vf + (size_t)k * hdv);
    }
}

static void nuage__attn_unit_run(nuage__attn_job *j, const nuage__attn_unit *u, float *scratch) {
    nuage_context *c = j->c;
    const nuage_hparams *hp = &c->m->hp;
    const nuage_layer *L = &c->m->layers[j->il];
    const nuage__attn_kernels *kn = nuage__attn_kernels_get();
    const int H = hp->n_head, hd = hp->head_dim_k, hdv = hp->head_dim_v;
    const int group = hp->n_head / hp->n_head_kv;
    const float *sinks = (const float *)L->attn_sinks.data; /* (H) or NULL */
    const int rows = u->r1 - u->r0;
    /* lane width: an 8-lane kernel for a unit of at most 8 rows (decode) */
    nuage__attn_tile_fn tile = kn->tile;
    int W = kn->w;
    if (rows <= 8 && kn->tile8) { tile = kn->tile8; W = 8; }
    const int ng = (rows + W - 1) / W, R = ng * W;
    float *qt = scratch;                             /* (ng, hd, W) */
    float *ot = qt + (size_t)NUAGE_ATTN_ROWS * hd;   /* (ng, hdv, W) */
    float *m = ot + (size_t)NUAGE_ATTN_ROWS * hdv;   /* (R) */
    float *l = m + NUAGE_ATTN_ROWS;                  /* (R) */
    int32_t *lo = (int32_t *)(l + NUAGE_ATTN_ROWS);  /* (R) */
    int32_t *hi = lo + NUAGE_ATTN_ROWS;              /* (R) */
    float *kf = (float *)(hi + NUAGE_ATTN_ROWS);     /* (KT, hd) */
    float *vf = kf + (size_t)NUAGE_ATTN_KT * hd;     /* (KT, hdv) */
    float *pbuf = vf + (size_t)NUAGE_ATTN_KT * hdv;  /* (KT, 16) */
    /* pack the rows: qt[g][d][lane] = q of (token, head); visible [lo, hi) */
    memset(qt, 0, (size_t)R * hd * sizeof(float));
    memset(ot, 0, (size_t)R * hdv * sizeof(float));
    int kmin = INT32_MAX, kmax = 0;
    for (int i = 0; i < R; i++) {
        m[i] = -INFINITY;
        l[i] = 0.0f;
        lo[i] = hi[i] = 0;
        if (i >= rows) continue;
        int gi = u->r0 + i, t = j->order[u->first + gi / group], h = u->hk * group + gi % group;
        int n = j->b->pos[t] + 1;
        const float *q = c->q + ((size_t)t * H + h) * hd;
        float *dst = qt + (size_t)(i / W) * hd * W + i % W;
        for (int d = 0; d < hd; d++) dst[(size_t)d * W] = q[d];
        hi[i] = n;
        lo[i] = L->swa && hp->n_swa > 0 && n > hp->n_swa ? n - hp->n_swa : 0;
        if (sinks) { m[i] = sinks[h]; l[i] = 1.0f; }
        if (lo[i] < kmin) kmin = lo[i];
        if (hi[i] > kmax) kmax = hi[i];
    }
    /* every tile of keys any row sees, in position order */
    for (int t0 = kmin / NUAGE_ATTN_KT * NUAGE_ATTN_KT; t0 < kmax; t0 += NUAGE_ATTN_KT) {
        int nk = kmax - t0 < NUAGE_ATTN_KT ? kmax - t0 : NUAGE_ATTN_KT;
        nuage__attn_gather(&c->kv, kn, j->il, u->seq, u->hk, hd, hdv, t0, kmin, kmax, kf, vf);
        for (int g = 0; g < ng; g++)
            tile(kf, vf, hd, hdv, t0, nk, hp->kq_scale, qt + (size_t)g * hd * W, lo + g * W, hi + g * W,
                 m + g * W, l + g * W, ot + (size_t)g * hdv * W, pbuf);
    }
    /* out = o * (1 / l) */
    for (int i = 0; i < rows; i++) {
        int gi = u->r0 + i, t = j->order[u->first + gi / group], h = u->hk * group + gi % group;
        float *out = c->att + ((size_t)t * H + h) * hdv;
        const float *o = ot + (size_t)(i / W) * hdv * W + i % W;
        float inv = 1.0f / l[i];
        for (int dv = 0; dv < hdv; dv++) out[dv] = o[(size_t)dv * W] * inv;
    }
}

static void nuage__attn_worker_tiled(void *arg, int ith, int nth) {
    (void)nth;
    nuage__attn_job *j = arg;
    const nuage_hparams *hp = &j->c->m->hp;
    float *scratch = (float *)j->c->attn_scratch + (size_t)ith * nuage__attn_scratch_floats(hp->head_dim_k, hp->head_dim_v);
    for (;;) {
        int u = atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed);
        if (u >= j->n_units) break;
        nuage__attn_unit_run(j, &j->units[u], scratch);
    }
}

void nuage__attn_tiled(nuage_context *c, const nuage_batch *b, int il) {
    const nuage_hparams *hp = &c->m->hp;
    const int T = b->n_tokens, S = c->n_seq_max, Hkv = hp->n_head_kv;
    const int group = hp->n_head / hp->n_head_kv;
    int32_t *cnt = c->attn_seqoff;  /* (S + 1) */
    int32_t *order = c->attn_order; /* (T) */
    nuage__attn_unit *units = (nuage__attn_unit *)c->attn_units;
    /* order: batch tokens grouped by sequence, batch order inside (the
     * batch gives each sequence increasing positions) */
    memset(cnt, 0, (size_t)(S + 1) * sizeof *cnt);
    for (int t = 0; t < T; t++) cnt[b->seq[t] + 1]++;
    for (int s = 0; s < S; s++) cnt[s + 1] += cnt[s];
    for (int t = 0; t < T; t++) order[cnt[b->seq[t]]++] = t;
    for (int s = S; s > 0; s--) cnt[s] = cnt[s - 1];
    cnt[0] = 0;
    /* rows per unit: ROWS, or fewer so that each thread gets about 4 units */
    long want = (long)T * group * Hkv / (4L * nuage__pool_size(c->pool));
    int per = want >= NUAGE_ATTN_ROWS ? NUAGE_ATTN_ROWS : (int)(want / 16 * 16);
    if (per < NUAGE_ATTN_ROWS_MIN) per = NUAGE_ATTN_ROWS_MIN;
    /* units: per KV head and sequence, `per` rows at a time, last first;
     * consecutive units share a head's K/V rows (they stay in cache) */
    int nu = 0;
    for (int hk = 0; hk < Hkv; hk++)
        for (int s = 0; s < S; s++) {
            int nr = (cnt[s + 1] - cnt[s]) * group;
            for (int r1 = nr; r1 > 0; r1 -= per) {
                int r0 = r1 > per ? r1 - per : 0;
                units[nu++] = (nuage__attn_unit){.seq = s, .hk = hk, .first = cnt[s], .r0 = r0, .r1 = r1};
            }
        }
    nuage__attn_job job = {.c = c, .b = b, .il = il, .order = order, .units = units, .n_units = nu};
    atomic_init(&job.next, 0);
    nuage__pool_run(c->pool, nuage__attn_worker_tiled, &job);
}
