/*
 * store_keys.c - API keys (store.h): creation, verification, listing,
 * revocation.
 *
 * Key format: "nk-" + 8-character id + "-" + 32 random base62 characters
 * (44 characters, ~190 bits of secret). The id is random and not secret:
 * it is the row's lookup key (UNIQUE index), shown in listings as the
 * prefix "nk-XXXXXXXX" and accepted by revoke, so verifying a presented
 * key is one indexed lookup, whatever the number of keys.
 *
 * Storage: the key itself is never stored. Each row holds a 16-byte random
 * salt and SHA-256(salt || key), computed with OpenSSL's libcrypto (a
 * maintained implementation rather than our own). Verification recomputes
 * the hash and compares with CRYPTO_memcmp, whose time does not depend on
 * where the bytes differ; a key whose id part is right but whose secret
 * is wrong is rejected like an unknown one. The caller answers 401 without
 * saying which check failed. Random bytes come from getrandom().
 *
 * Both backends share all of this; only reading and writing the rows goes
 * to store_pg.c when the store is PostgreSQL (the same salt and hash, in
 * bytea columns).
 */
#define _GNU_SOURCE
#include "platform/store_internal.h"

#include <ctype.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEY_ID_LEN 8
#define KEY_SECRET_LEN 32
#define KEY_PREFIX_LEN (3 + KEY_ID_LEN)                   /* "nk-XXXXXXXX" */
#define KEY_LEN (KEY_PREFIX_LEN + 1 + KEY_SECRET_LEN)     /* 44 */
#define SALT_LEN 16
#define HASH_LEN 32

/* SHA-256(salt || key) into hash; 0 or NUAGE_E_IO. */
static int key_hash(const unsigned char *salt, const char *key, unsigned char *hash) {
    unsigned char buf[SALT_LEN + KEY_LEN];
    memcpy(buf, salt, SALT_LEN);
    memcpy(buf + SALT_LEN, key, KEY_LEN);
    unsigned int len = 0;
    int ok = EVP_Digest(buf, sizeof buf, hash, &len, EVP_sha256(), NULL);
    OPENSSL_cleanse(buf, sizeof buf);
    if (!ok || len != HASH_LEN) return nuage__store_fail(NUAGE_E_IO, "SHA-256 failed");
    return 0;
}

/* The checks of a presented key against its row: 0, or NUAGE_E_RANGE
 * (wrong secret, revoked, expired), NUAGE_E_IO. */
static int key_accept(const char *presented, const nuage_key *k, const unsigned char *salt,
                      const unsigned char *stored) {
    unsigned char hash[HASH_LEN];
    int rc = key_hash(salt, presented, hash);
    if (rc) return rc;
    if (CRYPTO_memcmp(hash, stored, HASH_LEN) != 0 || k->revoked ||
        (k->expires_ms != 0 && nuage__store_now_ms() >= k->expires_ms))
        return nuage__store_fail(NUAGE_E_RANGE, "invalid API key");
    return 0;
}

static bool is_base62(const char *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)p[i])) return false;
    return true;
}

/* Well-formed "nk-<id>-<secret>"? Copies the id part to id. */
static bool parse_key(const char *k, char id[KEY_ID_LEN + 1]) {
    if (!k || strlen(k) != KEY_LEN || strncmp(k, "nk-", 3) != 0 || k[KEY_PREFIX_LEN] != '-')
        return false;
    if (!is_base62(k + 3, KEY_ID_LEN) || !is_base62(k + KEY_PREFIX_LEN + 1, KEY_SECRET_LEN))
        return false;
    memcpy(id, k + 3, KEY_ID_LEN);
    id[KEY_ID_LEN] = 0;
    return true;
}

/* Deployment lists: comma-separated names (spaces around them ignored). */
static bool valid_deployments(const char *d) {
    if (strlen(d) >= sizeof((nuage_key *)0)->deployments) return false;
    for (const char *p = d; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == '"') return false;
    return true;
}

bool nuage_key_allows(const nuage_key *k, const char *deployment) {
    if (!k) return false;
    const char *p = k->deployments;
    while (*p == ' ') p++;
    if (!*p) return true;
    if (!deployment) return false;
    size_t dlen = strlen(deployment);
    while (*p) {
        while (*p == ' ' || *p == ',') p++;
        const char *start = p;
        while (*p && *p != ',') p++;
        const char *end = p;
        while (end > start && end[-1] == ' ') end--;
        if (end > start && (size_t)(end - start) == dlen && !memcmp(start, deployment, dlen))
            return true;
    }
    return false;
}

#define KEY_COLS "id, kid, tenant_id, deployments, expires_ms, created_ms, revoked, admin"

static void key_row(sqlite3_stmt *st, nuage_key *k) {
    memset(k, 0, sizeof *k);
    k->id = sqlite3_column_int64(st, 0);
    char kid[KEY_ID_LEN + 8];
    nuage__store_col_text(st, 1, kid, sizeof kid);
    snprintf(k->prefix, sizeof k->prefix, "nk-%.8s", kid);
    k->tenant_id = sqlite3_column_int64(st, 2);
    nuage__store_col_text(st, 3, k->deployments, sizeof k->deployments);
    k->expires_ms = sqlite3_column_int64(st, 4);
    k->created_ms = sqlite3_column_int64(st, 5);
    k->revoked = sqlite3_column_int(st, 6) != 0;
    k->admin = sqlite3_column_int(st, 7) != 0;
}

static void key_row_v(sqlite3_stmt *st, void *elem) { key_row(st, elem); }

int nuage_store_key_create(nuage_store *s, const char *tenant, const char *deployments,
                           int64_t expires_ms, bool admin, char *key_out, size_t cap,
                           nuage_key *out) {
    if (!s || !key_out || cap <= KEY_LEN) return NUAGE_E_INVAL;
    key_out[0] = 0;
    if (!tenant && !admin)
        return nuage__store_fail(NUAGE_E_INVAL, "a key needs a tenant (only admin keys may "
                                 "have none)");
    if (!deployments) deployments = "";
    if (!valid_deployments(deployments))
        return nuage__store_fail(NUAGE_E_INVAL, "invalid deployment list");
    if (expires_ms < 0) return nuage__store_fail(NUAGE_E_INVAL, "invalid expiry time");

    char key[KEY_LEN + 1];
    unsigned char salt[SALT_LEN], hash[HASH_LEN];
    int rc;
    memcpy(key, "nk-", 3);
    if ((rc = nuage__store_random_base62(key + 3, KEY_ID_LEN))) return rc;
    key[KEY_PREFIX_LEN] = '-';
    if ((rc = nuage__store_random_base62(key + KEY_PREFIX_LEN + 1, KEY_SECRET_LEN))) return rc;
    if ((rc = nuage__store_random(salt, sizeof salt))) return rc;
    if ((rc = key_hash(salt, key, hash))) goto out_cleanse;
    if (s->pg) {
        char kid[KEY_ID_LEN + 1];
        memcpy(kid, key + 3, KEY_ID_LEN);
        kid[KEY_ID_LEN] = 0;
        rc = nuage__pg_key_insert(s, tenant, kid, salt, SALT_LEN, hash, HASH_LEN, deployments, expires_ms, admin,
                                  out);
        if (!rc) memcpy(key_out, key, KEY_LEN + 1);
        goto out_cleanse;
    }

    pthread_mutex_lock(&s->mu);
    nuage_tenant t = {0};
    sqlite3_stmt *st = NULL;
    if (tenant && (rc = nuage__store_tenant_by_name_locked(s, tenant, &t))) goto out_unlock;
    rc = nuage__store_prepare(s, "INSERT INTO api_keys(kid, tenant_id, salt, hash, deployments,"
                              " expires_ms, created_ms, admin) VALUES(?, ?, ?, ?, ?, ?, ?, ?) "
                              "RETURNING " KEY_COLS, &st);
    if (rc) goto out_unlock;
    sqlite3_bind_text(st, 1, key + 3, KEY_ID_LEN, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, t.id);
    sqlite3_bind_blob(st, 3, salt, SALT_LEN, SQLITE_TRANSIENT);
    sqlite3_bind_blob(st, 4, hash, HASH_LEN, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 5, deployments, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 6, expires_ms);
    sqlite3_bind_int64(st, 7, nuage__store_now_ms());
    sqlite3_bind_int(st, 8, admin ? 1 : 0);
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW) {
        if (out) key_row(st, out);
        step = sqlite3_step(st);
    }
    if (step != SQLITE_DONE) {
        /* A clash of two random 8-character ids (1 in 2e14) lands here too. */
        rc = nuage__store_sqlerr(s, "create key");
        goto out_unlock;
    }
    memcpy(key_out, key, KEY_LEN + 1);

out_unlock:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->mu);
out_cleanse:
    OPENSSL_cleanse(key, sizeof key);
    return rc;
}

int nuage_store_key_verify(nuage_store *s, const char *presented, nuage_key *key,
                           nuage_tenant *tenant) {
    if (!s) return NUAGE_E_INVAL;
    char id[KEY_ID_LEN + 1];
    if (!parse_key(presented, id)) return nuage__store_fail(NUAGE_E_RANGE, "invalid API key");
    if (s->pg) {
        nuage_key pk;
        nuage_tenant pt;
        unsigned char psalt[SALT_LEN], phash[HASH_LEN];
        int prc = nuage__pg_key_lookup(s, id, &pk, psalt, SALT_LEN, phash, HASH_LEN, &pt);
        if (!prc) prc = key_accept(presented, &pk, psalt, phash);
        if (prc) return prc == NUAGE_E_RANGE ? nuage__store_fail(NUAGE_E_RANGE, "invalid API key") : prc;
        if (key) *key = pk;
        if (tenant) *tenant = pt;
        return 0;
    }
    /* on the read connection (store_internal.h): a view whose db is rdb */
    pthread_mutex_lock(&s->rmu);
    nuage_store *w = s;
    nuage_store rview = {.db = s->rdb};
    s = &rview;
    sqlite3_stmt *st;
    nuage_key k;
    unsigned char salt[SALT_LEN], stored[HASH_LEN];
    int rc = nuage__store_prepare(s, "SELECT " KEY_COLS ", salt, hash FROM api_keys WHERE kid = ?",
                                  &st);
    if (rc) goto out;
    sqlite3_bind_text(st, 1, id, KEY_ID_LEN, SQLITE_TRANSIENT);
    int step = sqlite3_step(st);
    if (step != SQLITE_ROW) {
        rc = step == SQLITE_DONE ? nuage__store_fail(NUAGE_E_RANGE, "invalid API key")
                                 : nuage__store_sqlerr(s, "verify key");
        sqlite3_finalize(st);
        goto out;
    }
    key_row(st, &k);
    bool shape_ok = sqlite3_column_bytes(st, 8) == SALT_LEN &&
                    sqlite3_column_bytes(st, 9) == HASH_LEN;
    if (shape_ok) {
        memcpy(salt, sqlite3_column_blob(st, 8), SALT_LEN);
        memcpy(stored, sqlite3_column_blob(st, 9), HASH_LEN);
    }
    sqlite3_finalize(st);
    if (!shape_ok) {
        rc = nuage__store_fail(NUAGE_E_FORMAT, "corrupt key row %lld", (long long)k.id);
        goto out;
    }
    if ((rc = key_accept(presented, &k, salt, stored))) goto out;
    nuage_tenant t = {0};
    if (k.tenant_id != 0 && (rc = nuage__store_tenant_by_id_locked(s, k.tenant_id, &t))) {
        if (rc == NUAGE_E_RANGE) nuage__store_fail(NUAGE_E_RANGE, "invalid API key");
        goto out;
    }
    if (key) *key = k;
    if (tenant) *tenant = t;
out:
    pthread_mutex_unlock(&w->rmu);
    return rc;
}

int nuage_store_key_list(nuage_store *s, const char *tenant, nuage_key **out, int *n) {
    if (!s || !out || !n) return NUAGE_E_INVAL;
    *out = NULL;
    *n = 0;
    if (s->pg) return nuage__pg_key_list(s, tenant, out, n);
    pthread_mutex_lock(&s->mu);
    sqlite3_stmt *st = NULL;
    int rc = 0;
    nuage_tenant t;
    if (tenant) {
        if ((rc = nuage__store_tenant_by_name_locked(s, tenant, &t))) goto out;
        rc = nuage__store_prepare(s, "SELECT " KEY_COLS " FROM api_keys WHERE tenant_id = ? "
                                  "ORDER BY id", &st);
        if (!rc) sqlite3_bind_int64(st, 1, t.id);
    } else {
        rc = nuage__store_prepare(s, "SELECT " KEY_COLS " FROM api_keys ORDER BY id", &st);
    }
    if (rc) goto out;
    rc = nuage__store_collect(s, st, sizeof(**out), key_row_v, "list keys", (void **)out, n);
out:
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/* UPDATE api_keys SET revoked = 1 WHERE <col> = value; *changed rows. */
static int revoke_where(nuage_store *s, const char *col, const char *value, int *changed) {
    sqlite3_stmt *st;
    bool by_row = !strcmp(col, "id");
    if (s->pg) return nuage__pg_key_revoke_where(s, by_row, value, changed);
    int rc = nuage__store_prepare(s, by_row ? "UPDATE api_keys SET revoked = 1 WHERE id = ?"
                                            : "UPDATE api_keys SET revoked = 1 WHERE kid = ?",
                                  &st);
    if (rc) return rc;
    if (by_row) sqlite3_bind_int64(st, 1, strtoll(value, NULL, 10));
    else sqlite3_bind_text(st, 1, value, KEY_ID_LEN, SQLITE_TRANSIENT);
    if (!(rc = nuage__store_run(s, st, "revoke key"))) *changed = sqlite3_changes(s->db);
    return rc;
}

int nuage_store_key_revoke(nuage_store *s, const char *id_or_prefix) {
    if (!s || !id_or_prefix || !*id_or_prefix) return NUAGE_E_INVAL;
    const char *a = id_or_prefix;
    bool digits = true;
    for (const char *p = a; *p; p++) digits = digits && isdigit((unsigned char)*p);
    const char *kid = NULL;
    if (!strncmp(a, "nk-", 3)) {
        /* "nk-XXXXXXXX" (a full key is accepted too, by its id part). */
        if (strlen(a) < KEY_PREFIX_LEN || (a[KEY_PREFIX_LEN] && a[KEY_PREFIX_LEN] != '-') ||
            !is_base62(a + 3, KEY_ID_LEN))
            return nuage__store_fail(NUAGE_E_INVAL, "'%.48s' is not a key id or prefix", a);
        kid = a + 3;
    } else if (strlen(a) == KEY_ID_LEN && is_base62(a, KEY_ID_LEN)) {
        kid = a;
    } else if (!digits || strlen(a) > 18) {
        return nuage__store_fail(NUAGE_E_INVAL, "'%.48s' is not a key id or prefix", a);
    }
    pthread_mutex_lock(&s->mu);
    int changed = 0, rc = 0;
    /* An all-digit argument is the row id; an 8-digit one may also be a key
     * id part, tried when no row has that number. */
    if (digits) rc = revoke_where(s, "id", a, &changed);
    if (!rc && !changed && kid) rc = revoke_where(s, "kid", kid, &changed);
    if (!rc && !changed) rc = nuage__store_fail(NUAGE_E_RANGE, "no key '%.48s'", a);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int nuage_store_key_count(nuage_store *s) {
    if (!s) return NUAGE_E_INVAL;
    if (s->pg) return nuage__pg_key_count(s);
    pthread_mutex_lock(&s->mu);
    sqlite3_stmt *st;
    int rc = nuage__store_prepare(s, "SELECT COUNT(*) FROM api_keys WHERE revoked = 0 AND "
                                  "(expires_ms = 0 OR expires_ms > ?)", &st);
    if (rc) goto out;
    sqlite3_bind_int64(st, 1, nuage__store_now_ms());
    if (sqlite3_step(st) == SQLITE_ROW) rc = (int)sqlite3_column_int64(st, 0);
    else rc = nuage__store_sqlerr(s, "count keys");
    sqlite3_finalize(st);
out:
    pthread_mutex_unlock(&s->mu);
    return rc;
}
