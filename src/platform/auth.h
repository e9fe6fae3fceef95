/*
 * auth.h - who is calling: API keys to tenants, for `nuage serve`.
 *
 * A request presents its key as `Authorization: Bearer KEY` (what the
 * OpenAI SDKs send) or `api-key: KEY` (what Azure OpenAI clients send).
 * The key is verified against the store (hashes only, see store.h) and
 * resolved to its tenant -- with the tenant's current limits and weight,
 * read on every request so that `nuage admin` changes apply at once.
 *
 * When auth is on. A server with a store always requires a key: no valid
 * key is 401, whatever the store holds -- also when its last key has been
 * revoked or has expired (auth never turns itself off at run time). The
 * open, key-less mode (every request is the anonymous tenant 0, no quotas,
 * the admin API allowed) exists only when asked for: --no-auth, which the
 * caller accepts on a loopback address only, or no store at all on
 * loopback (the single-model developer setup: nothing to check keys
 * against). Without a store on any other address, the caller refuses to
 * start unless --insecure was given; without --insecure such a server
 * answers 401 to everyone.
 *
 * The admin API needs an admin key, or auth off on loopback.
 *
 * Thread safety: the object is immutable after creation; every call may
 * be made from any thread (the store serialises itself).
 */
#ifndef NUAGE_PLATFORM_AUTH_H
#define NUAGE_PLATFORM_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "platform/store.h"

/* The authenticated caller of one request. */
typedef struct {
    bool auth_on;         /* keys were required for this request */
    bool authenticated;   /* a valid key was presented */
    bool admin;           /* may call the admin API */
    int64_t tenant_id;    /* 0: anonymous (auth off) or admin key without tenant */
    int64_t key_id;       /* 0 when auth is off */
    char tenant[64];      /* tenant name ("" for tenant 0) */
    double weight;        /* fair-scheduling weight (1 without a tenant) */
    int64_t tpm, rpm;     /* tenant limits; 0 = unlimited */
    char deployments[256];/* deployments the key may use, comma-separated; "" = all */
} nuage_auth_ctx;

typedef struct nuage_auth nuage_auth;

typedef struct {
    nuage_store *store;   /* not owned; NULL: no keys, auth off */
    bool loopback;        /* the server listens on a loopback address only */
    bool insecure;        /* --insecure: no store, open on a non-loopback address */
    bool no_auth;         /* --no-auth: open although a store is present (loopback only) */
} nuage_auth_params;

int nuage_auth_new(const nuage_auth_params *p, nuage_auth **out);
void nuage_auth_free(nuage_auth *a);

/* Whether requests must present a key (fixed for the server's lifetime). */
bool nuage_auth_required(nuage_auth *a);

/*
 * Authenticate from the two header values (either may be NULL). Returns 0
 * with ctx filled -- an anonymous context when auth is off --, or
 * NUAGE_E_RANGE (no key, unknown, revoked or expired key: answer 401
 * invalid_api_key without saying which) or NUAGE_E_IO (store failure:
 * 500); msg (may be NULL) gets the client-facing message.
 */
int nuage_auth_check(nuage_auth *a, const char *authorization, const char *api_key,
                     nuage_auth_ctx *ctx, char *msg, size_t msglen);

/* May this caller use deployment `name`? (always true when auth is off) */
bool nuage_auth_allows(const nuage_auth_ctx *ctx, const char *name);

/* The mode in words, for the server's first log line: "API keys required",
 * "open (--no-auth, loopback only)", ... (static string). */
const char *nuage_auth_mode(nuage_auth *a);

/* Is host (a numeric address or "localhost") a loopback address? */
bool nuage_auth_is_loopback(const char *host);

/* Prefix-cache scope of a tenant: 0 for tenant 0 (shared anonymous
 * cache), else a 64-bit hash of the id that is never 0. */
uint64_t nuage_auth_cache_salt(int64_t tenant_id);

#endif
