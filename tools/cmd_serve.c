/*
 * cmd_serve.c - `nuage serve`: the OpenAI-compatible HTTP server, and the
 * multi-tenant hosting service around it.
 *
 * Two ways to say what is served: `-m MODEL` (one deployment named after
 * --alias or the file, configured by the command-line flags: the local
 * developer's shortcut) or `--config nuage.json` (any number of
 * deployments, docs/platform.md). The store (`--db`, else $NUAGE_DB, else
 * the default path shared with `nuage admin` when that file exists) holds
 * tenants, keys and usage; without one, the server runs open on loopback
 * with no quotas and no metering, exactly like the first versions.
 *
 * Order of events: check the exposure rule (with a store, keys are always
 * required unless --no-auth, which only a loopback address accepts; with
 * no store, a non-loopback address is refused unless --insecure), bind the port (so
 * that /health can answer "loading" and a supervisor sees the process is
 * alive), load the deployments (each checked against the memory available
 * first), start answering; then wait for signals. SIGHUP re-reads the
 * configuration file and applies the difference (new deployments loaded,
 * changed ones replaced with their requests in flight finishing on the old
 * instance, removed ones unloaded), without disturbing the others.
 * Shutdown on SIGINT / SIGTERM: /health turns to "stopping" and new
 * generation requests get 503, every scheduler drains (requests in flight
 * may finish for --drain-timeout seconds, then the rest are cancelled), the
 * HTTP layer lets finished streams write their last bytes, and everything
 * is freed in reverse order.
 *
 * Signals are blocked in every thread (the mask is set before any thread
 * starts and inherited) and taken synchronously with sigwait in the main
 * thread, so no handler runs inside library code. SIGPIPE is ignored:
 * a client that disconnects must not kill the server; so is SIGXFSZ (a
 * write past the file size limit fails like a full disk instead).
 *
 * The first line on stderr is "nuage serve: listening on http://HOST:PORT
 * (auth: ...)" (with the real port when --port 0 asked for any free one, and
 * the authentication mode in parentheses); scripts and
 * the integration tests read it. Every answer names the process in an
 * x-nuage-replica header (--replica-id, default HOSTNAME:PORT), so that
 * behind a balancer one sees which replica served it (docs/cluster.md).
 * A reload logs "nuage serve: reloaded
 * CONFIG: ..." (or "reload failed: ...").
 */
#include <ctype.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "cli_util.h"
#include "nuage/nuage.h"
#include "platform/auth.h"
#include "platform/batch_runner.h"
#include "platform/deploy.h"
#include "platform/model_path.h"
#include "platform/quota.h"
#include "platform/router.h"
#include "platform/store.h"
#include "serve_replica.h"
#include "server/api_batch.h"
#include "server/http.h"
#include "runtime/sched.h"

static int usage(void) {
    fprintf(stderr,
            "usage: nuage serve (-m MODEL | --config FILE) [--host 127.0.0.1] [--port 8080] [options]\n"
            "  -m, --model MODEL     serve one model file as one deployment\n"
            "  --config FILE         serve the deployments of a JSON configuration (docs/platform.md);\n"
            "                        SIGHUP re-reads it\n"
            "  --db PATH             tenants, keys and usage (default $NUAGE_DB, else the store\n"
            "                        shared with `nuage admin` when it exists); a SQLite file or\n"
            "                        postgres://user@host:port/db (several replicas, docs/cluster.md)\n"
            "  --no-db               run without a store (no keys, no quotas, no metering)\n"
            "  --replica-id ID       this replica's name: every answer's x-nuage-replica header and the\n"
            "                        store's replica registry (default HOSTNAME:PORT; letters, digits\n"
            "                        and . _ : - only, at most 100)\n"
            "  --advertise HOST:PORT address announced there (default HOSTNAME:PORT)\n"
            "  --quota-slice F       with a postgres:// store: lease this fraction of a tenant's TPM / RPM\n"
            "                        at a time and admit from it locally (default 0.005; overshoot at most\n"
            "                        replicas x F of a limit); 0: one database round trip per request (exact)\n"
            "  --quota-lease-ms MS   how long a replica keeps a slice before giving back the rest (1000)\n"
            "  --journal FILE        with a postgres:// store: usage records go to this local SQLite\n"
            "                        journal first and are shipped to PostgreSQL in batches (default\n"
            "                        $TMPDIR/nuage-journal-REPLICA-URLHASH.db; docs/cluster.md)\n"
            "  --batch-lease SECONDS a batch job is leased to one replica, renewed while it runs; a dead\n"
            "                        replica's job moves to another after this long (default 30)\n"
            "  --models-dir DIR      model files POST /admin/deployments may load (default: the\n"
            "                        configuration file's folder, or the -m model's folder)\n"
            "  --no-auth             with a store, serve without API keys (loopback only)\n"
            "  --no-console          do not serve the web console at / (Playground, Usage, Operations)\n"
            "  --insecure            with no store, allow a non-loopback address (no auth)\n"
            "  --memory-limit BYTES  memory for all deployments (default: MemAvailable - margin)\n"
            "  --memory-margin BYTES kept free of MemAvailable (default 256M)\n"
            "  --port N              port to listen on; 0 picks a free one (default 8080)\n"
            "  -t, --threads N       compute threads per deployment (default: all cores)\n"
            " with -m:\n"
            "  --ctx N               tokens per sequence, prompt + output (default: model's, <= 4096)\n"
            "  --parallel N          sequences decoding at once (default 8)\n"
            "  --kv-blocks N         KV-cache pool size in blocks of --kv-block-size tokens\n"
            "  --kv-memory BYTES     KV-cache pool size in bytes (suffix K, M or G)\n"
            "  --kv-block-size N     tokens per KV block (default 16)\n"
            "  --kv-type f16|f32|q8_0  KV-cache storage (default f16; q8_0 halves it)\n"
            "  --no-prefix-cache     do not reuse the KV blocks of shared prompt prefixes\n"
            "  --max-batch-tokens N  tokens per step when no stream decodes (default 512)\n"
            "  --step-tokens N       tokens per step while streams decode: one per stream, the\n"
            "                        rest prompt chunks (default 256; smaller: steadier streams)\n"
            "  --max-queue N         waiting requests before 503 (default 256)\n"
            "  --max-n N             largest 'n' accepted (default: --parallel, at most 8)\n"
            "  --max-tokens-default N  output cap when a request gives no max_tokens (default 4096)\n"
            "  --alias NAME          deployment name (default: file name without .gguf)\n"
            "  --version LABEL       version label reported by responses (default none)\n"
            "  --chat-template FILE  Jinja chat template replacing the model's (e.g. for a GGUF without one)\n"
            "  --tool-format NAME    tool-call syntax: hermes, llama3, mistral, deepseek, harmony, generic\n"
            "                        (default: detected from the chat template)\n"
            " server:\n"
            "  --max-body BYTES      request body limit (default 8M)\n"
            "  --timeout S           idle connection timeout in seconds (default 60)\n"
            "  --max-conns N         open connections; beyond, the oldest idle is shed (default 16384)\n"
            "  --max-conns-per-ip N  connections from one address (default 256; raise behind a proxy)\n"
            "  --drain-timeout S     on SIGINT/SIGTERM, seconds to let requests finish (default 10)\n"
            "  --response-retention S  keep stored Responses API responses S seconds (default 2592000: 30 days)\n"
            "  --quiet               no per-request log lines\n");
    return 2;
}

/* A --replica-id fit for an HTTP header value: 1-100 of [A-Za-z0-9._:-]. */
static bool nuage__replica_id_ok(const char *v) {
    size_t n = strlen(v);
    if (n < 1 || n > 100) return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)v[i]) && !strchr("._:-", v[i])) return false;
    return true;
}

/* Model id from the path: the file name without ".gguf". */
static void nuage__model_stem(const char *path, char *buf, size_t cap) {
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    snprintf(buf, cap, "%s", b);
    size_t n = strlen(buf);
    if (n > 5 && !strcmp(buf + n - 5, ".gguf")) buf[n - 5] = 0;
}

/* SIGHUP / POST /admin/reload: the configuration file's current content. */
typedef struct {
    const char *path;
    nuage_registry *reg;
    pthread_mutex_t mu;      /* one reload at a time */
} nuage__reloader;

static int nuage__reload(void *ud, char *summary, size_t slen, char *err, size_t elen) {
    nuage__reloader *rl = ud;
    pthread_mutex_lock(&rl->mu);
    nuage_deploy_config *cs = NULL;
    int n = 0;
    summary[0] = 0;
    int rc = nuage_deploy_config_load(rl->path, &cs, &n, NULL, err, elen);
    if (!rc) rc = nuage_registry_apply(rl->reg, cs, n, summary, slen, err, elen);
    for (int i = 0; i < n; i++) nuage_deploy_config_free(&cs[i]);
    free(cs);
    pthread_mutex_unlock(&rl->mu);
    return rc;
}

/* Per-deployment limits for the rate limiter (platform/quota.h): each
 * tenant's tpm / rpm on deployment `name`, from its configuration. */
static int nuage__deployment_limits(void *ud, const char *name, int64_t *tpm, int64_t *rpm) {
    nuage_deployment *d = nuage_registry_acquire(ud, name);
    if (!d) return -1;
    *tpm = d->cfg.tpm_per_tenant;
    *rpm = d->cfg.rpm_per_tenant;
    nuage_deployment_release(d);
    return 0;
}

/* The "server" object of a configuration file: values the command line
 * did not give. */
static int nuage__server_settings(json_t *srv, const char **host, long *port, bool port_given,
                                  const char **db, uint64_t *mem_limit, uint64_t *margin, long *threads) {
    if (!srv) return 0;
    const char *key;
    json_t *v;
    json_object_foreach(srv, key, v) {
        if (!strcmp(key, "host") && json_is_string(v)) {
            if (!*host) *host = json_string_value(v);
        } else if (!strcmp(key, "port") && json_is_integer(v) && json_integer_value(v) >= 0 &&
                   json_integer_value(v) <= 65535) {
            if (!port_given) *port = (long)json_integer_value(v);
        } else if (!strcmp(key, "db") && json_is_string(v)) {
            if (!*db) *db = json_string_value(v);
        } else if ((!strcmp(key, "memory_limit") || !strcmp(key, "memory_margin")) &&
                   (json_is_string(v) || json_is_integer(v))) {
            uint64_t b = 0;
            bool ok = json_is_integer(v) ? (json_integer_value(v) > 0 && (b = (uint64_t)json_integer_value(v)))
                                         : nuage_deploy_parse_bytes(json_string_value(v), &b);
            if (!ok) return nuage_cli_fail("serve", 2, "config: bad \"%s\"", key);
            uint64_t *dst = !strcmp(key, "memory_limit") ? mem_limit : margin;
            if (!*dst) *dst = b;
        } else if (!strcmp(key, "threads") && json_is_integer(v) && json_integer_value(v) > 0) {
            if (!*threads) *threads = (long)json_integer_value(v);
        } else {
            return nuage_cli_fail("serve", 2, "config: unknown or invalid \"server\" field \"%s\"", key);
        }
    }
    return 0;
}

int nuage_cmd_serve(int argc, char **argv) {
    const char *model = NULL, *alias = NULL, *host = NULL, *config = NULL, *db = NULL, *version = NULL;
    const char *models_dir = NULL, *replica_id = NULL, *advertise = NULL, *journal = NULL;
    nuage__replica_beat *beat = NULL;
    long port = 8080, threads = 0, n_ctx = 0, kv_blocks = 0, max_batch = 0, max_queue = 0;
    long step_tokens = 0;
    long parallel = 8, max_n = 0, max_tok_def = 4096, timeout = 60, drain = 10, block_size = 16;
    long retention = 30L * 86400, batch_lease = 30, quota_lease_ms = 1000;
    double quota_slice = 0.005;
    long max_conns = 0, max_per_ip = 0;
    uint64_t kv_memory = 0, max_body = 8u << 20, mem_limit = 0, mem_margin = 0;
    bool prefix_cache = true, quiet = false, insecure = false, no_db = false, port_given = false;
    bool no_auth = false, no_console = false;
    nuage_kv_type kv_type = NUAGE_KV_F16;
    const char *chat_tpl = NULL, *tool_fmt = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(); return 0; }
        if (!strcmp(a, "--no-prefix-cache")) { prefix_cache = false; continue; }
        if (!strcmp(a, "--quiet")) { quiet = true; continue; }
        if (!strcmp(a, "--insecure")) { insecure = true; continue; }
        if (!strcmp(a, "--no-db")) { no_db = true; continue; }
        if (!strcmp(a, "--no-auth")) { no_auth = true; continue; }
        if (!strcmp(a, "--no-console")) { no_console = true; continue; }
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) return usage();
        bool ok = true;
        if (!strcmp(a, "-m") || !strcmp(a, "--model")) model = v;
        else if (!strcmp(a, "--config")) config = v;
        else if (!strcmp(a, "--db")) db = v;
        else if (!strcmp(a, "--advertise")) advertise = v;
        else if (!strcmp(a, "--journal")) ok = *(journal = v) != 0;
        else if (!strcmp(a, "--models-dir")) models_dir = v;
        else if (!strcmp(a, "--host")) host = v;
        else if (!strcmp(a, "--port")) ok = nuage_cli_int(v, 0, 65535, &port), port_given = true;
        else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) ok = nuage_cli_int(v, 1, 1024, &threads);
        else if (!strcmp(a, "--ctx") || !strcmp(a, "-c")) ok = nuage_cli_int(v, 1, 1 << 24, &n_ctx);
        else if (!strcmp(a, "--kv-blocks")) ok = nuage_cli_int(v, 1, 1 << 30, &kv_blocks);
        else if (!strcmp(a, "--kv-memory")) ok = nuage_deploy_parse_bytes(v, &kv_memory) && kv_memory > 0;
        else if (!strcmp(a, "--kv-block-size")) ok = nuage_cli_int(v, 1, 4096, &block_size);
        else if (!strcmp(a, "--kv-type")) {
            if (!strcmp(v, "f16")) kv_type = NUAGE_KV_F16;
            else if (!strcmp(v, "f32")) kv_type = NUAGE_KV_F32;
            else if (!strcmp(v, "q8_0")) kv_type = NUAGE_KV_Q8_0;
            else ok = false;
        }
        else if (!strcmp(a, "--max-batch-tokens")) ok = nuage_cli_int(v, 1, 1 << 20, &max_batch);
        else if (!strcmp(a, "--step-tokens")) ok = nuage_cli_int(v, 1, 1 << 20, &step_tokens);
        else if (!strcmp(a, "--max-queue")) ok = nuage_cli_int(v, 1, 1 << 20, &max_queue);
        else if (!strcmp(a, "--parallel") || !strcmp(a, "-np")) ok = nuage_cli_int(v, 1, 4096, &parallel);
        else if (!strcmp(a, "--max-n")) ok = nuage_cli_int(v, 1, 128, &max_n);
        else if (!strcmp(a, "--max-tokens-default")) ok = nuage_cli_int(v, 1, 1 << 24, &max_tok_def);
        else if (!strcmp(a, "--max-body")) ok = nuage_deploy_parse_bytes(v, &max_body) && max_body > 0;
        else if (!strcmp(a, "--timeout")) ok = nuage_cli_int(v, 1, 86400, &timeout);
        else if (!strcmp(a, "--drain-timeout")) ok = nuage_cli_int(v, 0, 86400, &drain);
        else if (!strcmp(a, "--response-retention")) ok = nuage_cli_int(v, 1, 100L * 365 * 86400, &retention);
        else if (!strcmp(a, "--max-conns")) ok = nuage_cli_int(v, 16, 1 << 22, &max_conns);
        else if (!strcmp(a, "--max-conns-per-ip")) ok = nuage_cli_int(v, 1, 1 << 22, &max_per_ip);
        else if (!strcmp(a, "--memory-limit")) ok = nuage_deploy_parse_bytes(v, &mem_limit) && mem_limit > 0;
        else if (!strcmp(a, "--memory-margin")) ok = nuage_deploy_parse_bytes(v, &mem_margin);
        else if (!strcmp(a, "--replica-id")) ok = nuage__replica_id_ok(replica_id = v);
        else if (!strcmp(a, "--batch-lease")) ok = nuage_cli_int(v, 1, 86400, &batch_lease);
        else if (!strcmp(a, "--quota-slice")) {
            char *end = NULL;
            quota_slice = strtod(v, &end);
            ok = end && !*end && quota_slice >= 0 && quota_slice <= 0.5;
        }
        else if (!strcmp(a, "--quota-lease-ms")) ok = nuage_cli_int(v, 10, 60000, &quota_lease_ms);
        else if (!strcmp(a, "--alias")) alias = v;
        else if (!strcmp(a, "--version")) version = v;
        else if (!strcmp(a, "--chat-template")) chat_tpl = v;
        else if (!strcmp(a, "--tool-format")) tool_fmt = v;
        else return usage();
        if (!ok) return nuage_cli_fail("serve", 2, "bad value for %s: '%s'", a, v);
        i++;
    }
    if (!model == !config) {
        if (model) return nuage_cli_fail("serve", 2, "give -m MODEL or --config FILE, not both");
        return usage();
    }
    if (kv_blocks && kv_memory) return nuage_cli_fail("serve", 2, "give --kv-blocks or --kv-memory, not both");
    if (!max_n) max_n = parallel < 8 ? parallel : 8;
    if (max_n > parallel) max_n = parallel;

    /* The deployments to serve. */
    char err[1024];
    nuage_deploy_config *cs = NULL;
    int n_cs = 0;
    json_t *srv_cfg = NULL;
    if (config) {
        if (nuage_deploy_config_load(config, &cs, &n_cs, &srv_cfg, err, sizeof err))
            return nuage_cli_fail("serve", 1, "%s", err);
        int rc = nuage__server_settings(srv_cfg, &host, &port, port_given, &db, &mem_limit, &mem_margin, &threads);
        if (rc) {
            for (int i = 0; i < n_cs; i++) nuage_deploy_config_free(&cs[i]);
            free(cs);
            json_decref(srv_cfg);
            return rc;
        }
    } else {
        cs = calloc(1, sizeof *cs);
        if (!cs) return nuage_cli_fail("serve", 1, "out of memory");
        n_cs = 1;
        nuage_deploy_config *c = &cs[0];
        char id[256];
        if (alias) snprintf(id, sizeof id, "%s", alias);
        else nuage__model_stem(model, id, sizeof id);
        if (strlen(id) >= sizeof c->name) {
            free(cs);
            return nuage_cli_fail("serve", 2, "deployment name '%s' is too long (at most 63 characters)", id);
        }
        snprintf(c->name, sizeof c->name, "%s", id);
        snprintf(c->model, sizeof c->model, "%s", model);
        if (strcmp(model, id) && strlen(model) < sizeof c->aliases[0]) {
            snprintf(c->aliases[0], sizeof c->aliases[0], "%s", model);
            c->n_aliases = 1;
        }
        if (version) snprintf(c->version, sizeof c->version, "%s", version);
        c->kind = NUAGE_DEPLOY_MODEL;
        c->n_ctx = (int)n_ctx;
        c->kv_memory = kv_memory;
        c->kv_blocks = (int)kv_blocks;
        c->kv_block_size = (int)block_size;
        c->kv_type = kv_type;
        c->threads = (int)threads;
        c->parallel = (int)parallel;
        c->max_batch_tokens = (int)max_batch;
        c->step_tokens = (int)step_tokens;
        c->max_queue = (int)max_queue;
        c->prefix_cache = prefix_cache;
        c->max_n = (int)max_n;
        c->max_tokens_default = (int)max_tok_def;
        if ((chat_tpl && strlen(chat_tpl) >= sizeof c->chat_template) ||
            (tool_fmt && strlen(tool_fmt) >= sizeof c->tool_format)) {
            free(cs);
            return nuage_cli_fail("serve", 2, "--chat-template / --tool-format value too long");
        }
        if (chat_tpl) snprintf(c->chat_template, sizeof c->chat_template, "%s", chat_tpl);
        if (tool_fmt) snprintf(c->tool_format, sizeof c->tool_format, "%s", tool_fmt);
    }
    if (!host) host = "127.0.0.1";

    /* Block the signals before any thread exists: every thread inherits the mask. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGXFSZ, SIG_IGN); /* a file size limit fails the write (billing fails closed), never kills */
    bool tty = isatty(2);

    int ret = 1;
    nuage_store *store = NULL;
    nuage_quota *quota = NULL;
    nuage_registry *reg = NULL;
    nuage_server *srv = NULL;
    nuage_batch_runner *runner = NULL;
    nuage__reloader rl = {.path = config};
    pthread_mutex_init(&rl.mu, NULL);

    /* The store: --db, $NUAGE_DB, or the shared default when it exists. */
    char dbpath[1024] = "";
    if (!no_db) {
        if (db) snprintf(dbpath, sizeof dbpath, "%s", db);
        else if (getenv("NUAGE_DB") && *getenv("NUAGE_DB")) snprintf(dbpath, sizeof dbpath, "%s", getenv("NUAGE_DB"));
        else {
            struct stat sb;
            if (nuage_store_default_path(dbpath, sizeof dbpath) || stat(dbpath, &sb)) dbpath[0] = 0;
        }
    }
    char dbshow[1024];
    nuage_store_display(dbpath, dbshow, sizeof dbshow);
    if (dbpath[0] && nuage_store_open(dbpath, &store, err, sizeof err)) {
        nuage_cli_fail("serve", 1, "store %s: %s", dbshow, err);
        goto done;
    }
    /* Admin-API model paths stay inside this folder (platform/model_path.h). */
    char mdir[4096], dbreal[4096] = "";
    char mdir_given[4096];
    if (models_dir) snprintf(mdir_given, sizeof mdir_given, "%s", models_dir);
    else nuage_model_path_dirname(config ? config : model, mdir_given, sizeof mdir_given);
    if (nuage_model_path_dir(mdir_given, mdir, sizeof mdir)) {
        nuage_cli_fail("serve", 1, "models directory '%s' is not a directory", mdir_given);
        goto done;
    }
    if (dbpath[0] && !realpath(dbpath, dbreal)) snprintf(dbreal, sizeof dbreal, "%s", dbpath);
    bool loopback = nuage_auth_is_loopback(host);
    int n_keys = store ? nuage_store_key_count(store) : 0;
    if (!loopback && no_auth) {
        nuage_cli_fail("serve", 1, "refusing to serve on %s with --no-auth: it is accepted on a loopback address only",
                       host);
        goto done;
    }
    if (!loopback && !insecure && !store) {
        nuage_cli_fail("serve", 1,
                       "refusing to serve on %s without API keys (no store: give --db), "
                       "or pass --insecure to serve without authentication", host);
        goto done;
    }
    nuage_auth_params ap = {.store = store, .loopback = loopback, .insecure = insecure, .no_auth = no_auth};
    nuage_auth *mode = NULL;
    if (nuage_auth_new(&ap, &mode)) {
        nuage_cli_fail("serve", 1, "out of memory");
        goto done;
    }
    char mode_s[96];
    snprintf(mode_s, sizeof mode_s, "%s", nuage_auth_mode(mode));
    bool keys_required = nuage_auth_required(mode);
    nuage_auth_free(mode);
    if (!(quota = nuage_quota_new())) {
        nuage_cli_fail("serve", 1, "out of memory");
        goto done;
    }
    /* On a PostgreSQL store (a cluster), the rate windows are the
     * database's, shared by every replica (quota_shared.c). */
    if (store && (!strncmp(dbpath, "postgres://", 11) || !strncmp(dbpath, "postgresql://", 13)) &&
        (quota_slice > 0 ? nuage_quota_use_store_sliced(quota, dbpath, 4, quota_slice, (int)quota_lease_ms, err,
                                                        sizeof err)
                         : nuage_quota_use_store(quota, dbpath, 4, err, sizeof err))) {
        nuage_cli_fail("serve", 1, "%s", err);
        goto done;
    }

    nuage_server_params sp = nuage_server_default_params();
    sp.host = host;
    sp.port = (int)port;
    sp.max_body = (size_t)max_body;
    sp.idle_timeout_s = (int)timeout;
    sp.max_connections = (int)max_conns;
    sp.max_per_ip = (int)max_per_ip;
    sp.max_n = (int)max_n;
    sp.max_tokens_default = (int)max_tok_def;
    sp.response_retention_s = retention;
    sp.model_id = cs[0].name;
    sp.model_path = model;
    sp.log_requests = !quiet;
    sp.replica_id = replica_id;
    sp.no_console = no_console;
    if (nuage_server_new(&sp, &srv, err, sizeof err)) {
        nuage_cli_fail("serve", 1, "%s", err);
        goto done;
    }
    /* A replica's usage goes through its local journal (store_journal.c). */
    if (store && (!strncmp(dbpath, "postgres://", 11) || !strncmp(dbpath, "postgresql://", 13))) {
        char jpath[4096];
        if (journal) {
            snprintf(jpath, sizeof jpath, "%s", journal);
        } else {
            const char *tmp = getenv("TMPDIR");
            char rid[128];
            if (replica_id) snprintf(rid, sizeof rid, "%s", replica_id);
            else snprintf(rid, sizeof rid, "port%d", nuage_server_port(srv));
            /* and the database's URL: two clusters on one host never share a journal */
            uint32_t h = 2166136261u;
            for (const char *c = dbpath; *c; c++) h = (h ^ (unsigned char)*c) * 16777619u;
            snprintf(jpath, sizeof jpath, "%s/nuage-journal-%s-%08x.db", tmp && *tmp ? tmp : "/tmp", rid, h);
        }
        if (nuage_store_journal_open(store, dbpath, jpath, err, sizeof err)) {
            nuage_cli_fail("serve", 1, "%s", err);
            goto done;
        }
        fprintf(stderr, "nuage serve: usage journal %s (shipped to the store in batches)\n", jpath);
    }
    bool v6 = strchr(host, ':') != NULL;
    fprintf(stderr, "nuage serve: listening on http://%s%s%s:%d (%s)\n", v6 ? "[" : "", host, v6 ? "]" : "",
            nuage_server_port(srv), mode_s);
    if (!no_console)
        fprintf(stderr, "nuage serve: console (playground, usage, operations) at http://%s%s%s:%d/\n",
                v6 ? "[" : "", !strcmp(host, "0.0.0.0") ? "127.0.0.1" : host, v6 ? "]" : "", nuage_server_port(srv));
    if (store)
        fprintf(stderr, "nuage serve: store %s: %s\n", dbshow,
                !keys_required ? "API keys not checked (--no-auth)"
                : n_keys > 0   ? "API keys required"
                               : "no API key yet: every request is 401 until `nuage admin key create`");

    nuage_registry_params rp = nuage_registry_default_params();
    rp.memory_limit = mem_limit;
    if (mem_margin) rp.memory_margin = mem_margin;
    rp.default_threads = (int)threads;
    rp.verbose = config != NULL;
    if (nuage_registry_new(&rp, &reg)) {
        nuage_cli_fail("serve", 1, "out of memory");
        goto done;
    }
    rl.reg = reg;
    nuage_quota_set_lookup(quota, nuage__deployment_limits, reg);
    nuage_router_hook hook = nuage_router_default_hook();
    nuage_registry_set_router(reg, &hook);
    double t0 = nuage_cli_now();
    for (int i = 0; i < n_cs; i++) {
        if (tty) fprintf(stderr, "nuage serve: loading '%s'%s%s ...\n", cs[i].name, cs[i].model[0] ? " from " : "",
                         cs[i].model);
        if (nuage_registry_load(reg, &cs[i], NUAGE_DEPLOY_ORIGIN_CONFIG, NULL, err, sizeof err)) {
            nuage_cli_fail("serve", 1, "%s", err);
            goto done;
        }
    }
    /* Files and batches (docs/router-and-batch.md): the runner executes
     * batch lines through the endpoints at batch priority. */
    if (store) {
        nuage_batch_runner_params bp = nuage_batch_runner_default_params();
        bp.verbose = true; /* one line per job, not per request: kept with --quiet */
        /* the lease owner is the replica's name (docs/cluster.md) */
        char owner[128], hn[64] = "localhost";
        gethostname(hn, sizeof hn - 1);
        hn[sizeof hn - 1] = 0;
        if (replica_id) snprintf(owner, sizeof owner, "%s", replica_id);
        else snprintf(owner, sizeof owner, "%s:%d", hn, nuage_server_port(srv));
        bp.owner = owner;
        bp.lease_ms = (int)batch_lease * 1000;
        if (nuage_batch_runner_new(store, &bp, nuage_batch_exec_http, srv, &runner)) {
            nuage_cli_fail("serve", 1, "cannot start the batch runner");
            goto done;
        }
    }
    if (nuage_batch_api_register(srv, runner)) {
        nuage_cli_fail("serve", 1, "cannot register the files and batches routes");
        goto done;
    }
    nuage_server_platform pf;
    memset(&pf, 0, sizeof pf);
    pf.registry = reg;
    pf.store = store;
    pf.quota = quota;
    pf.insecure = insecure;
    pf.no_auth = no_auth;
    pf.models_dir = mdir;
    pf.store_path = dbpath[0] ? dbreal : NULL;
    if (config) {
        pf.reload = nuage__reload;
        pf.reload_ud = &rl;
    }
    if (nuage_server_attach(srv, &pf, err, sizeof err)) {
        nuage_cli_fail("serve", 1, "%s", err);
        goto done;
    }
    if (store && nuage__replica_beat_start(store, reg, replica_id, advertise, nuage_server_port(srv), 2000, &beat))
        fprintf(stderr, "nuage serve: warning: no replica heartbeat\n");
    if (model) {
        nuage_deployment *d = nuage_registry_acquire(reg, NULL);
        nuage_sched_stats st;
        memset(&st, 0, sizeof st);
        if (d && d->sched) nuage_sched_get_stats(d->sched, &st);
        fprintf(stderr, "nuage serve: [3/3] ready: model '%s' (%s), context %d, %d parallel, %d KV blocks, loaded in %.2f s\n",
                cs[0].name, d ? nuage_model_arch(d->model) : "?", st.n_ctx, (int)parallel, st.kv_blocks_total,
                nuage_cli_now() - t0);
        nuage_deployment_release(d);
    } else {
        fprintf(stderr, "nuage serve: ready: %d deployment%s from %s, loaded in %.2f s\n", n_cs, n_cs == 1 ? "" : "s",
                config, nuage_cli_now() - t0);
    }

    for (;;) {
        int sig = 0;
        sigwait(&sigs, &sig);
        if (sig == SIGHUP) {
            if (!config) {
                fprintf(stderr, "nuage serve: SIGHUP ignored (no --config to re-read)\n");
                continue;
            }
            char summary[1000];
            int rc = nuage__reload(&rl, summary, sizeof summary, err, sizeof err);
            if (rc) fprintf(stderr, "nuage serve: reload of %s failed: %s%s%s\n", config, err,
                            summary[0] ? "; applied: " : "", summary);
            else fprintf(stderr, "nuage serve: reloaded %s: %s\n", config, summary[0] ? summary : "no change");
            continue;
        }
        fprintf(stderr, "nuage serve: %s: finishing requests in flight (up to %ld s)\n",
                sig == SIGINT ? "SIGINT" : "SIGTERM", drain);
        break;
    }
    nuage_server_set_stopping(srv);
    if (runner) nuage_batch_runner_stop(runner);
    int cancelled = nuage_registry_drain(reg, (int)(drain * 1000));
    int left = nuage_server_wait_idle(srv, 3000);
    fprintf(stderr, "nuage serve: stopped (%d request%s cancelled, %d connection%s cut)\n", cancelled,
            cancelled == 1 ? "" : "s", left, left == 1 ? "" : "s");
    ret = 0;
done:
    nuage__replica_beat_stop(beat);
    if (runner) nuage_batch_runner_stop(runner);
    /* The runner's lines end once the schedulers are drained (or freed). */
    if (runner && reg) nuage_registry_drain(reg, 0);
    nuage_batch_runner_free(runner);
    nuage_server_free(srv);
    nuage_registry_free(reg);
    nuage_quota_free(quota);
    nuage_store_close(store);
    for (int i = 0; i < n_cs; i++) nuage_deploy_config_free(&cs[i]);
    free(cs);
    json_decref(srv_cfg);
    pthread_mutex_destroy(&rl.mu);
    return ret;
}
