/*
 * quota_slices.c - the cluster's shared TPM / RPM windows with leased
 * slices: the database off the hot path (quota.h "Shared windows";
 * nuage_quota_use_store_sliced; the exact per-request keeper is
 * quota_shared.c).
 *
 * Idea. Instead of one database round trip per request, a replica leases
 * a small slice of a tenant's window from PostgreSQL in one statement
 * (nuage_quota_lease: one row holding up to S requests and T tokens, as
 * much as fits, counted in the shared window like S requests), admits
 * requests locally from it, and gives back what it did not use when the
 * lease ends (after lease_ms, or when the limiter closes). While the
 * window is full, the database's answer ("retry in N ms") is remembered
 * and requests are refused locally until then: a refused request costs no
 * round trip either.
 *
 * Overshoot bound. The database never holds more than the limit in
 * reservations: a slice is granted only from what is free, and admissions
 * from it never exceed it. What a slice changes is *when* its requests
 * count: all at the lease's time, though they are admitted up to lease_ms
 * later, so they leave the window up to lease_ms early. Each replica holds
 * at most one live slice per (tenant, deployment window) at a time (a new
 * one is leased only when the old one is spent or expired, and the old
 * one's unused part is given back first), so in any 60-s window of
 * admission times the requests admitted exceed the limit by at most the
 * slices live at its start: N replicas x S requests (and N x T tokens).
 * S and T are a fraction f of the limits (S = max(1, floor(f x rpm)),
 * T = max(request, floor(f x tpm))), so the overshoot is at most N x f of
 * the limit, plus one request's reservation per replica for tokens. With
 * f = 0.005 and 3 replicas: 1.5 % (9 of 600 requests, 900 of 60,000
 * tokens). A limit small enough that f x limit < 1 leases one request at a
 * time: exactly the exact keeper (rpm 6 stays exact).
 *
 * Tickets are this replica's own (a hash table of admitted requests): a
 * settle or cancel while the request's slice is live gives the unused
 * reservation back to the slice (no I/O); after the slice ended it is one
 * UPDATE of the slice's row (off the request's path). Unlike the exact
 * keeper, a ticket cannot be settled by another replica.
 *
 * Threads. One mutex for the slices and tickets; a lease (a database
 * round trip) is taken with it released, under a per-slice `leasing` flag
 * that makes other threads of the same tenant wait for its answer rather
 * than lease twice. A reaper thread gives back expired slices every
 * lease_ms / 4 so an idle replica does not sit on part of a window.
 * Failure: the database unreachable when a lease is needed fails closed
 * (NUAGE_E_IO), as the exact keeper.
 *
 * Busy tenants (slices of 2 requests or more): the next slice is leased
 * by the background thread as soon as one is spent, and when the window
 * was full its next try is the background thread's too; a request that
 * finds that lease in flight is refused at once with retry-after 25 ms
 * instead of waiting for the database. So a busy tenant's requests never
 * wait for a round trip; only the first request of a tenant idle for two
 * leases (or any request under a limit too small for slices of 2) asks
 * the database itself. This keeps one live slice per replica: the bound above holds.
 *
 * Measurement: quota.c times every admission (nuage_quota_check_stats,
 * the server's /metrics nuage_quota_check_*).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "nuage/nuage.h"
#include "engine/clock.h"
#include "platform/quota.h"
#include "platform/store.h"

#define MAX_CONNS 64
#define N_BUCKETS 4096

typedef struct slice {
    struct slice *next;
    int64_t tenant;
    char dep[64];                    /* "" unless the deployment has limits of its own */
    int64_t tpm[2], rpm[2];          /* the limits it was leased under */
    int64_t db_ticket;               /* the lease's rows; 0: none live */
    int64_t req_left, tok_left;      /* still free in it */
    int64_t expires_ms;              /* monotonic end of the lease */
    int64_t refused_until_ms;        /* monotonic: window full until then */
    nuage_store_window w[2];         /* the windows at the last database answer */
    bool leasing;                    /* a thread is asking the database */
    bool ever_leased;                /* leased or refused at least once (see sl_admit) */
    bool bg_want;                    /* the background thread is to lease for it */
    int64_t bg_need;                 /* tokens of the request that asked */
} slice;

typedef struct tick {
    struct tick *next;
    uint64_t id;
    slice *sl;
    int64_t db_ticket, reserved;
} tick;

typedef struct {
    nuage_store *st[MAX_CONNS];
    int n;
    atomic_uint next_conn;
    double fraction;
    int64_t lease_ms;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    slice *slices;
    tick *ticks[N_BUCKETS];
    uint64_t next_ticket;
    pthread_t reaper;
    bool reaper_on, stop, bg_pending;
    uint64_t n_leases; /* database round trips for leases */
    FILE *trace;       /* $NUAGE_QUOTA_TRACE.PID: "wall_ms tokens" per admission (benchmarks) */
} sliced;

static nuage_store *pick(sliced *q) { return q->st[atomic_fetch_add(&q->next_conn, 1) % (unsigned)q->n]; }

static slice *find_slice(sliced *q, int64_t tenant, const char *dep) {
    for (slice *s = q->slices; s; s = s->next)
        if (s->tenant == tenant && !strcmp(s->dep, dep)) return s;
    slice *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->tenant = tenant;
    snprintf(s->dep, sizeof s->dep, "%s", dep);
    s->next = q->slices;
    q->slices = s;
    return s;
}

/* End the live lease of s (mu held): its unused part, to give back with
 * nuage_store_quota_return once mu is released (*ret_* set; ticket 0 when
 * there is nothing to give back). */
static void end_lease_locked(slice *s, int64_t *ret_ticket, int64_t *ret_req, int64_t *ret_tok) {
    *ret_ticket = 0;
    *ret_req = *ret_tok = 0;
    if (!s->db_ticket) return;
    if (s->req_left > 0 || s->tok_left > 0) {
        *ret_ticket = s->db_ticket;
        *ret_req = s->req_left > 0 ? s->req_left : 0;
        *ret_tok = s->tok_left > 0 ? s->tok_left : 0;
    }
    s->db_ticket = 0;
    s->req_left = s->tok_left = 0;
}

static void give_back(sliced *q, int64_t ticket, int64_t req, int64_t tok) {
    if (ticket && (req || tok)) nuage_store_quota_return(pick(q), ticket, req, tok);
}

/* The headers' view of one window: the database's count minus what this
 * replica still holds unused. */
static void window_info(nuage_quota_info *in, const slice *s, int i, int64_t tpm, int64_t rpm) {
    int64_t req = s->w[i].requests - (s->db_ticket ? s->req_left : 0);
    int64_t tok = s->w[i].tokens - (s->db_ticket && s->tok_left > 0 ? s->tok_left : 0);
    in->limit_requests = rpm;
    in->limit_tokens = tpm;
    in->remaining_requests = rpm > 0 ? (rpm > req ? rpm - req : 0) : -1;
    in->remaining_tokens = tpm > 0 ? (tpm > tok ? tpm - tok : 0) : -1;
    in->reset_requests_ms = rpm > 0 ? NUAGE_QUOTA_WINDOW_MS : 0;
    in->reset_tokens_ms = tpm > 0 ? NUAGE_QUOTA_WINDOW_MS : 0;
}

static void fill_info(nuage_quota_info *info, const slice *s, int64_t tpm, int64_t rpm, int64_t dtpm, int64_t drpm) {
    if (!info) return;
    int first = tpm || rpm ? 0 : 1;
    window_info(info, s, first, first ? dtpm : tpm, first ? drpm : rpm);
    if (first == 0 && (dtpm || drpm)) {
        nuage_quota_info o;
        window_info(&o, s, 1, dtpm, drpm);
        if (o.limit_requests > 0 && (info->limit_requests == 0 || o.remaining_requests < info->remaining_requests)) {
            info->limit_requests = o.limit_requests;
            info->remaining_requests = o.remaining_requests;
        }
        if (o.limit_tokens > 0 && (info->limit_tokens == 0 || o.remaining_tokens < info->remaining_tokens)) {
            info->limit_tokens = o.limit_tokens;
            info->remaining_tokens = o.remaining_tokens;
        }
    }
}

static int64_t min_nonzero(int64_t a, int64_t b) { return !a ? b : !b ? a : a < b ? a : b; }

/* Admit from s's live lease (mu held): true when it fits. */
static bool take_locked(sliced *q, slice *s, int64_t tokens, bool tok_limited, uint64_t *ticket, int64_t now) {
    if (!s->db_ticket || now >= s->expires_ms || s->req_left < 1 || (tok_limited && s->tok_left < tokens))
        return false;
    tick *t = calloc(1, sizeof *t);
    if (!t) return false;
    s->req_left--;
    if (tok_limited) s->tok_left -= tokens;
    t->id = ++q->next_ticket;
    t->sl = s;
    t->db_ticket = s->db_ticket;
    t->reserved = tok_limited ? tokens : 0;
    t->next = q->ticks[t->id % N_BUCKETS];
    q->ticks[t->id % N_BUCKETS] = t;
    *ticket = t->id;
    return true;
}

/* A refused request while a background lease is in flight: retry soon. */
#define BUSY_RETRY_MS 25

static int64_t want_requests(const sliced *q, const slice *s) {
    int64_t w = (int64_t)(q->fraction * (double)min_nonzero(s->rpm[0], s->rpm[1]));
    return w < 1 ? 1 : w;
}

/* Lease a new slice for s (mu held; released during the round trip, with
 * s->leasing set): the old lease's unused part goes back first. 0 (s has
 * a live lease), NUAGE_E_BUSY (*retry set; refusals cached), or the
 * store's error. */
static int lease_locked(sliced *q, slice *s, int64_t need, int64_t *retry) {
    int64_t rt = 0, rr = 0, rk = 0;
    end_lease_locked(s, &rt, &rr, &rk);
    s->leasing = true;
    int64_t lt[2] = {s->tpm[0], s->tpm[1]}, lr[2] = {s->rpm[0], s->rpm[1]};
    bool tok_limited = lt[0] > 0 || lt[1] > 0;
    int64_t want_req = want_requests(q, s);
    int64_t want_tok = (int64_t)(q->fraction * (double)min_nonzero(lt[0], lt[1]));
    if (want_tok < need) want_tok = need;
    int64_t tenant = s->tenant;
    char dep[64];
    snprintf(dep, sizeof dep, "%s", s->dep);
    pthread_mutex_unlock(&q->mu);
    nuage_store *st = pick(q);
    give_back(q, rt, rr, rk);
    nuage_store_lease L;
    int lrc = nuage_store_quota_lease(st, tenant, dep, lt, lr, need, want_req, want_tok, &L);
    pthread_mutex_lock(&q->mu);
    s->leasing = false;
    pthread_cond_broadcast(&q->cv);
    q->n_leases++;
    int64_t now = nuage__mono_ms();
    *retry = 0;
    if (lrc == 0) {
        s->db_ticket = L.ticket;
        s->req_left = L.requests;
        s->tok_left = tok_limited ? L.tokens : 0;
        s->expires_ms = now + q->lease_ms;
        s->refused_until_ms = 0;
        s->ever_leased = true;
        memcpy(s->w, L.w, sizeof s->w);
    } else if (lrc == NUAGE_E_BUSY) {
        /* Other replicas give back unused slices within a lease: ask
         * again (and tell the client to retry) after at most that. */
        int64_t wait = L.retry_after_ms > 0 ? L.retry_after_ms : 1;
        if (wait > q->lease_ms) wait = q->lease_ms;
        s->refused_until_ms = now + wait;
        memcpy(s->w, L.w, sizeof s->w);
        s->ever_leased = true;
        *retry = wait;
    } else if (lrc == NUAGE_E_RANGE) {
        *retry = -1;
    }
    return lrc;
}

/* Ask the background thread for s's next lease (mu held). */
static void kick_locked(sliced *q, slice *s, int64_t need) {
    s->leasing = true; /* reserved for the background lease */
    s->bg_want = true;
    s->bg_need = need;
    q->bg_pending = true;
    pthread_cond_broadcast(&q->cv);
}

static int sl_admit(void *ud, int64_t tenant, const char *deployment, int64_t tpm, int64_t rpm, int64_t dtpm,
                    int64_t drpm, int64_t tokens, nuage_quota_info *info, uint64_t *ticket_out) {
    sliced *q = ud;
    uint64_t tk = 0, *ticket = &tk;
    if (ticket_out) *ticket_out = 0;
    if (info) memset(info, 0, sizeof *info);
    if (!tpm && !rpm && !dtpm && !drpm) {
        if (info) info->remaining_requests = info->remaining_tokens = -1;
        return 0;
    }
    if ((tpm > 0 && tokens > tpm) || (dtpm > 0 && tokens > dtpm)) {
        if (info) {
            info->limit_tokens = min_nonzero(tpm, dtpm);
            info->limit_requests = min_nonzero(rpm, drpm);
            info->remaining_requests = info->remaining_tokens = -1;
            info->retry_after_ms = -1;
        }
        return NUAGE_E_RANGE;
    }
    const char *dep = (dtpm || drpm) && deployment ? deployment : "";
    bool tok_limited = tpm > 0 || dtpm > 0;
    int rc = 0;
    pthread_mutex_lock(&q->mu);
    slice *s = find_slice(q, tenant, dep);
    if (!s) {
        pthread_mutex_unlock(&q->mu);
        return NUAGE_E_NOMEM;
    }
    for (;;) {
        int64_t now = nuage__mono_ms();
        if (s->tpm[0] != tpm || s->rpm[0] != rpm || s->tpm[1] != dtpm || s->rpm[1] != drpm) {
            if (s->leasing) { /* let the lease in flight land first */
                pthread_cond_wait(&q->cv, &q->mu);
                continue;
            }
            /* the limits changed: the old lease is given back whole */
            int64_t rt = 0, rr = 0, rk = 0;
            end_lease_locked(s, &rt, &rr, &rk);
            s->refused_until_ms = 0;
            s->tpm[0] = tpm, s->rpm[0] = rpm, s->tpm[1] = dtpm, s->rpm[1] = drpm;
            if (rt) {
                s->leasing = true;
                pthread_mutex_unlock(&q->mu);
                give_back(q, rt, rr, rk);
                pthread_mutex_lock(&q->mu);
                s->leasing = false;
                pthread_cond_broadcast(&q->cv);
            }
            continue;
        }
        bool big = want_requests(q, s) >= 2;
        if (take_locked(q, s, tokens, tok_limited, ticket, now)) {
            if (q->trace) fprintf(q->trace, "%lld %lld\n", (long long)nuage__wall_ms(), (long long)tokens);
            /* Spent: with slices of several requests, the next one is
             * leased in the background, off every request's path. */
            if (big && !s->leasing && (s->req_left < 1 || (tok_limited && s->tok_left < tokens)))
                kick_locked(q, s, tokens);
            break;
        }
        if (now < s->refused_until_ms) {
            rc = NUAGE_E_BUSY;
            if (info) info->retry_after_ms = s->refused_until_ms - now;
            break;
        }
        /* busy: a lease or a refusal within the last two leases (an idle
         * tenant's first request asks the database itself, below) */
        bool busy = s->ever_leased && (now - s->expires_ms < 2 * q->lease_ms ||
                                       now - s->refused_until_ms < 2 * q->lease_ms);
        if (big && (s->leasing || busy)) {
            /* A busy tenant: never wait for the database here. The lease
             * in flight (or the one started now) lands in a few ms. */
            if (!s->leasing) kick_locked(q, s, tokens);
            rc = NUAGE_E_BUSY;
            if (info) info->retry_after_ms = BUSY_RETRY_MS;
            break;
        }
        if (s->leasing) { /* another thread is asking: wait for its answer */
            pthread_cond_wait(&q->cv, &q->mu);
            continue;
        }
        int64_t retry = 0;
        rc = lease_locked(q, s, tokens, &retry);
        if (rc == 0) {
            if (take_locked(q, s, tokens, tok_limited, ticket, nuage__mono_ms())) {
                if (q->trace) fprintf(q->trace, "%lld %lld\n", (long long)nuage__wall_ms(), (long long)tokens);
                break;
            }
            rc = NUAGE_E_NOMEM;
        }
        if (info) info->retry_after_ms = retry;
        break;
    }
    if (info && rc != NUAGE_E_IO && rc != NUAGE_E_NOMEM) {
        int64_t retry = info->retry_after_ms;
        fill_info(info, s, tpm, rpm, dtpm, drpm);
        info->retry_after_ms = rc ? retry : 0;
    }
    pthread_mutex_unlock(&q->mu);
    if (rc == 0 && ticket_out) *ticket_out = tk;
    return rc;
}

/* Remove ticket's entry (mu held): the entry (caller frees) or NULL. */
static tick *unlink_tick(sliced *q, uint64_t id) {
    tick **pp = &q->ticks[id % N_BUCKETS];
    for (; *pp; pp = &(*pp)->next) {
        if ((*pp)->id == id) {
            tick *t = *pp;
            *pp = t->next;
            return t;
        }
    }
    return NULL;
}

/* Settle (cancel: also the request) of ticket: back to the live slice, or
 * one UPDATE of the ended lease's rows. */
static void sl_end(sliced *q, uint64_t id, int64_t actual, bool cancel) {
    pthread_mutex_lock(&q->mu);
    tick *t = unlink_tick(q, id);
    if (!t) {
        pthread_mutex_unlock(&q->mu);
        return;
    }
    int64_t back_tok = t->reserved ? (cancel ? t->reserved : t->reserved - actual) : 0;
    int64_t back_req = cancel ? 1 : 0;
    int64_t db_ticket = 0;
    if (back_req || back_tok > 0) t->sl->refused_until_ms = 0; /* room again: ask before refusing */
    if (t->sl->db_ticket == t->db_ticket) {
        t->sl->tok_left += back_tok;
        t->sl->req_left += back_req;
    } else {
        db_ticket = t->db_ticket;
    }
    pthread_mutex_unlock(&q->mu);
    if (db_ticket && (back_req || back_tok)) nuage_store_quota_return(pick(q), db_ticket, back_req, back_tok);
    free(t);
}

static void sl_settle(void *ud, uint64_t ticket, int64_t actual) { sl_end(ud, ticket, actual < 0 ? 0 : actual, false); }

static void sl_cancel(void *ud, uint64_t ticket) { sl_end(ud, ticket, 0, true); }

/* The window as the database counts it, less what this replica holds unused. */
static int sl_usage(void *ud, int64_t tenant, const char *scope, int64_t *requests, int64_t *tokens) {
    sliced *q = ud;
    int64_t r = 0, t = 0;
    int rc = nuage_store_quota_usage(pick(q), tenant, scope, &r, &t);
    pthread_mutex_lock(&q->mu);
    for (slice *s = q->slices; s; s = s->next) {
        if (s->tenant != tenant || !s->db_ticket) continue;
        if (!strcmp(s->dep, scope ? scope : "") || !(scope && *scope)) {
            r -= s->req_left;
            if (s->tok_left > 0) t -= s->tok_left;
        }
    }
    pthread_mutex_unlock(&q->mu);
    if (requests) *requests = r < 0 ? 0 : r;
    if (tokens) *tokens = t < 0 ? 0 : t;
    return rc;
}

/* Give back every expired lease (or all, at close). */
static void reap(sliced *q, bool all) {
    for (;;) {
        int64_t rt = 0, rr = 0, rk = 0;
        pthread_mutex_lock(&q->mu);
        int64_t now = nuage__mono_ms();
        for (slice *s = q->slices; s && !rt; s = s->next) {
            if (s->db_ticket && !s->leasing && (all || now >= s->expires_ms)) {
                end_lease_locked(s, &rt, &rr, &rk);
                if (!rt) continue;
            }
        }
        pthread_mutex_unlock(&q->mu);
        if (!rt) return;
        give_back(q, rt, rr, rk);
    }
}

static void *reaper_main(void *arg) {
    sliced *q = arg;
    pthread_mutex_lock(&q->mu);
    while (!q->stop) {
        struct timespec ts = nuage__deadline_in(q->lease_ms / 4 + 1);
        if (!q->bg_pending) pthread_cond_timedwait(&q->cv, &q->mu, &ts);
        if (q->stop) break;
        /* background leases (kick_locked) first: requests wait for them */
        while (q->bg_pending && !q->stop) {
            q->bg_pending = false;
            for (slice *s = q->slices; s; s = s->next) {
                if (!s->bg_want) continue;
                s->bg_want = false;
                int64_t retry = 0;
                lease_locked(q, s, s->bg_need, &retry); /* releases mu meanwhile */
                q->bg_pending = true;                   /* the list may have changed: look again */
                break;
            }
        }
        pthread_mutex_unlock(&q->mu);
        reap(q, false);
        pthread_mutex_lock(&q->mu);
    }
    pthread_mutex_unlock(&q->mu);
    return NULL;
}

static void sl_close(void *ud) {
    sliced *q = ud;
    if (q->reaper_on) {
        pthread_mutex_lock(&q->mu);
        q->stop = true;
        pthread_cond_broadcast(&q->cv);
        pthread_mutex_unlock(&q->mu);
        pthread_join(q->reaper, NULL);
    }
    if (q->n) reap(q, true);
    for (slice *s = q->slices, *n; s; s = n) {
        n = s->next;
        free(s);
    }
    for (int i = 0; i < N_BUCKETS; i++)
        for (tick *t = q->ticks[i], *n; t; t = n) {
            n = t->next;
            free(t);
        }
    for (int i = 0; i < q->n; i++) nuage_store_close(q->st[i]);
    if (q->trace) fclose(q->trace);
    pthread_cond_destroy(&q->cv);
    pthread_mutex_destroy(&q->mu);
    free(q);
}

static const nuage_quota_shared_ops sl_ops = {sl_admit, sl_settle, sl_cancel, sl_usage, sl_close};

int nuage_quota_use_store_sliced(nuage_quota *q, const char *url, int conns, double fraction, int lease_ms,
                                 char *err, size_t errlen) {
    if (err && errlen) err[0] = 0;
    if (!q || !url || conns < 1 || conns > MAX_CONNS || !(fraction > 0 && fraction <= 0.5) || lease_ms < 10)
        return NUAGE_E_INVAL;
    sliced *sq = calloc(1, sizeof *sq);
    if (!sq) return NUAGE_E_NOMEM;
    pthread_mutex_init(&sq->mu, NULL);
    pthread_cond_init(&sq->cv, NULL);
    sq->fraction = fraction;
    sq->lease_ms = lease_ms;
    const char *tr = getenv("NUAGE_QUOTA_TRACE");
    if (tr && *tr) {
        char path[1024];
        snprintf(path, sizeof path, "%s.%d", tr, (int)getpid());
        if ((sq->trace = fopen(path, "a"))) setvbuf(sq->trace, NULL, _IOLBF, 0);
    }
    int rc = 0;
    for (; sq->n < conns; sq->n++) {
        if ((rc = nuage_store_open(url, &sq->st[sq->n], err, errlen))) goto fail;
    }
    if ((rc = nuage_store_quota_prepare(sq->st[0]))) {
        if (err && errlen) snprintf(err, errlen, "shared quota windows: %s", nuage_store_errmsg(sq->st[0]));
        goto fail;
    }
    if (pthread_create(&sq->reaper, NULL, reaper_main, sq)) {
        rc = NUAGE_E_NOMEM;
        goto fail;
    }
    sq->reaper_on = true;
    nuage_quota_set_shared(q, &sl_ops, sq);
    return 0;
fail:
    sl_close(sq);
    return rc;
}
