/*
 * api_models.c - GET /v1/models and GET /v1/models/{id}.
 *
 * A model, to a client, is a deployment: the list holds every deployment
 * the caller's key may use (all of them when auth is off), by name; a
 * deployment the key may not use answers 404 exactly like one that does
 * not exist, as OpenAI does. With `nuage serve -m` the one deployment's id
 * is --alias when given, else the model file's name without directory and
 * ".gguf"; requests may also name it by the path given on the command line.
 *
 * The model object has OpenAI's fields (id, object, created -- when the
 * instance was loaded --, owned_by) plus a `meta` object with what
 * llama.cpp's server reports there (context, vocabulary, size) and the
 * deployment's kind and version label.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "constrain/toolcall.h"
#include "server/http.h"

json_t *nuage__deployment_object(const nuage_deployment *d, bool details) {
    json_t *o = json_pack("{s:s,s:s,s:I,s:s}", "id", d->name, "object", "model", "created",
                          (json_int_t)(d->loaded_ms / 1000), "owned_by", "nuage");
    if (!o) return NULL;
    json_t *meta;
    if (d->kind == NUAGE_DEPLOY_MODEL)
        meta = json_pack("{s:s,s:s,s:i,s:i,s:i,s:i,s:I,s:I}", "kind", "model", "arch", nuage_model_arch(d->model),
                         "n_ctx", d->n_ctx, "n_ctx_train", nuage_model_n_ctx_train(d->model), "n_vocab",
                         d->n_vocab, "n_embd", d->n_embd, "n_params", (json_int_t)nuage_model_n_params(d->model),
                         "size", (json_int_t)nuage_model_size_bytes(d->model));
    else
        meta = json_pack("{s:s}", "kind", "router");
    if (meta && d->version[0]) json_object_set_new(meta, "version", json_string(d->version));
    if (meta && d->kind == NUAGE_DEPLOY_MODEL) {
        json_object_set_new(meta, "tool_format", json_string(nuage_toolfmt_name((nuage_toolfmt)nuage__resolve_toolfmt(d))));
        json_object_set_new(meta, "chat_template",
                            json_string(d->tmpl_fallback ? "chatml-fallback" : d->cfg.chat_template[0] ? "file" : "model"));
        if (d->tmpl_fallback)
            json_object_set_new(meta, "warnings",
                                json_pack("[s]", "the model has no usable chat template: the built-in ChatML template "
                                                 "is used, which renders no tools (set chat_template / --chat-template)"));
    }
    if (meta) json_object_set_new(o, "meta", meta);
    if (!details) return o;
    /* Admin view: configuration, memory and scheduler state. */
    json_t *x = json_object();
    if (!x) return o;
    json_object_set_new(x, "version", json_string(d->version));
    json_object_set_new(x, "kind", json_string(d->kind == NUAGE_DEPLOY_MODEL ? "model" : "router"));
    if (d->kind == NUAGE_DEPLOY_MODEL && d->cfg.model[0]) json_object_set_new(x, "model", json_string(d->cfg.model));
    json_object_set_new(x, "loaded_at", json_integer((json_int_t)d->loaded_ms));
    json_object_set_new(x, "instance", json_integer((json_int_t)d->serial));
    json_object_set_new(x, "log_prompts", json_boolean(d->cfg.log_prompts));
    json_object_set_new(x, "memory", json_pack("{s:I,s:I}", "weights_bytes", (json_int_t)d->weights_bytes,
                                               "kv_bytes", (json_int_t)d->kv_bytes));
    json_t *al = json_array();
    for (int i = 0; al && i < d->cfg.n_aliases; i++) json_array_append_new(al, json_string(d->cfg.aliases[i]));
    if (al) json_object_set_new(x, "aliases", al);
    if (d->cfg.source) json_object_set(x, "config", d->cfg.source);
    if (d->sched) {
        nuage_sched_stats st;
        nuage_sched_get_stats(d->sched, &st);
        json_object_set_new(x, "stats", json_pack("{s:i,s:i,s:i,s:i,s:i,s:I,s:I,s:I}", "queued", st.queued,
                                                  "running", st.running, "kv_blocks_total", st.kv_blocks_total,
                                                  "kv_blocks_free", st.kv_blocks_free, "kv_blocks_cached",
                                                  st.kv_blocks_cached, "prompt_tokens", (json_int_t)st.prompt_tokens,
                                                  "cached_tokens", (json_int_t)st.cached_tokens,
                                                  "generated_tokens", (json_int_t)st.generated_tokens));
    }
    json_object_update(o, x);
    json_decref(x);
    return o;
}

void nuage__api_models(nuage__hreq *q, nuage__hresp *r, const char *id) {
    nuage_server *s = q->srv;
    bool ready = atomic_load(&s->state) != NUAGE__STATE_LOADING;
    if (!id) {
        json_t *data = json_array();
        nuage_deployment **ds = NULL;
        int n = 0;
        if (data && ready && !nuage_registry_list(s->reg, &ds, &n)) {
            for (int i = 0; i < n; i++) {
                if (nuage_auth_allows(&q->auth, ds[i]->name))
                    json_array_append_new(data, nuage__deployment_object(ds[i], false));
                nuage_deployment_release(ds[i]);
            }
            free(ds);
        }
        if (!ready && data)  /* still loading: the name given on the command line */
            json_array_append_new(data, json_pack("{s:s,s:s,s:I,s:s}", "id", s->model_id, "object", "model",
                                                  "created", (json_int_t)time(NULL), "owned_by", "nuage"));
        nuage__resp_json(r, 200, json_pack("{s:s,s:o}", "object", "list", "data", data ? data : json_array()));
        return;
    }
    if (!ready) {
        bool known = !strcmp(id, s->model_id) || (s->model_path && !strcmp(id, s->model_path));
        if (known)
            nuage__resp_json(r, 200, json_pack("{s:s,s:s,s:I,s:s}", "id", s->model_id, "object", "model",
                                               "created", (json_int_t)time(NULL), "owned_by", "nuage"));
        else
            nuage__resp_error(r, 404, "invalid_request_error", "model_not_found", "model",
                              "The model '%.200s' does not exist or you do not have access to it.", id);
        return;
    }
    nuage_deployment *d = nuage__find_deployment(q, id, r);
    if (!d) return;
    nuage__resp_json(r, 200, nuage__deployment_object(d, false));
    nuage_deployment_release(d);
}
