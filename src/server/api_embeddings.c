/*
 * api_embeddings.c - POST /v1/embeddings.
 *
 * `input` is a string, a list of strings, a list of token ids or a list of
 * token-id lists; each input is one scheduler request with embedding set,
 * which runs the prompt without generating and returns the mean of the
 * final hidden states, L2-normalised (the scheduler does the pooling).
 * Strings are tokenized with the vocabulary's special tokens (BOS, or
 * CLS/SEP for BERT-style vocabularies), as llama.cpp's server does.
 *
 * encoding_format "float" gives a JSON array; "base64" gives the
 * little-endian float32 bytes in base64, as OpenAI does (the official SDKs
 * ask for base64 by default and decode it). `dimensions` is accepted only
 * when it equals the model's width: there is no truncation scheme for
 * models that were not trained for one.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/http.h"

#define NUAGE_MAX_INPUTS 2048

static char *nuage__base64_f32(const float *v, int n, size_t *out_len) {
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t nb = (size_t)n * 4;
    unsigned char *bytes = malloc(nb ? nb : 1);
    if (!bytes) return NULL;
    for (int i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &v[i], 4);
        bytes[4 * i] = (unsigned char)(u & 0xFF);
        bytes[4 * i + 1] = (unsigned char)((u >> 8) & 0xFF);
        bytes[4 * i + 2] = (unsigned char)((u >> 16) & 0xFF);
        bytes[4 * i + 3] = (unsigned char)(u >> 24);
    }
    size_t olen = 4 * ((nb + 2) / 3);
    char *o = malloc(olen + 1);
    if (!o) {
        free(bytes);
        return NULL;
    }
    size_t k = 0;
    for (size_t i = 0; i < nb; i += 3) {
        uint32_t x = (uint32_t)bytes[i] << 16;
        if (i + 1 < nb) x |= (uint32_t)bytes[i + 1] << 8;
        if (i + 2 < nb) x |= bytes[i + 2];
        o[k++] = tbl[(x >> 18) & 63];
        o[k++] = tbl[(x >> 12) & 63];
        o[k++] = i + 1 < nb ? tbl[(x >> 6) & 63] : '=';
        o[k++] = i + 2 < nb ? tbl[x & 63] : '=';
    }
    o[k] = 0;
    free(bytes);
    *out_len = k;
    return o;
}

void nuage__api_embeddings(nuage__hreq *q, nuage__hresp *r) {
    nuage_server *s = q->srv;
    (void)s;
    if (!nuage__require_ready(q->srv, r)) return;
    json_t *body = nuage__hreq_json(q, r);
    if (!body) return;
    nuage__apierr e = {0};
    nuage__prompts in = {0};
    nuage__gen *g = NULL;
    nuage__gen_params gp;
    memset(&gp, 0, sizeof gp);
    gp.n = 1;
    const nuage_deployment *d = nuage__use_deployment(q, body, r);
    if (!d) {
        json_decref(body);
        return;
    }
    const char *fmt = "float";
    if (!nuage__get_string(body, "encoding_format", &fmt, NULL, &e)) goto fail_err;
    bool b64 = !strcmp(fmt, "base64");
    if (!b64 && strcmp(fmt, "float")) {
        nuage__err400(&e, "encoding_format", "Invalid value for 'encoding_format': expected 'float' or 'base64'.");
        goto fail_err;
    }
    int64_t dims;
    bool has_dims;
    if (!nuage__get_int(body, "dimensions", 1, INT32_MAX, &dims, &has_dims, &e)) goto fail_err;
    if (has_dims && dims != d->n_embd) {
        nuage__err400(&e, "dimensions", "This model produces %d dimensions; 'dimensions' cannot change that.", d->n_embd);
        goto fail_err;
    }
    const char *user;
    if (!nuage__get_string(body, "user", &user, NULL, &e)) goto fail_err;
    if (!nuage__prompts_parse(d, body, "input", NUAGE_MAX_INPUTS, false, &in, &e)) goto fail_err;
    g = nuage__gen_new(q, in.n, in.toks, in.len, &gp, false, false, true);
    if (!g) {
        nuage__err(&e, 500, "server_error", NULL, NULL, "out of memory");
        goto fail_err;
    }
    nuage__new_id(s, "embd", g->req_id, sizeof g->req_id);
    int rc = nuage__gen_submit(g, q);
    if (rc) {
        nuage__sched_error(g, rc, in.len[0], -1, &e, r);
        if (e.code && !strcmp(e.code, "context_length_exceeded")) snprintf(e.param, sizeof e.param, "input");
        goto fail_err;
    }
    q->gen = g;
    for (int j = 0; j < in.n; j++) q->log_prompt += in.len[j];
    if (!nuage__gen_wait(g, q->fd)) {
        nuage__gen_finish(g, 499);
        nuage__resp_error(r, 499, "invalid_request_error", "client_closed_request", NULL, "client closed the connection");
    } else if (g->failed) {
        nuage__gen_finish(g, 500);
        nuage__resp_error(r, 500, "server_error", NULL, NULL, "%s", g->error[0] ? g->error : "engine error");
    } else {
        nuage__gen_finish(g, nuage__gen_status(g));
        json_t *data = json_array();
        long long total = 0;
        for (int j = 0; data && j < in.n; j++) {
            total += in.len[j];
            const float *v = g->embd ? g->embd[j] : NULL;
            if (!v) {
                json_decref(data);
                data = NULL;
                break;
            }
            json_t *emb;
            if (b64) {
                size_t bl;
                char *t = nuage__base64_f32(v, g->n_embd, &bl);
                emb = t ? json_stringn(t, bl) : NULL;
                free(t);
            } else {
                emb = json_array();
                for (int k = 0; emb && k < g->n_embd; k++) json_array_append_new(emb, json_real(v[k]));
            }
            json_array_append_new(data, json_pack("{s:s,s:i,s:o}", "object", "embedding", "index", j,
                                                  "embedding", emb ? emb : json_null()));
        }
        if (!data)
            nuage__resp_error(r, 500, "server_error", NULL, NULL, "the engine returned no embedding");
        else
            nuage__resp_json(r, 200, json_pack("{s:s,s:o,s:s,s:{s:I,s:I}}", "object", "list", "data", data,
                                               "model", d->name, "usage", "prompt_tokens",
                                               (json_int_t)total, "total_tokens", (json_int_t)total));
    }
    nuage__prompts_free(&in);
    json_decref(body);
    return;
fail_err:
    nuage__resp_apierr(r, &e);
    nuage__gen_unref(g);
    nuage__gen_params_free(&gp);
    nuage__prompts_free(&in);
    json_decref(body);
}
