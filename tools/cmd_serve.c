/*
 * cmd_serve.c - `nuage serve`: the OpenAI-compatible HTTP server.
 *
 * Order of events: bind the port first (so that /health can answer
 * "loading" and a supervisor sees the process is alive), load the model,
 * start the scheduler, mark the server ready; then wait for SIGINT or
 * SIGTERM. Shutdown: /health turns to "stopping" and new generation
 * requests get 503, the scheduler drains (requests in flight may finish
 * for --drain-timeout seconds, then the rest are cancelled), the HTTP
 * layer lets finished streams write their last bytes, and everything is
 * freed in reverse order.
 *
 * Signals are blocked in every thread (the mask is set before any thread
 * starts and inherited) and taken synchronously with sigwait in the main
 * thread, so no handler runs inside library code. SIGPIPE is ignored:
 * a client that disconnects must not kill the server.
 *
 * The first line on stderr is "nuage serve: listening on http://HOST:PORT"
 * (with the real port when --port 0 asked for any free one); scripts and
 * the integration tests read it.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "cli_util.h"
#include "nuage/nuage.h"
#include "server/http.h"
#include "server/sched.h"

static int usage(void) {
    fprintf(stderr,
            "usage: nuage serve -m MODEL [--host 127.0.0.1] [--port 8080] [-t THREADS] [--ctx N]\n"
            "                   [--kv-blocks N | --kv-memory BYTES] [--max-batch-tokens N]\n"
            "                   [--max-queue N] [--parallel N] [--alias NAME] [options]\n"
            "  --port N              port to listen on; 0 picks a free one (default 8080)\n"
            "  --ctx N               tokens per sequence, prompt + output (default: model's, <= 4096)\n"
            "  --parallel N          sequences decoding at once (default 8)\n"
            "  --kv-blocks N         KV-cache pool size in blocks of --kv-block-size tokens\n"
            "  --kv-memory BYTES     KV-cache pool size in bytes (suffix K, M or G)\n"
            "  --kv-block-size N     tokens per KV block (default 16)\n"
            "  --kv-type f16|f32     KV-cache storage (default f16)\n"
            "  --no-prefix-cache     do not reuse the KV blocks of shared prompt prefixes\n"
            "  --max-batch-tokens N  tokens per decode step (default 512)\n"
            "  --max-queue N         waiting requests before 503 (default 256)\n"
            "  --max-n N             largest 'n' accepted (default: --parallel, at most 8)\n"
            "  --max-tokens-default N  output cap when a request gives no max_tokens (default 4096)\n"
            "  --max-body BYTES      request body limit (default 8M)\n"
            "  --timeout S           idle connection timeout in seconds (default 60)\n"
            "  --drain-timeout S     on SIGINT/SIGTERM, seconds to let requests finish (default 10)\n"
            "  --alias NAME          model id reported by /v1/models (default: file name)\n"
            "  --quiet               no per-request log lines\n");
    return 2;
}

/* "123", "64K", "512M", "2G" -> bytes. */
static bool nuage__parse_bytes(const char *s, uint64_t *out) {
    if (!s || !*s) return false;
    char *end;
    double v = strtod(s, &end);
    if (end == s || !(v >= 0)) return false;
    double mul = 1;
    if (*end == 'K' || *end == 'k') mul = 1024.0, end++;
    else if (*end == 'M' || *end == 'm') mul = 1024.0 * 1024, end++;
    else if (*end == 'G' || *end == 'g') mul = 1024.0 * 1024 * 1024, end++;
    if (*end == 'B' || *end == 'b' || *end == 'i') end++;
    if (*end) return false;
    v *= mul;
    if (v > 1.8e19) return false;
    *out = (uint64_t)v;
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

int nuage_cmd_serve(int argc, char **argv) {
    const char *model = NULL, *alias = NULL, *host = "127.0.0.1";
    long port = 8080, threads = 0, n_ctx = 0, kv_blocks = 0, max_batch = 0, max_queue = 0;
    long parallel = 8, max_n = 0, max_tok_def = 4096, timeout = 60, drain = 10, block_size = 16;
    uint64_t kv_memory = 0, max_body = 8u << 20;
    bool prefix_cache = true, quiet = false;
    nuage_kv_type kv_type = NUAGE_KV_F16;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(); return 0; }
        if (!strcmp(a, "--no-prefix-cache")) { prefix_cache = false; continue; }
        if (!strcmp(a, "--quiet")) { quiet = true; continue; }
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) return usage();
        bool ok = true;
        if (!strcmp(a, "-m") || !strcmp(a, "--model")) model = v;
        else if (!strcmp(a, "--host")) host = v;
        else if (!strcmp(a, "--port")) ok = nuage_cli_int(v, 0, 65535, &port);
        else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) ok = nuage_cli_int(v, 1, 1024, &threads);
        else if (!strcmp(a, "--ctx") || !strcmp(a, "-c")) ok = nuage_cli_int(v, 1, 1 << 24, &n_ctx);
        else if (!strcmp(a, "--kv-blocks")) ok = nuage_cli_int(v, 1, 1 << 30, &kv_blocks);
        else if (!strcmp(a, "--kv-memory")) ok = nuage__parse_bytes(v, &kv_memory) && kv_memory > 0;
        else if (!strcmp(a, "--kv-block-size")) ok = nuage_cli_int(v, 1, 4096, &block_size);
        else if (!strcmp(a, "--kv-type")) {
            if (!strcmp(v, "f16")) kv_type = NUAGE_KV_F16;
            else if (!strcmp(v, "f32")) kv_type = NUAGE_KV_F32;
            else ok = false;
        }
        else if (!strcmp(a, "--max-batch-tokens")) ok = nuage_cli_int(v, 1, 1 << 20, &max_batch);
        else if (!strcmp(a, "--max-queue")) ok = nuage_cli_int(v, 1, 1 << 20, &max_queue);
        else if (!strcmp(a, "--parallel") || !strcmp(a, "-np")) ok = nuage_cli_int(v, 1, 4096, &parallel);
        else if (!strcmp(a, "--max-n")) ok = nuage_cli_int(v, 1, 128, &max_n);
        else if (!strcmp(a, "--max-tokens-default")) ok = nuage_cli_int(v, 1, 1 << 24, &max_tok_def);
        else if (!strcmp(a, "--max-body")) ok = nuage__parse_bytes(v, &max_body) && max_body > 0;
        else if (!strcmp(a, "--timeout")) ok = nuage_cli_int(v, 1, 86400, &timeout);
        else if (!strcmp(a, "--drain-timeout")) ok = nuage_cli_int(v, 0, 86400, &drain);
        else if (!strcmp(a, "--alias")) alias = v;
        else return usage();
        if (!ok) return nuage_cli_fail("serve", 2, "bad value for %s: '%s'", a, v);
        i++;
    }
    if (!model) return usage();
    if (kv_blocks && kv_memory) return nuage_cli_fail("serve", 2, "give --kv-blocks or --kv-memory, not both");
    if (!max_n) max_n = parallel < 8 ? parallel : 8;
    if (max_n > parallel) max_n = parallel;

    /* Block the signals before any thread exists: every thread inherits the mask. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    bool tty = isatty(2);

    char id[256];
    if (alias) snprintf(id, sizeof id, "%s", alias);
    else nuage__model_stem(model, id, sizeof id);
    nuage_server_params sp = nuage_server_default_params();
    sp.host = host;
    sp.port = (int)port;
    sp.max_body = (size_t)max_body;
    sp.idle_timeout_s = (int)timeout;
    sp.max_n = (int)max_n;
    sp.max_tokens_default = (int)max_tok_def;
    sp.model_id = id;
    sp.model_path = model;
    sp.log_requests = !quiet;

    char err[512];
    int ret = 1;
    nuage_server *srv = NULL;
    nuage_model *m = NULL;
    nuage_sched *sched = NULL;
    if (nuage_server_new(&sp, &srv, err, sizeof err)) {
        nuage_cli_fail("serve", 1, "%s", err);
        return 1;
    }
    bool v6 = strchr(host, ':') != NULL;
    fprintf(stderr, "nuage serve: listening on http://%s%s%s:%d\n", v6 ? "[" : "", host, v6 ? "]" : "",
            nuage_server_port(srv));
    if (tty) fprintf(stderr, "nuage serve: [1/3] loading %s ...\n", model);
    double t0 = nuage_cli_now();
    if (nuage_model_load(model, NULL, &m, err, sizeof err)) {
        nuage_cli_fail("serve", 1, "%s: %s", model, err);
        goto done;
    }
    if (tty) fprintf(stderr, "nuage serve: [2/3] starting the scheduler ...\n");
    nuage_sched_params pp = nuage_sched_default_params();
    pp.n_threads = (int)threads;
    pp.n_ctx = (int)n_ctx;
    pp.max_running = (int)parallel;
    if (max_batch) pp.max_batch_tokens = (int)max_batch;
    if (max_queue) pp.max_queue = (int)max_queue;
    pp.kv_blocks = (int)kv_blocks;
    pp.kv_memory = kv_memory;
    pp.kv_block_size = (int)block_size;
    pp.kv_type = kv_type;
    pp.prefix_cache = prefix_cache;
    if (nuage_sched_new(m, &pp, &sched, err, sizeof err)) {
        nuage_cli_fail("serve", 1, "%s", err);
        goto done;
    }
    if (nuage_server_set_ready(srv, m, sched, err, sizeof err)) {
        nuage_cli_fail("serve", 1, "%s", err);
        goto done;
    }
    nuage_sched_stats st;
    nuage_sched_get_stats(sched, &st);
    fprintf(stderr, "nuage serve: %s[3/3] ready: model '%s' (%s), context %d, %d parallel, %d KV blocks, loaded in %.2f s\n",
            "", id, nuage_model_arch(m), st.n_ctx, (int)parallel, st.kv_blocks_total,
            nuage_cli_now() - t0);

    int sig = 0;
    sigwait(&sigs, &sig);
    fprintf(stderr, "nuage serve: %s: finishing requests in flight (up to %ld s)\n",
            sig == SIGINT ? "SIGINT" : "SIGTERM", drain);
    nuage_server_set_stopping(srv);
    int cancelled = nuage_sched_drain(sched, (int)(drain * 1000));
    int left = nuage_server_wait_idle(srv, 3000);
    fprintf(stderr, "nuage serve: stopped (%d request%s cancelled, %d connection%s cut)\n", cancelled,
            cancelled == 1 ? "" : "s", left, left == 1 ? "" : "s");
    ret = 0;
done:
    nuage_server_free(srv);
    nuage_sched_free(sched);
    nuage_model_free(m);
    return ret;
}
