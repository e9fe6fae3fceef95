/*
 * auth.c - API key authentication for `nuage serve` (see auth.h).
 *
 * Parsing is strict and small: the scheme "Bearer" is matched without
 * regard to case (RFC 7235), surrounding blanks are trimmed, and a key is
 * at most 255 bytes of visible ASCII -- anything else is simply an invalid
 * key, never an error of another kind, so a probing client learns nothing
 * beyond "401". Verification itself (hashing, constant-time comparison,
 * revocation and expiry) is the store's.
 *
 * The prefix cache is scoped per tenant with a salt derived from the
 * tenant id (splitmix64 finaliser): two tenants never share cached KV
 * blocks, so one cannot learn from response times whether another sent a
 * given prompt. Tenant 0 -- auth off -- keeps the shared scope 0.
 */
#include "platform/auth.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "nuage/nuage.h"

struct nuage_auth {
    nuage_auth_params p;
};

int nuage_auth_new(const nuage_auth_params *p, nuage_auth **out) {
    *out = NULL;
    nuage_auth *a = calloc(1, sizeof *a);
    if (!a) return NUAGE_E_NOMEM;
    if (p) a->p = *p;
    *out = a;
    return 0;
}

void nuage_auth_free(nuage_auth *a) { free(a); }

bool nuage_auth_required(nuage_auth *a) {
    if (!a) return false;
    /* Fixed by the configuration, never by the store's content: a store
     * whose keys were all revoked or expired must not open the server. */
    if (a->p.store) return !(a->p.no_auth && a->p.loopback);
    return !a->p.loopback && !a->p.insecure;
}

const char *nuage_auth_mode(nuage_auth *a) {
    if (!a) return "auth off";
    if (nuage_auth_required(a))
        return a->p.store ? "auth: API keys required" : "auth: no store, every request refused";
    if (a->p.store) return "auth off: --no-auth (loopback only)";
    return a->p.loopback ? "auth off: no store, loopback only" : "auth off: no store, --insecure";
}

bool nuage_auth_is_loopback(const char *host) {
    if (!host || !*host) return false;
    if (!strcasecmp(host, "localhost")) return true;
    struct in_addr a4;
    if (inet_pton(AF_INET, host, &a4) == 1) return (ntohl(a4.s_addr) >> 24) == 127;
    struct in6_addr a6;
    if (inet_pton(AF_INET6, host, &a6) == 1) {
        if (IN6_IS_ADDR_LOOPBACK(&a6)) return true;
        if (IN6_IS_ADDR_V4MAPPED(&a6)) return a6.s6_addr[12] == 127;
    }
    return false;
}

uint64_t nuage_auth_cache_salt(int64_t tenant_id) {
    if (tenant_id == 0) return 0;
    uint64_t x = (uint64_t)tenant_id + 0x9E3779B97F4A7C15ULL;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    x ^= x >> 31;
    return x ? x : 1;
}

/* The key in a header value: trimmed, visible ASCII, 1..255 bytes. */
static bool nuage__key_from(const char *v, bool bearer, char *out, size_t cap) {
    if (!v) return false;
    while (*v == ' ' || *v == '\t') v++;
    if (bearer) {
        if (strncasecmp(v, "bearer", 6) || (v[6] != ' ' && v[6] != '\t')) return false;
        v += 6;
        while (*v == ' ' || *v == '\t') v++;
    }
    size_t n = strlen(v);
    while (n && (v[n - 1] == ' ' || v[n - 1] == '\t')) n--;
    if (n == 0 || n >= cap || n > 255) return false;
    for (size_t i = 0; i < n; i++)
        if (!isgraph((unsigned char)v[i])) return false;
    memcpy(out, v, n);
    out[n] = 0;
    return true;
}

int nuage_auth_check(nuage_auth *a, const char *authorization, const char *api_key,
                     nuage_auth_ctx *ctx, char *msg, size_t msglen) {
    char dummy[4];
    if (!msg) {
        msg = dummy;
        msglen = sizeof dummy;
    }
    memset(ctx, 0, sizeof *ctx);
    ctx->weight = 1.0;
    if (!nuage_auth_required(a)) {
        /* Open server: anonymous tenant 0; the admin API only on loopback. */
        ctx->admin = a ? a->p.loopback : true;
        return 0;
    }
    ctx->auth_on = true;
    char key[256];
    bool have = nuage__key_from(authorization, true, key, sizeof key) ||
                nuage__key_from(api_key, false, key, sizeof key);
    if (!have) {
        snprintf(msg, msglen,
                 "You didn't provide an API key. You need to provide your API key in an Authorization "
                 "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or in an api-key header.");
        return NUAGE_E_RANGE;
    }
    if (!a->p.store) {
        snprintf(msg, msglen, "Incorrect API key provided.");
        return NUAGE_E_RANGE;
    }
    nuage_key k;
    nuage_tenant t;
    memset(&k, 0, sizeof k);
    memset(&t, 0, sizeof t);
    int rc = nuage_store_key_verify(a->p.store, key, &k, &t);
    memset(key, 0, sizeof key);
    if (rc == NUAGE_E_RANGE) {
        snprintf(msg, msglen, "Incorrect API key provided.");
        return NUAGE_E_RANGE;
    }
    if (rc) {
        snprintf(msg, msglen, "The key could not be checked (store error).");
        return NUAGE_E_IO;
    }
    ctx->authenticated = true;
    ctx->admin = k.admin;
    ctx->key_id = k.id;
    ctx->tenant_id = k.tenant_id;
    snprintf(ctx->deployments, sizeof ctx->deployments, "%s", k.deployments);
    if (k.tenant_id) {
        snprintf(ctx->tenant, sizeof ctx->tenant, "%s", t.name);
        ctx->tpm = t.tpm > 0 ? t.tpm : 0;
        ctx->rpm = t.rpm > 0 ? t.rpm : 0;
        ctx->weight = t.weight > 0 ? t.weight : 1.0;
    }
    return 0;
}

bool nuage_auth_allows(const nuage_auth_ctx *ctx, const char *name) {
    if (!ctx->auth_on || !ctx->deployments[0]) return true;
    /* The store defines what its allow-list means. */
    nuage_key k;
    memset(&k, 0, sizeof k);
    snprintf(k.deployments, sizeof k.deployments, "%s", ctx->deployments);
    return nuage_key_allows(&k, name);
}
