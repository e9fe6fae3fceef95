/*
 * responses_items.c - a POST /v1/responses body checked and translated
 * into the chat-completions body that the shared generation path runs.
 *
 * Input items become chat messages:
 *   - a string input: one user message;
 *   - `message` items (also the short form without "type": {role, content})
 *     with role user / system / developer / assistant and content a string
 *     or parts input_text / output_text (refusal text too): one message
 *     each, the parts joined with "\n" as chat joins text parts; image,
 *     audio and file parts are refused (this server reads text only);
 *   - `function_call` items: tool_calls of an assistant message (the
 *     preceding assistant message when it is the last one, so a turn that
 *     said something and called tools stays one turn, as in chat);
 *   - `function_call_output`: a tool message with tool_call_id and the
 *     function's name (some templates print it);
 *   - `reasoning` items: their text (content reasoning_text parts, else
 *     the summary) becomes reasoning_content of the next assistant
 *     message, which is what the templates of reasoning models read (most
 *     drop it for earlier turns); encrypted_content is refused, since this
 *     server never issues it.
 * `instructions` become a leading system message of this turn only (as
 * OpenAI: the instructions of earlier responses in a chain are not
 * carried over).
 *
 * The other fields map one to one: tools (function only; any other tool
 * type is a 400 naming it) to chat tools, tool_choice, text.format to
 * response_format, reasoning.effort to reasoning_effort,
 * max_output_tokens to max_completion_tokens, top_logprobs to
 * logprobs/top_logprobs. Fields that only describe the request
 * (metadata, user, safety_identifier, prompt_cache_key) are checked and
 * echoed.
 *
 * The input items kept for the store (and for input_items listings) are
 * normalised: every item gets its type and an id, string content becomes
 * an input_text (output_text for the assistant) part.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/responses.h"

#define OOM(e) nuage__err(e, 500, "server_error", NULL, NULL, "out of memory")

/* Text of a content value (string or parts) into *out (new reference),
 * checking part types. */
static bool content_text(json_t *c, const char *param, json_t **out, nuage__apierr *e) {
    if (json_is_string(c)) {
        *out = json_incref(c);
        return true;
    }
    if (!json_is_array(c))
        return nuage__err400(e, param, "Invalid type for '%s': expected a string or an array of content parts.", param);
    nuage__sb sb = {0};
    size_t i;
    json_t *p;
    json_array_foreach(c, i, p) {
        char pp[160];
        snprintf(pp, sizeof pp, "%s[%zu]", param, i);
        const char *type = json_string_value(json_object_get(p, "type"));
        if (!type) {
            nuage__sb_free(&sb);
            return nuage__err400(e, pp, "Missing required parameter: '%s.type'.", pp);
        }
        const char *key = NULL;
        if (!strcmp(type, "input_text") || !strcmp(type, "output_text") || !strcmp(type, "text") ||
            !strcmp(type, "summary_text") || !strcmp(type, "reasoning_text"))
            key = "text";
        else if (!strcmp(type, "refusal"))
            key = "refusal";
        if (!key) {
            nuage__sb_free(&sb);
            return nuage__err400(e, pp,
                                 "Invalid value for '%s.type': content parts of type '%.40s' are not supported by "
                                 "this server (text only: input_text, output_text).", pp, type);
        }
        json_t *t = json_object_get(p, key);
        if (!json_is_string(t)) {
            nuage__sb_free(&sb);
            return nuage__err400(e, pp, "Invalid type for '%s.%s': expected a string.", pp, key);
        }
        if (i) nuage__sb_puts(&sb, "\n");
        nuage__sb_put(&sb, json_string_value(t), json_string_length(t));
    }
    *out = json_stringn(sb.p ? sb.p : "", sb.n);
    bool oom = sb.oom || !*out;
    nuage__sb_free(&sb);
    return oom ? OOM(e) : true;
}

/* The last message of msgs when it is an assistant message, else NULL. */
static json_t *last_assistant(json_t *msgs) {
    size_t n = json_array_size(msgs);
    json_t *m = n ? json_array_get(msgs, n - 1) : NULL;
    const char *role = json_string_value(json_object_get(m, "role"));
    return role && !strcmp(role, "assistant") ? m : NULL;
}

bool nuage__rsp_items_to_messages(json_t *items, json_t *msgs, json_t *call_names, const char *where,
                                  nuage__apierr *e) {
    json_t *reasoning = NULL; /* reasoning text waiting for its assistant message */
    size_t i;
    json_t *it;
    bool ok = true;
    json_array_foreach(items, i, it) {
        char param[128];
        snprintf(param, sizeof param, "%s[%zu]", where, i);
        if (!json_is_object(it)) {
            ok = nuage__err400(e, param, "Invalid type for '%s': expected an object.", param);
            break;
        }
        const char *type = json_string_value(json_object_get(it, "type"));
        const char *role = json_string_value(json_object_get(it, "role"));
        if (!type && role) type = "message";
        if (!type) {
            ok = nuage__err400(e, param, "Missing required parameter: '%s.type'.", param);
            break;
        }
        char pp[160];
        if (!strcmp(type, "message")) {
            if (!role || (strcmp(role, "user") && strcmp(role, "system") && strcmp(role, "developer") &&
                          strcmp(role, "assistant"))) {
                snprintf(pp, sizeof pp, "%s.role", param);
                ok = nuage__err400(e, pp, "Invalid value for '%s': expected 'user', 'system', 'developer' or 'assistant'.", pp);
                break;
            }
            snprintf(pp, sizeof pp, "%s.content", param);
            json_t *text = NULL;
            if (!(ok = content_text(json_object_get(it, "content"), pp, &text, e))) break;
            json_t *m = json_pack("{s:s,s:o}", "role", role, "content", text);
            if (!m) {
                ok = OOM(e);
                break;
            }
            if (!strcmp(role, "assistant") && reasoning) {
                json_object_set_new(m, "reasoning_content", reasoning);
                reasoning = NULL;
            }
            json_array_append_new(msgs, m);
        } else if (!strcmp(type, "function_call")) {
            json_t *name = json_object_get(it, "name"), *args = json_object_get(it, "arguments");
            json_t *cid = json_object_get(it, "call_id");
            if (!json_is_string(name) || !json_is_string(args) || !json_is_string(cid)) {
                ok = nuage__err400(e, param, "Invalid '%s': a function_call item needs string 'call_id', 'name' and 'arguments'.", param);
                break;
            }
            json_t *m = last_assistant(msgs);
            if (!m || reasoning) {
                m = json_pack("{s:s,s:n}", "role", "assistant", "content");
                if (!m || json_array_append_new(msgs, m)) {
                    ok = OOM(e);
                    break;
                }
                if (reasoning) {
                    json_object_set_new(m, "reasoning_content", reasoning);
                    reasoning = NULL;
                }
            }
            json_t *calls = json_object_get(m, "tool_calls");
            if (!calls) {
                calls = json_array();
                json_object_set_new(m, "tool_calls", calls);
            }
            json_array_append_new(calls, json_pack("{s:O,s:s,s:{s:O,s:O}}", "id", cid, "type", "function",
                                                   "function", "name", name, "arguments", args));
            json_object_set(call_names, json_string_value(cid), name);
        } else if (!strcmp(type, "function_call_output")) {
            json_t *cid = json_object_get(it, "call_id");
            if (!json_is_string(cid)) {
                snprintf(pp, sizeof pp, "%s.call_id", param);
                ok = nuage__err400(e, pp, "Missing required parameter: '%s' (a string).", pp);
                break;
            }
            snprintf(pp, sizeof pp, "%s.output", param);
            json_t *out = json_object_get(it, "output");
            json_t *text = NULL;
            if (!out || json_is_null(out)) text = json_string("");
            else if (!(ok = content_text(out, pp, &text, e))) break;
            json_t *m = json_pack("{s:s,s:O,s:o}", "role", "tool", "tool_call_id", cid, "content", text);
            json_t *name = json_object_get(call_names, json_string_value(cid));
            if (m && name) json_object_set(m, "name", name);
            if (!m || json_array_append_new(msgs, m)) {
                ok = OOM(e);
                break;
            }
        } else if (!strcmp(type, "reasoning")) {
            json_t *enc = json_object_get(it, "encrypted_content");
            if (enc && !json_is_null(enc)) {
                snprintf(pp, sizeof pp, "%s.encrypted_content", param);
                ok = nuage__err400(e, pp, "Encrypted reasoning is not supported by this server: pass reasoning items "
                                          "with their text (content reasoning_text), or leave them out.");
                break;
            }
            json_t *parts = json_object_get(it, "content");
            if (!json_is_array(parts) || json_array_size(parts) == 0) parts = json_object_get(it, "summary");
            json_t *text = NULL;
            snprintf(pp, sizeof pp, "%s.content", param);
            if (json_is_array(parts) && json_array_size(parts) > 0) {
                if (!(ok = content_text(parts, pp, &text, e))) break;
                json_decref(reasoning);
                reasoning = text;
            }
        } else {
            snprintf(pp, sizeof pp, "%s.type", param);
            ok = nuage__err400(e, pp, "Invalid value for '%s': items of type '%.40s' are not supported by this server "
                                      "(message, function_call, function_call_output and reasoning are).", pp, type);
            break;
        }
    }
    json_decref(reasoning);
    return ok;
}

/* The item normalised for the store (new reference), with an id. */
static json_t *normal_item(nuage_server *s, json_t *it) {
    json_t *n = json_deep_copy(it);
    if (!n) return NULL;
    const char *type = json_string_value(json_object_get(n, "type"));
    if (!type) json_object_set_new(n, "type", json_string("message")), type = "message";
    const char *pre = !strcmp(type, "message") ? "msg" : !strcmp(type, "function_call") ? "fc"
                    : !strcmp(type, "function_call_output") ? "fco" : !strcmp(type, "reasoning") ? "rs" : "item";
    if (!json_is_string(json_object_get(n, "id"))) {
        char id[64], out[72];
        nuage__new_id(s, pre, id, sizeof id);
        const char *hex = strchr(id, '-');
        snprintf(out, sizeof out, "%s_%s", pre, hex ? hex + 1 : id);
        json_object_set_new(n, "id", json_string(out));
    }
    if (!strcmp(type, "message")) {
        json_t *c = json_object_get(n, "content");
        const char *role = json_string_value(json_object_get(n, "role"));
        if (json_is_string(c))
            json_object_set_new(n, "content",
                                json_pack("[{s:s,s:O}]", "type",
                                          role && !strcmp(role, "assistant") ? "output_text" : "input_text", "text", c));
        if (!json_object_get(n, "status")) json_object_set_new(n, "status", json_string("completed"));
    }
    return n;
}

/* Copy body[key] into settings (dflt when absent or null). */
static void echo(json_t *settings, json_t *body, const char *key, json_t *dflt) {
    json_t *v = json_object_get(body, key);
    if (v && !json_is_null(v)) {
        json_object_set(settings, key, v);
        json_decref(dflt);
    } else {
        json_object_set_new(settings, key, dflt ? dflt : json_null());
    }
}

static bool opt_string(json_t *body, const char *key, size_t max, nuage__apierr *e) {
    json_t *v = json_object_get(body, key);
    if (!v || json_is_null(v)) return true;
    if (!json_is_string(v)) return nuage__err400(e, key, "Invalid type for '%s': expected a string.", key);
    if (json_string_length(v) > max)
        return nuage__err400(e, key, "Invalid '%s': string too long (at most %zu characters).", key, max);
    return true;
}

/* tools -> chat tools; settings get the normalised list. */
static bool map_tools(json_t *body, json_t *chat, json_t *settings, nuage__apierr *e) {
    json_t *tools = json_object_get(body, "tools");
    json_t *echoed = json_array(), *ct = json_array();
    if (!echoed || !ct) {
        json_decref(echoed);
        json_decref(ct);
        return OOM(e);
    }
    json_object_set_new(settings, "tools", echoed);
    if (!tools || json_is_null(tools)) {
        json_decref(ct);
        return true;
    }
    if (!json_is_array(tools)) {
        json_decref(ct);
        return nuage__err400(e, "tools", "Invalid type for 'tools': expected an array.");
    }
    size_t i;
    json_t *t;
    json_array_foreach(tools, i, t) {
        char p[64];
        snprintf(p, sizeof p, "tools[%zu].type", i);
        const char *type = json_string_value(json_object_get(t, "type"));
        if (!type) {
            json_decref(ct);
            return nuage__err400(e, p, "Missing required parameter: '%s'.", p);
        }
        if (strcmp(type, "function")) {
            json_decref(ct);
            return nuage__err400(e, p, "The tool type '%.60s' is not supported by this server: only 'function' tools "
                                       "are (no hosted web search, file search, computer use, code interpreter, MCP or "
                                       "image generation).", type);
        }
        json_t *name = json_object_get(t, "name");
        if (!json_is_string(name)) {
            snprintf(p, sizeof p, "tools[%zu].name", i);
            json_decref(ct);
            return nuage__err400(e, p, "Missing required parameter: '%s'.", p);
        }
        json_t *fn = json_pack("{s:O}", "name", name);
        const char *keys[] = {"description", "parameters", "strict"};
        for (int k = 0; fn && k < 3; k++) {
            json_t *v = json_object_get(t, keys[k]);
            if (v && !json_is_null(v)) json_object_set(fn, keys[k], v);
        }
        /* the Responses API makes function tools strict unless told not to */
        json_t *sv = json_object_get(t, "strict");
        if (fn && (!sv || json_is_null(sv))) json_object_set_new(fn, "strict", json_true());
        json_array_append_new(ct, json_pack("{s:s,s:o}", "type", "function", "function", fn ? fn : json_object()));
        json_t *ei = json_pack("{s:s,s:O,s:O,s:O,s:O}", "type", "function", "name", name, "description",
                               json_object_get(t, "description") ? json_object_get(t, "description") : json_null(),
                               "parameters", json_object_get(t, "parameters") ? json_object_get(t, "parameters") : json_null(),
                               "strict", sv && !json_is_null(sv) ? sv : json_true());
        json_array_append_new(echoed, ei);
    }
    json_object_set_new(chat, "tools", ct);
    return true;
}

static bool map_tool_choice(json_t *body, json_t *chat, json_t *settings, nuage__apierr *e) {
    json_t *tc = json_object_get(body, "tool_choice");
    if (!tc || json_is_null(tc)) {
        json_object_set_new(settings, "tool_choice", json_string("auto"));
        return true;
    }
    json_object_set(settings, "tool_choice", tc);
    if (json_is_string(tc)) {
        json_object_set(chat, "tool_choice", tc);
        return true;
    }
    const char *type = json_string_value(json_object_get(tc, "type"));
    if (type && !strcmp(type, "function") && json_is_string(json_object_get(tc, "name"))) {
        json_object_set_new(chat, "tool_choice",
                            json_pack("{s:s,s:{s:O}}", "type", "function", "function", "name", json_object_get(tc, "name")));
        return true;
    }
    return nuage__err400(e, "tool_choice", "Invalid 'tool_choice': expected 'none', 'auto', 'required' or "
                                           "{\"type\": \"function\", \"name\": ...} (type '%.40s' is not supported).",
                         type ? type : "?");
}

/* text.format -> response_format; settings.text echoes it. */
static bool map_text(json_t *body, json_t *chat, json_t *settings, nuage__apierr *e) {
    json_t *text = json_object_get(body, "text");
    json_t *fmt = json_is_object(text) ? json_object_get(text, "format") : NULL;
    if (text && !json_is_null(text) && !json_is_object(text))
        return nuage__err400(e, "text", "Invalid type for 'text': expected an object.");
    json_t *verb = json_is_object(text) ? json_object_get(text, "verbosity") : NULL;
    json_t *f = fmt && !json_is_null(fmt) ? json_incref(fmt) : json_pack("{s:s}", "type", "text");
    json_t *vb = verb && json_is_string(verb) ? json_incref(verb) : json_string("medium");
    json_object_set_new(settings, "text", json_pack("{s:o,s:o}", "format", f, "verbosity", vb));
    if (!fmt || json_is_null(fmt)) return true;
    const char *type = json_string_value(json_object_get(fmt, "type"));
    if (!json_is_object(fmt) || !type)
        return nuage__err400(e, "text.format", "Invalid 'text.format': expected an object with a 'type'.");
    if (!strcmp(type, "text")) return true;
    if (!strcmp(type, "json_object")) {
        json_object_set_new(chat, "response_format", json_pack("{s:s}", "type", "json_object"));
        return true;
    }
    if (strcmp(type, "json_schema"))
        return nuage__err400(e, "text.format.type", "Invalid value for 'text.format.type': '%.40s' (expected 'text', "
                                                    "'json_object' or 'json_schema').", type);
    json_t *name = json_object_get(fmt, "name"), *schema = json_object_get(fmt, "schema");
    if (!json_is_string(name))
        return nuage__err400(e, "text.format.name", "Missing required parameter: 'text.format.name'.");
    if (!json_is_object(schema))
        return nuage__err400(e, "text.format.schema", "Missing required parameter: 'text.format.schema' (an object).");
    json_t *js = json_pack("{s:O,s:O}", "name", name, "schema", schema);
    json_t *strict = json_object_get(fmt, "strict");
    if (js && strict) json_object_set(js, "strict", strict);
    json_object_set_new(chat, "response_format", json_pack("{s:s,s:o}", "type", "json_schema", "json_schema", js));
    return true;
}

/* include[]: every value OpenAI documents is accepted (those of hosted
 * tools have nothing to add here); encrypted reasoning is refused. */
static bool check_include(json_t *body, bool *logprobs, nuage__apierr *e) {
    static const char *const known[] = {"message.output_text.logprobs", "file_search_call.results",
                                        "web_search_call.results", "web_search_call.action.sources",
                                        "message.input_image.image_url", "computer_call_output.output.image_url",
                                        "code_interpreter_call.outputs"};
    json_t *inc = json_object_get(body, "include");
    if (!inc || json_is_null(inc)) return true;
    if (!json_is_array(inc)) return nuage__err400(e, "include", "Invalid type for 'include': expected an array of strings.");
    size_t i;
    json_t *v;
    json_array_foreach(inc, i, v) {
        const char *s = json_string_value(v);
        char p[32];
        snprintf(p, sizeof p, "include[%zu]", i);
        if (!s) return nuage__err400(e, p, "Invalid type for '%s': expected a string.", p);
        if (!strcmp(s, "reasoning.encrypted_content"))
            return nuage__err400(e, p, "'reasoning.encrypted_content' is not supported by this server: reasoning is "
                                       "returned as text in reasoning items (content reasoning_text), never encrypted.");
        bool ok = false;
        for (size_t k = 0; k < sizeof known / sizeof *known; k++) ok |= !strcmp(s, known[k]);
        if (!ok) return nuage__err400(e, p, "Invalid value for '%s': '%.60s' is not a known include value.", p, s);
        if (!strcmp(s, "message.output_text.logprobs")) *logprobs = true;
    }
    return true;
}

static bool check_metadata(json_t *body, nuage__apierr *e) {
    json_t *md = json_object_get(body, "metadata");
    if (!md || json_is_null(md)) return true;
    if (!json_is_object(md)) return nuage__err400(e, "metadata", "Invalid type for 'metadata': expected an object.");
    if (json_object_size(md) > 16)
        return nuage__err400(e, "metadata", "Invalid 'metadata': at most 16 keys.");
    const char *k;
    json_t *v;
    json_object_foreach(md, k, v) {
        if (strlen(k) > 64) return nuage__err400(e, "metadata", "Invalid 'metadata': keys are at most 64 characters.");
        if (!json_is_string(v) || json_string_length(v) > 512)
            return nuage__err400(e, "metadata", "Invalid 'metadata.%.64s': values are strings of at most 512 characters.", k);
    }
    return true;
}

void nuage__rsp_free(nuage__rsp *x) {
    if (!x) return;
    json_decref(x->chat);
    json_decref(x->input);
    json_decref(x->settings);
    memset(x, 0, sizeof *x);
}

bool nuage__rsp_parse(nuage_server *s, json_t *body, json_t *history, nuage__rsp *x, nuage__apierr *e) {
    static const char *const refused[][2] = {
        {"conversation", "the Conversations API is not available on this server; use previous_response_id"},
        {"prompt", "stored prompt templates are not available on this server; send instructions and input"},
    };
    for (size_t i = 0; i < sizeof refused / sizeof *refused; i++) {
        json_t *v = json_object_get(body, refused[i][0]);
        if (v && !json_is_null(v))
            return nuage__err400(e, refused[i][0], "'%s' is not supported: %s.", refused[i][0], refused[i][1]);
    }
    x->chat = json_object();
    x->settings = json_object();
    x->input = json_array();
    json_t *msgs = json_array(), *names = json_object();
    bool ok = false;
    if (!x->chat || !x->settings || !x->input || !msgs || !names) {
        OOM(e);
        goto out;
    }
    json_t *model = json_object_get(body, "model");
    if (model && !json_is_null(model)) {
        if (!json_is_string(model)) {
            nuage__err400(e, "model", "Invalid type for 'model': expected a string.");
            goto out;
        }
        json_object_set(x->chat, "model", model);
    }
    /* flags */
    bool store = true, bg = false, stream = false;
    if (!nuage__get_bool(body, "store", &store, NULL, e) || !nuage__get_bool(body, "background", &bg, NULL, e) ||
        !nuage__get_bool(body, "stream", &stream, NULL, e))
        goto out;
    if (bg && !store) {
        nuage__err400(e, "background", "A background response must be stored: 'background': true needs 'store': true.");
        goto out;
    }
    bool have_store = (store || bg) && nuage__rsp_store(s);
    if (bg && !have_store) {
        nuage__err(e, 500, "server_error", "store_unavailable", "background",
                   "Background responses need a store, and this server could not open one.");
        goto out;
    }
    x->store = store && have_store;
    x->background = bg;
    x->stream = stream;
    /* truncation */
    const char *trunc = "disabled";
    if (!nuage__get_string(body, "truncation", &trunc, NULL, e)) goto out;
    if (strcmp(trunc, "disabled") && strcmp(trunc, "auto")) {
        nuage__err400(e, "truncation", "Invalid value for 'truncation': expected 'auto' or 'disabled'.");
        goto out;
    }
    x->truncate_auto = !strcmp(trunc, "auto");
    if (!check_include(body, &x->logprobs, e) || !check_metadata(body, e)) goto out;
    if (!opt_string(body, "user", 256, e) || !opt_string(body, "safety_identifier", 256, e) ||
        !opt_string(body, "prompt_cache_key", 256, e) || !opt_string(body, "instructions", (size_t)1 << 26, e))
        goto out;
    /* sampling and length */
    const char *same[] = {"temperature", "top_p"};
    for (int i = 0; i < 2; i++) {
        json_t *v = json_object_get(body, same[i]);
        if (v && !json_is_null(v)) json_object_set(x->chat, same[i], v);
    }
    json_t *mot = json_object_get(body, "max_output_tokens");
    if (mot && !json_is_null(mot)) {
        if (!json_is_integer(mot) || json_integer_value(mot) < 1) {
            nuage__err400(e, "max_output_tokens", "Invalid 'max_output_tokens': expected an integer >= 1.");
            goto out;
        }
        json_object_set(x->chat, "max_completion_tokens", mot);
    }
    int64_t tlp = 0;
    bool tlp_given = false;
    if (!nuage__get_int(body, "top_logprobs", 0, 20, &tlp, &tlp_given, e)) goto out;
    if (tlp_given && tlp > 0) x->logprobs = true;
    if (x->logprobs) {
        json_object_set_new(x->chat, "logprobs", json_true());
        json_object_set_new(x->chat, "top_logprobs", json_integer(tlp));
    }
    /* reasoning.effort */
    json_t *rs = json_object_get(body, "reasoning");
    const char *effort = NULL;
    if (rs && !json_is_null(rs)) {
        if (!json_is_object(rs)) {
            nuage__err400(e, "reasoning", "Invalid type for 'reasoning': expected an object.");
            goto out;
        }
        json_t *ef = json_object_get(rs, "effort");
        if (ef && !json_is_null(ef)) {
            if (!json_is_string(ef)) {
                nuage__err400(e, "reasoning.effort", "Invalid type for 'reasoning.effort': expected a string.");
                goto out;
            }
            effort = json_string_value(ef);
            json_object_set(x->chat, "reasoning_effort", ef);
        }
    }
    if (!map_tools(body, x->chat, x->settings, e) || !map_tool_choice(body, x->chat, x->settings, e) ||
        !map_text(body, x->chat, x->settings, e))
        goto out;
    json_t *ptc = json_object_get(body, "parallel_tool_calls");
    if (ptc && !json_is_null(ptc)) {
        if (!json_is_boolean(ptc)) {
            nuage__err400(e, "parallel_tool_calls", "Invalid type for 'parallel_tool_calls': expected a boolean.");
            goto out;
        }
        json_object_set(x->chat, "parallel_tool_calls", ptc);
    }
    /* messages: instructions, the chain's items, this turn's input */
    json_t *ins = json_object_get(body, "instructions");
    if (json_is_string(ins) && json_string_length(ins))
        json_array_append_new(msgs, json_pack("{s:s,s:O}", "role", "system", "content", ins));
    if (history && !nuage__rsp_items_to_messages(history, msgs, names, "previous_response_id", e)) goto out;
    json_t *input = json_object_get(body, "input");
    if (!input || json_is_null(input)) {
        nuage__err400(e, "input", "Missing required parameter: 'input'.");
        goto out;
    }
    json_t *items = NULL;
    if (json_is_string(input)) items = json_pack("[{s:s,s:s,s:O}]", "type", "message", "role", "user", "content", input);
    else if (json_is_array(input)) items = json_incref(input);
    if (!items) {
        nuage__err400(e, "input", "Invalid type for 'input': expected a string or an array of items.");
        goto out;
    }
    bool iok = nuage__rsp_items_to_messages(items, msgs, names, "input", e);
    size_t i;
    json_t *it;
    json_array_foreach(items, i, it) if (iok) json_array_append_new(x->input, normal_item(s, it));
    json_decref(items);
    if (!iok) goto out;
    if (json_array_size(msgs) == 0) {
        nuage__err400(e, "input", "Invalid 'input': the conversation is empty.");
        goto out;
    }
    json_object_set(x->chat, "messages", msgs);
    /* the echoed settings, in OpenAI's order */
    json_t *S = x->settings, *tools = json_incref(json_object_get(S, "tools")),
           *tc = json_incref(json_object_get(S, "tool_choice")), *text = json_incref(json_object_get(S, "text"));
    json_object_clear(S);
    json_object_set_new(S, "background", json_boolean(bg));
    echo(S, body, "instructions", NULL);
    echo(S, body, "max_output_tokens", NULL);
    echo(S, body, "max_tool_calls", NULL);
    json_object_set_new(S, "parallel_tool_calls", json_boolean(!ptc || !json_is_false(ptc)));
    echo(S, body, "previous_response_id", NULL);
    echo(S, body, "prompt_cache_key", NULL);
    json_object_set_new(S, "reasoning", json_pack("{s:o,s:n}", "effort", effort ? json_string(effort) : json_null(), "summary"));
    echo(S, body, "safety_identifier", NULL);
    json_object_set_new(S, "service_tier", json_string("default"));
    json_object_set_new(S, "store", json_boolean(x->store));
    echo(S, body, "temperature", json_real(1.0));
    json_object_set_new(S, "text", text);
    json_object_set_new(S, "tool_choice", tc);
    json_object_set_new(S, "tools", tools);
    echo(S, body, "top_logprobs", json_integer(0));
    echo(S, body, "top_p", json_real(1.0));
    json_object_set_new(S, "truncation", json_string(trunc));
    echo(S, body, "user", NULL);
    echo(S, body, "metadata", json_object());
    ok = true;
out:
    json_decref(msgs);
    json_decref(names);
    return ok;
}
