/*
 * api_responses_stream.c - the typed server-sent events of the Responses
 * API ("stream": true, and GET /v1/responses/{id}?stream=true replays).
 *
 * Every event is `event: <type>` + `data: {"type": <type>, ...,
 * "sequence_number": n}` with n counting from 0. A live stream reads the
 * job's one choice as the chat stream does (api_gen.c: the scheduler
 * thread fills the choice's buffers under g->mu; this side formats what
 * is new):
 *   response.created, response.in_progress (the object, no output yet);
 *   for each output item the first time it has something:
 *     response.output_item.added (the item without its text), and for
 *     reasoning and message items response.content_part.added;
 *   then deltas as text arrives: response.reasoning_text.delta,
 *     response.output_text.delta (with logprobs when asked),
 *     response.function_call_arguments.delta;
 *   when the job is over (the usage record written first, as for chat):
 *     for each item in the final object's order, .done events carrying
 *     the final texts (reasoning_text.done / output_text.done /
 *     function_call_arguments.done, content_part.done, output_item.done),
 *     then response.completed / response.incomplete / response.failed
 *     with the whole object -- the same object a non-streamed call
 *     returns, built by the same function, and stored before it is sent.
 * So the SDKs' accumulators (which take the object of the last event)
 * assemble exactly the non-streamed answer. There is no "data: [DONE]"
 * in this protocol.
 *
 * An item that appears in the final object without ever having streamed
 * (an empty message) is added right before its .done events. The output
 * index of an item is fixed when it is added.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server/responses.h"

typedef struct {
    nuage__sb *out;
    int64_t seq;
    int64_t skip_upto;            /* replay: events with seq <= this are not written */
} nuage__rev;

/* Write one event: {"type": type, <fields of payload>, "sequence_number"}.
 * Steals payload. */
static void nuage__rev_emit(nuage__rev *v, const char *type, json_t *payload) {
    int64_t n = v->seq++;
    if (n <= v->skip_upto) {
        json_decref(payload);
        return;
    }
    json_t *ev = json_pack("{s:s}", "type", type);
    if (ev && payload) json_object_update(ev, payload);
    if (ev) json_object_set_new(ev, "sequence_number", json_integer(n));
    json_decref(payload);
    char *s = ev ? json_dumps(ev, JSON_COMPACT) : NULL;
    json_decref(ev);
    if (!s) {
        v->out->oom = true;
        return;
    }
    nuage__sb_printf(v->out, "event: %s\ndata: ", type);
    nuage__sb_puts(v->out, s);
    nuage__sb_puts(v->out, "\n\n");
    free(s);
}

/* The item as first announced: no text yet, in progress. New reference. */
static json_t *nuage__rev_skeleton(json_t *item) {
    json_t *k = json_deep_copy(item);
    const char *type = json_string_value(json_object_get(k, "type"));
    if (!k || !type) return k;
    if (!strcmp(type, "message")) {
        json_object_set_new(k, "status", json_string("in_progress"));
        json_object_set_new(k, "content", json_array());
    } else if (!strcmp(type, "reasoning")) {
        json_object_set_new(k, "content", json_array());
    } else if (!strcmp(type, "function_call")) {
        json_object_set_new(k, "status", json_string("in_progress"));
        json_object_set_new(k, "arguments", json_string(""));
    }
    return k;
}

/* The empty content part an item's text starts from (NULL: none). */
static json_t *nuage__rev_empty_part(const char *type) {
    if (!strcmp(type, "message"))
        return json_pack("{s:s,s:[],s:[],s:s}", "type", "output_text", "annotations", "logprobs", "text", "");
    if (!strcmp(type, "reasoning")) return json_pack("{s:s,s:s}", "type", "reasoning_text", "text", "");
    return NULL;
}

/* output_item.added (+ content_part.added) for item at index idx. */
static void nuage__rev_added(nuage__rev *v, json_t *item, int idx) {
    const char *type = json_string_value(json_object_get(item, "type"));
    json_t *id = json_object_get(item, "id");
    nuage__rev_emit(v, "response.output_item.added",
                    json_pack("{s:i,s:o}", "output_index", idx, "item", nuage__rev_skeleton(item)));
    json_t *part = type ? nuage__rev_empty_part(type) : NULL;
    if (part)
        nuage__rev_emit(v, "response.content_part.added",
                        json_pack("{s:O,s:i,s:i,s:o}", "item_id", id, "output_index", idx, "content_index", 0, "part", part));
}

/* The .done events of a final item at index idx. */
static void nuage__rev_done(nuage__rev *v, json_t *item, int idx) {
    const char *type = json_string_value(json_object_get(item, "type"));
    json_t *id = json_object_get(item, "id");
    json_t *part = json_array_get(json_object_get(item, "content"), 0);
    if (type && !strcmp(type, "message") && part) {
        nuage__rev_emit(v, "response.output_text.done",
                        json_pack("{s:O,s:i,s:i,s:O,s:O}", "item_id", id, "output_index", idx, "content_index", 0, "text",
                                  json_object_get(part, "text"), "logprobs", json_object_get(part, "logprobs")));
        nuage__rev_emit(v, "response.content_part.done",
                        json_pack("{s:O,s:i,s:i,s:O}", "item_id", id, "output_index", idx, "content_index", 0, "part", part));
    } else if (type && !strcmp(type, "reasoning") && part) {
        nuage__rev_emit(v, "response.reasoning_text.done",
                        json_pack("{s:O,s:i,s:i,s:O}", "item_id", id, "output_index", idx, "content_index", 0, "text",
                                  json_object_get(part, "text")));
        nuage__rev_emit(v, "response.content_part.done",
                        json_pack("{s:O,s:i,s:i,s:O}", "item_id", id, "output_index", idx, "content_index", 0, "part", part));
    } else if (type && !strcmp(type, "function_call")) {
        nuage__rev_emit(v, "response.function_call_arguments.done",
                        json_pack("{s:O,s:i,s:O,s:O}", "item_id", id, "output_index", idx, "name",
                                  json_object_get(item, "name"), "arguments", json_object_get(item, "arguments")));
    }
    nuage__rev_emit(v, "response.output_item.done", json_pack("{s:i,s:O}", "output_index", idx, "item", item));
}

static const char *nuage__rev_final_type(json_t *obj) {
    const char *st = json_string_value(json_object_get(obj, "status"));
    if (st && !strcmp(st, "completed")) return "response.completed";
    if (st && !strcmp(st, "incomplete")) return "response.incomplete";
    return "response.failed";
}

/* response.created + response.in_progress for obj (its settings; output
 * empty, usage null). */
static void nuage__rev_start(nuage__rev *v, json_t *obj) {
    json_t *o = json_copy(obj);
    if (o) {
        json_object_set_new(o, "status", json_string("in_progress"));
        json_object_set_new(o, "output", json_array());
        json_object_set_new(o, "usage", json_null());
        json_object_set_new(o, "error", json_null());
        json_object_set_new(o, "incomplete_details", json_null());
    }
    nuage__rev_emit(v, "response.created", json_pack("{s:O}", "response", o));
    nuage__rev_emit(v, "response.in_progress", json_pack("{s:O}", "response", o));
    json_decref(o);
}

void nuage__rsp_replay(json_t *obj, int64_t starting_after, nuage__sb *out) {
    nuage__rev v = {out, 0, starting_after};
    nuage__rev_start(&v, obj);
    size_t i;
    json_t *item;
    json_array_foreach(json_object_get(obj, "output"), i, item) {
        const char *type = json_string_value(json_object_get(item, "type"));
        json_t *id = json_object_get(item, "id");
        nuage__rev_added(&v, item, (int)i);
        json_t *part = json_array_get(json_object_get(item, "content"), 0);
        if (type && !strcmp(type, "message") && part)
            nuage__rev_emit(&v, "response.output_text.delta",
                            json_pack("{s:O,s:i,s:i,s:O,s:O}", "item_id", id, "output_index", (int)i, "content_index", 0,
                                      "delta", json_object_get(part, "text"), "logprobs", json_object_get(part, "logprobs")));
        else if (type && !strcmp(type, "reasoning") && part)
            nuage__rev_emit(&v, "response.reasoning_text.delta",
                            json_pack("{s:O,s:i,s:i,s:O}", "item_id", id, "output_index", (int)i, "content_index", 0,
                                      "delta", json_object_get(part, "text")));
        else if (type && !strcmp(type, "function_call"))
            nuage__rev_emit(&v, "response.function_call_arguments.delta",
                            json_pack("{s:O,s:i,s:O}", "item_id", id, "output_index", (int)i, "delta",
                                      json_object_get(item, "arguments")));
        nuage__rev_done(&v, item, (int)i);
    }
    nuage__rev_emit(&v, nuage__rev_final_type(obj), json_pack("{s:O}", "response", obj));
}

/* ---- live stream ---------------------------------------------------------------------- */

#define NUAGE__RS_MAX_CALLS 64

typedef struct {
    nuage__gen *g;
    nuage__rsp x;
    int fd;
    nuage__sb out;
    size_t out_off;
    nuage__rev v;
    bool started, eof, cancelled;
    int next_idx;
    int rs_idx, msg_idx, fc_idx[NUAGE__RS_MAX_CALLS];
    size_t rs_sent, txt_sent, args_sent[NUAGE__RS_MAX_CALLS];
    int toks_sent;
} nuage__rstream;

/* Under g->mu: the events for what the choice produced since last time. */
static void nuage__rs_produce(nuage__rstream *e) {
    nuage__gen *g = e->g;
    nuage__gchoice *c = &g->ch[0];
    nuage__rev *v = &e->v;
    char id[96];
    if (!e->started) {
        json_t *o = nuage__rsp_object(&e->x, NULL, "in_progress");
        nuage__rev_start(v, o);
        json_decref(o);
        e->started = true;
    }
    if (c->reasoning.n > e->rs_sent) {
        nuage__rsp_item_id(&e->x, "rs", -1, id, sizeof id);
        if (e->rs_idx < 0) {
            e->rs_idx = e->next_idx++;
            json_t *it = json_pack("{s:s,s:s,s:[],s:[]}", "id", id, "type", "reasoning", "summary", "content");
            nuage__rev_added(v, it, e->rs_idx);
            json_decref(it);
        }
        nuage__rev_emit(v, "response.reasoning_text.delta",
                        json_pack("{s:s,s:i,s:i,s:o}", "item_id", id, "output_index", e->rs_idx, "content_index", 0,
                                  "delta", nuage__json_text(c->reasoning.p + e->rs_sent, c->reasoning.n - e->rs_sent)));
        e->rs_sent = c->reasoning.n;
    }
    if (c->text.n > e->txt_sent) {
        nuage__rsp_item_id(&e->x, "msg", -1, id, sizeof id);
        if (e->msg_idx < 0) {
            e->msg_idx = e->next_idx++;
            json_t *it = json_pack("{s:s,s:s,s:s,s:[],s:s}", "id", id, "type", "message", "status", "in_progress",
                                   "content", "role", "assistant");
            nuage__rev_added(v, it, e->msg_idx);
            json_decref(it);
        }
        json_t *lp = NULL;
        if (e->x.logprobs && g->gp.top_logprobs >= 0) {
            json_t *o = nuage__chat_logprobs(g, c->toks + e->toks_sent, c->n_toks - e->toks_sent);
            lp = json_incref(json_object_get(o, "content"));
            json_decref(o);
            e->toks_sent = c->n_toks;
        }
        nuage__rev_emit(v, "response.output_text.delta",
                        json_pack("{s:s,s:i,s:i,s:o,s:o}", "item_id", id, "output_index", e->msg_idx, "content_index", 0,
                                  "delta", nuage__json_text(c->text.p + e->txt_sent, c->text.n - e->txt_sent), "logprobs",
                                  lp ? lp : json_array()));
        e->txt_sent = c->text.n;
    }
    for (int k = 0; k < c->n_calls && k < NUAGE__RS_MAX_CALLS; k++) {
        nuage__gcall *t = &c->calls[k];
        nuage__rsp_item_id(&e->x, "fc", k, id, sizeof id);
        if (e->fc_idx[k] < 0) {
            e->fc_idx[k] = e->next_idx++;
            json_t *it = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s}", "id", id, "type", "function_call", "status", "in_progress",
                                   "arguments", "", "call_id", t->id, "name", t->name);
            nuage__rev_added(v, it, e->fc_idx[k]);
            json_decref(it);
        }
        if (t->args.n > e->args_sent[k]) {
            nuage__rev_emit(v, "response.function_call_arguments.delta",
                            json_pack("{s:s,s:i,s:o}", "item_id", id, "output_index", e->fc_idx[k], "delta",
                                      nuage__json_text(t->args.p + e->args_sent[k], t->args.n - e->args_sent[k])));
            e->args_sent[k] = t->args.n;
        }
    }
}

/* After the job ended (no lock needed: its buffers no longer change):
 * the .done events and the final object, stored before it is sent. */
static void nuage__rs_finish(nuage__rstream *e) {
    nuage__gen *g = e->g;
    json_t *obj = nuage__rsp_object(&e->x, g, NULL);
    if (!obj) {
        e->out.oom = true;
        return;
    }
    nuage__rsp_save(g->srv, &e->x, obj);
    size_t i;
    json_t *item;
    json_array_foreach(json_object_get(obj, "output"), i, item) {
        const char *type = json_string_value(json_object_get(item, "type"));
        int *slot = NULL;
        if (type && !strcmp(type, "reasoning")) slot = &e->rs_idx;
        else if (type && !strcmp(type, "message")) slot = &e->msg_idx;
        else if (type && !strcmp(type, "function_call")) {
            const char *iid = json_string_value(json_object_get(item, "id"));
            const char *us = iid ? strrchr(iid, '_') : NULL;
            int k = us ? atoi(us + 1) : -1;
            if (k >= 0 && k < NUAGE__RS_MAX_CALLS) slot = &e->fc_idx[k];
        }
        int idx;
        if (slot && *slot >= 0) {
            idx = *slot;
        } else {
            idx = e->next_idx++;
            if (slot) *slot = idx;
            nuage__rev_added(&e->v, item, idx);
        }
        nuage__rev_done(&e->v, item, idx);
    }
    nuage__rev_emit(&e->v, nuage__rev_final_type(obj), json_pack("{s:O}", "response", obj));
    json_decref(obj);
}

static ssize_t nuage__rs_read(void *self, char *buf, size_t max) {
    nuage__rstream *e = self;
    if (e->out_off >= e->out.n) {
        e->out.n = 0;
        e->out_off = 0;
        if (e->eof) return -1;
        nuage__gen *g = e->g;
        pthread_mutex_lock(&g->mu);
        for (;;) {
            nuage__rs_produce(e);
            if (g->n_complete >= g->n_jobs) {
                pthread_mutex_unlock(&g->mu);
                nuage__gen_finish(g, nuage__gen_status(g));
                nuage__rs_finish(e);
                e->eof = true;
                pthread_mutex_lock(&g->mu);
                break;
            }
            if (e->out.n) break;
            nuage__gen_timedwait(g, 200);
            if (g->n_complete >= g->n_jobs) continue;
            if (nuage__gen_stream_gone(g, e->fd, &e->cancelled)) return -2;
        }
        pthread_mutex_unlock(&g->mu);
    }
    return nuage__gen_stream_take(&e->out, &e->out_off, buf, max);
}

static void nuage__rs_close(void *self) {
    nuage__rstream *e = self;
    nuage__gen_stream_close(e->g, e->cancelled);
    nuage__rsp_free(&e->x);
    nuage__sb_free(&e->out);
    free(e);
}

nuage__stream nuage__rsp_stream_new(nuage__gen *g, nuage__rsp *x, int fd, bool *ok) {
    nuage__stream st = {0};
    *ok = false;
    nuage__rstream *e = calloc(1, sizeof *e);
    if (!e) return st;
    e->g = g;
    e->x = *x;
    memset(x, 0, sizeof *x);
    e->fd = fd;
    e->v.out = &e->out;
    e->v.skip_upto = -1;
    e->rs_idx = e->msg_idx = -1;
    for (int k = 0; k < NUAGE__RS_MAX_CALLS; k++) e->fc_idx[k] = -1;
    nuage__gen_ref(g);
    st.read = nuage__rs_read;
    st.close = nuage__rs_close;
    st.self = e;
    *ok = true;
    return st;
}
