/*
 * quota_shared.c - the rate limiter's windows kept in the cluster's
 * PostgreSQL store (quota.h "Shared windows"; store_pg_quota.c has the
 * SQL and the reasoning for an exact shared window).
 *
 * nuage_quota_use_store opens `conns` store handles of its own on the
 * database (each with its own connection and lock, so an admission never
 * waits behind a usage INSERT of the server's main store handle, nor
 * behind more than conns - 1 other admissions), creates the window
 * objects once, and installs itself as the limiter's keeper. Each call
 * takes the next handle round robin.
 *
 * Failure: when the database cannot be reached, admission fails
 * (NUAGE_E_IO: the server answers an error rather than admitting work it
 * cannot count: fail closed, as for keys, which need the database too).
 * A settle or cancel that fails leaves the reservation (prompt +
 * max_tokens) in the window until it expires: the tenant is limited a
 * little more, never less.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nuage/nuage.h"
#include "platform/quota.h"
#include "platform/store.h"

#define MAX_CONNS 64

typedef struct {
    nuage_store *st[MAX_CONNS];
    int n;
    atomic_uint next;
} shared;

static nuage_store *pick(shared *sh) {
    return sh->st[atomic_fetch_add(&sh->next, 1) % (unsigned)sh->n];
}

/* One window's part of the headers' info (quota.c's fill_info). */
static void window_info(nuage_quota_info *in, const nuage_store_window *w, int64_t tpm, int64_t rpm) {
    in->limit_requests = rpm;
    in->limit_tokens = tpm;
    in->remaining_requests = rpm > 0 ? (rpm > w->requests ? rpm - w->requests : 0) : -1;
    in->remaining_tokens = tpm > 0 ? (tpm > w->tokens ? tpm - w->tokens : 0) : -1;
    in->reset_requests_ms = rpm > 0 ? w->reset_requests_ms : 0;
    in->reset_tokens_ms = tpm > 0 ? w->reset_tokens_ms : 0;
}

static int sh_admit(void *ud, int64_t tenant, const char *deployment, int64_t tpm, int64_t rpm, int64_t dtpm,
                    int64_t drpm, int64_t tokens, nuage_quota_info *info, uint64_t *ticket) {
    shared *sh = ud;
    int64_t lt[2] = {tpm, dtpm}, lr[2] = {rpm, drpm}, t = 0, retry = 0;
    nuage_store_window w[2];
    int rc = nuage_store_quota_admit(pick(sh), tenant, deployment, lt, lr, tokens, &t, w, &retry);
    if (ticket) *ticket = rc == 0 && t > 0 ? (uint64_t)t : 0;
    if (!info || (rc && rc != NUAGE_E_BUSY && rc != NUAGE_E_RANGE)) return rc;
    /* the tighter of the two windows, dimension by dimension */
    int first = tpm || rpm ? 0 : 1;
    window_info(info, &w[first], lt[first], lr[first]);
    if (first == 0 && (dtpm || drpm)) {
        nuage_quota_info o;
        window_info(&o, &w[1], dtpm, drpm);
        if (o.limit_requests > 0 && (info->limit_requests == 0 || o.remaining_requests < info->remaining_requests)) {
            info->limit_requests = o.limit_requests;
            info->remaining_requests = o.remaining_requests;
            info->reset_requests_ms = o.reset_requests_ms;
        }
        if (o.limit_tokens > 0 && (info->limit_tokens == 0 || o.remaining_tokens < info->remaining_tokens)) {
            info->limit_tokens = o.limit_tokens;
            info->remaining_tokens = o.remaining_tokens;
            info->reset_tokens_ms = o.reset_tokens_ms;
        }
    }
    info->retry_after_ms = rc ? retry : 0;
    return rc;
}

static void sh_settle(void *ud, uint64_t ticket, int64_t actual_tokens) {
    nuage_store_quota_settle(pick(ud), (int64_t)ticket, actual_tokens);
}

static void sh_cancel(void *ud, uint64_t ticket) { nuage_store_quota_cancel(pick(ud), (int64_t)ticket); }

static int sh_usage(void *ud, int64_t tenant, const char *scope, int64_t *requests, int64_t *tokens) {
    int64_t r = 0, t = 0;
    int rc = nuage_store_quota_usage(pick(ud), tenant, scope, &r, &t);
    if (requests) *requests = r;
    if (tokens) *tokens = t;
    return rc;
}

static void sh_close(void *ud) {
    shared *sh = ud;
    for (int i = 0; i < sh->n; i++) nuage_store_close(sh->st[i]);
    free(sh);
}

static const nuage_quota_shared_ops sh_ops = {sh_admit, sh_settle, sh_cancel, sh_usage, sh_close};

int nuage_quota_use_store(nuage_quota *q, const char *url, int conns, char *err, size_t errlen) {
    if (err && errlen) err[0] = 0;
    if (!q || !url || conns < 1 || conns > MAX_CONNS) return NUAGE_E_INVAL;
    shared *sh = calloc(1, sizeof *sh);
    if (!sh) return NUAGE_E_NOMEM;
    int rc = 0;
    for (; sh->n < conns; sh->n++) {
        if ((rc = nuage_store_open(url, &sh->st[sh->n], err, errlen))) goto fail;
    }
    if ((rc = nuage_store_quota_prepare(sh->st[0]))) {
        if (err && errlen) snprintf(err, errlen, "shared quota windows: %s", nuage_store_errmsg(sh->st[0]));
        goto fail;
    }
    nuage_quota_set_shared(q, &sh_ops, sh);
    return 0;
fail:
    sh_close(sh);
    return rc;
}
