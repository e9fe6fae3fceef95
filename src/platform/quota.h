/*
 * quota.h - in-memory rate limiting: tokens per minute (TPM) and requests
 * per minute (RPM), the way Azure OpenAI and OpenAI meter them.
 *
 * Which limits there are. A tenant's limits (tpm / rpm of its row in the
 * store, `nuage admin tenant create --tpm --rpm`) count *every* request of
 * the tenant, whatever deployment it reaches: two deployments do not
 * double them. A deployment may add its own optional limits per tenant
 * (`tpm_per_tenant` / `rpm_per_tenant` in its configuration, like Azure's
 * per-deployment TPM): a request to it must then fit both the tenant's
 * window and the tenant's window on that deployment. The caller passes the
 * tenant's limits; the deployment's come from the lookup installed with
 * nuage_quota_set_lookup.
 *
 * Model: an exact sliding window of 60 s. Every admitted request is one
 * entry (time, tokens) in the log of the tenant (and one in the log of the
 * (tenant, deployment) pair when that deployment has limits); the usage
 * seen by a new request is the number of entries and the sum of their
 * tokens over the last 60 000 ms. At admission a request reserves
 * prompt tokens + max_tokens (what it may cost at most, as Azure does);
 * when it finishes, nuage_quota_settle() replaces the reservation by the
 * tokens actually used, giving the difference back to the window at once.
 * Limits are passed on every call (they live in the store's tenant row and
 * may change at any time); a limit of 0 means unlimited.
 *
 * Memory: one small record per tenant and per (tenant, deployment with
 * limits) ever seen (never forgotten: deployments are the server's
 * configured ones) plus one 32-byte entry per admitted request still
 * inside a window; a log is capped at NUAGE_QUOTA_MAX_LOG entries (beyond
 * it requests are refused as busy). Unlimited windows are not logged.
 *
 * Shared windows (a cluster). nuage_quota_set_shared hands every window
 * to an outside keeper instead (quota_shared.c: the PostgreSQL store, so
 * that limits hold for all replicas together); the calls below keep their
 * contract, except that the keeper's clock replaces now_ms and that a
 * keeper that cannot be reached refuses admission (NUAGE_E_IO: fail
 * closed). Without it (one server, SQLite) nothing changes.
 *
 * Thread safety: every call may be made from any thread (one mutex inside,
 * a leaf lock; the lookup is called without it). Times are caller-supplied
 * milliseconds from any clock that does not go backwards (CLOCK_MONOTONIC
 * is best), which keeps the module deterministic to test.
 */
#ifndef NUAGE_QUOTA_H
#define NUAGE_QUOTA_H

#include <stddef.h>
#include <stdint.h>

#define NUAGE_QUOTA_WINDOW_MS 60000
#define NUAGE_QUOTA_MAX_LOG (1 << 20)

typedef struct nuage_quota nuage_quota;

/* What the rate limiter says about one request, for the response headers
 * (x-ratelimit-limit-requests/-tokens, x-ratelimit-remaining-requests/
 * -tokens, x-ratelimit-reset-requests/-tokens, retry-after, retry-after-ms).
 * Filled whether the request was admitted or not. For an unlimited
 * dimension, limit is 0, remaining is -1 and reset is 0 (omit its headers). */
typedef struct {
    int64_t limit_requests, remaining_requests;  /* after this request when admitted */
    int64_t limit_tokens, remaining_tokens;
    int64_t reset_requests_ms;  /* until the window holds no request (full RPM again) */
    int64_t reset_tokens_ms;    /* until the window holds no tokens (full TPM again) */
    int64_t retry_after_ms;     /* 0 when admitted; on NUAGE_E_BUSY the wait after which
                                   this same request fits (given no other traffic);
                                   -1 when it can never fit (NUAGE_E_RANGE) */
} nuage_quota_info;

/* New, empty limiter (caller owns; nuage_quota_free). NULL when out of memory. */
nuage_quota *nuage_quota_new(void);
void nuage_quota_free(nuage_quota *q);

/* Per-deployment limits: lookup(ud, deployment, &tpm, &rpm) fills the
 * limits each tenant has on that deployment (0 = none) and returns 0, or
 * returns non-zero when there are none. NULL removes it. Must not call
 * into q. Set before the limiter is shared between threads. */
typedef int (*nuage_quota_lookup_fn)(void *ud, const char *deployment, int64_t *tpm, int64_t *rpm);
void nuage_quota_set_lookup(nuage_quota *q, nuage_quota_lookup_fn lookup, void *ud);

/*
 * Try to admit one request of `tokens` tokens (prompt + max_tokens) of
 * `tenant` to `deployment` at time now_ms, under the tenant's tpm_limit /
 * rpm_limit (0 = unlimited; they count across all deployments) and the
 * deployment's own per-tenant limits, if any (lookup). deployment NULL is
 * the same as "" (no deployment limits). info describes the tighter of
 * the two windows for each dimension.
 * Returns:
 *   0               admitted: the request and its tokens are counted, and
 *                   *ticket (never 0 when something was logged; 0 when both
 *                   limits are 0) is what settle/cancel take later;
 *   NUAGE_E_BUSY    over the RPM or TPM limit now: nothing is counted,
 *                   info->retry_after_ms > 0 says when to retry (429);
 *   NUAGE_E_RANGE   tokens > tpm_limit: the request can never fit (answer
 *                   429 or 400 saying the request is larger than the limit);
 *   NUAGE_E_INVAL   q NULL, negative tokens or limits;
 *   NUAGE_E_NOMEM   out of memory (nothing counted).
 * info and ticket may be NULL. *ticket is set to 0 on any error.
 */
int nuage_quota_admit(nuage_quota *q, int64_t tenant, const char *deployment, int64_t tpm_limit,
                      int64_t rpm_limit, int64_t tokens, int64_t now_ms, nuage_quota_info *info,
                      uint64_t *ticket);

/* The request of `ticket` finished having used actual_tokens (prompt +
 * completion): its window entry now counts actual_tokens instead of the
 * reservation (usually less: the difference is available again at once;
 * more is counted too). No effect when ticket is 0, unknown, already
 * settled or cancelled, or when the entry has already left the window. */
void nuage_quota_settle(nuage_quota *q, uint64_t ticket, int64_t actual_tokens, int64_t now_ms);

/* The request of `ticket` never ran (queue full, validation failed after
 * admission...): remove both its request and its tokens from the window.
 * Same no-op cases as settle. */
void nuage_quota_cancel(nuage_quota *q, uint64_t ticket, int64_t now_ms);

/* Current usage of the tenant's own window (all deployments: what the
 * tenant's limits count) ending at now_ms, without admitting anything (for
 * headers, metrics and tests). `deployment` is not used: every deployment
 * shares the tenant's window. 0 or NUAGE_E_INVAL. */
int nuage_quota_usage(nuage_quota *q, int64_t tenant, const char *deployment, int64_t now_ms,
                      int64_t *requests, int64_t *tokens);

/* The same for the tenant's window on `deployment` (counted only while
 * the deployment has per-tenant limits of its own). */
int nuage_quota_usage_on(nuage_quota *q, int64_t tenant, const char *deployment, int64_t now_ms,
                         int64_t *requests, int64_t *tokens);

/* An outside keeper of the windows (see "Shared windows" above). admit
 * gets the tenant's and the deployment's limits (already looked up) and
 * answers like nuage_quota_admit (tickets > 0 are its own); usage is
 * nuage_quota_usage for scope "" and nuage_quota_usage_on otherwise; close
 * (may be NULL) is called with ud by nuage_quota_free. */
typedef struct {
    int (*admit)(void *ud, int64_t tenant, const char *deployment, int64_t tpm, int64_t rpm, int64_t dtpm,
                 int64_t drpm, int64_t tokens, nuage_quota_info *info, uint64_t *ticket);
    void (*settle)(void *ud, uint64_t ticket, int64_t actual_tokens);
    void (*cancel)(void *ud, uint64_t ticket);
    int (*usage)(void *ud, int64_t tenant, const char *scope, int64_t *requests, int64_t *tokens);
    void (*close)(void *ud);
} nuage_quota_shared_ops;

/* Install the keeper (ops must outlive q; q owns ud from now: close).
 * Set before the limiter is shared between threads. */
void nuage_quota_set_shared(nuage_quota *q, const nuage_quota_shared_ops *ops, void *ud);

/* Keep q's windows in the PostgreSQL database at url (the cluster's
 * store), through `conns` connections of its own (1..64). 0, or
 * NUAGE_E_IO / NUAGE_E_UNSUPPORTED with a message in err (url is not
 * PostgreSQL, or unreachable). quota_shared.c. */
int nuage_quota_use_store(nuage_quota *q, const char *url, int conns, char *err, size_t errlen);
/* The same with leased slices (quota_slices.c): each replica leases up to
 * `fraction` (0 < f <= 0.5) of a tenant's limits at a time from the
 * database, admits from it locally and gives back what it did not use
 * after lease_ms (>= 10). Overshoot of a 60-s window: at most replicas x
 * fraction of each limit (docs/cluster.md). Tickets are this replica's. */
int nuage_quota_use_store_sliced(nuage_quota *q, const char *url, int conns, double fraction, int lease_ms,
                                 char *err, size_t errlen);
/* How long nuage_quota_admit takes (the quota check on a request's path):
 * a histogram of NUAGE_QUOTA_HIST buckets of NUAGE_QUOTA_HIST_US
 * microseconds each (the last one: that long or longer), and the
 * quantiles read from it (the upper bound of the bucket, us). */
#define NUAGE_QUOTA_HIST 400
#define NUAGE_QUOTA_HIST_US 50
typedef struct {
    uint64_t checks;
    double p50_us, p99_us, max_us;
    uint64_t hist[NUAGE_QUOTA_HIST];
} nuage_quota_check_timing;
void nuage_quota_check_stats(nuage_quota *q, nuage_quota_check_timing *out);

#endif
