/*
 * quota.h - in-memory rate limiting per (tenant, deployment): tokens per
 * minute (TPM) and requests per minute (RPM), the way Azure OpenAI and
 * OpenAI meter them.
 *
 * Model: an exact sliding window of 60 s. Every admitted request is one
 * entry (time, tokens) in the log of its (tenant, deployment) pair; the
 * usage seen by a new request is the number of entries and the sum of
 * their tokens over the last 60 000 ms. At admission a request reserves
 * prompt tokens + max_tokens (what it may cost at most, as Azure does);
 * when it finishes, nuage_quota_settle() replaces the reservation by the
 * tokens actually used, giving the difference back to the window at once.
 * Limits are passed on every call (they live in the store's tenant row and
 * may change at any time); a limit of 0 means unlimited.
 *
 * Memory: one small record per pair ever seen (pairs are never forgotten:
 * deployments are the server's configured ones) plus one 24-byte entry per
 * admitted request still inside the window; a pair's log is capped at
 * NUAGE_QUOTA_MAX_LOG entries (beyond it requests are refused as busy).
 * Pairs whose both limits are 0 are not logged at all.
 *
 * Thread safety: every call may be made from any thread (one mutex inside,
 * a leaf lock). Times are caller-supplied milliseconds from any clock that
 * does not go backwards (CLOCK_MONOTONIC is best), which keeps the module
 * deterministic to test.
 */
#ifndef NUAGE_QUOTA_H
#define NUAGE_QUOTA_H

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

/*
 * Try to admit one request of `tokens` tokens (prompt + max_tokens) for
 * (tenant, deployment) at time now_ms, under tpm_limit / rpm_limit (0 =
 * unlimited). deployment NULL is the same as "".
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

/* Current usage of (tenant, deployment) in the window ending at now_ms,
 * without admitting anything (for metrics and tests). 0 or NUAGE_E_INVAL. */
int nuage_quota_usage(nuage_quota *q, int64_t tenant, const char *deployment, int64_t now_ms,
                      int64_t *requests, int64_t *tokens);

#endif
