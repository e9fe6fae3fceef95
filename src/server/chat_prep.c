/*
 * chat_prep.c - shaping validated chat messages for one chat template.
 *
 * OpenAI clients send what the OpenAI API takes; chat templates were
 * written for what transformers' apply_chat_template is given by each
 * vendor's own code. The two differ in three places, and a template that
 * gets the other shape fails ("argument of type 'NoneType' is not
 * iterable") or, worse, renders wrong text without an error:
 *   - an assistant turn that only calls tools has content null. Templates
 *     that test content against none (DeepSeek) need the null; the others
 *     do string work on it and get "" instead (the same rendering as an
 *     empty turn, which is what the message means).
 *   - tool-call arguments arrive as a JSON text. Templates that `tojson`
 *     or iterate them want the object (vLLM and llama.cpp parse them for
 *     the same reason); templates that concatenate them (DeepSeek) want
 *     the text. Arguments that are not a JSON object stay a string.
 *   - a developer message is a system message for templates that know no
 *     developer role (most of them: Qwen3 would drop it silently).
 *   - an earlier assistant turn's reasoning arrives as `reasoning_content`
 *     (what this server answers with, as vLLM and DeepSeek's API do);
 *     gpt-oss's template reads it from `thinking`. It is copied there, and
 *     on a tool-call turn the content is dropped, as llama.cpp does: the
 *     template renders one analysis message before the call and refuses a
 *     turn with both.
 * And one template variable: reasoning_effort, for templates that read it
 * (gpt-oss: "Reasoning: high" in the system message), see
 * nuage__template_kwargs.
 * Which shape a template wants is read once from its source
 * (nuage_template_traits, template.h).
 */
#include <stdlib.h>
#include <string.h>

#include "server/http.h"

/* Call's arguments in the shape the template wants (in place on call,
 * a private copy). false on OOM. */
static bool nuage__shape_args(json_t *fn, bool as_string) {
    json_t *args = json_object_get(fn, "arguments");
    if (!args) return true;
    if (as_string && !json_is_string(args)) {
        char *txt = json_dumps(args, JSON_COMPACT | JSON_ENCODE_ANY);
        if (!txt) return false;
        int rc = json_object_set_new(fn, "arguments", json_string(txt));
        free(txt);
        return rc == 0;
    }
    if (!as_string && json_is_string(args)) {
        json_t *obj = json_loadb(json_string_value(args), json_string_length(args), JSON_DECODE_ANY, NULL);
        if (obj && json_is_object(obj)) return json_object_set_new(fn, "arguments", obj) == 0;
        json_decref(obj);
    }
    return true;
}

int nuage__messages_for_template(json_t *msgs, const nuage_template_traits *tr) {
    size_t i;
    json_t *m;
    json_array_foreach(msgs, i, m) {
        const char *role = json_string_value(json_object_get(m, "role"));
        if (!role) continue;
        if (!strcmp(role, "developer") && !tr->developer_role) {
            if (json_object_set_new(m, "role", json_string("system"))) return NUAGE_E_NOMEM;
            continue;
        }
        if (strcmp(role, "assistant")) continue;
        json_t *rc = json_object_get(m, "reasoning_content");
        if (tr->thinking_field && json_is_string(rc) && !json_object_get(m, "thinking")) {
            if (json_object_set(m, "thinking", rc)) return NUAGE_E_NOMEM;
            json_t *calls = json_object_get(m, "tool_calls");
            if (json_is_array(calls) && json_array_size(calls) && json_string_length(rc) &&
                json_object_set_new(m, "content", json_null()))
                return NUAGE_E_NOMEM;
        }
        json_t *content = json_object_get(m, "content");
        if ((!content || json_is_null(content)) && !tr->content_none)
            if (json_object_set_new(m, "content", json_string(""))) return NUAGE_E_NOMEM;
        json_t *tc = json_object_get(m, "tool_calls");
        if (!json_is_array(tc)) continue;
        /* the calls are shared with the request body: work on a copy */
        json_t *copy = json_deep_copy(tc);
        if (!copy || json_object_set_new(m, "tool_calls", copy)) return NUAGE_E_NOMEM;
        size_t k;
        json_t *call;
        json_array_foreach(copy, k, call) {
            json_t *fn = json_object_get(call, "function");
            if (json_is_object(fn) && !nuage__shape_args(fn, tr->args_string)) return NUAGE_E_NOMEM;
        }
    }
    return 0;
}

int nuage__template_kwargs(json_t *kw, const char *effort, const nuage_template_traits *tr, json_t **out) {
    *out = json_incref(kw);
    if (!tr->effort_var || !effort || !*effort || (kw && json_object_get(kw, "reasoning_effort"))) return 0;
    /* gpt-oss knows low, medium and high: less than low is low */
    const char *v = !strcmp(effort, "none") || !strcmp(effort, "minimal") ? "low" : effort;
    json_t *k = kw ? json_copy(kw) : json_object();
    if (!k || json_object_set_new(k, "reasoning_effort", json_string(v))) {
        json_decref(k);
        return NUAGE_E_NOMEM;
    }
    json_decref(*out);
    *out = k;
    return 0;
}
