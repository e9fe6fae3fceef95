/*
 * cmd_eval.c - `nuage eval`: score a model on held-out synthetic
 * questions (src/train/synth.h), per task.
 *
 * Two paths with the same questions and the same scoring:
 *   --url URL   a running server, through POST /v1/chat/completions
 *               (temperature 0) with a minimal blocking HTTP/1.1 client
 *               written here (getaddrinfo / connect / send / recv; the
 *               reply may be Content-Length or chunked);
 *   -m MODEL    in-process: the chat rendered with the model's template,
 *               greedy decoding with nuage_decode until an end-of-
 *               generation token.
 * A reply is right when its final answer (the last word outside
 * <think>...</think>; a server may also have moved the reasoning into
 * reasoning_content) equals the expected one. Questions come from the
 * held-out split, generated from --seed, so two runs ask the same ones.
 */
#define _GNU_SOURCE /* strcasestr */
#include <jansson.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cli.h"
#include "cli_util.h"
#include "nuage/nuage.h"
#include "nuage/template.h"
#include "nuage/tokenizer.h"
#include "train/synth.h"
#include "train/synth_tools.h"

static int usage(void) {
    fprintf(stderr,
            "usage: nuage eval (--url http://HOST:PORT | -m MODEL.gguf) --task T --n N\n"
            "                  [--digits D] [--seed S] [--model NAME] [--reasoning]\n"
            "                  [--max-tokens N] [-t THREADS] [--verbose]\n"
            "  --task T      a task, a comma-separated list, 'all' (each task) or 'mix';\n"
            "                tool tasks (--url only): 'tools' (each of tool_mul, tool_arith,\n"
            "                tool_convert, tool_date, tool_lookup, tool_direct, tool_twostep,\n"
            "                tool_error, tool_absent) or any of them; --digits sets tool_mul's\n"
            "                operand digits (default 6)\n"
            "  --model NAME  the served model (default: the first of GET /v1/models)\n"
            "  --reasoning   the model thinks first: allow long replies (default max tokens 48 / 200)\n");
    return 2;
}

/* ---- HTTP client ------------------------------------------------------------------ */

typedef struct {
    char host[256], port[16], path[512];
} nuage__url;

static bool nuage__parse_url(const char *s, nuage__url *u) {
    if (strncmp(s, "http://", 7)) return false;
    s += 7;
    const char *slash = strchr(s, '/'), *end = slash ? slash : s + strlen(s);
    const char *colon = memchr(s, ':', (size_t)(end - s));
    size_t hl = (size_t)((colon ? colon : end) - s);
    if (!hl || hl >= sizeof u->host) return false;
    memcpy(u->host, s, hl);
    u->host[hl] = 0;
    if (colon) {
        size_t pl = (size_t)(end - colon - 1);
        if (!pl || pl >= sizeof u->port) return false;
        memcpy(u->port, colon + 1, pl);
        u->port[pl] = 0;
    } else {
        snprintf(u->port, sizeof u->port, "80");
    }
    snprintf(u->path, sizeof u->path, "%s", slash && slash[1] ? slash : "");
    return true;
}

/* POST body (or GET when body is NULL) to url + path; returns the
 * response body (malloc'd) and the status in *status, or NULL with err
 * set. */
static char *nuage__http(const nuage__url *u, const char *path, const char *body, int *status,
                         char *err, size_t errlen) {
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai = NULL;
    int gr = getaddrinfo(u->host, u->port, &hints, &ai);
    if (gr) {
        snprintf(err, errlen, "cannot resolve %s: %s", u->host, gai_strerror(gr));
        return NULL;
    }
    int fd = -1;
    for (struct addrinfo *a = ai; a && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype, a->ai_protocol);
        if (fd >= 0 && connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(ai);
    if (fd < 0) {
        snprintf(err, errlen, "cannot connect to %s:%s", u->host, u->port);
        return NULL;
    }
    size_t blen = body ? strlen(body) : 0;
    char head[1024];
    int hn = body ? snprintf(head, sizeof head,
                             "POST %s%s HTTP/1.1\r\nHost: %s:%s\r\nContent-Type: application/json\r\n"
                             "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                             u->path, path, u->host, u->port, blen)
                  : snprintf(head, sizeof head, "GET %s%s HTTP/1.1\r\nHost: %s:%s\r\nConnection: close\r\n\r\n",
                             u->path, path, u->host, u->port);
    char *resp = NULL;
    size_t rn = 0, rcap = 0;
    bool ok = send(fd, head, (size_t)hn, MSG_NOSIGNAL) == hn;
    for (size_t off = 0; ok && off < blen;) {
        ssize_t k = send(fd, body + off, blen - off, MSG_NOSIGNAL);
        if (k <= 0) ok = false;
        else off += (size_t)k;
    }
    while (ok) {
        if (rn + 4096 + 1 > rcap) {
            rcap = rcap ? rcap * 2 : 16384;
            char *nr = realloc(resp, rcap);
            if (!nr) { ok = false; break; }
            resp = nr;
        }
        ssize_t k = recv(fd, resp + rn, rcap - rn - 1, 0);
        if (k < 0) ok = false;
        if (k <= 0) break;
        rn += (size_t)k;
    }
    close(fd);
    if (!ok || !resp) {
        snprintf(err, errlen, "HTTP exchange with %s:%s failed", u->host, u->port);
        free(resp);
        return NULL;
    }
    resp[rn] = 0;
    char *hend = strstr(resp, "\r\n\r\n");
    if (strncmp(resp, "HTTP/1.", 7) || !hend || sscanf(resp + 8, " %d", status) != 1) {
        snprintf(err, errlen, "malformed HTTP response");
        free(resp);
        return NULL;
    }
    *hend = 0;
    char *b = hend + 4;
    size_t out_n = rn - (size_t)(b - resp);
    bool chunked = false; /* the headers are resp up to hend */
    char *te = strcasestr(resp, "\r\ntransfer-encoding:");
    if (te) {
        char *eol = strstr(te + 2, "\r\n");
        char *ck = strcasestr(te, "chunked");
        chunked = ck && (!eol || ck < eol);
    }
    char *outb = malloc(out_n + 1);
    if (!outb) { free(resp); return NULL; }
    if (chunked) { /* de-chunk */
        size_t o = 0;
        char *p = b, *e = b + out_n;
        while (p < e) {
            char *nl = strstr(p, "\r\n");
            if (!nl) break;
            unsigned long sz = strtoul(p, NULL, 16);
            p = nl + 2;
            if (!sz || p + sz > e) break;
            memcpy(outb + o, p, sz);
            o += sz;
            p += sz + 2;
        }
        outb[o] = 0;
    } else {
        memcpy(outb, b, out_n);
        outb[out_n] = 0;
    }
    free(resp);
    return outb;
}

/* Ask the server; writes "<think>reasoning</think>content" or content. */
static int nuage__ask_server(const nuage__url *u, const char *model, const char *question, int max_tokens,
                             char *reply, size_t cap, char *err, size_t errlen) {
    json_t *req = json_pack("{s:s,s:[{s:s,s:s}],s:f,s:i,s:b}", "model", model,
                            "messages", "role", "user", "content", question, "temperature", 0.0,
                            "max_tokens", max_tokens, "stream", 0);
    char *body = req ? json_dumps(req, JSON_COMPACT) : NULL;
    json_decref(req);
    if (!body) return NUAGE_E_NOMEM;
    int status = 0;
    char *resp = nuage__http(u, "/v1/chat/completions", body, &status, err, errlen);
    free(body);
    if (!resp) return NUAGE_E_IO;
    json_error_t je;
    json_t *r = json_loads(resp, 0, &je);
    free(resp);
    json_t *msg = json_object_get(json_array_get(json_object_get(r, "choices"), 0), "message");
    const char *content = json_string_value(json_object_get(msg, "content"));
    const char *rc = json_string_value(json_object_get(msg, "reasoning_content"));
    if (status != 200 || !msg) {
        const char *em = json_string_value(json_object_get(json_object_get(r, "error"), "message"));
        snprintf(err, errlen, "server answered %d%s%s", status, em ? ": " : (r ? "" : " (not JSON)"), em ? em : "");
        json_decref(r);
        return NUAGE_E_IO;
    }
    if (rc && *rc) snprintf(reply, cap, "<think>%s</think>%s", rc, content ? content : "");
    else snprintf(reply, cap, "%s", content ? content : "");
    json_decref(r);
    return 0;
}

/* The id of the server's first model (GET /v1/models) into out. */
static int nuage__server_model(const nuage__url *u, char *out, size_t cap, char *err, size_t errlen) {
    int status = 0;
    char *resp = nuage__http(u, "/v1/models", NULL, &status, err, errlen);
    if (!resp) return NUAGE_E_IO;
    json_t *r = json_loads(resp, 0, NULL);
    free(resp);
    const char *id = json_string_value(json_object_get(json_array_get(json_object_get(r, "data"), 0), "id"));
    if (status != 200 || !id) {
        snprintf(err, errlen, "GET /v1/models answered %d without a model id", status);
        json_decref(r);
        return NUAGE_E_IO;
    }
    snprintf(out, cap, "%s", id);
    json_decref(r);
    return 0;
}

/* ---- in-process ----------------------------------------------------------------------------- */

typedef struct {
    nuage_model *m;
    nuage_context *ctx;
    nuage_batch *b;
    nuage_template *t;
    int32_t *toks;
    int n_ctx;
} nuage__local;

static int nuage__ask_local(nuage__local *L, const char *question, int max_tokens, char *reply, size_t cap,
                            char *err, size_t errlen) {
    const nuage_vocab *v = nuage_model_vocab(L->m);
    json_t *msgs = json_pack("[{s:s,s:s}]", "role", "user", "content", question);
    nuage_template_input in = {.add_generation_prompt = true, .now = 0};
    char *prompt = NULL;
    size_t plen;
    int rc = msgs ? nuage_template_render_json(L->t, msgs, NULL, NULL, &in, &prompt, &plen, err, errlen)
                  : NUAGE_E_NOMEM;
    json_decref(msgs);
    if (rc) return rc;
    int n = nuage_tokenize(v, prompt, plen, L->toks, (size_t)L->n_ctx, true, true);
    free(prompt);
    if (n < 0 || n >= L->n_ctx) {
        snprintf(err, errlen, "prompt does not fit the context");
        return NUAGE_E_CTX;
    }
    nuage_kv_seq_truncate(L->ctx, 0, 0);
    nuage_batch_clear(L->b);
    for (int i = 0; i < n; i++) nuage_batch_add(L->b, L->toks[i], i, 0, i == n - 1);
    size_t rn = 0;
    reply[0] = 0;
    for (int pos = n, gen = 0; gen < max_tokens && pos < L->n_ctx; gen++, pos++) {
        if ((rc = nuage_decode(L->ctx, L->b, err, errlen))) return rc;
        const float *lg = nuage_get_logits(L->ctx, L->b->n_tokens - 1);
        int32_t best = 0;
        for (int32_t i = 1; i < nuage_model_n_vocab(L->m); i++)
            if (lg[i] > lg[best]) best = i;
        if (nuage_vocab_is_eog(v, best)) break;
        char piece[256];
        int pl = nuage_token_to_piece(v, best, piece, sizeof piece, false);
        if (pl > 0 && rn + (size_t)pl < cap) {
            memcpy(reply + rn, piece, (size_t)pl);
            rn += (size_t)pl;
            reply[rn] = 0;
        }
        nuage_batch_clear(L->b);
        nuage_batch_add(L->b, best, pos, 0, true);
    }
    return 0;
}

/* ---- tool use (server path) ------------------------------------------------------------------ */

/*
 * One chat completion with tools: the assistant message (a new reference)
 * or NULL with err set.
 */
static json_t *nuage__ask_tools(const nuage__url *u, const char *model, json_t *messages, json_t *tools,
                                int max_tokens, int *status_out, char *err, size_t errlen) {
    /* one call per turn, as the models are trained (with parallel calls
     * allowed the server's lazy grammar does not let nuage-fast end its
     * turn after the first call: it is forced into a second one) */
    json_t *req = json_pack("{s:s,s:O,s:O,s:f,s:b,s:b}", "model", model, "messages", messages, "tools", tools,
                            "temperature", 0.0, "stream", 0, "parallel_tool_calls", 0);
    /* without max_tokens the reply may use the rest of the context: a
     * fixed one can overflow a 256-token context after a long prompt */
    if (req && max_tokens > 0) json_object_set_new(req, "max_tokens", json_integer(max_tokens));
    char *body = req ? json_dumps(req, JSON_COMPACT) : NULL;
    json_decref(req);
    if (!body) { snprintf(err, errlen, "out of memory"); return NULL; }
    int status = 0;
    char *resp = nuage__http(u, "/v1/chat/completions", body, &status, err, errlen);
    free(body);
    *status_out = status;
    if (!resp) return NULL;
    json_t *r = json_loads(resp, 0, NULL);
    free(resp);
    json_t *msg = json_object_get(json_array_get(json_object_get(r, "choices"), 0), "message");
    if (status != 200 || !json_is_object(msg)) {
        const char *em = json_string_value(json_object_get(json_object_get(r, "error"), "message"));
        snprintf(err, errlen, "server answered %d%s%s", status, em ? ": " : "", em ? em : "");
        json_decref(r);
        return NULL;
    }
    json_incref(msg);
    json_decref(r);
    return msg;
}

/* Arguments equal, numbers compared by value (12 and 12.0 are the same). */
static bool nuage__args_equal(json_t *a, json_t *b) {
    if (json_is_number(a) && json_is_number(b)) return json_number_value(a) == json_number_value(b);
    if (!json_is_object(a) || !json_is_object(b)) return json_equal(a, b);
    if (json_object_size(a) != json_object_size(b)) return false;
    const char *k;
    json_t *v;
    json_object_foreach(a, k, v) if (!nuage__args_equal(v, json_object_get(b, k))) return false;
    return true;
}

typedef struct {
    long asked, select_ok, args_ok, e2e_ok, called, should_call;
} nuage__tool_score;

/*
 * The agent loop on one item: send the conversation, run the returned
 * tool calls with the reference tools, send the results, until the model
 * answers (at most 4 turns). Scores the first turn (call or not, which
 * tool, the arguments) and the final answer. Returns 0 or an I/O error.
 */
static int nuage__tool_item_eval(const nuage__url *u, const char *model, const nuage_tool_item *it, int max_tokens,
                                 bool verbose, nuage__tool_score *sc, char *err, size_t errlen) {
    json_t *msgs = json_array();
    if (!msgs) return NUAGE_E_NOMEM;
    json_array_append(msgs, json_array_get(it->messages, 0));
    char final[512] = "", got[128] = "";
    bool first = true, right = false;
    int rc = 0;
    for (int turn = 0; turn < 4; turn++) {
        int status = 0;
        json_t *m = nuage__ask_tools(u, model, msgs, it->tools, max_tokens, &status, err, errlen);
        if (!m && status == 400) { /* e.g. the conversation outgrew the context: a wrong answer */
            if (verbose) fprintf(stderr, "    %s\n", err);
            first = false;
            break;
        }
        if (!m) { rc = NUAGE_E_IO; break; }
        json_t *calls = json_object_get(m, "tool_calls");
        size_t nc = json_is_array(calls) ? json_array_size(calls) : 0;
        if (first) {
            first = false;
            sc->called += nc > 0;
            if (nc == 0) sc->select_ok += it->first_tool < 0;
            else {
                json_t *fn = json_object_get(json_array_get(calls, 0), "function");
                int kind = nuage_tool_kind_of(it->tools, json_string_value(json_object_get(fn, "name")));
                json_t *args = json_loads(json_string_value(json_object_get(fn, "arguments")) ?
                                          json_string_value(json_object_get(fn, "arguments")) : "", 0, NULL);
                if (kind >= 0 && kind == it->first_tool) {
                    sc->select_ok++;
                    sc->args_ok += args && it->first_args && nuage__args_equal(args, it->first_args);
                }
                json_decref(args);
            }
        }
        if (nc == 0) {
            const char *c = json_string_value(json_object_get(m, "content"));
            snprintf(final, sizeof final, "%s", c ? c : "");
            json_decref(m);
            break;
        }
        json_array_append_new(msgs, m); /* the assistant's calls */
        for (size_t i = 0; i < nc; i++) {
            json_t *call = json_array_get(calls, i), *fn = json_object_get(call, "function");
            const char *name = json_string_value(json_object_get(fn, "name"));
            const char *atext = json_string_value(json_object_get(fn, "arguments"));
            json_t *args = atext ? json_loads(atext, 0, NULL) : NULL;
            int kind = nuage_tool_kind_of(it->tools, name);
            char *res = kind >= 0 ? nuage_tool_exec((nuage_tool_kind)kind, args) : strdup("error: unknown tool");
            json_decref(args);
            if (verbose) fprintf(stderr, "    call %s(%s) -> %s\n", name ? name : "?", atext ? atext : "", res ? res : "?");
            const char *id = json_string_value(json_object_get(call, "id"));
            json_array_append_new(msgs, json_pack("{s:s,s:s,s:s}", "role", "tool", "tool_call_id", id ? id : "call",
                                                  "content", res ? res : "error"));
            free(res);
        }
    }
    json_decref(msgs);
    if (rc) return rc;
    nuage_synth_final_answer(final, got, sizeof got);
    if (it->task == NUAGE_TT_ERROR) right = strstr(final, "failed") != NULL;
    else right = !strcmp(got, it->answer);
    sc->e2e_ok += right;
    sc->asked++;
    sc->should_call += it->first_tool >= 0;
    if (verbose)
        fprintf(stderr, "[%s] %s\n  expected %s, got %s | %s\n", right ? "ok" : "WRONG",
                json_string_value(json_object_get(json_array_get(it->messages, 0), "content")), it->answer, got, final);
    return 0;
}

/* Run the tool tasks (tt[0..nt)) through the server; prints one line each. */
static int nuage__eval_tools(const nuage__url *u, const char *model, const int *tt, int nt, long n, long digits,
                             long seed, int max_tokens, bool verbose) {
    char err[512];
    printf("%-13s %6s %8s %8s %8s %8s\n", "task", "asked", "select", "args", "e2e", "called");
    for (int k = 0; k < nt; k++) {
        nuage_rng rng;
        nuage_rng_seed(&rng, (uint64_t)seed + 7000003ull * (uint64_t)(tt[k] + 1));
        nuage__tool_score sc = {0};
        for (long i = 0; i < n; i++) {
            nuage_tool_item it;
            int rc = nuage_tool_gen(tt[k], tt[k] == NUAGE_TT_MUL ? (int)(digits ? digits : 6) : 0, true, &rng, &it);
            if (rc) return nuage_cli_fail("eval", 1, "cannot generate questions: %s", nuage_strerror(rc));
            rc = nuage__tool_item_eval(u, model, &it, max_tokens, verbose, &sc, err, sizeof err);
            nuage_tool_item_free(&it);
            if (rc) return nuage_cli_fail("eval", 1, "%s", err);
        }
        double d = sc.asked ? 100.0 / (double)sc.asked : 0;
        char args[16] = "-";
        if (sc.should_call) snprintf(args, sizeof args, "%.1f%%", 100.0 * (double)sc.args_ok / (double)sc.should_call);
        printf("%-13s %6ld %7.1f%% %8s %7.1f%% %7.1f%%\n", nuage_tool_task_name((nuage_tool_task)tt[k]), sc.asked,
               d * (double)sc.select_ok, args, d * (double)sc.e2e_ok, d * (double)sc.called);
        fflush(stdout);
    }
    return 0;
}

/* ---- the command ------------------------------------------------------------------------------- */

int nuage_cmd_eval(int argc, char **argv) {
    const char *url = NULL, *model_path = NULL, *task = NULL, *model_name = NULL;
    long n = 100, digits = 0, seed = 1, max_tokens = -1, threads = 1;
    bool reasoning = false, verbose = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(); return 0; }
        if (!strcmp(a, "--reasoning")) { reasoning = true; continue; }
        if (!strcmp(a, "--verbose") || !strcmp(a, "-v")) { verbose = true; continue; }
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) return usage();
        bool ok = true;
        if (!strcmp(a, "--url")) url = v;
        else if (!strcmp(a, "-m")) model_path = v;
        else if (!strcmp(a, "--model")) model_name = v;
        else if (!strcmp(a, "--task")) task = v;
        else if (!strcmp(a, "--n") || !strcmp(a, "-n")) ok = nuage_cli_int(v, 1, 1 << 24, &n);
        else if (!strcmp(a, "--digits")) ok = nuage_cli_int(v, 1, 9, &digits);
        else if (!strcmp(a, "--seed")) ok = nuage_cli_int(v, 0, INT64_MAX, &seed);
        else if (!strcmp(a, "--max-tokens")) ok = nuage_cli_int(v, 1, 1 << 20, &max_tokens);
        else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) ok = nuage_cli_int(v, 1, 1024, &threads);
        else return usage();
        if (!ok) return nuage_cli_fail("eval", 2, "bad value for %s: '%s'", a, v);
        i++;
    }
    if (!task || (!url == !model_path)) return usage();
    bool max_tokens_set = max_tokens > 0;
    if (max_tokens < 0) max_tokens = reasoning ? 200 : 48;

    /* tasks to run: -1 = mix; tool tasks apart */
    int tasks[NUAGE_TASK_N + 1], nt = 0, ttasks[NUAGE_TT_N], ntt = 0;
    if (!strcmp(task, "all")) {
        for (int t = 0; t < NUAGE_TASK_N; t++) tasks[nt++] = t;
    } else {
        char buf[256];
        snprintf(buf, sizeof buf, "%s", task);
        for (char *save = NULL, *p = strtok_r(buf, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
            if (!strcmp(p, "tools")) {
                for (int t = 0; t < NUAGE_TT_N; t++) ttasks[ntt++] = t;
                ntt = ntt > NUAGE_TT_N ? NUAGE_TT_N : ntt;
                continue;
            }
            if (nuage_tool_task_from_name(p) >= 0) {
                if (ntt < NUAGE_TT_N) ttasks[ntt++] = nuage_tool_task_from_name(p);
                continue;
            }
            int t = !strcmp(p, "mix") ? -1 : nuage_task_from_name(p);
            if (t < 0 && strcmp(p, "mix")) return nuage_cli_fail("eval", 2, "unknown task '%s'", p);
            if (nt <= NUAGE_TASK_N) tasks[nt++] = t;
        }
    }

    if (ntt && !url)
        return nuage_cli_fail("eval", 2, "tool tasks run through a server's tool-call API: use --url");
    char err[512];
    int ret = 1;
    nuage__url u;
    nuage__local L = {0};
    char model_buf[512];
    if (url && !nuage__parse_url(url, &u)) return nuage_cli_fail("eval", 2, "bad URL '%s' (http://HOST:PORT)", url);
    if (url && !model_name) { /* ask the server which model it serves */
        if (nuage__server_model(&u, model_buf, sizeof model_buf, err, sizeof err)) {
            nuage_cli_fail("eval", 1, "%s", err);
            goto done;
        }
        model_name = model_buf;
    }
    if (model_path) {
        if (nuage_model_load(model_path, NULL, &L.m, err, sizeof err)) {
            nuage_cli_fail("eval", 1, "%s: %s", model_path, err);
            goto done;
        }
        nuage_context_params cp = nuage_context_default_params();
        cp.n_threads = (int)threads;
        cp.n_seq_max = 1;
        cp.kv_type = NUAGE_KV_F32;
        L.n_ctx = nuage_model_n_ctx_train(L.m);
        cp.n_ctx = L.n_ctx;
        cp.n_batch_max = L.n_ctx;
        const char *src = nuage_model_chat_template(L.m);
        if (!src) src = nuage_template_chatml();
        L.toks = malloc((size_t)L.n_ctx * sizeof *L.toks);
        L.b = nuage_batch_new(L.n_ctx);
        if (!L.toks || !L.b || nuage_context_new(L.m, &cp, &L.ctx, err, sizeof err) ||
            nuage_template_parse(src, strlen(src), &L.t, err, sizeof err)) {
            nuage_cli_fail("eval", 1, "%s: %s", model_path, err);
            goto done;
        }
    }
    double t0 = nuage_cli_now();
    long total_ok = 0, total = 0;
    if (ntt && nuage__eval_tools(&u, model_name, ttasks, ntt, n, digits, seed, max_tokens_set ? (int)max_tokens : 0,
                                 verbose))
        goto done;
    if (nt) printf("%-10s %8s %8s %9s\n", "task", "correct", "asked", "accuracy");
    for (int k = 0; k < nt; k++) {
        nuage_rng rng;
        nuage_rng_seed(&rng, (uint64_t)seed + 1000003ull * (uint64_t)(tasks[k] + 1));
        long ok = 0;
        for (long i = 0; i < n; i++) {
            nuage_synth_item it;
            nuage_synth_opts o = {.digits = (int)digits, .heldout = true};
            int rc = tasks[k] < 0 ? nuage_synth_gen_mix((int)digits, true, &rng, &it)
                                  : nuage_synth_gen((nuage_task)tasks[k], &o, &rng, &it);
            if (rc) {
                nuage_cli_fail("eval", 1, "cannot generate questions: %s", nuage_strerror(rc));
                goto done;
            }
            char reply[8192], got[128];
            rc = url ? nuage__ask_server(&u, model_name, it.question, (int)max_tokens, reply, sizeof reply, err, sizeof err)
                     : nuage__ask_local(&L, it.question, (int)max_tokens, reply, sizeof reply, err, sizeof err);
            if (rc) {
                nuage_cli_fail("eval", 1, "%s", err);
                goto done;
            }
            nuage_synth_final_answer(reply, got, sizeof got);
            bool right = !strcmp(got, it.answer);
            ok += right;
            if (verbose)
                fprintf(stderr, "[%s] %s\n  expected %s, got %s | %s\n", right ? "ok" : "WRONG", it.question,
                        it.answer, got, reply);
        }
        printf("%-10s %8ld %8ld %8.1f%%\n", tasks[k] < 0 ? "mix" : nuage_task_name((nuage_task)tasks[k]), ok, n,
               100.0 * (double)ok / (double)n);
        fflush(stdout);
        total_ok += ok;
        total += n;
    }
    if (nt > 1) printf("%-10s %8ld %8ld %8.1f%%\n", "total", total_ok, total, 100.0 * (double)total_ok / (double)total);
    fprintf(stderr, "eval: %s path, %.1fs\n", url ? "server" : "in-process", nuage_cli_now() - t0);
    ret = 0;
done:
    nuage_template_free(L.t);
    nuage_batch_free(L.b);
    nuage_context_free(L.ctx);
    nuage_model_free(L.m);
    free(L.toks);
    return ret;
}
