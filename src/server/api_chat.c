/*
 * api_chat.c - POST /v1/chat/completions.
 *
 * Steps, all on the connection's thread: validate the body (validate.c),
 * normalise the messages, render them with the model's chat template
 * (ChatML when it has none) with add_generation_prompt, bos_token and
 * eos_token bound to the vocabulary's texts and chat_template_kwargs as
 * extra variables, tokenize the result with special-token parsing, submit
 * one scheduler request with n choices, then either stream the chunks or
 * wait and answer one chat.completion object.
 *
 * BOS: many templates write the BOS text themselves ("{{ bos_token }}...");
 * tokenizing with add_special on top would give two BOS tokens. As
 * llama.cpp's server does, BOS is added by the tokenizer only when the
 * rendered prompt does not already start with the BOS text.
 *
 * Reasoning models: the output passes through the <think> splitter
 * (reasoning.c); when the rendered prompt itself ends with "<think>" (the
 * template opened the block) the output starts inside it. The text inside
 * becomes `reasoning_content` and its tokens are counted in
 * usage.completion_tokens_details.reasoning_tokens.
 *
 * reasoning_effort (or reasoning.effort) sets a thinking budget through
 * the deployment's "thinking" configuration (platform/thinking.h): the
 * scheduler closes the <think> block once a choice has spent it. Models
 * whose vocabulary has no <think> / </think> tokens get no budget. A
 * template that reads a reasoning_effort variable (gpt-oss's harmony
 * template) gets the level itself (nuage__template_kwargs).
 *
 * max_tokens: when neither max_tokens nor max_completion_tokens is given,
 * a choice may use the rest of the context, capped by the server's
 * --max-tokens-default (4096): llama.cpp's server generates until the
 * context is full, which a runaway client can turn into minutes of work.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "platform/thinking.h"
#include "server/http.h"

/* Tokenize text[0..n) into a malloc'd array; count in *out_n. Returns
 * NULL on OOM or a tokenizer error. */
int32_t *nuage__tokenize_alloc(const nuage_deployment *d, const char *text, size_t n,
                               bool add_special, bool parse_special, int *out_n) {
    size_t cap = n + 8;
    for (int attempt = 0; attempt < 2; attempt++) {
        int32_t *toks = malloc(cap * sizeof *toks);
        if (!toks) return NULL;
        int k = nuage_tokenize(d->voc, text, n, toks, cap, add_special, parse_special);
        if (k < 0) {
            free(toks);
            return NULL;
        }
        if ((size_t)k <= cap) {
            *out_n = k;
            return toks;
        }
        free(toks);
        cap = (size_t)k;
    }
    return NULL;
}

static json_t *nuage__chat_response(nuage__gen *g, const char *id, int64_t created) {
    json_t *choices = json_array();
    for (int i = 0; choices && i < g->n_choices; i++) {
        nuage__gchoice *c = &g->ch[i];
        json_t *calls = c->n_calls > 0 ? nuage__tool_calls_json(c) : NULL;
        bool has_calls = calls && json_array_size(calls) > 0;
        /* as OpenAI: content null when the answer is only tool calls */
        json_t *msg = json_pack("{s:s,s:o}", "role", "assistant", "content",
                                has_calls && c->text.n == 0 ? json_null()
                                                            : nuage__json_text(c->text.p ? c->text.p : "", c->text.n));
        if (msg && c->reasoning.n)
            json_object_set_new(msg, "reasoning_content", nuage__json_text(c->reasoning.p, c->reasoning.n));
        if (msg && has_calls) json_object_set(msg, "tool_calls", calls);
        json_decref(calls);
        json_t *lp = g->gp.top_logprobs >= 0 ? nuage__chat_logprobs(g, c->toks, c->n_toks) : json_null();
        const char *fr = nuage__choice_finish_text(c);
        json_array_append_new(choices, json_pack("{s:i,s:o,s:o,s:s}", "index", i, "message",
                                                 msg ? msg : json_object(), "logprobs", lp ? lp : json_null(),
                                                 "finish_reason", fr ? fr : "stop"));
    }
    return json_pack("{s:s,s:s,s:I,s:s,s:s,s:o,s:o}", "id", id, "object", "chat.completion",
                     "created", (json_int_t)created, "model", g->dep->name,
                     "system_fingerprint", nuage__fingerprint(g->dep), "choices", choices ? choices : json_array(),
                     "usage", nuage__gen_usage(g, true));
}

void nuage__api_chat(nuage__hreq *q, nuage__hresp *r) {
    nuage_server *s = q->srv;
    if (!nuage__require_ready(s, r)) return;
    json_t *body = nuage__hreq_json(q, r);
    if (!body) return;
    nuage__apierr e = {0};
    nuage__gen_params gp;
    memset(&gp, 0, sizeof gp);
    nuage__structured st;
    memset(&st, 0, sizeof st);
    json_t *msgs = NULL;
    char *prompt = NULL;
    size_t plen = 0;
    int32_t *toks = NULL;
    nuage__gen *g = NULL;
    const nuage_deployment *d = nuage__use_deployment(q, body, r);
    if (!d) {
        json_decref(body);
        return;
    }
    msgs = nuage__parse_messages(body, &e);
    if (!msgs) goto fail_err;
    if (!nuage__parse_gen_params(body, true, d->n_vocab, d->max_n, &gp, &e)) goto fail_err;
    /* reasoning_effort -> thinking budget (platform/thinking.h). */
    int think_budget = -1;
    const char *effort = nuage_thinking_effort_of(body);
    if ((effort && *effort) || d->cfg.thinking) {
        nuage_thinking_config tc;
        char terr[200];
        if (nuage_thinking_config_parse(d->cfg.thinking, &tc, terr, sizeof terr)) tc = nuage_thinking_default();
        if (effort && !*effort) {
            nuage__err400(&e, "reasoning_effort", "Invalid type for 'reasoning_effort': expected a string.");
            goto fail_err;
        }
        if (nuage_thinking_budget(&tc, effort, &think_budget)) {
            nuage__err400(&e, "reasoning_effort",
                          "Invalid value for 'reasoning_effort': expected 'none', 'minimal', 'low', 'medium' or 'high'.");
            goto fail_err;
        }
        /* the deployment's default level is the template's too (gpt-oss) */
        static const char *const levels[NUAGE_THINKING_LEVELS] = {"none", "minimal", "low", "medium", "high"};
        if (!effort && tc.default_level >= 0 && tc.default_level < NUAGE_THINKING_LEVELS)
            effort = levels[tc.default_level];
    }
    json_t *kw = json_object_get(body, "chat_template_kwargs");
    if (kw && json_is_null(kw)) kw = NULL;
    if (kw && !json_is_object(kw)) {
        nuage__err400(&e, "chat_template_kwargs", "Invalid type for 'chat_template_kwargs': expected an object.");
        goto fail_err;
    }
    json_t *tools = json_object_get(body, "tools");
    if (tools && json_is_null(tools)) tools = NULL;
    if (!nuage__tools_parse(d, body, &st, &e)) goto fail_err;
    if (tools && json_array_size(tools) == 0) tools = NULL;

    if (nuage__messages_for_template(msgs, nuage_template_traits_of(d->tmpl)) ||
        nuage__tools_instruct(&st, msgs)) {
        nuage__err(&e, 500, "server_error", NULL, NULL, "out of memory");
        goto fail_err;
    }

    nuage_template_input in;
    memset(&in, 0, sizeof in);
    in.add_generation_prompt = true;
    in.bos_token = d->bos_text;
    in.eos_token = d->eos_text;
    in.now = -1;
    char terr[300];
    json_t *vars = NULL; /* kw, plus reasoning_effort for templates that read it (gpt-oss) */
    int rc = nuage__template_kwargs(kw, effort, nuage_template_traits_of(d->tmpl), &vars);
    if (!rc) rc = nuage_template_render_json(d->tmpl, msgs, tools, vars, &in, &prompt, &plen, terr, sizeof terr);
    json_decref(vars);
    if (rc == NUAGE_E_NOMEM) {
        nuage__err(&e, 500, "server_error", NULL, NULL, "out of memory");
        goto fail_err;
    }
    if (rc) {
        nuage__err400(&e, "messages", "The chat template could not render these messages: %s", terr);
        goto fail_err;
    }
    size_t bl = d->bos_text ? strlen(d->bos_text) : 0;
    bool has_bos = bl > 0 && plen >= bl && !memcmp(prompt, d->bos_text, bl);
    int n_tok = 0;
    toks = nuage__tokenize_alloc(d, prompt, plen, !has_bos, true, &n_tok);
    if (!toks) {
        nuage__err(&e, 500, "server_error", NULL, NULL, "cannot tokenize the prompt");
        goto fail_err;
    }
    if (n_tok == 0) {
        nuage__err400(&e, "messages", "The messages render to an empty prompt.");
        goto fail_err;
    }
    bool think_open = nuage__prompt_opens_think(prompt, plen);
    if (!nuage__structured_build(d, body, think_open, &st, &e)) goto fail_err;
    int64_t req_max = gp.max_tokens;
    g = nuage__gen_new(q, 1, &toks, &n_tok, &gp, true, think_open, false);
    if (!g || !nuage__gen_set_structured(g, &st)) {
        nuage__err(&e, 500, "server_error", NULL, NULL, "out of memory");
        goto fail_err;
    }
    g->think_budget = think_budget;
    char id[64];
    nuage__new_id(s, "chatcmpl", id, sizeof id);
    snprintf(g->req_id, sizeof g->req_id, "%s", id);
    rc = nuage__gen_submit(g, q);
    if (rc) {
        nuage__sched_error(g, rc, n_tok, req_max, &e, r);
        goto fail_err;
    }
    q->gen = g; /* the request context keeps our reference */
    q->log_prompt = n_tok;
    nuage__gen_respond(g, q, r, true, id, nuage__chat_response);
    free(toks);
    free(prompt);
    json_decref(msgs);
    json_decref(body);
    return;

fail_err:
    nuage__resp_apierr(r, &e);
    nuage__gen_unref(g);
    nuage__gen_params_free(&gp);
    nuage__structured_free(&st);
    free(toks);
    free(prompt);
    json_decref(msgs);
    json_decref(body);
}
