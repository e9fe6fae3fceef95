/*
 * prompts.c - the OpenAI "prompt" / "input" grammar, shared by
 * /v1/completions and /v1/embeddings: a string, an array of strings, an
 * array of token ids, or an array of token-id arrays. Each item becomes
 * one token sequence (strings tokenized with BOS and special tokens
 * parsed, as llama-server does); every item must be non-empty, within the
 * context length, and of one kind. Errors name the exact parameter
 * ("prompt[3]") as the OpenAI API does.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/http.h"

void nuage__prompts_free(nuage__prompts *p) {
    for (int i = 0; i < p->n; i++) free(p->toks[i]);
    free(p->toks);
    free(p->len);
    free(p->text);
    free(p->text_len);
    memset(p, 0, sizeof *p);
}

static bool nuage__too_long(const nuage_deployment *d, size_t n, const char *param,
                            const char *noun, nuage__apierr *e) {
    if (n <= (size_t)d->n_ctx) return false;
    nuage__err(e, 400, "invalid_request_error", "context_length_exceeded", param,
               "This model's maximum context length is %d tokens, but the %s has %zu tokens.",
               d->n_ctx, noun, n);
    return true;
}

/* One item: a token-id array or a string (tokenized). */
static bool nuage__prompt_item(const nuage_deployment *d, json_t *v, const char *param,
                               const char *noun, nuage__prompts *p, nuage__apierr *e) {
    int32_t *t;
    size_t n;
    if (json_is_string(v)) {
        /* Bound the work by the byte length first: a text that cannot fit
         * in the context whatever its tokens is not tokenized. */
        const nuage_vocab *voc = nuage_model_vocab(d->model);
        int ml = voc ? nuage_vocab_max_token_len(voc) : 0;
        nuage_vocab_type vt = voc ? nuage_vocab_type_of(voc) : 0;
        size_t bytes = json_string_length(v);
        if (ml > 0 && (vt == NUAGE_VOCAB_SPM || vt == NUAGE_VOCAB_BPE) && bytes / (size_t)ml > (size_t)d->n_ctx)
            return nuage__err(e, 400, "invalid_request_error", "context_length_exceeded", param,
                              "This model's maximum context length is %d tokens, but the %s has more than %zu "
                              "tokens (%zu bytes).", d->n_ctx, noun, bytes / (size_t)ml, bytes);
        int k = 0;
        /* "" is one BOS token for a completion (as for OpenAI and
         * llama-server), but an invalid embedding input */
        t = json_string_length(v) || p->empty_text_ok
                ? nuage__tokenize_alloc(d, json_string_value(v), json_string_length(v), true,
                                        true, &k)
                : calloc(1, sizeof *t);
        if (!t) return nuage__err(e, 500, "server_error", NULL, NULL, "cannot tokenize the %s", noun);
        n = (size_t)k;
        p->text[p->n] = json_string_value(v);
        p->text_len[p->n] = json_string_length(v);
    } else {
        n = json_array_size(v);
        t = malloc((n ? n : 1) * sizeof *t);
        if (!t) return nuage__err(e, 500, "server_error", NULL, NULL, "out of memory");
        for (size_t i = 0; i < n; i++) {
            json_t *x = json_array_get(v, i);
            if (!json_is_integer(x) || json_integer_value(x) < 0 ||
                json_integer_value(x) >= d->n_vocab) {
                free(t);
                return nuage__err400(e, param, "Invalid '%s': element %zu is not a token id in [0, %d).",
                                     param, i, d->n_vocab);
            }
            t[i] = (int32_t)json_integer_value(x);
        }
        p->text[p->n] = NULL;
        p->text_len[p->n] = 0;
    }
    if (n == 0 || nuage__too_long(d, n, param, noun, e)) {
        free(t);
        return n ? false : nuage__err400(e, param, "Invalid '%s': the %s is empty.", param, noun);
    }
    p->toks[p->n] = t;
    p->len[p->n++] = (int)n;
    return true;
}

bool nuage__prompts_parse(const nuage_deployment *d, json_t *body, const char *param, int max,
                          bool empty_text_ok, nuage__prompts *p, nuage__apierr *e) {
    const char *noun = param; /* "prompt", "input": also what an item is called */
    memset(p, 0, sizeof *p);
    p->empty_text_ok = empty_text_ok;
    json_t *v = json_object_get(body, param);
    if (!v || json_is_null(v)) return nuage__err400(e, param, "Missing required parameter: '%s'.", param);
    if (!json_is_string(v) && !json_is_array(v))
        return nuage__err400(e, param, "Invalid type for '%s': expected a string, an array of strings, "
                             "an array of tokens or an array of token arrays.", param);
    const size_t n = json_is_array(v) ? json_array_size(v) : 1;
    if (json_is_array(v) && n == 0) return nuage__err400(e, param, "Invalid '%s': empty array.", param);
    json_t *first = json_is_array(v) ? json_array_get(v, 0) : v;
    /* a flat id array (or a string) is one item */
    const bool one = json_is_string(v) || json_is_integer(first);
    const size_t items = one ? 1 : n;
    if (items > (size_t)max)
        return nuage__err400(e, param, "Invalid '%s': at most %d %ss per request.", param, max, noun);
    p->toks = calloc(items, sizeof *p->toks);
    p->len = calloc(items, sizeof *p->len);
    p->text = calloc(items, sizeof *p->text);
    p->text_len = calloc(items, sizeof *p->text_len);
    if (!p->toks || !p->len || !p->text || !p->text_len)
        return nuage__err(e, 500, "server_error", NULL, NULL, "out of memory");
    if (one) return nuage__prompt_item(d, v, param, noun, p, e);
    for (size_t i = 0; i < n; i++) {
        json_t *it = json_array_get(v, i);
        char name[48];
        snprintf(name, sizeof name, "%s[%zu]", param, i);
        if (!(json_is_string(first) && json_is_string(it)) &&
            !(json_is_array(first) && json_is_array(it)))
            return nuage__err400(e, name, "Invalid type for '%s': all %ss must be strings or all "
                                 "token arrays.", name, noun);
        if (!nuage__prompt_item(d, it, name, noun, p, e)) return false;
    }
    return true;
}
