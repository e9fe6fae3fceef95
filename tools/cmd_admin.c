/*
 * cmd_admin.c - `nuage admin`: manage the platform's tenants, API keys and
 * usage in the store (src/platform/store.h) from the command line.
 *
 *   nuage admin [--db PATH] tenant create NAME [--tpm N] [--rpm N] [--weight W] [--json]
 *   nuage admin [--db PATH] tenant list [--json]
 *   nuage admin [--db PATH] tenant delete NAME
 *   nuage admin [--db PATH] key create (--tenant NAME | --admin) [--tenant NAME]
 *                                      [--deployments a,b] [--expires DATE] [--admin]
 *   nuage admin [--db PATH] key list [--tenant NAME] [--json]
 *   nuage admin [--db PATH] key revoke ID|PREFIX
 *   nuage admin [--db PATH] usage [--tenant NAME] [--since DATE]
 *                                 [--by day|deployment|tenant] [--json]
 *   nuage admin [--db PATH] migrate
 *   nuage admin [--db PATH] cluster status [--gone-after S] [--json]
 *
 * PATH may be a SQLite file, sqlite:FILE or a postgres:// URL (the shared
 * control plane of several replicas, docs/cluster.md): every command works
 * on both. `migrate` brings the schema to this program's version (opening
 * does that anyway; the command says which version it found and made) and
 * `cluster status` lists the replicas that heartbeat into the store.
 *
 * The database is --db PATH, else $NUAGE_DB, else
 * $XDG_DATA_HOME/nuage/nuage.db or ~/.local/share/nuage/nuage.db (the
 * server's default too: nuage_store_default_path). It may be shared with a
 * running server: SQLite's WAL mode and busy timeout let both use it.
 *
 * `key create` prints the new key alone on stdout (one line, so
 * `KEY=$(nuage admin key create --tenant acme)` works) and the key's id
 * and prefix on stderr; the key is never shown again (only its salted hash
 * is stored). DATE is YYYY-MM-DD (00:00 UTC that day) or RFC 3339
 * (2025-06-01T12:00:00Z, 2025-06-01T14:00:00+02:00). Listings print an
 * aligned table, or with --json a JSON array (times in RFC 3339 UTC).
 * Exit codes: 0 ok, 1 error (database, not found, already exists), 2 usage.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "cli_util.h"
#include "nuage/nuage.h"
#include "platform/store.h"

#define CMD "admin"

static int usage(FILE *f, int code) {
    fprintf(f,
            "usage: nuage admin [--db PATH] COMMAND ...\n"
            "\n"
            "  tenant create NAME [--tpm N] [--rpm N] [--weight W] [--json]\n"
            "                       add a tenant (limits per minute, 0 = unlimited;\n"
            "                       weight: its share in fair scheduling, default 1)\n"
            "  tenant list [--json]\n"
            "  tenant delete NAME   remove a tenant and revoke its keys (usage stays)\n"
            "  key create --tenant NAME [--deployments a,b] [--expires DATE] [--admin]\n"
            "                       print a new API key on stdout (shown only once);\n"
            "                       --admin keys may call the admin API (no --tenant needed)\n"
            "  key list [--tenant NAME] [--json]\n"
            "  key revoke ID|PREFIX revoke by numeric id or prefix (nk-XXXXXXXX)\n"
            "  usage [--tenant NAME] [--since DATE] [--by day|deployment|tenant] [--json]\n"
            "                       requests and prompt/cached/completion/reasoning tokens\n"
            "  migrate              create or upgrade the schema (also done at open)\n"
            "  cluster status [--gone-after S] [--json]\n"
            "                       replicas sharing this store (gone: no heartbeat for S s, default 10)\n"
            "\n"
            "--db PATH: a postgres://user@host:port/db URL, sqlite:FILE, or a database file (default $NUAGE_DB, else $XDG_DATA_HOME/nuage/nuage.db\n"
            "or ~/.local/share/nuage/nuage.db). DATE: YYYY-MM-DD (UTC) or RFC 3339.\n"
            "Exit codes: 0 ok, 1 error, 2 usage.\n");
    return code;
}

static int cluster_cmd(nuage_store *s, int argc, char **argv);

/* ---- option parsing ---------------------------------------------------------- */

typedef struct {
    const char *name;     /* "--tpm" */
    bool has_value;
    const char *value;    /* parsed value (or "1" for flags) */
} opt;

/* Parse argv[0..argc) into opts (by name, "--x V" or "--x=V") and up to
 * max_pos positionals. 0, or 2 after printing a usage error. */
static int parse_opts(int argc, char **argv, opt *opts, int n_opts, const char **pos,
                      int max_pos, int *n_pos) {
    *n_pos = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (a[0] == '-' && a[1] == '-') {
            const char *eq = strchr(a, '=');
            size_t len = eq ? (size_t)(eq - a) : strlen(a);
            opt *o = NULL;
            for (int k = 0; k < n_opts; k++)
                if (strlen(opts[k].name) == len && !strncmp(opts[k].name, a, len)) o = &opts[k];
            if (!o) return nuage_cli_fail(CMD, 2, "unknown option '%.*s'", (int)len, a);
            if (!o->has_value) {
                if (eq) return nuage_cli_fail(CMD, 2, "%s takes no value", o->name);
                o->value = "1";
            } else if (eq) {
                o->value = eq + 1;
            } else if (i + 1 < argc) {
                o->value = argv[++i];
            } else {
                return nuage_cli_fail(CMD, 2, "%s needs a value", o->name);
            }
        } else {
            if (*n_pos == max_pos) return nuage_cli_fail(CMD, 2, "unexpected argument '%s'", a);
            pos[(*n_pos)++] = a;
        }
    }
    return 0;
}

/* Parse a non-negative integer option (absent: *out unchanged). */
static int opt_count(const opt *o, int64_t *out) {
    if (!o->value) return 0;
    long v;
    if (!nuage_cli_int(o->value, 0, INT32_MAX, &v))
        return nuage_cli_fail(CMD, 2, "%s: expected a whole number >= 0, got '%s'", o->name,
                              o->value);
    *out = v;
    return 0;
}

/* ---- dates --------------------------------------------------------------------- */

/* Read exactly n digits. */
static bool digits(const char **p, int n, int *out) {
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)(*p)[i])) return false;
        v = v * 10 + ((*p)[i] - '0');
    }
    *p += n;
    *out = v;
    return true;
}

/* "YYYY-MM-DD" (UTC midnight) or RFC 3339 date-time -> ms since the epoch. */
static bool parse_date(const char *s, int64_t *ms) {
    const char *p = s;
    int y, mo, d, h = 0, mi = 0, sec = 0, frac_ms = 0, off_min = 0;
    if (!digits(&p, 4, &y) || *p++ != '-' || !digits(&p, 2, &mo) || *p++ != '-' ||
        !digits(&p, 2, &d))
        return false;
    if (*p) {
        if (*p != 'T' && *p != 't' && *p != ' ') return false;
        p++;
        if (!digits(&p, 2, &h) || *p++ != ':' || !digits(&p, 2, &mi) || *p++ != ':' ||
            !digits(&p, 2, &sec))
            return false;
        if (*p == '.') {
            p++;
            int n = 0;
            while (isdigit((unsigned char)*p)) {
                if (n < 3) frac_ms = frac_ms * 10 + (*p - '0');
                n++;
                p++;
            }
            if (n == 0) return false;
            for (; n < 3; n++) frac_ms *= 10;
        }
        if (*p == 'Z' || *p == 'z') {
            p++;
        } else if (*p == '+' || *p == '-') {
            int sign = *p++ == '-' ? -1 : 1, oh, om;
            if (!digits(&p, 2, &oh) || *p++ != ':' || !digits(&p, 2, &om) || oh > 23 || om > 59)
                return false;
            off_min = sign * (oh * 60 + om);
        } else {
            return false;
        }
        if (*p) return false;
    }
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60) return false;
    struct tm tm = {.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h,
                    .tm_min = mi, .tm_sec = sec == 60 ? 59 : sec};
    time_t t = timegm(&tm);
    if (tm.tm_mday != d || tm.tm_mon != mo - 1) return false;  /* 2025-02-30 */
    *ms = ((int64_t)t - (int64_t)off_min * 60) * 1000 + frac_ms;
    return true;
}

/* RFC 3339 UTC text of ms (seconds precision). */
static const char *fmt_time(int64_t ms, char *buf, size_t cap) {
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- output ---------------------------------------------------------------------- */

/* Print a JSON value (steals the reference); 0 or 1. */
static int print_json(json_t *v) {
    if (!v) return nuage_cli_fail(CMD, 1, "out of memory");
    char *text = json_dumps(v, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(v);
    if (!text) return nuage_cli_fail(CMD, 1, "out of memory");
    printf("%s\n", text);
    free(text);
    return 0;
}

/* Store error -> exit code, printing it: invalid arguments are usage errors. */
static int store_fail(int rc, nuage_store *s) {
    return nuage_cli_fail(CMD, rc == NUAGE_E_INVAL ? 2 : 1, "%s", nuage_store_errmsg(s));
}

static json_t *tenant_json(const nuage_tenant *t) {
    char buf[32];
    return json_pack("{s:I, s:s, s:I, s:I, s:f, s:s}", "id", (json_int_t)t->id, "name", t->name,
                     "tpm", (json_int_t)t->tpm, "rpm", (json_int_t)t->rpm, "weight", t->weight,
                     "created", fmt_time(t->created_ms, buf, sizeof buf));
}

/* ---- tenant --------------------------------------------------------------------- */

static int tenant_cmd(nuage_store *s, int argc, char **argv) {
    if (argc < 1) return nuage_cli_fail(CMD, 2, "tenant: expected create, list or delete");
    const char *verb = argv[0];
    opt opts[] = {{"--tpm", true, NULL}, {"--rpm", true, NULL}, {"--weight", true, NULL},
                  {"--json", false, NULL}};
    const char *pos[1];
    int n_pos, rc;
    bool create = !strcmp(verb, "create"), list = !strcmp(verb, "list"),
         del = !strcmp(verb, "delete");
    if (!create && !list && !del)
        return nuage_cli_fail(CMD, 2, "tenant: unknown action '%s' (create, list, delete)", verb);
    opt list_opts[] = {{"--json", false, NULL}};
    if (list) rc = parse_opts(argc - 1, argv + 1, list_opts, 1, pos, 0, &n_pos);
    else rc = parse_opts(argc - 1, argv + 1, opts, create ? 4 : 0, pos, 1, &n_pos);
    if (rc) return rc;
    if (list) {
        nuage_tenant *ts;
        int n;
        if ((rc = nuage_store_tenant_list(s, &ts, &n))) return store_fail(rc, s);
        if (list_opts[0].value) {
            json_t *arr = json_array();
            for (int i = 0; arr && i < n; i++) json_array_append_new(arr, tenant_json(&ts[i]));
            free(ts);
            return print_json(arr);
        }
        printf("%-6s %-24s %10s %8s %7s  %s\n", "ID", "NAME", "TPM", "RPM", "WEIGHT", "CREATED");
        for (int i = 0; i < n; i++) {
            char buf[32];
            printf("%-6" PRId64 " %-24s %10" PRId64 " %8" PRId64 " %7.2f  %s\n", ts[i].id,
                   ts[i].name, ts[i].tpm, ts[i].rpm, ts[i].weight,
                   fmt_time(ts[i].created_ms, buf, sizeof buf));
        }
        free(ts);
        return 0;
    }
    if (n_pos != 1) return nuage_cli_fail(CMD, 2, "tenant %s: expected NAME", verb);
    if (del) {
        if ((rc = nuage_store_tenant_delete(s, pos[0]))) return store_fail(rc, s);
        printf("deleted tenant %s (its keys are revoked)\n", pos[0]);
        return 0;
    }
    int64_t tpm = 0, rpm = 0;
    double weight = 1.0;
    if ((rc = opt_count(&opts[0], &tpm)) || (rc = opt_count(&opts[1], &rpm))) return rc;
    if (opts[2].value && (!nuage_cli_float(opts[2].value, &weight) || !(weight > 0)))
        return nuage_cli_fail(CMD, 2, "--weight: expected a number > 0, got '%s'",
                              opts[2].value);
    nuage_tenant t;
    if ((rc = nuage_store_tenant_create(s, pos[0], tpm, rpm, weight, &t))) return store_fail(rc, s);
    if (opts[3].value) return print_json(tenant_json(&t));
    printf("created tenant %s (id %" PRId64 ")\n", t.name, t.id);
    return 0;
}

/* ---- key -------------------------------------------------------------------------- */

/* Tenant name of id for listings ("-" for none, "#id" when deleted). */
static const char *tenant_name(nuage_store *s, int64_t id, char *buf, size_t cap) {
    nuage_tenant t;
    if (id == 0) snprintf(buf, cap, "-");
    else if (nuage_store_tenant_get_id(s, id, &t) == 0) snprintf(buf, cap, "%s", t.name);
    else snprintf(buf, cap, "#%" PRId64, id);
    return buf;
}

static json_t *key_json(nuage_store *s, const nuage_key *k, int64_t now) {
    char name[80], created[32], expires[32];
    json_t *deps = json_array();
    const char *p = k->deployments;
    while (deps && *p) {
        while (*p == ',' || *p == ' ') p++;
        const char *start = p;
        while (*p && *p != ',') p++;
        const char *end = p;
        while (end > start && end[-1] == ' ') end--;
        if (end > start) json_array_append_new(deps, json_stringn(start, (size_t)(end - start)));
    }
    json_t *o = json_pack("{s:I, s:s, s:o?, s:I, s:o, s:s, s:o?, s:b, s:b, s:b}",
                          "id", (json_int_t)k->id, "prefix", k->prefix,
                          "tenant", k->tenant_id ? json_string(tenant_name(s, k->tenant_id, name,
                                                                           sizeof name))
                                                 : NULL,
                          "tenant_id", (json_int_t)k->tenant_id, "deployments", deps,
                          "created", fmt_time(k->created_ms, created, sizeof created),
                          "expires", k->expires_ms ? json_string(fmt_time(k->expires_ms, expires,
                                                                          sizeof expires))
                                                   : NULL,
                          "revoked", (int)k->revoked,
                          "expired", (int)(k->expires_ms && now >= k->expires_ms),
                          "admin", (int)k->admin);
    return o;
}

static int key_cmd(nuage_store *s, int argc, char **argv) {
    if (argc < 1) return nuage_cli_fail(CMD, 2, "key: expected create, list or revoke");
    const char *verb = argv[0];
    const char *pos[1];
    int n_pos, rc;
    if (!strcmp(verb, "create")) {
        opt opts[] = {{"--tenant", true, NULL}, {"--deployments", true, NULL},
                      {"--expires", true, NULL}, {"--admin", false, NULL}};
        if ((rc = parse_opts(argc - 1, argv + 1, opts, 4, pos, 0, &n_pos))) return rc;
        bool admin = opts[3].value != NULL;
        if (!opts[0].value && !admin)
            return nuage_cli_fail(CMD, 2, "key create: --tenant NAME is required (or --admin)");
        int64_t expires = 0;
        if (opts[2].value) {
            if (!parse_date(opts[2].value, &expires))
                return nuage_cli_fail(CMD, 2, "--expires: expected YYYY-MM-DD or RFC 3339, got "
                                      "'%s'", opts[2].value);
            if (expires <= now_ms())
                return nuage_cli_fail(CMD, 2, "--expires: %s is in the past", opts[2].value);
        }
        char key[128];
        nuage_key k;
        if ((rc = nuage_store_key_create(s, opts[0].value, opts[1].value, expires, admin, key,
                                         sizeof key, &k)))
            return store_fail(rc, s);
        printf("%s\n", key);
        fflush(stdout);
        fprintf(stderr, "nuage admin: created key %" PRId64 " (%s)%s%s; it is shown only "
                "once\n", k.id, k.prefix, opts[0].value ? " for tenant " : "",
                opts[0].value ? opts[0].value : "");
        memset(key, 0, sizeof key);
        return 0;
    }
    if (!strcmp(verb, "list")) {
        opt opts[] = {{"--tenant", true, NULL}, {"--json", false, NULL}};
        if ((rc = parse_opts(argc - 1, argv + 1, opts, 2, pos, 0, &n_pos))) return rc;
        nuage_key *ks;
        int n;
        if ((rc = nuage_store_key_list(s, opts[0].value, &ks, &n))) return store_fail(rc, s);
        int64_t now = now_ms();
        if (opts[1].value) {
            json_t *arr = json_array();
            for (int i = 0; arr && i < n; i++) json_array_append_new(arr, key_json(s, &ks[i], now));
            free(ks);
            return print_json(arr);
        }
        printf("%-5s %-12s %-20s %-8s %-21s %-20s %s\n", "ID", "PREFIX", "TENANT", "STATUS",
               "EXPIRES", "CREATED", "DEPLOYMENTS");
        for (int i = 0; i < n; i++) {
            char name[80], created[32], expires[32];
            const nuage_key *k = &ks[i];
            const char *status = k->revoked ? "revoked"
                                 : (k->expires_ms && now >= k->expires_ms) ? "expired"
                                                                           : "active";
            printf("%-5" PRId64 " %-12s %-20s %-8s %-21s %-20s %s%s\n", k->id, k->prefix,
                   tenant_name(s, k->tenant_id, name, sizeof name), status,
                   k->expires_ms ? fmt_time(k->expires_ms, expires, sizeof expires) : "never",
                   fmt_time(k->created_ms, created, sizeof created),
                   k->deployments[0] ? k->deployments : "*", k->admin ? " (admin)" : "");
        }
        free(ks);
        return 0;
    }
    if (!strcmp(verb, "revoke")) {
        if ((rc = parse_opts(argc - 1, argv + 1, NULL, 0, pos, 1, &n_pos))) return rc;
        if (n_pos != 1) return nuage_cli_fail(CMD, 2, "key revoke: expected ID or PREFIX");
        if ((rc = nuage_store_key_revoke(s, pos[0]))) return store_fail(rc, s);
        printf("revoked key %s\n", pos[0]);
        return 0;
    }
    return nuage_cli_fail(CMD, 2, "key: unknown action '%s' (create, list, revoke)", verb);
}

/* ---- usage ------------------------------------------------------------------------- */

static int usage_cmd(nuage_store *s, int argc, char **argv) {
    opt opts[] = {{"--tenant", true, NULL}, {"--since", true, NULL}, {"--by", true, NULL},
                  {"--json", false, NULL}};
    const char *pos[1];
    int n_pos, rc;
    if ((rc = parse_opts(argc, argv, opts, 4, pos, 0, &n_pos))) return rc;
    const char *by = opts[2].value;
    if (by && strcmp(by, "day") && strcmp(by, "deployment") && strcmp(by, "tenant"))
        return nuage_cli_fail(CMD, 2, "--by: expected day, deployment or tenant, got '%s'", by);
    int64_t since = 0, tenant_id = 0;
    if (opts[1].value && !parse_date(opts[1].value, &since))
        return nuage_cli_fail(CMD, 2, "--since: expected YYYY-MM-DD or RFC 3339, got '%s'",
                              opts[1].value);
    if (opts[0].value) {
        nuage_tenant t;
        if ((rc = nuage_store_tenant_get(s, opts[0].value, &t))) return store_fail(rc, s);
        tenant_id = t.id;
    }
    nuage_usage_total *tot;
    int n;
    if ((rc = nuage_store_usage_totals(s, tenant_id, since, by, &tot, &n))) return store_fail(rc, s);
    if (opts[3].value) {
        json_t *arr = json_array();
        for (int i = 0; arr && i < n; i++)
            json_array_append_new(arr, json_pack("{s:s, s:I, s:I, s:I, s:I, s:I}",
                                                 "group", tot[i].group,
                                                 "requests", (json_int_t)tot[i].requests,
                                                 "prompt_tokens", (json_int_t)tot[i].prompt_tokens,
                                                 "cached_tokens", (json_int_t)tot[i].cached_tokens,
                                                 "completion_tokens",
                                                 (json_int_t)tot[i].completion_tokens,
                                                 "reasoning_tokens",
                                                 (json_int_t)tot[i].reasoning_tokens));
        free(tot);
        return print_json(arr);
    }
    printf("%-24s %10s %14s %14s %14s %14s\n", by ? by : "", "REQUESTS", "PROMPT", "CACHED",
           "COMPLETION", "REASONING");
    for (int i = 0; i < n; i++)
        printf("%-24s %10" PRId64 " %14" PRId64 " %14" PRId64 " %14" PRId64 " %14" PRId64 "\n",
               tot[i].group, tot[i].requests, tot[i].prompt_tokens, tot[i].cached_tokens,
               tot[i].completion_tokens, tot[i].reasoning_tokens);
    free(tot);
    return 0;
}

/* ---- entry ----------------------------------------------------------------------------- */

int nuage_cmd_admin(int argc, char **argv) {
    const char *db = NULL;
    char **args = calloc((size_t)argc + 1, sizeof *args);
    if (!args) return nuage_cli_fail(CMD, 1, "out of memory");
    int n = 0, rc;
    /* --db and --help may come anywhere; the rest is the command. */
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            free(args);
            return usage(stdout, 0);
        }
        if (!strcmp(argv[i], "--db")) {
            if (i + 1 >= argc) {
                free(args);
                return nuage_cli_fail(CMD, 2, "--db needs a value");
            }
            db = argv[++i];
        } else if (!strncmp(argv[i], "--db=", 5)) {
            db = argv[i] + 5;
        } else {
            args[n++] = argv[i];
        }
    }
    if (n == 0) {
        free(args);
        return usage(stderr, 2);
    }
    const char *noun = args[0];
    if (strcmp(noun, "tenant") && strcmp(noun, "key") && strcmp(noun, "usage") && strcmp(noun, "migrate") &&
        strcmp(noun, "cluster")) {
        nuage_cli_fail(CMD, 2, "unknown command '%s'", noun);
        free(args);
        return usage(stderr, 2);
    }
    char path[4096];
    if (!db || !*db) {
        if ((rc = nuage_store_default_path(path, sizeof path))) {
            free(args);
            return nuage_cli_fail(CMD, 1, "%s", nuage_store_errmsg(NULL));
        }
        db = path;
    }
    nuage_store *s;
    char err[512];
    double t0 = nuage_cli_now();
    if ((rc = nuage_store_open(db, &s, err, sizeof err))) {
        free(args);
        return nuage_cli_fail(CMD, 1, "%s", err);
    }
    if (!strcmp(noun, "migrate")) {
        rc = n > 1 ? nuage_cli_fail(CMD, 2, "migrate takes no argument") : 0;
        int v = rc ? 0 : nuage_store_schema_version(s);
        if (!rc && v < 0) rc = nuage_cli_fail(CMD, 1, "%s", nuage_store_errmsg(s));
        else if (!rc) printf("schema version %d (open and migrate: %.1f ms)\n", v, (nuage_cli_now() - t0) * 1000);
    } else if (!strcmp(noun, "cluster")) rc = cluster_cmd(s, n - 1, args + 1);
    else if (!strcmp(noun, "tenant")) rc = tenant_cmd(s, n - 1, args + 1);
    else if (!strcmp(noun, "key")) rc = key_cmd(s, n - 1, args + 1);
    else rc = usage_cmd(s, n - 1, args + 1);
    nuage_store_close(s);
    free(args);
    return rc;
}

/* ---- cluster status ------------------------------------------------------------------ */

static int cluster_cmd(nuage_store *s, int argc, char **argv) {
    if (argc < 1 || strcmp(argv[0], "status")) return nuage_cli_fail(CMD, 2, "expected: cluster status");
    opt o[] = {{"--json", false, NULL}, {"--gone-after", true, NULL}};
    const char *pos[1];
    int n_pos, rc;
    if ((rc = parse_opts(argc - 1, argv + 1, o, 2, pos, 0, &n_pos))) return rc;
    int64_t gone_s = 10;
    if ((rc = opt_count(&o[1], &gone_s))) return rc;
    nuage_replica *r = NULL;
    int n = 0;
    int64_t now = now_ms();
    if (nuage_store_replica_list(s, now, gone_s * 1000, &r, &n))
        return nuage_cli_fail(CMD, 1, "%s", nuage_store_errmsg(s));
    char t1[32], t2[32];
    if (o[0].value) {
        json_t *a = json_array();
        for (int i = 0; a && i < n; i++)
            json_array_append_new(a, json_pack("{s:s, s:s, s:s, s:f, s:s, s:s, s:s, s:f, s:s}", "id", r[i].id,
                                               "address", r[i].address, "deployments", r[i].deployments, "load",
                                               r[i].load, "version", r[i].version, "started",
                                               fmt_time(r[i].started_ms, t1, sizeof t1), "last_heartbeat",
                                               fmt_time(r[i].heartbeat_ms, t2, sizeof t2), "heartbeat_age_s",
                                               (double)(now - r[i].heartbeat_ms) / 1000.0, "status",
                                               r[i].gone ? "gone" : "up"));
        free(r);
        return print_json(a);
    }
    printf("%-20s %-6s %-22s %-8s %-10s %-8s %s\n", "REPLICA", "STATUS", "ADDRESS", "LOAD", "VERSION", "AGE_S",
           "DEPLOYMENTS");
    for (int i = 0; i < n; i++)
        printf("%-20s %-6s %-22s %-8.1f %-10s %-8.1f %s\n", r[i].id, r[i].gone ? "gone" : "up", r[i].address,
               r[i].load, r[i].version, (double)(now - r[i].heartbeat_ms) / 1000.0, r[i].deployments);
    free(r);
    return 0;
}
