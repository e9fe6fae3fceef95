/*
 * quota.c - the sliding-window rate limiter (quota.h).
 *
 * Each tenant is a `bucket` (key (tenant, "")), and so is each (tenant,
 * deployment) pair whose deployment has limits of its own: a ring buffer of the
 * requests admitted in the last 60 s, oldest first, each entry holding its
 * admission time, its tokens (the reservation, replaced by the actual use
 * on settle) and a per-bucket sequence number, plus running sums of the
 * live requests and tokens. Expiring old entries pops from the front, so
 * every call costs O(expired entries) amortised O(1), and admission is
 * O(1) unless refused, when computing the retry time walks the log from
 * the oldest entry until enough has expired for this request to fit.
 *
 * A request admitted into two windows (the tenant's and the deployment's)
 * has one entry in each; the tenant's entry carries the ticket of the
 * other (`link`), so settle and cancel update both.
 *
 * Tickets: (bucket index + 1) << 40 | sequence. The sequence numbers in a
 * ring are increasing, so settle and cancel find their entry by binary
 * search; an entry already expired is simply not found. A settled or
 * cancelled entry is flagged so a second call does nothing.
 *
 * Buckets are found through an open-addressing hash table on (tenant,
 * deployment) and stay for the limiter's life, so a ticket's bucket index
 * never changes meaning.
 */
#include "platform/quota.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nuage/nuage.h"

#define SEQ_BITS 40
#define SEQ_MASK ((UINT64_C(1) << SEQ_BITS) - 1)
#define MAX_BUCKETS (1 << 23)

typedef struct {
    int64_t t_ms;
    int64_t tokens;
    uint64_t seq;      /* SEQ_BITS of sequence, plus the flags below */
    uint64_t link;     /* ticket of the same request's entry in a second window, or 0 */
} entry;

#define F_SETTLED (UINT64_C(1) << 62)
#define F_CANCELLED (UINT64_C(1) << 63)

typedef struct {
    int64_t tenant;
    char *deployment;
    uint64_t hash;
    entry *ring;
    size_t cap, head, count;   /* cap is a power of two (or 0) */
    int64_t live_requests, live_tokens;
    uint64_t next_seq;
} bucket;

struct nuage_quota {
    pthread_mutex_t mu;
    bucket **buckets;          /* by index (ticket order) */
    size_t n_buckets, cap_buckets;
    uint32_t *table;           /* open addressing: bucket index + 1, 0 = empty */
    size_t table_cap;          /* power of two */
    nuage_quota_lookup_fn lookup;  /* per-deployment limits (may be NULL) */
    void *lookup_ud;
    const nuage_quota_shared_ops *shared;  /* outside keeper of the windows, or NULL */
    void *shared_ud;
    /* nuage_quota_check_stats: admission times */
    _Atomic uint64_t hist[NUAGE_QUOTA_HIST];
    _Atomic uint64_t checks, max_us;
};

static uint64_t key_hash(int64_t tenant, const char *d) {
    uint64_t h = 1469598103934665603ull ^ (uint64_t)tenant;
    h *= 1099511628211ull;
    for (; *d; d++) {
        h ^= (unsigned char)*d;
        h *= 1099511628211ull;
    }
    return h ^ (h >> 29);
}

nuage_quota *nuage_quota_new(void) {
    nuage_quota *q = calloc(1, sizeof *q);
    if (!q) return NULL;
    if (pthread_mutex_init(&q->mu, NULL) != 0) {
        free(q);
        return NULL;
    }
    return q;
}

void nuage_quota_free(nuage_quota *q) {
    if (!q) return;
    if (q->shared && q->shared->close) q->shared->close(q->shared_ud);
    for (size_t i = 0; i < q->n_buckets; i++) {
        free(q->buckets[i]->ring);
        free(q->buckets[i]->deployment);
        free(q->buckets[i]);
    }
    free(q->buckets);
    free(q->table);
    pthread_mutex_destroy(&q->mu);
    free(q);
}

/* Rebuild the hash table with new_cap slots; false when out of memory. */
static bool table_grow(nuage_quota *q, size_t new_cap) {
    uint32_t *t = calloc(new_cap, sizeof *t);
    if (!t) return false;
    for (size_t i = 0; i < q->n_buckets; i++) {
        size_t j = q->buckets[i]->hash & (new_cap - 1);
        while (t[j]) j = (j + 1) & (new_cap - 1);
        t[j] = (uint32_t)i + 1;
    }
    free(q->table);
    q->table = t;
    q->table_cap = new_cap;
    return true;
}

/* Find (or, when create, add) the bucket of (tenant, deployment); its index
 * in *idx. NULL when absent (and !create) or out of memory. */
static bucket *find_bucket(nuage_quota *q, int64_t tenant, const char *d, bool create,
                           size_t *idx) {
    uint64_t h = key_hash(tenant, d);
    if (q->table_cap) {
        for (size_t j = h & (q->table_cap - 1); q->table[j]; j = (j + 1) & (q->table_cap - 1)) {
            bucket *b = q->buckets[q->table[j] - 1];
            if (b->hash == h && b->tenant == tenant && !strcmp(b->deployment, d)) {
                *idx = q->table[j] - 1;
                return b;
            }
        }
    }
    if (!create || q->n_buckets >= MAX_BUCKETS) return NULL;
    /* Keep the table at most half full. */
    if ((q->n_buckets + 1) * 2 > q->table_cap &&
        !table_grow(q, q->table_cap ? q->table_cap * 2 : 64))
        return NULL;
    if (q->n_buckets == q->cap_buckets) {
        size_t cap = q->cap_buckets ? q->cap_buckets * 2 : 16;
        bucket **bb = realloc(q->buckets, cap * sizeof *bb);
        if (!bb) return NULL;
        q->buckets = bb;
        q->cap_buckets = cap;
    }
    bucket *b = calloc(1, sizeof *b);
    if (!b || !(b->deployment = strdup(d))) {
        free(b);
        return NULL;
    }
    b->tenant = tenant;
    b->hash = h;
    b->next_seq = 1;
    size_t j = h & (q->table_cap - 1);
    while (q->table[j]) j = (j + 1) & (q->table_cap - 1);
    q->table[j] = (uint32_t)q->n_buckets + 1;
    *idx = q->n_buckets;
    q->buckets[q->n_buckets++] = b;
    return b;
}

static entry *at(bucket *b, size_t i) { return &b->ring[(b->head + i) & (b->cap - 1)]; }

/* Drop the entries that left the window ending at now_ms. */
static void expire(bucket *b, int64_t now_ms) {
    while (b->count > 0) {
        entry *e = at(b, 0);
        if (e->t_ms > now_ms - NUAGE_QUOTA_WINDOW_MS) break;
        if (!(e->seq & F_CANCELLED)) {
            b->live_requests--;
            b->live_tokens -= e->tokens;
        }
        b->head = (b->head + 1) & (b->cap - 1);
        b->count--;
    }
}

/* Append an entry (growing the ring); false when out of memory. */
static bool push(bucket *b, int64_t t_ms, int64_t tokens, uint64_t seq, uint64_t link) {
    if (b->count == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 16;
        entry *r = malloc(cap * sizeof *r);
        if (!r) return false;
        for (size_t i = 0; i < b->count; i++) r[i] = *at(b, i);
        free(b->ring);
        b->ring = r;
        b->cap = cap;
        b->head = 0;
    }
    *at(b, b->count++) = (entry){t_ms, tokens, seq, link};
    b->live_requests++;
    b->live_tokens += tokens;
    return true;
}

/* Milliseconds until the newest live entry (with tokens, when
 * need_tokens) leaves the window: when the window is back to full. */
static int64_t reset_ms(bucket *b, int64_t now_ms, bool need_tokens) {
    for (size_t i = b->count; i-- > 0;) {
        entry *e = at(b, i);
        if (e->seq & F_CANCELLED) continue;
        if (need_tokens && e->tokens <= 0) continue;
        int64_t r = e->t_ms + NUAGE_QUOTA_WINDOW_MS - now_ms;
        return r > 0 ? r : 0;
    }
    return 0;
}

static void fill_info(nuage_quota_info *info, bucket *b, int64_t tpm, int64_t rpm,
                      int64_t now_ms) {
    if (!info) return;
    int64_t req = b ? b->live_requests : 0, tok = b ? b->live_tokens : 0;
    info->limit_requests = rpm;
    info->limit_tokens = tpm;
    info->remaining_requests = rpm > 0 ? (rpm > req ? rpm - req : 0) : -1;
    info->remaining_tokens = tpm > 0 ? (tpm > tok ? tpm - tok : 0) : -1;
    info->reset_requests_ms = rpm > 0 && b ? reset_ms(b, now_ms, false) : 0;
    info->reset_tokens_ms = tpm > 0 && b ? reset_ms(b, now_ms, true) : 0;
}

/* Would a request of `tokens` fit after the first `dropped` entries go,
 * which free `freed_req` requests and `freed_tok` tokens? */
static bool fits(const bucket *b, int64_t tpm, int64_t rpm, int64_t tokens, size_t dropped,
                 int64_t freed_req, int64_t freed_tok) {
    if (rpm > 0 && b->live_requests - freed_req + 1 > rpm) return false;
    if (tpm > 0 && b->live_tokens - freed_tok + tokens > tpm) return false;
    return b->count - dropped < NUAGE_QUOTA_MAX_LOG;
}

/* Wait until the request fits, given no new traffic (> 0). */
static int64_t retry_after(bucket *b, int64_t tpm, int64_t rpm, int64_t tokens, int64_t now_ms) {
    int64_t freed_req = 0, freed_tok = 0;
    for (size_t i = 0; i < b->count; i++) {
        entry *e = at(b, i);
        if (!(e->seq & F_CANCELLED)) {
            freed_req++;
            freed_tok += e->tokens;
        }
        if (fits(b, tpm, rpm, tokens, i + 1, freed_req, freed_tok)) {
            int64_t r = e->t_ms + NUAGE_QUOTA_WINDOW_MS - now_ms;
            return r > 0 ? r : 1;
        }
    }
    return NUAGE_QUOTA_WINDOW_MS;  /* unreachable: an empty window always fits */
}

void nuage_quota_set_lookup(nuage_quota *q, nuage_quota_lookup_fn lookup, void *ud) {
    if (!q) return;
    pthread_mutex_lock(&q->mu);
    q->lookup = lookup;
    q->lookup_ud = ud;
    pthread_mutex_unlock(&q->mu);
}

void nuage_quota_set_shared(nuage_quota *q, const nuage_quota_shared_ops *ops, void *ud) {
    if (!q) return;
    pthread_mutex_lock(&q->mu);
    q->shared = ops;
    q->shared_ud = ud;
    pthread_mutex_unlock(&q->mu);
}

/* One window a request must fit: its bucket and limits. */
typedef struct {
    const char *key;   /* "" for the tenant's own window, else the deployment */
    int64_t tpm, rpm;
    bucket *b;
    size_t idx;
} window;

/* The tighter of two infos, dimension by dimension (a has one; b may be unlimited). */
static void tighter(nuage_quota_info *a, const nuage_quota_info *b) {
    if (b->limit_requests > 0 && (a->limit_requests == 0 || b->remaining_requests < a->remaining_requests)) {
        a->limit_requests = b->limit_requests;
        a->remaining_requests = b->remaining_requests;
        a->reset_requests_ms = b->reset_requests_ms;
    }
    if (b->limit_tokens > 0 && (a->limit_tokens == 0 || b->remaining_tokens < a->remaining_tokens)) {
        a->limit_tokens = b->limit_tokens;
        a->remaining_tokens = b->remaining_tokens;
        a->reset_tokens_ms = b->reset_tokens_ms;
    }
    if (b->retry_after_ms < 0 || (a->retry_after_ms >= 0 && b->retry_after_ms > a->retry_after_ms))
        a->retry_after_ms = b->retry_after_ms;
}

static void fill_info_all(nuage_quota_info *info, window *w, int nw, int64_t now_ms) {
    if (!info) return;
    fill_info(info, w[0].b, w[0].tpm, w[0].rpm, now_ms);
    for (int i = 1; i < nw; i++) {
        nuage_quota_info o;
        memset(&o, 0, sizeof o);
        fill_info(&o, w[i].b, w[i].tpm, w[i].rpm, now_ms);
        tighter(info, &o);
    }
}

static uint64_t take_seq(bucket *b) {
    uint64_t seq = b->next_seq;
    b->next_seq = (seq + 1) & SEQ_MASK;
    if (!b->next_seq) b->next_seq = 1;
    return seq;
}

static int admit_inner(nuage_quota *q, int64_t tenant, const char *deployment, int64_t tpm_limit,
                       int64_t rpm_limit, int64_t tokens, int64_t now_ms, nuage_quota_info *info,
                       uint64_t *ticket);

static uint64_t quota_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* The check, timed (the histogram of nuage_quota_check_stats). */
int nuage_quota_admit(nuage_quota *q, int64_t tenant, const char *deployment, int64_t tpm_limit,
                      int64_t rpm_limit, int64_t tokens, int64_t now_ms, nuage_quota_info *info,
                      uint64_t *ticket) {
    uint64_t t0 = quota_us();
    int rc = admit_inner(q, tenant, deployment, tpm_limit, rpm_limit, tokens, now_ms, info, ticket);
    if (!q) return rc;
    uint64_t us = quota_us() - t0, b = us / NUAGE_QUOTA_HIST_US;
    atomic_fetch_add(&q->hist[b < NUAGE_QUOTA_HIST ? b : NUAGE_QUOTA_HIST - 1], 1);
    atomic_fetch_add(&q->checks, 1);
    uint64_t m = atomic_load(&q->max_us);
    while (us > m && !atomic_compare_exchange_weak(&q->max_us, &m, us)) {
    }
    return rc;
}

void nuage_quota_check_stats(nuage_quota *q, nuage_quota_check_timing *out) {
    memset(out, 0, sizeof *out);
    if (!q) return;
    for (int i = 0; i < NUAGE_QUOTA_HIST; i++) out->hist[i] = atomic_load(&q->hist[i]);
    out->checks = atomic_load(&q->checks);
    out->max_us = (double)atomic_load(&q->max_us);
    uint64_t n = 0;
    for (int i = 0; i < NUAGE_QUOTA_HIST; i++) n += out->hist[i];
    uint64_t c = 0, w50 = (n + 1) / 2, w99 = n - n / 100;
    for (int i = 0; i < NUAGE_QUOTA_HIST && n; i++) {
        c += out->hist[i];
        double ub = (double)((i + 1) * NUAGE_QUOTA_HIST_US);
        if (!out->p50_us && c >= w50) out->p50_us = ub;
        if (!out->p99_us && c >= w99) out->p99_us = ub;
    }
}

static int admit_inner(nuage_quota *q, int64_t tenant, const char *deployment, int64_t tpm_limit,
                       int64_t rpm_limit, int64_t tokens, int64_t now_ms, nuage_quota_info *info,
                       uint64_t *ticket) {
    if (ticket) *ticket = 0;
    if (info) memset(info, 0, sizeof *info);
    if (!q || tokens < 0 || tpm_limit < 0 || rpm_limit < 0) return NUAGE_E_INVAL;
    if (!deployment) deployment = "";
    /* The deployment's own limits, read without our lock (leaf lock). */
    int64_t dtpm = 0, drpm = 0;
    pthread_mutex_lock(&q->mu);
    nuage_quota_lookup_fn lookup = q->lookup;
    void *lud = q->lookup_ud;
    pthread_mutex_unlock(&q->mu);
    if (*deployment && lookup && lookup(lud, deployment, &dtpm, &drpm)) dtpm = drpm = 0;
    if (dtpm < 0) dtpm = 0;
    if (drpm < 0) drpm = 0;
    if (tpm_limit == 0 && rpm_limit == 0 && dtpm == 0 && drpm == 0) {
        fill_info(info, NULL, 0, 0, now_ms);
        return 0;
    }
    if (q->shared) /* set before sharing: read without the lock */
        return q->shared->admit(q->shared_ud, tenant, deployment, tpm_limit, rpm_limit, dtpm, drpm, tokens,
                                info, ticket);
    pthread_mutex_lock(&q->mu);
    int rc = 0;
    window w[2];
    int nw = 0;
    if (tpm_limit || rpm_limit) w[nw++] = (window){.key = "", .tpm = tpm_limit, .rpm = rpm_limit};
    if (dtpm || drpm) w[nw++] = (window){.key = deployment, .tpm = dtpm, .rpm = drpm};
    for (int i = 0; i < nw; i++) {
        w[i].b = find_bucket(q, tenant, w[i].key, true, &w[i].idx);
        if (!w[i].b) {
            rc = NUAGE_E_NOMEM;
            goto out;
        }
        expire(w[i].b, now_ms);
    }
    for (int i = 0; i < nw; i++)
        if (w[i].tpm > 0 && tokens > w[i].tpm) rc = NUAGE_E_RANGE;
    for (int i = 0; !rc && i < nw; i++)
        if (!fits(w[i].b, w[i].tpm, w[i].rpm, tokens, 0, 0, 0)) rc = NUAGE_E_BUSY;
    if (rc) {
        fill_info_all(info, w, nw, now_ms);
        if (info) {
            info->retry_after_ms = 0;
            for (int i = 0; i < nw; i++) {
                int64_t r = w[i].tpm > 0 && tokens > w[i].tpm ? -1
                            : fits(w[i].b, w[i].tpm, w[i].rpm, tokens, 0, 0, 0)
                                ? 0
                                : retry_after(w[i].b, w[i].tpm, w[i].rpm, tokens, now_ms);
                if (r < 0 || (info->retry_after_ms >= 0 && r > info->retry_after_ms)) info->retry_after_ms = r;
            }
        }
        goto out;
    }
    /* The second window first, so that the first entry can link to it. */
    uint64_t link = 0;
    if (nw == 2) {
        uint64_t seq = w[1].b->next_seq;
        if (!push(w[1].b, now_ms, tokens, seq, 0)) {
            rc = NUAGE_E_NOMEM;
            goto out;
        }
        take_seq(w[1].b);
        link = ((uint64_t)(w[1].idx + 1) << SEQ_BITS) | seq;
    }
    uint64_t seq = w[0].b->next_seq;
    if (!push(w[0].b, now_ms, tokens, seq, link)) {
        if (link) { /* undo the second window's entry */
            bucket *b1 = w[1].b;
            b1->count--;
            b1->live_requests--;
            b1->live_tokens -= tokens;
        }
        rc = NUAGE_E_NOMEM;
        goto out;
    }
    take_seq(w[0].b);
    fill_info_all(info, w, nw, now_ms);
    if (ticket) *ticket = ((uint64_t)(w[0].idx + 1) << SEQ_BITS) | seq;
out:
    pthread_mutex_unlock(&q->mu);
    return rc;
}

/* The live entry of ticket (lock held; expired first), or NULL. */
static entry *find_ticket(nuage_quota *q, uint64_t ticket, int64_t now_ms, bucket **bp) {
    size_t idx = (size_t)(ticket >> SEQ_BITS);
    uint64_t seq = ticket & SEQ_MASK;
    if (idx == 0 || idx > q->n_buckets || seq == 0) return NULL;
    bucket *b = q->buckets[idx - 1];
    expire(b, now_ms);
    /* Sequence numbers increase along the ring (a wrap after 2^40 requests
     * to one pair would only make an old ticket miss). */
    size_t lo = 0, hi = b->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        uint64_t s = at(b, mid)->seq & SEQ_MASK;
        if (s == seq) {
            entry *e = at(b, mid);
            if (e->seq & (F_SETTLED | F_CANCELLED)) return NULL;
            *bp = b;
            return e;
        }
        if (s < seq) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

void nuage_quota_settle(nuage_quota *q, uint64_t ticket, int64_t actual_tokens, int64_t now_ms) {
    if (!q || !ticket) return;
    if (actual_tokens < 0) actual_tokens = 0;
    if (q->shared) {
        q->shared->settle(q->shared_ud, ticket, actual_tokens);
        return;
    }
    pthread_mutex_lock(&q->mu);
    /* The entry, then the linked one in the second window (if any). */
    for (int hop = 0; ticket && hop < 2; hop++) {
        bucket *b;
        entry *e = find_ticket(q, ticket, now_ms, &b);
        if (!e) break;
        b->live_tokens += actual_tokens - e->tokens;
        e->tokens = actual_tokens;
        e->seq |= F_SETTLED;
        ticket = e->link;
    }
    pthread_mutex_unlock(&q->mu);
}

void nuage_quota_cancel(nuage_quota *q, uint64_t ticket, int64_t now_ms) {
    if (!q || !ticket) return;
    if (q->shared) {
        q->shared->cancel(q->shared_ud, ticket);
        return;
    }
    pthread_mutex_lock(&q->mu);
    for (int hop = 0; ticket && hop < 2; hop++) {
        bucket *b;
        entry *e = find_ticket(q, ticket, now_ms, &b);
        if (!e) break;
        b->live_requests--;
        b->live_tokens -= e->tokens;
        e->seq |= F_CANCELLED;
        ticket = e->link;
    }
    pthread_mutex_unlock(&q->mu);
}

static int usage_of(nuage_quota *q, int64_t tenant, const char *key, int64_t now_ms, int64_t *requests,
                    int64_t *tokens) {
    if (!q) return NUAGE_E_INVAL;
    if (q->shared) return q->shared->usage(q->shared_ud, tenant, key, requests, tokens);
    pthread_mutex_lock(&q->mu);
    size_t idx;
    bucket *b = find_bucket(q, tenant, key, false, &idx);
    if (b) expire(b, now_ms);
    if (requests) *requests = b ? b->live_requests : 0;
    if (tokens) *tokens = b ? b->live_tokens : 0;
    pthread_mutex_unlock(&q->mu);
    return 0;
}

int nuage_quota_usage(nuage_quota *q, int64_t tenant, const char *deployment, int64_t now_ms,
                      int64_t *requests, int64_t *tokens) {
    (void)deployment;
    return usage_of(q, tenant, "", now_ms, requests, tokens);
}

int nuage_quota_usage_on(nuage_quota *q, int64_t tenant, const char *deployment, int64_t now_ms,
                         int64_t *requests, int64_t *tokens) {
    if (!deployment || !*deployment) return NUAGE_E_INVAL;
    return usage_of(q, tenant, deployment, now_ms, requests, tokens);
}
