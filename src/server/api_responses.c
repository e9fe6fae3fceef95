/*
 * api_responses.c - the OpenAI Responses API: POST /v1/responses, GET /
 * DELETE /v1/responses/{id}, GET /v1/responses/{id}/input_items, POST
 * /v1/responses/{id}/cancel, POST /v1/responses/input_tokens.
 *
 * One generation path. A request is translated into a chat body
 * (responses_items.c), the deployment is chosen from it (a router sees
 * the same messages and reasoning effort as for chat), then rendered with
 * the chat template, tokenized and submitted as a generation job
 * (api_gen.c) exactly as /v1/chat/completions does: the tool-call parser,
 * the structured-output grammar, the thinking budget, the rate limiter
 * and the usage record are the chat ones. Only the answer's shape is
 * built here: output items (reasoning, message, function_call) from the
 * job's one choice.
 *
 * Stored state. With a store (`nuage serve --db`), "store": true (the
 * default, as OpenAI) keeps the response object and this turn's input
 * items in the store (store_responses.c), scoped to the caller's tenant
 * and kept for the retention period (--response-retention, default 30
 * days; expired rows are invisible at once and purged at most once a
 * minute). previous_response_id rebuilds the conversation from the chain:
 * every earlier turn's input items then output items, oldest first, then
 * this turn's input. The rebuilt prompt renders the earlier turns exactly
 * as before, so it shares its prefix with the previous turn's prompt and
 * the prefix cache serves it (usage.input_tokens_details.cached_tokens).
 * A server without a store (`nuage serve -m` with no database) keeps
 * them in a private store of its own: a SQLite file in a fresh 0700
 * temporary folder, created on first use and removed by
 * nuage_server_free, so stateful clients work there too, for the life of
 * the process.
 *
 * Background. "background": true stores the response as "queued" and
 * answers at once; a detached thread waits for the job, then stores the
 * final object. The thread counts as a request in flight (s->active), so
 * a shutdown drains it before the store closes. POST .../cancel cancels
 * the job's scheduler requests; the response ends "cancelled". GET
 * ?stream=true waits for the end and replays the events.
 *
 * Truncation. "disabled" (the default) answers 400 context_length_exceeded
 * when the conversation does not fit; "auto" drops the oldest messages
 * after the leading system ones (a tool result never outlives its call)
 * until prompt + max_output_tokens fit.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "platform/thinking.h"
#include "server/metering.h"
#include "server/responses.h"

#define NUAGE__RSP_MAX_CHAIN 1000
#define NUAGE__RSP_RETENTION_DEFAULT_S (30LL * 86400)

/* ---- background jobs in flight -------------------------------------------- */

typedef struct nuage__rbg {
    nuage_server *s;
    nuage__gen *g;                /* one reference */
    nuage__rsp x;
    bool cancelled, deleted;      /* under nuage__rbg_mu */
    struct nuage__rbg *next;
} nuage__rbg;

static pthread_mutex_t nuage__rbg_mu = PTHREAD_MUTEX_INITIALIZER;
static nuage__rbg *nuage__rbg_head;

/* ---- small helpers ------------------------------------------------------------ */

void nuage__rsp_item_id(const nuage__rsp *x, const char *kind, int k, char *buf, size_t cap) {
    if (k >= 0) snprintf(buf, cap, "%s_%s_%d", kind, x->hex, k);
    else snprintf(buf, cap, "%s_%s", kind, x->hex);
}

static const char *nuage__qarg(nuage__hreq *q, const char *key) {
    return q->conn ? MHD_lookup_connection_value(q->conn, MHD_GET_ARGUMENT_KIND, key) : NULL;
}

/* The store responses live in: the server's, else a private one in a
 * temporary folder (created on first use, mode 0700, removed by
 * nuage_server_free). NULL when neither can be had. */
static pthread_mutex_t nuage__rsp_store_mu = PTHREAD_MUTEX_INITIALIZER;

nuage_store *nuage__rsp_store(nuage_server *s) {
    if (s->store) return s->store;
    pthread_mutex_lock(&nuage__rsp_store_mu);
    if (!s->rsp_store && !s->rsp_dir[0]) {
        const char *base = getenv("TMPDIR");
        snprintf(s->rsp_dir, sizeof s->rsp_dir, "%s/nuage-responses-XXXXXX", base && *base ? base : "/tmp");
        if (!mkdtemp(s->rsp_dir)) {
            fprintf(stderr, "nuage serve: warning: no folder for stored responses: %s\n", s->rsp_dir);
            snprintf(s->rsp_dir, sizeof s->rsp_dir, "-"); /* do not try again */
        } else {
            char path[300], err[300];
            snprintf(path, sizeof path, "%s/responses.db", s->rsp_dir);
            if (nuage_store_open(path, &s->rsp_store, err, sizeof err))
                fprintf(stderr, "nuage serve: warning: no store for responses: %s\n", err);
        }
    }
    nuage_store *st = s->rsp_store;
    pthread_mutex_unlock(&nuage__rsp_store_mu);
    return st;
}

static int64_t nuage__rsp_retention_ms(nuage_server *s) {
    int64_t sec = s->p.response_retention_s > 0 ? s->p.response_retention_s : NUAGE__RSP_RETENTION_DEFAULT_S;
    return sec * 1000;
}

/* Chat-path error params renamed to the Responses fields. */
static void nuage__rsp_param(nuage__apierr *e) {
    static const char *const map[][2] = {{"response_format", "text.format"},
                                         {"max_completion_tokens", "max_output_tokens"},
                                         {"max_tokens", "max_output_tokens"},
                                         {"reasoning_effort", "reasoning.effort"},
                                         {"messages", "input"},
                                         {"prompt", "input"}};
    for (size_t i = 0; i < sizeof map / sizeof *map; i++) {
        size_t l = strlen(map[i][0]);
        if (!strncmp(e->param, map[i][0], l) && (e->param[l] == 0 || e->param[l] == '[' || e->param[l] == '.')) {
            char rest[128];
            snprintf(rest, sizeof rest, "%s", e->param + l);
            snprintf(e->param, sizeof e->param, "%s%s", map[i][1], strncmp(map[i][0], "messages", 8) ? rest : "");
            return;
        }
    }
}

/* ---- the response object ---------------------------------------------------------- */

static json_t *nuage__rsp_output(const nuage__rsp *x, nuage__gen *g) {
    json_t *out = json_array();
    if (!out || !g || g->n_choices < 1) return out;
    nuage__gchoice *c = &g->ch[0];
    char id[96];
    if (c->reasoning.n) {
        nuage__rsp_item_id(x, "rs", -1, id, sizeof id);
        json_array_append_new(out, json_pack("{s:s,s:s,s:[],s:[{s:s,s:o}]}", "id", id, "type", "reasoning", "summary",
                                             "content", "type", "reasoning_text", "text",
                                             nuage__json_text(c->reasoning.p, c->reasoning.n)));
    }
    /* a call cut short (max_output_tokens, cancelled, still running) is
     * shown with what it wrote, status incomplete / in_progress; after a
     * normal stop only complete calls count */
    bool partial_ok = c->finish != NUAGE_FINISH_STOP;
    int n_calls = 0;
    for (int k = 0; k < c->n_calls; k++) n_calls += c->calls[k].final_args != NULL || partial_ok;
    if (c->text.n || (n_calls == 0 && c->reasoning.n == 0)) {
        nuage__rsp_item_id(x, "msg", -1, id, sizeof id);
        json_t *lp = NULL;
        if (x->logprobs && g->gp.top_logprobs >= 0) {
            json_t *o = nuage__chat_logprobs(g, c->toks, c->n_toks);
            lp = json_incref(json_object_get(o, "content"));
            json_decref(o);
        }
        json_t *part = json_pack("{s:s,s:[],s:o,s:o}", "type", "output_text", "annotations", "logprobs",
                                 lp ? lp : json_array(), "text", nuage__json_text(c->text.p ? c->text.p : "", c->text.n));
        json_array_append_new(out, json_pack("{s:s,s:s,s:s,s:[o],s:s}", "id", id, "type", "message", "status",
                                             c->finish == NUAGE_FINISH_LENGTH ? "incomplete" : "completed",
                                             "content", part, "role", "assistant"));
    }
    for (int k = 0; k < c->n_calls; k++) {
        const nuage__gcall *t = &c->calls[k];
        if (!t->final_args && !partial_ok) continue;
        nuage__rsp_item_id(x, "fc", k, id, sizeof id);
        const char *st = t->final_args ? "completed" : c->finish < 0 ? "in_progress" : "incomplete";
        json_array_append_new(out, json_pack("{s:s,s:s,s:s,s:o,s:s,s:s}", "id", id, "type", "function_call", "status", st,
                                             "arguments", t->final_args ? json_string(t->final_args)
                                                                        : nuage__json_text(t->args.p ? t->args.p : "", t->args.n),
                                             "call_id", t->id, "name", t->name ? t->name : ""));
    }
    return out;
}

json_t *nuage__rsp_object(const nuage__rsp *x, nuage__gen *g, const char *force) {
    const char *status = force;
    json_t *error = json_null(), *inc = json_null();
    if (!status) {
        status = "completed";
        int fin = g && g->n_choices > 0 ? g->ch[0].finish : NUAGE_FINISH_STOP;
        if (!g) status = "queued";
        else if (g->failed) {
            status = "failed";
            json_decref(error);
            error = json_pack("{s:s,s:s}", "code", "server_error", "message", g->error[0] ? g->error : "engine error");
        } else if (fin == NUAGE_FINISH_CANCELLED) status = "cancelled";
        else if (fin == NUAGE_FINISH_LENGTH) {
            status = "incomplete";
            json_decref(inc);
            inc = json_pack("{s:s}", "reason", "max_output_tokens");
        }
    }
    bool running = !strcmp(status, "queued") || !strcmp(status, "in_progress");
    json_t *o = json_pack("{s:s,s:s,s:I,s:s}", "id", x->id, "object", "response", "created_at",
                          (json_int_t)x->created_at, "status", status);
    if (!o) {
        json_decref(error);
        json_decref(inc);
        return NULL;
    }
    const char *k;
    json_t *v;
    json_object_foreach(x->settings, k, v) {
        json_object_set(o, k, v);
        if (!strcmp(k, "background")) {
            json_object_set_new(o, "error", error);
            json_object_set_new(o, "incomplete_details", inc);
        } else if (!strcmp(k, "max_tool_calls")) {
            json_object_set_new(o, "model", json_string(g ? g->dep->name : x->model));
            json_object_set_new(o, "output", running && !force ? json_array() : nuage__rsp_output(x, g));
        } else if (!strcmp(k, "truncation")) {
            json_t *u = json_null();
            if (g && !running) {
                long long in = 0, cached = 0, outk = 0, rs = 0;
                for (int j = 0; j < g->n_jobs; j++) {
                    in += g->jobs[j].n_prompt;
                    cached += g->jobs[j].usage.cached_tokens;
                }
                for (int i = 0; i < g->n_choices; i++) {
                    outk += g->ch[i].n_gen;
                    rs += g->ch[i].n_reasoning;
                }
                u = json_pack("{s:I,s:{s:I},s:I,s:{s:I},s:I}", "input_tokens", (json_int_t)in, "input_tokens_details",
                              "cached_tokens", (json_int_t)cached, "output_tokens", (json_int_t)outk,
                              "output_tokens_details", "reasoning_tokens", (json_int_t)rs, "total_tokens",
                              (json_int_t)(in + outk));
            }
            json_object_set_new(o, "usage", u ? u : json_null());
        }
    }
    return o;
}

int nuage__rsp_save(nuage_server *s, const nuage__rsp *x, json_t *obj) {
    nuage_store *store = nuage__rsp_store(s);
    if (!x->store || !store || !obj) return 0;
    static _Atomic int64_t last_purge;
    int64_t now = nuage__wall_ms();
    if (now - atomic_load(&last_purge) > 60000) {
        atomic_store(&last_purge, now);
        nuage_store_response_purge(store, now, NULL);
    }
    nuage_stored_response row;
    memset(&row, 0, sizeof row);
    snprintf(row.id, sizeof row.id, "%s", x->id);
    row.tenant_id = x->tenant_id;
    row.created_ms = x->created_ms;
    row.expires_ms = row.created_ms + nuage__rsp_retention_ms(s);
    snprintf(row.status, sizeof row.status, "%s", json_string_value(json_object_get(obj, "status")));
    snprintf(row.previous_id, sizeof row.previous_id, "%s", x->prev);
    row.object = json_dumps(obj, JSON_COMPACT);
    row.input = json_dumps(x->input, JSON_COMPACT);
    int rc = row.object && row.input ? nuage_store_response_put(store, &row) : NUAGE_E_NOMEM;
    if (rc)
        fprintf(stderr, "nuage serve: warning: response %s not stored: %s\n", x->id,
                rc == NUAGE_E_NOMEM ? "out of memory" : nuage_store_errmsg(store));
    nuage_stored_response_free(&row);
    return rc;
}

/* ---- the conversation of previous_response_id ------------------------------------ */

/* Items of the chain ending at prev (input then output of each turn,
 * oldest first) into *out. false with e filled. */
static bool nuage__rsp_history(nuage_server *s, int64_t tenant, const char *prev, json_t **out, nuage__apierr *e) {
    *out = NULL;
    nuage_store *store = nuage__rsp_store(s);
    if (!store)
        return nuage__err(e, 500, "server_error", "store_unavailable", "previous_response_id",
                          "The server has no store for responses.");
    nuage_stored_response *rows = NULL;
    int n = 0;
    int rc = nuage_store_response_chain(store, tenant, prev, nuage__wall_ms(), NUAGE__RSP_MAX_CHAIN, &rows, &n);
    if (rc == NUAGE_E_RANGE)
        return nuage__err(e, 404, "invalid_request_error", "previous_response_not_found", "previous_response_id",
                          "Previous response with id '%.64s' not found.", prev);
    if (rc) return nuage__err(e, 500, "server_error", NULL, NULL, "%s", nuage_store_errmsg(store));
    json_t *items = json_array();
    bool ok = items != NULL;
    for (int i = 0; ok && i < n; i++) {
        json_t *in = json_loads(rows[i].input, JSON_ALLOW_NUL, NULL);
        json_t *obj = json_loads(rows[i].object, JSON_ALLOW_NUL, NULL);
        const char *st = json_string_value(json_object_get(obj, "status"));
        if (st && (!strcmp(st, "queued") || !strcmp(st, "in_progress"))) {
            ok = nuage__err(e, 400, "invalid_request_error", "previous_response_in_progress", "previous_response_id",
                            "Previous response '%.64s' is still %s: wait for it to finish.", rows[i].id, st);
        }
        json_array_extend(items, in);
        json_array_extend(items, json_object_get(obj, "output"));
        json_decref(in);
        json_decref(obj);
    }
    nuage_stored_responses_free(rows, n);
    if (!ok) {
        json_decref(items);
        return false;
    }
    *out = items;
    return true;
}

/* input items {"type": "item_reference", "id": ...} (the AI SDK sends
 * them for earlier outputs of stored responses) replaced in body by the
 * items they name. Output item ids carry their response's id ("msg_<hex>",
 * "fc_<hex>_<k>", "rs_<hex>" of "resp_<hex>"), so the response is found
 * without an index. false with e filled (404 for an unknown item). */
static bool nuage__rsp_resolve_refs(nuage_server *s, int64_t tenant, json_t *body, nuage__apierr *e) {
    json_t *input = json_object_get(body, "input");
    if (!json_is_array(input)) return true;
    size_t i;
    json_t *it;
    json_array_foreach(input, i, it) {
        const char *type = json_string_value(json_object_get(it, "type"));
        if (!type || strcmp(type, "item_reference")) continue;
        const char *id = json_string_value(json_object_get(it, "id"));
        char param[48];
        snprintf(param, sizeof param, "input[%zu].id", i);
        if (!id) return nuage__err400(e, param, "Missing required parameter: '%s'.", param);
        const char *us = strchr(id, '_');
        char rid[80];
        size_t hl = us ? strcspn(us + 1, "_") : 0;
        snprintf(rid, sizeof rid, "resp_%.*s", (int)(hl < 40 ? hl : 40), us ? us + 1 : "");
        nuage_store *store = nuage__rsp_store(s);
        nuage_stored_response row;
        json_t *found = NULL;
        if (hl && store && !nuage_store_response_get(store, tenant, rid, nuage__wall_ms(), &row)) {
            json_t *obj = json_loads(row.object, JSON_ALLOW_NUL, NULL);
            nuage_stored_response_free(&row);
            size_t k;
            json_t *o;
            json_array_foreach(json_object_get(obj, "output"), k, o) {
                const char *oid = json_string_value(json_object_get(o, "id"));
                if (oid && !strcmp(oid, id)) found = json_incref(o);
            }
            json_decref(obj);
        }
        if (!found)
            return nuage__err(e, 404, "invalid_request_error", "not_found", param, "Item with id '%.64s' not found.", id);
        json_array_set_new(input, i, found);
    }
    return true;
}

/* ---- rendering and submitting -------------------------------------------------------- */

/* Drop the oldest droppable message (after the leading system ones, with
 * the tool results that follow it). false when nothing can go. */
static bool nuage__rsp_drop_oldest(json_t *msgs) {
    size_t i = 0, n = json_array_size(msgs);
    while (i < n) {
        const char *role = json_string_value(json_object_get(json_array_get(msgs, i), "role"));
        if (!role || (strcmp(role, "system") && strcmp(role, "developer"))) break;
        i++;
    }
    if (i + 1 >= n) return false; /* keep at least the last message */
    json_array_remove(msgs, i);
    while (i + 1 < json_array_size(msgs)) {
        const char *role = json_string_value(json_object_get(json_array_get(msgs, i), "role"));
        if (!role || strcmp(role, "tool")) break;
        json_array_remove(msgs, i);
    }
    return true;
}

/* Render body.messages with d's template and tokenize. 0 with *toks, or
 * an error in e. */
static int nuage__rsp_render(const nuage_deployment *d, json_t *body, json_t *tools, json_t *kw, int32_t **toks,
                             int *n_tok, bool *think_open, nuage__apierr *e) {
    char *prompt = NULL;
    size_t plen = 0;
    nuage_template_input in;
    memset(&in, 0, sizeof in);
    in.add_generation_prompt = true;
    in.bos_token = d->bos_text;
    in.eos_token = d->eos_text;
    in.now = -1;
    char terr[300];
    json_t *msgs = json_deep_copy(json_object_get(body, "messages"));
    if (!msgs || nuage__messages_for_template(msgs, nuage_template_traits_of(d->tmpl))) {
        json_decref(msgs);
        nuage__err(e, 500, "server_error", NULL, NULL, "out of memory");
        return NUAGE_E_NOMEM;
    }
    int rc = nuage_template_render_json(d->tmpl, msgs, tools, kw, &in, &prompt, &plen, terr, sizeof terr);
    json_decref(msgs);
    if (rc == NUAGE_E_NOMEM) {
        nuage__err(e, 500, "server_error", NULL, NULL, "out of memory");
        return rc;
    }
    if (rc) {
        nuage__err400(e, "input", "The chat template could not render this conversation: %s", terr);
        return rc;
    }
    size_t bl = d->bos_text ? strlen(d->bos_text) : 0;
    bool has_bos = bl > 0 && plen >= bl && !memcmp(prompt, d->bos_text, bl);
    *think_open = nuage__prompt_opens_think(prompt, plen);
    *toks = nuage__tokenize_alloc(d, prompt, plen, !has_bos, true, n_tok);
    free(prompt);
    if (!*toks) {
        nuage__err(e, 500, "server_error", NULL, NULL, "cannot tokenize the prompt");
        return NUAGE_E_NOMEM;
    }
    if (*n_tok == 0) {
        free(*toks);
        *toks = NULL;
        nuage__err400(e, "input", "The input renders to an empty prompt.");
        return NUAGE_E_INVAL;
    }
    return 0;
}

/* The generation job of x on q's deployment d, submitted. NULL with e
 * filled (and r's Retry-After) on failure. count (POST
 * /v1/responses/input_tokens): only render the prompt, its length into
 * *count, and return NULL with e->status 0. */
static nuage__gen *nuage__rsp_start(nuage__hreq *q, const nuage_deployment *d, nuage__rsp *x, nuage__apierr *e,
                                    nuage__hresp *r, int *count) {
    json_t *body = x->chat;
    nuage__gen_params gp;
    memset(&gp, 0, sizeof gp);
    nuage__structured st;
    memset(&st, 0, sizeof st);
    int32_t *toks = NULL;
    int n_tok = 0;
    nuage__gen *g = NULL;
    if (!nuage__parse_gen_params(body, true, d->n_vocab, d->max_n, &gp, e)) goto fail;
    int think_budget = -1;
    const char *effort = nuage_thinking_effort_of(body);
    if ((effort && *effort) || d->cfg.thinking) {
        nuage_thinking_config tc;
        char terr[200];
        if (nuage_thinking_config_parse(d->cfg.thinking, &tc, terr, sizeof terr)) tc = nuage_thinking_default();
        if (nuage_thinking_budget(&tc, effort, &think_budget)) {
            nuage__err400(e, "reasoning.effort",
                          "Invalid value for 'reasoning.effort': expected 'none', 'minimal', 'low', 'medium' or 'high'.");
            goto fail;
        }
    }
    json_t *tools = json_object_get(body, "tools");
    if (!nuage__tools_parse(d, body, &st, e)) goto fail;
    if (tools && json_array_size(tools) == 0) tools = NULL;
    /* the tool instruction (generic family) goes into the messages once */
    if (nuage__tools_instruct(&st, json_object_get(body, "messages"))) {
        nuage__err(e, 500, "server_error", NULL, NULL, "out of memory");
        goto fail;
    }
    bool think_open = false;
    if (nuage__rsp_render(d, body, tools, NULL, &toks, &n_tok, &think_open, e)) goto fail;
    /* truncation "auto": drop the oldest turns until the prompt fits */
    int64_t need = gp.max_tokens > 0 ? gp.max_tokens : 1;
    while (x->truncate_auto && (int64_t)n_tok + need > d->n_ctx &&
           nuage__rsp_drop_oldest(json_object_get(body, "messages"))) {
        free(toks);
        toks = NULL;
        if (nuage__rsp_render(d, body, tools, NULL, &toks, &n_tok, &think_open, e)) goto fail;
    }
    if (count) {
        *count = n_tok;
        e->status = 0;
        goto fail;
    }
    if (!nuage__structured_build(d, body, think_open, &st, e)) goto fail;
    int64_t req_max = gp.max_tokens;
    g = nuage__gen_new(q, 1, &toks, &n_tok, &gp, true, think_open, false);
    if (!g || !nuage__gen_set_structured(g, &st)) {
        nuage__err(e, 500, "server_error", NULL, NULL, "out of memory");
        goto fail;
    }
    g->think_budget = think_budget;
    snprintf(g->req_id, sizeof g->req_id, "%s", x->id);
    int rc = nuage__gen_submit(g, q);
    if (rc) {
        nuage__sched_error(g, rc, n_tok, req_max, e, r);
        goto fail;
    }
    free(toks);
    return g;
fail:
    nuage__rsp_param(e);
    nuage__gen_unref(g);
    nuage__gen_params_free(&gp);
    nuage__structured_free(&st);
    free(toks);
    return NULL;
}

/* ---- background ------------------------------------------------------------------- */

static void *nuage__rbg_main(void *arg) {
    nuage__rbg *b = arg;
    nuage_server *s = b->s;
    json_t *obj = nuage__rsp_object(&b->x, b->g, "in_progress");
    /* under the registry lock: a delete either comes first (nothing
     * written) or after (it removes this row) */
    pthread_mutex_lock(&nuage__rbg_mu);
    if (!b->cancelled && !b->deleted) nuage__rsp_save(s, &b->x, obj);
    pthread_mutex_unlock(&nuage__rbg_mu);
    json_decref(obj);
    while (!nuage__gen_wait_done(b->g, 1000)) {
    }
    nuage__gen_finish(b->g, nuage__gen_status(b->g));
    /* leave the registry first: a cancel from now on sees the stored state */
    pthread_mutex_lock(&nuage__rbg_mu);
    for (nuage__rbg **p = &nuage__rbg_head; *p; p = &(*p)->next)
        if (*p == b) {
            *p = b->next;
            break;
        }
    bool cancelled = b->cancelled, deleted = b->deleted;
    obj = nuage__rsp_object(&b->x, b->g, cancelled ? "cancelled" : NULL);
    if (!deleted) nuage__rsp_save(s, &b->x, obj);
    pthread_mutex_unlock(&nuage__rbg_mu);
    json_decref(obj);
    nuage__gen_unref(b->g);
    nuage__rsp_free(&b->x);
    free(b);
    atomic_fetch_sub(&s->active, 1);
    return NULL;
}

/* Start the background thread for g (takes x and one reference on g).
 * false on failure (x and g left to the caller). */
static bool nuage__rbg_start(nuage_server *s, nuage__gen *g, nuage__rsp *x) {
    nuage__rbg *b = calloc(1, sizeof *b);
    if (!b) return false;
    b->s = s;
    b->g = g;
    b->x = *x;
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    atomic_fetch_add(&s->active, 1);
    pthread_mutex_lock(&nuage__rbg_mu);
    b->next = nuage__rbg_head;
    nuage__rbg_head = b;
    pthread_t th;
    int rc = pthread_create(&th, &at, nuage__rbg_main, b);
    if (rc) nuage__rbg_head = b->next;
    pthread_mutex_unlock(&nuage__rbg_mu);
    pthread_attr_destroy(&at);
    if (rc) {
        atomic_fetch_sub(&s->active, 1);
        free(b);
        return false;
    }
    memset(x, 0, sizeof *x);
    return true;
}

/* The background job of id for tenant, still running: mark it (cancel /
 * delete) and return its job with a reference, else NULL. */
static nuage__gen *nuage__rbg_mark(const char *id, int64_t tenant, bool cancel, bool del) {
    nuage__gen *g = NULL;
    pthread_mutex_lock(&nuage__rbg_mu);
    for (nuage__rbg *b = nuage__rbg_head; b; b = b->next) {
        if (strcmp(b->x.id, id) || b->x.tenant_id != tenant) continue;
        b->cancelled |= cancel;
        b->deleted |= del;
        g = b->g;
        nuage__gen_ref(g);
        break;
    }
    pthread_mutex_unlock(&nuage__rbg_mu);
    return g;
}

/* A running background response of tenant as it stands (status
 * in_progress, the output so far), or NULL when none runs. */
static json_t *nuage__rbg_live(const char *id, int64_t tenant) {
    json_t *obj = NULL;
    pthread_mutex_lock(&nuage__rbg_mu);
    for (nuage__rbg *b = nuage__rbg_head; b; b = b->next) {
        if (strcmp(b->x.id, id) || b->x.tenant_id != tenant || b->cancelled || b->deleted) continue;
        pthread_mutex_lock(&b->g->mu);
        obj = nuage__rsp_object(&b->x, b->g, "in_progress");
        pthread_mutex_unlock(&b->g->mu);
        if (obj) json_object_set_new(obj, "usage", json_null());
        break;
    }
    pthread_mutex_unlock(&nuage__rbg_mu);
    return obj;
}

static bool nuage__rbg_running(const char *id) {
    bool found = false;
    pthread_mutex_lock(&nuage__rbg_mu);
    for (nuage__rbg *b = nuage__rbg_head; b && !found; b = b->next) found = !strcmp(b->x.id, id);
    pthread_mutex_unlock(&nuage__rbg_mu);
    return found;
}

/* ---- POST /v1/responses ------------------------------------------------------------- */

static void nuage__rsp_get(nuage__hreq *q, nuage__hresp *r, const char *id, bool replay);

/* Fill x's ids and the caller. */
static void nuage__rsp_ids(nuage_server *s, nuage__hreq *q, nuage__rsp *x) {
    char id[64];
    nuage__new_id(s, "resp", id, sizeof id);
    const char *hex = strchr(id, '-');
    snprintf(x->hex, sizeof x->hex, "%.32s", hex ? hex + 1 : id);
    snprintf(x->id, sizeof x->id, "resp_%s", x->hex);
    x->created_ms = nuage__wall_ms();
    x->created_at = x->created_ms / 1000;
    x->tenant_id = q->auth.tenant_id;
}

void nuage__api_responses_create(nuage__hreq *q, nuage__hresp *r) {
    nuage_server *s = q->srv;
    if (!nuage__require_ready(s, r)) return;
    json_t *body = nuage__hreq_json(q, r);
    if (!body) return;
    nuage__apierr e = {0};
    nuage__rsp x;
    memset(&x, 0, sizeof x);
    json_t *history = NULL;
    nuage__gen *g = NULL;
    const char *prev = NULL;
    if (!nuage__get_string(body, "previous_response_id", &prev, NULL, &e)) goto fail_err;
    if (!nuage__rsp_resolve_refs(s, q->auth.tenant_id, body, &e)) goto fail_err;
    if (prev && *prev && !nuage__rsp_history(s, q->auth.tenant_id, prev, &history, &e)) goto fail_err;
    if (!nuage__rsp_parse(s, body, history, &x, &e)) goto fail_err;
    if (prev) snprintf(x.prev, sizeof x.prev, "%s", prev);
    nuage__rsp_ids(s, q, &x);
    const nuage_deployment *d = nuage__use_deployment(q, x.chat, r);
    if (!d) goto fail_r;
    snprintf(x.model, sizeof x.model, "%s", d->name);
    g = nuage__rsp_start(q, d, &x, &e, r, NULL);
    if (!g) goto fail_err;
    q->log_prompt = g->jobs[0].n_prompt;
    if (x.background) {
        /* the job outlives this request: our reference goes to its thread
         * (q->gen would be cancelled when the request completes) */
        json_t *obj = nuage__rsp_object(&x, NULL, "queued");
        char bg_id[64];
        bool bg_stream = x.stream;
        snprintf(bg_id, sizeof bg_id, "%s", x.id);
        if (!obj || nuage__rsp_save(s, &x, obj) || !nuage__rbg_start(s, g, &x)) {
            json_decref(obj);
            nuage__gen_cancel(g);
            nuage__gen_wait_done(g, 10000);
            nuage__gen_finish(g, 500);
            nuage__gen_unref(g);
            nuage__resp_error(r, 500, "server_error", NULL, NULL, "the background response could not be started");
            goto out;
        }
        if (bg_stream) {
            /* background + stream: its events once it ends (as GET
             * ?stream=true); the job goes on if this client leaves */
            json_decref(obj);
            nuage__rsp_get(q, r, bg_id, true);
            goto out;
        }
        nuage__resp_json(r, 200, obj);
        goto out;
    }
    q->gen = g; /* the request context keeps our reference */
    if (x.stream) {
        bool ok;
        r->stream = nuage__rsp_stream_new(g, &x, q->fd, &ok);
        if (!ok) {
            nuage__gen_cancel(g);
            nuage__resp_error(r, 500, "server_error", NULL, NULL, "out of memory");
        } else {
            r->streaming = true;
            r->status = 200;
        }
        goto out;
    }
    if (!nuage__gen_wait(g, q->fd)) {
        nuage__gen_finish(g, 499);
        nuage__resp_error(r, 499, "invalid_request_error", "client_closed_request", NULL, "client closed the connection");
        goto out;
    }
    nuage__gen_finish(g, nuage__gen_status(g));
    json_t *obj = nuage__rsp_object(&x, g, NULL);
    nuage__rsp_save(s, &x, obj);
    nuage__resp_json(r, 200, obj);
out:
    nuage__rsp_free(&x);
    json_decref(history);
    json_decref(body);
    return;
fail_err:
    nuage__resp_apierr(r, &e);
fail_r:
    nuage__rsp_free(&x);
    json_decref(history);
    json_decref(body);
}

/* POST /v1/responses/input_tokens: the prompt length a create with this
 * body would have (the same translation, chain and template). */
static void nuage__rsp_input_tokens(nuage__hreq *q, nuage__hresp *r) {
    nuage_server *s = q->srv;
    if (!nuage__require_ready(s, r)) return;
    json_t *body = nuage__hreq_json(q, r);
    if (!body) return;
    nuage__apierr e = {0};
    nuage__rsp x;
    memset(&x, 0, sizeof x);
    json_t *history = NULL;
    const char *prev = NULL;
    int n = 0;
    /* store / background / stream do not apply to a count */
    json_object_del(body, "background");
    json_object_del(body, "stream");
    if (!nuage__get_string(body, "previous_response_id", &prev, NULL, &e)) goto fail_err;
    if (!nuage__rsp_resolve_refs(s, q->auth.tenant_id, body, &e)) goto fail_err;
    if (prev && *prev && !nuage__rsp_history(s, q->auth.tenant_id, prev, &history, &e)) goto fail_err;
    if (!nuage__rsp_parse(s, body, history, &x, &e)) goto fail_err;
    const nuage_deployment *d = nuage__use_deployment(q, x.chat, r);
    if (!d) goto out;
    nuage__rsp_start(q, d, &x, &e, r, &n);
    if (e.status) goto fail_err;
    nuage__resp_json(r, 200, json_pack("{s:s,s:i}", "object", "response.input_tokens", "input_tokens", n));
    goto out;
fail_err:
    nuage__resp_apierr(r, &e);
out:
    nuage__rsp_free(&x);
    json_decref(history);
    json_decref(body);
}

/* ---- GET / DELETE / input_items / cancel ------------------------------------------- */

static void nuage__rsp_404(nuage__hresp *r, const char *id) {
    nuage__resp_error(r, 404, "invalid_request_error", "not_found", NULL, "Response with id '%.64s' not found.", id);
}

/* The stored response id of q's tenant into *row; false with r filled. */
static bool nuage__rsp_load(nuage__hreq *q, nuage__hresp *r, const char *id, nuage_stored_response *row) {
    memset(row, 0, sizeof *row);
    nuage_store *store = nuage__rsp_store(q->srv);
    if (!store) {
        nuage__rsp_404(r, id);
        return false;
    }
    int rc = nuage_store_response_get(store, q->auth.tenant_id, id, nuage__wall_ms(), row);
    if (rc == NUAGE_E_RANGE) nuage__rsp_404(r, id);
    else if (rc) nuage__resp_error(r, 500, "server_error", NULL, NULL, "%s", nuage_store_errmsg(store));
    return rc == 0;
}

static void nuage__rsp_get(nuage__hreq *q, nuage__hresp *r, const char *id, bool replay) {
    nuage_stored_response row;
    const char *stream = nuage__qarg(q, "stream");
    replay |= stream && !strcmp(stream, "true");
    if (replay) {
        /* wait for a background response to end, then replay its events */
        for (int i = 0; i < 6000 && nuage__rbg_running(id); i++) {
            if (nuage__client_gone(q->fd)) return nuage__resp_error(r, 499, "invalid_request_error",
                                                                   "client_closed_request", NULL, "client gone");
            struct timespec ts = {0, 100 * 1000000L};
            nanosleep(&ts, NULL);
        }
    }
    if (!replay) {
        /* a running background response shows its output so far */
        json_t *live = nuage__rbg_live(id, q->auth.tenant_id);
        if (live) return nuage__resp_json(r, 200, live);
    }
    if (!nuage__rsp_load(q, r, id, &row)) return;
    json_t *obj = json_loads(row.object, JSON_ALLOW_NUL, NULL);
    nuage_stored_response_free(&row);
    if (!obj) return nuage__resp_error(r, 500, "server_error", NULL, NULL, "stored response unreadable");
    if (!replay) return nuage__resp_json(r, 200, obj);
    const char *sa = nuage__qarg(q, "starting_after");
    nuage__sb sb = {0};
    nuage__rsp_replay(obj, sa ? strtoll(sa, NULL, 10) : -1, &sb);
    json_decref(obj);
    if (sb.oom) {
        nuage__sb_free(&sb);
        return nuage__resp_error(r, 500, "server_error", NULL, NULL, "out of memory");
    }
    r->status = 200;
    r->body = sb.p ? sb.p : strdup("");
    r->len = sb.n;
    r->content_type = "text/event-stream";
}

static void nuage__rsp_delete(nuage__hreq *q, nuage__hresp *r, const char *id) {
    nuage__gen *g = nuage__rbg_mark(id, q->auth.tenant_id, true, true);
    if (g) {
        nuage__gen_cancel(g);
        nuage__gen_unref(g);
    }
    nuage_store *store = nuage__rsp_store(q->srv);
    int rc = store ? nuage_store_response_delete(store, q->auth.tenant_id, id) : NUAGE_E_RANGE;
    if (rc == NUAGE_E_RANGE) return nuage__rsp_404(r, id);
    if (rc) return nuage__resp_error(r, 500, "server_error", NULL, NULL, "%s", nuage_store_errmsg(store));
    nuage__resp_json(r, 200, json_pack("{s:s,s:s,s:b}", "id", id, "object", "response", "deleted", 1));
}

static void nuage__rsp_cancel(nuage__hreq *q, nuage__hresp *r, const char *id) {
    nuage__gen *g = nuage__rbg_mark(id, q->auth.tenant_id, true, false);
    if (g) {
        nuage__gen_cancel(g);
        nuage__gen_unref(g);
        /* the job's thread stores the cancelled object */
        for (int i = 0; i < 300 && nuage__rbg_running(id); i++) {
            struct timespec ts = {0, 20 * 1000000L};
            nanosleep(&ts, NULL);
        }
    }
    nuage_stored_response row;
    if (!nuage__rsp_load(q, r, id, &row)) return;
    json_t *obj = json_loads(row.object, JSON_ALLOW_NUL, NULL);
    nuage_stored_response_free(&row);
    if (!obj) return nuage__resp_error(r, 500, "server_error", NULL, NULL, "stored response unreadable");
    if (!json_is_true(json_object_get(obj, "background"))) {
        json_decref(obj);
        return nuage__resp_error(r, 400, "invalid_request_error", "not_background", NULL,
                                 "Only responses created with 'background': true can be cancelled.");
    }
    nuage__resp_json(r, 200, obj);
}

static void nuage__rsp_input_items(nuage__hreq *q, nuage__hresp *r, const char *id) {
    const char *after = nuage__qarg(q, "after"), *lim = nuage__qarg(q, "limit"), *order = nuage__qarg(q, "order");
    long limit = 20;
    if (lim) {
        char *end;
        limit = strtol(lim, &end, 10);
        if (*end || limit < 1 || limit > 100)
            return nuage__resp_error(r, 400, "invalid_request_error", "invalid_value", "limit",
                                     "limit must be an integer between 1 and 100.");
    }
    bool asc = false;
    if (order) {
        if (strcmp(order, "asc") && strcmp(order, "desc"))
            return nuage__resp_error(r, 400, "invalid_request_error", "invalid_value", "order",
                                     "order must be 'asc' or 'desc'.");
        asc = !strcmp(order, "asc");
    }
    nuage_stored_response row;
    if (!nuage__rsp_load(q, r, id, &row)) return;
    json_t *items = json_loads(row.input, JSON_ALLOW_NUL, NULL);
    nuage_stored_response_free(&row);
    if (!json_is_array(items)) {
        json_decref(items);
        return nuage__resp_error(r, 500, "server_error", NULL, NULL, "stored input unreadable");
    }
    size_t n = json_array_size(items);
    json_t *data = json_array();
    bool skipping = after && *after, more = false;
    for (size_t k = 0; k < n; k++) {
        json_t *it = json_array_get(items, asc ? k : n - 1 - k);
        const char *iid = json_string_value(json_object_get(it, "id"));
        if (skipping) {
            if (iid && !strcmp(iid, after)) skipping = false;
            continue;
        }
        if ((long)json_array_size(data) >= limit) {
            more = true;
            break;
        }
        json_array_append(data, it);
    }
    json_decref(items);
    size_t m = json_array_size(data);
    json_t *first = m ? json_object_get(json_array_get(data, 0), "id") : NULL;
    json_t *last = m ? json_object_get(json_array_get(data, m - 1), "id") : NULL;
    json_t *o = json_pack("{s:s,s:O,s:O,s:O,s:b}", "object", "list", "data", data, "first_id",
                          first ? first : json_null(), "last_id", last ? last : json_null(), "has_more", more);
    json_decref(data);
    nuage__resp_json(r, 200, o);
}

void nuage__api_responses(nuage__hreq *q, nuage__hresp *r, const char *sub) {
    bool is_get = !strcmp(q->method, "GET") || !strcmp(q->method, "HEAD");
    if (!sub[0] || !strcmp(sub, "/")) {
        if (strcmp(q->method, "POST"))
            return nuage__resp_error(r, 405, "invalid_request_error", "method_not_allowed", NULL,
                                     "Method %s is not allowed on /v1/responses (use POST).", q->method);
        return nuage__api_responses_create(q, r);
    }
    if (!strcmp(sub, "/input_tokens") && !strcmp(q->method, "POST")) return nuage__rsp_input_tokens(q, r);
    char id[72];
    const char *action;
    if (!nuage__split_id(q, r, sub, "input_items|cancel", id, sizeof id, &action)) return;
    if (!strcmp(action, "input_items") && is_get) return nuage__rsp_input_items(q, r, id);
    if (!strcmp(action, "cancel") && !strcmp(q->method, "POST")) return nuage__rsp_cancel(q, r, id);
    if (!action[0] && is_get) return nuage__rsp_get(q, r, id, false);
    if (!action[0] && !strcmp(q->method, "DELETE")) return nuage__rsp_delete(q, r, id);
    nuage__resp_error(r, 405, "invalid_request_error", "method_not_allowed", NULL, "Method %s is not allowed on %.200s.",
                      q->method, q->path);
}

void nuage__responses_close(nuage_server *s) {
    /* background jobs of this server end first (a shutdown drained them) */
    for (int i = 0; i < 3000; i++) {
        bool mine = false;
        pthread_mutex_lock(&nuage__rbg_mu);
        for (nuage__rbg *b = nuage__rbg_head; b && !mine; b = b->next) mine = b->s == s;
        pthread_mutex_unlock(&nuage__rbg_mu);
        if (!mine) break;
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
    pthread_mutex_lock(&nuage__rsp_store_mu);
    if (s->rsp_store) {
        nuage_store_close(s->rsp_store);
        s->rsp_store = NULL;
        const char *const files[] = {"responses.db", "responses.db-wal", "responses.db-shm"};
        for (int i = 0; i < 3; i++) {
            char p[300];
            snprintf(p, sizeof p, "%s/%s", s->rsp_dir, files[i]);
            unlink(p);
        }
        rmdir(s->rsp_dir);
    }
    s->rsp_dir[0] = 0;
    pthread_mutex_unlock(&nuage__rsp_store_mu);
}
