/*
 * api_completions.c - POST /v1/completions (the legacy text completion
 * API).
 *
 * `prompt` may be a string, a list of strings, a list of token ids or a
 * list of token-id lists; each prompt is its own scheduler request and
 * gets its own n choices, numbered prompt_index * n + choice as OpenAI
 * does. Strings are tokenized with BOS (add_special) and special-token
 * parsing, as llama.cpp's server does; token lists are used as given (ids
 * must be inside the vocabulary).
 *
 * echo prepends the prompt's text to each choice (for token prompts, their
 * detokenized text); with logprobs the prompt tokens are listed too, the
 * first one with a null logprob as OpenAI does. logprobs is the legacy
 * integer (0..20 top alternatives; OpenAI stops at 5) and the answer uses
 * the legacy shape: tokens, token_logprobs, top_logprobs (a token -> logprob
 * object per position), text_offset (byte offsets into the choice's text).
 * `suffix` is accepted and ignored: none of the supported models does
 * fill-in-the-middle through this endpoint.
 *
 * When max_tokens is absent the default is the rest of the context capped
 * at --max-tokens-default (OpenAI's own default of 16 surprises clients of
 * self-hosted servers, which follow llama.cpp's "until done" behaviour).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server/http.h"

#define NUAGE_MAX_PROMPTS 256

static json_t *nuage__completion_response(nuage__gen *g, const char *id, int64_t created) {
    json_t *choices = json_array();
    for (int i = 0; choices && i < g->n_choices; i++) {
        nuage__gchoice *c = &g->ch[i];
        nuage__gjob *jb = &g->jobs[i / g->n_per];
        nuage__sb text = {0};
        if (g->gp.echo) nuage__sb_put(&text, jb->echo_text ? jb->echo_text : "", jb->echo_len);
        nuage__sb_put(&text, c->text.p ? c->text.p : "", c->text.n);
        json_t *lp = json_null();
        if (g->gp.top_logprobs >= 0) {
            size_t off = g->gp.echo ? 0 : jb->echo_len;
            json_decref(lp);
            lp = NULL;
            if (g->gp.echo && jb->ptoks)
                lp = nuage__legacy_logprobs(g, jb->prompt, jb->ptoks, jb->n_prompt, true, &off, NULL);
            lp = nuage__legacy_logprobs(g, NULL, c->toks, c->n_toks, false, &off, lp);
        }
        const char *fr = nuage__finish_text(c->finish);
        json_array_append_new(choices, json_pack("{s:o,s:i,s:o,s:s}", "text",
                                                 nuage__json_text(text.p ? text.p : "", text.n), "index", i,
                                                 "logprobs", lp ? lp : json_null(), "finish_reason",
                                                 fr ? fr : "stop"));
        nuage__sb_free(&text);
    }
    return json_pack("{s:s,s:s,s:I,s:s,s:s,s:o,s:o}", "id", id, "object", "text_completion", "created",
                     (json_int_t)created, "model", g->dep->name, "system_fingerprint", nuage__fingerprint(g->dep),
                     "choices", choices ? choices : json_array(), "usage", nuage__gen_usage(g, false));
}

/* The prompt's text for echo / text offsets. */
static bool nuage__set_echo(const nuage_deployment *s, nuage__gjob *jb, const char *text, size_t len) {
    if (text) {
        jb->echo_text = malloc(len + 1);
        if (!jb->echo_text) return false;
        memcpy(jb->echo_text, text, len);
        jb->echo_text[len] = 0;
        jb->echo_len = len;
        return true;
    }
    int n = nuage_detokenize(s->voc, jb->prompt, (size_t)jb->n_prompt, NULL, 0, false, false);
    if (n < 0) return false;
    jb->echo_text = malloc((size_t)n + 1);
    if (!jb->echo_text) return false;
    nuage_detokenize(s->voc, jb->prompt, (size_t)jb->n_prompt, jb->echo_text, (size_t)n + 1, false, false);
    /* Detokenized ids can hold partial UTF-8: keep what is valid text. */
    nuage__sb clean = {0};
    const char *p = jb->echo_text;
    for (int i = 0; i < n;) {
        size_t k = 1;
        while (k <= 4 && i + (int)k <= n && !nuage__utf8_ok(p + i, k)) k++;
        if (k <= 4 && i + (int)k <= n) {
            nuage__sb_put(&clean, p + i, k);
            i += (int)k;
        } else {
            nuage__sb_puts(&clean, "\xEF\xBF\xBD");
            i++;
        }
    }
    free(jb->echo_text);
    jb->echo_text = clean.p ? clean.p : strdup("");
    jb->echo_len = clean.n;
    return jb->echo_text != NULL;
}

void nuage__api_completions(nuage__hreq *q, nuage__hresp *r) {
    nuage_server *s = q->srv;
    if (!nuage__require_ready(s, r)) return;
    json_t *body = nuage__hreq_json(q, r);
    if (!body) return;
    nuage__apierr e = {0};
    nuage__gen_params gp;
    memset(&gp, 0, sizeof gp);
    nuage__prompts p = {0};
    nuage__structured st;
    memset(&st, 0, sizeof st);
    nuage__gen *g = NULL;
    const nuage_deployment *d = nuage__use_deployment(q, body, r);
    if (!d) {
        json_decref(body);
        return;
    }
    if (!nuage__parse_gen_params(body, false, d->n_vocab, d->max_n, &gp, &e)) goto fail_err;
    if (!nuage__prompts_parse(d, body, "prompt", NUAGE_MAX_PROMPTS, true, &p, &e)) goto fail_err;
    if (!nuage__structured_build(d, body, false, &st, &e)) goto fail_err;
    bool want_text = gp.echo || gp.top_logprobs >= 0;
    int64_t req_max = gp.max_tokens;
    g = nuage__gen_new(q, p.n, p.toks, p.len, &gp, false, false, false);
    if (!g || !nuage__gen_set_structured(g, &st)) {
        nuage__err(&e, 500, "server_error", NULL, NULL, "out of memory");
        goto fail_err;
    }
    for (int j = 0; want_text && j < p.n; j++)
        if (!nuage__set_echo(d, &g->jobs[j], p.text[j], p.text_len[j])) {
            nuage__err(&e, 500, "server_error", NULL, NULL, "out of memory");
            goto fail_err;
        }
    char id[64];
    nuage__new_id(s, "cmpl", id, sizeof id);
    snprintf(g->req_id, sizeof g->req_id, "%s", id);
    int rc = nuage__gen_submit(g, q);
    if (rc) {
        int bad = 0;
        for (int j = 0; j < p.n; j++)
            if (p.len[j] > p.len[bad]) bad = j;
        nuage__sched_error(g, rc, p.len[bad], req_max, &e, r);
        if (e.code && !strcmp(e.code, "context_length_exceeded")) snprintf(e.param, sizeof e.param, "prompt");
        goto fail_err;
    }
    q->gen = g;
    for (int j = 0; j < p.n; j++) q->log_prompt += p.len[j];
    nuage__gen_respond(g, q, r, false, id, nuage__completion_response);
    nuage__prompts_free(&p);
    json_decref(body);
    return;

fail_err:
    nuage__resp_apierr(r, &e);
    nuage__gen_unref(g);
    nuage__gen_params_free(&gp);
    nuage__structured_free(&st);
    nuage__prompts_free(&p);
    json_decref(body);
}
