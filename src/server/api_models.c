/*
 * api_models.c - GET /v1/models and GET /v1/models/{id}.
 *
 * The server serves one model. Its id is --alias when given, else the
 * model file's name without directory and ".gguf"; requests may name it
 * by that id or by the path given on the command line. The model object
 * has OpenAI's fields (id, object, created, owned_by) plus a `meta` object
 * with what llama.cpp's server reports there (context, vocabulary, size),
 * once the model is loaded.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "server/http.h"

static json_t *nuage__model_object(nuage_server *s) {
    json_t *o = json_pack("{s:s,s:s,s:I,s:s}", "id", s->model_id, "object", "model", "created",
                          (json_int_t)time(NULL), "owned_by", "nuage");
    if (o && atomic_load(&s->state) == NUAGE__STATE_READY) {
        json_object_set_new(o, "meta", json_pack("{s:s,s:i,s:i,s:i,s:i,s:I,s:I}", "arch", nuage_model_arch(s->m),
                                                 "n_ctx", s->n_ctx, "n_ctx_train", nuage_model_n_ctx_train(s->m),
                                                 "n_vocab", s->n_vocab, "n_embd", s->n_embd, "n_params",
                                                 (json_int_t)nuage_model_n_params(s->m), "size",
                                                 (json_int_t)nuage_model_size_bytes(s->m)));
    }
    return o;
}

void nuage__api_models(nuage__hreq *q, nuage__hresp *r, const char *id) {
    nuage_server *s = q->srv;
    if (!id) {
        json_t *data = json_array();
        if (data) json_array_append_new(data, nuage__model_object(s));
        nuage__resp_json(r, 200, json_pack("{s:s,s:o}", "object", "list", "data", data ? data : json_array()));
        return;
    }
    int n;
    const char *const *names = nuage__model_names(s, &n);
    for (int i = 0; i < n; i++)
        if (names[i] && !strcmp(id, names[i])) {
            nuage__resp_json(r, 200, nuage__model_object(s));
            return;
        }
    nuage__resp_error(r, 404, "invalid_request_error", "model_not_found", "model",
                      "The model '%.200s' does not exist or you do not have access to it.", id);
}
