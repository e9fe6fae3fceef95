/*
 * api_tokenize.c - POST /tokenize and POST /detokenize, with llama.cpp's
 * server shapes:
 *
 *   /tokenize   {"content": "text", "add_special": false, "parse_special": true,
 *                "with_pieces": false}
 *            -> {"tokens": [ids]}   or, with_pieces, [{"id": 1, "piece": "a"}]
 *   /detokenize {"tokens": [ids]} -> {"content": "text"}
 *
 * Detokenization renders special tokens (the inverse of tokenizing with
 * parse_special) and keeps a leading space; bytes that are not valid UTF-8
 * (a token list cut inside a character) come back as "\xNN" text, since a
 * JSON string cannot carry them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/http.h"

/* The deployment named by body["model"] (absent: the default one). */
static const nuage_deployment *nuage__tok_deployment(nuage__hreq *q, json_t *body, nuage__hresp *r) {
    nuage__apierr e = {0};
    const char *name = NULL;
    if (!nuage__get_string(body, "model", &name, NULL, &e)) {
        nuage__resp_apierr(r, &e);
        return NULL;
    }
    nuage_deployment *d = nuage__find_deployment(q, name, r);
    if (d && d->kind != NUAGE_DEPLOY_MODEL) {
        nuage__resp_error(r, 400, "invalid_request_error", NULL, "model",
                          "The deployment '%s' is a router; name a model deployment.", d->name);
        nuage_deployment_release(d);
        return NULL;
    }
    if (d) {
        nuage_deployment_release(q->dep);
        q->dep = d;
    }
    return d;
}

void nuage__api_tokenize(nuage__hreq *q, nuage__hresp *r) {
    if (!nuage__require_ready(q->srv, r)) return;
    json_t *body = nuage__hreq_json(q, r);
    if (!body) return;
    const nuage_deployment *s = nuage__tok_deployment(q, body, r);
    if (!s) {
        json_decref(body);
        return;
    }
    nuage__apierr e = {0};
    const char *content = NULL;
    bool present, add_special = false, parse_special = true, with_pieces = false;
    if (!nuage__get_string(body, "content", &content, &present, &e) ||
        !nuage__get_bool(body, "add_special", &add_special, NULL, &e) ||
        !nuage__get_bool(body, "parse_special", &parse_special, NULL, &e) ||
        !nuage__get_bool(body, "with_pieces", &with_pieces, NULL, &e)) {
        nuage__resp_apierr(r, &e);
        json_decref(body);
        return;
    }
    if (!present) {
        nuage__resp_error(r, 400, "invalid_request_error", NULL, "content", "Missing required parameter: 'content'.");
        json_decref(body);
        return;
    }
    size_t len = json_string_length(json_object_get(body, "content"));
    int n = 0;
    int32_t *t = nuage__tokenize_alloc(s, content, len, add_special, parse_special, &n);
    if (!t) {
        nuage__resp_error(r, 500, "server_error", NULL, NULL, "cannot tokenize the content");
        json_decref(body);
        return;
    }
    json_t *arr = json_array();
    for (int i = 0; arr && i < n; i++) {
        if (!with_pieces) {
            json_array_append_new(arr, json_integer(t[i]));
            continue;
        }
        char buf[256];
        size_t pl = nuage__token_piece(s, t[i], buf, sizeof buf);
        json_array_append_new(arr, json_pack("{s:i,s:o}", "id", t[i], "piece", nuage__json_text(buf, pl)));
    }
    free(t);
    q->log_prompt = n;
    nuage__resp_json(r, 200, json_pack("{s:o}", "tokens", arr ? arr : json_array()));
    json_decref(body);
}

void nuage__api_detokenize(nuage__hreq *q, nuage__hresp *r) {
    if (!nuage__require_ready(q->srv, r)) return;
    json_t *body = nuage__hreq_json(q, r);
    if (!body) return;
    const nuage_deployment *s = nuage__tok_deployment(q, body, r);
    if (!s) {
        json_decref(body);
        return;
    }
    json_t *a = json_object_get(body, "tokens");
    if (!a || !json_is_array(a)) {
        nuage__resp_error(r, 400, "invalid_request_error", NULL, "tokens",
                          a ? "Invalid type for 'tokens': expected an array of token ids."
                            : "Missing required parameter: 'tokens'.");
        json_decref(body);
        return;
    }
    size_t n = json_array_size(a);
    int32_t *t = malloc((n ? n : 1) * sizeof *t);
    char *buf = NULL;
    if (!t) goto fail_oom;
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_array_get(a, i);
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) >= s->n_vocab) {
            char param[32];
            snprintf(param, sizeof param, "tokens[%zu]", i);
            nuage__resp_error(r, 400, "invalid_request_error", NULL, param,
                              "Invalid '%s': not a token id in [0, %d).", param, s->n_vocab);
            free(t);
            json_decref(body);
            return;
        }
        t[i] = (int32_t)json_integer_value(v);
    }
    int len = nuage_detokenize(s->voc, t, n, NULL, 0, false, true);
    if (len < 0) goto fail_oom;
    buf = malloc((size_t)len + 1);
    if (!buf) goto fail_oom;
    nuage_detokenize(s->voc, t, n, buf, (size_t)len + 1, false, true);
    nuage__resp_json(r, 200, json_pack("{s:o}", "content", nuage__json_text(buf, (size_t)len)));
    free(buf);
    free(t);
    json_decref(body);
    return;
fail_oom:
    free(buf);
    free(t);
    nuage__resp_error(r, 500, "server_error", NULL, NULL, "out of memory");
    json_decref(body);
}
