/*
 * api_structured.c - structured outputs and tool calling on the request
 * side: reading response_format, vLLM's structured_outputs, tools,
 * tool_choice and parallel_tool_calls, and turning them into one grammar
 * (constrain/grammar.h) that the scheduler enforces token by token.
 *
 * What constrains what:
 *   response_format json_object / json_schema, structured_outputs (json,
 *   json_object, regex, choice, grammar) -- the whole output, from the
 *   first token;
 *   tool_choice "required" / named -- the whole output is one call (or,
 *   with parallel_tool_calls, one or more) in the model family's syntax,
 *   arguments valid against the function's parameters;
 *   tool_choice "auto" -- lazy: free text until the model writes the
 *   family's trigger (e.g. "<tool_call>"), then the rest of the call is
 *   forced to be valid; with a response_format as well, the output is
 *   either a call or the JSON answer, from the first token;
 *   tool_choice "none" -- tools are rendered into the prompt, nothing is
 *   constrained or parsed.
 * When the rendered prompt opens a reasoning block (<think>), the model
 * must be free to think: the grammar engages after "</think>" instead.
 * Harmony (gpt-oss) writes channels: a response_format constrains the
 * final channel's message, after any analysis messages
 * (nuage_toolfmt_harmony_final); forced calls are commentary messages to
 * functions.NAME (toolgrammar.c).
 *
 * Everything the engine refuses (an unsupported JSON Schema keyword, a
 * regex with lookaround, a GBNF syntax error) is a 400 naming the field
 * and, for schemas, the keyword's JSON pointer: a constraint is never
 * silently dropped.
 *
 * The model family (nuage_toolfmt) comes from the deployment's
 * tool_format, else from its chat template's source; the GENERIC family
 * (templates without tool syntax, e.g. the ChatML fallback) gets an
 * instruction describing the tools and the JSON envelope in its system
 * prompt.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "constrain/grammar.h"
#include "constrain/toolcall.h"
#include "runtime/grammar_cache.h"
#include "server/http.h"

/* Whitespace allowed at one place between JSON tokens of an answer or
 * of tool arguments: enough for indent=2 output nested 7 deep, and little
 * room for a weak model to pad its output with blanks. */
#define NUAGE__API_MAX_WS 16

void nuage__structured_free(nuage__structured *st) {
    nuage_grammar_free(st->grammar);
    for (int i = 0; st->triggers && st->triggers[i]; i++) free(st->triggers[i]);
    free(st->triggers);
    for (size_t i = 0; i < st->n_names; i++) free(st->names[i]);
    free(st->names);
    json_decref(st->tools);
    memset(st, 0, sizeof *st);
}

/* ---- tools and tool_choice ------------------------------------------------- */

static bool nuage__tool_name_ok(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n > 64) return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
            return false;
    }
    return true;
}

int nuage__resolve_toolfmt(const nuage_deployment *d) {
    if (d->cfg.tool_format[0]) {
        nuage_toolfmt f = nuage_toolfmt_from_name(d->cfg.tool_format);
        if (f != NUAGE_TOOLFMT_NONE) return (int)f;
    }
    return (int)nuage_toolfmt_detect(d->tmpl_src ? d->tmpl_src : "");
}

bool nuage__tools_parse(const nuage_deployment *d, json_t *body, nuage__structured *st, nuage__apierr *e) {
    memset(st, 0, sizeof *st);
    st->choice = NUAGE_TOOLCHOICE_AUTO;
    st->parallel = true;
    json_t *tools = json_object_get(body, "tools");
    if (tools && json_is_null(tools)) tools = NULL;
    if (tools && !json_is_array(tools))
        return nuage__err400(e, "tools", "Invalid type for 'tools': expected an array.");
    size_t n = tools ? json_array_size(tools) : 0;
    if (n > 128)
        return nuage__err400(e, "tools", "Invalid 'tools': array too long. Expected an array with maximum length 128, but got an array with length %zu instead.", n);
    if (n) {
        st->names = calloc(n, sizeof *st->names);
        if (!st->names) return nuage__err(e, 500, "server_error", NULL, NULL, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        json_t *t = json_array_get(tools, i);
        char param[96];
        snprintf(param, sizeof param, "tools[%zu]", i);
        if (!json_is_object(t)) return nuage__err400(e, param, "Invalid type for '%s': expected an object.", param);
        json_t *type = json_object_get(t, "type");
        if (!json_is_string(type) || strcmp(json_string_value(type), "function")) {
            snprintf(param, sizeof param, "tools[%zu].type", i);
            return nuage__err400(e, param, "Invalid value for '%s': only tools of type 'function' are supported.", param);
        }
        json_t *fn = json_object_get(t, "function");
        snprintf(param, sizeof param, "tools[%zu].function", i);
        if (!json_is_object(fn))
            return nuage__err400(e, param, fn ? "Invalid type for '%s': expected an object." : "Missing required parameter: '%s'.", param);
        json_t *name = json_object_get(fn, "name");
        snprintf(param, sizeof param, "tools[%zu].function.name", i);
        if (!json_is_string(name))
            return nuage__err400(e, param, name ? "Invalid type for '%s': expected a string." : "Missing required parameter: '%s'.", param);
        if (!nuage__tool_name_ok(json_string_value(name)))
            return nuage__err400(e, param, "Invalid '%s': string does not match pattern. Expected a string that matches the pattern '^[a-zA-Z0-9_-]{1,64}$'.", param);
        for (size_t k = 0; k < st->n_names; k++)
            if (!strcmp(st->names[k], json_string_value(name)))
                return nuage__err400(e, param, "Invalid 'tools': the function name '%s' is declared twice.", st->names[k]);
        json_t *params = json_object_get(fn, "parameters");
        if (params && !json_is_null(params) && !json_is_object(params)) {
            snprintf(param, sizeof param, "tools[%zu].function.parameters", i);
            return nuage__err400(e, param, "Invalid type for '%s': expected an object.", param);
        }
        json_t *strict = json_object_get(fn, "strict");
        if (strict && !json_is_null(strict) && !json_is_boolean(strict)) {
            snprintf(param, sizeof param, "tools[%zu].function.strict", i);
            return nuage__err400(e, param, "Invalid type for '%s': expected a boolean.", param);
        }
        if (!(st->names[st->n_names] = strdup(json_string_value(name))))
            return nuage__err(e, 500, "server_error", NULL, NULL, "out of memory");
        st->n_names++;
    }
    json_t *tc = json_object_get(body, "tool_choice");
    if (tc && json_is_null(tc)) tc = NULL;
    if (tc) {
        if (json_is_string(tc)) {
            const char *v = json_string_value(tc);
            if (!strcmp(v, "none")) st->choice = NUAGE_TOOLCHOICE_NONE;
            else if (!strcmp(v, "auto")) st->choice = NUAGE_TOOLCHOICE_AUTO;
            else if (!strcmp(v, "required")) st->choice = NUAGE_TOOLCHOICE_REQUIRED;
            else
                return nuage__err400(e, "tool_choice", "Invalid value for 'tool_choice': expected 'none', 'auto', 'required' or a named function.");
        } else if (json_is_object(tc)) {
            json_t *type = json_object_get(tc, "type");
            json_t *fn = json_object_get(tc, "function");
            json_t *name = json_is_object(fn) ? json_object_get(fn, "name") : NULL;
            if (!json_is_string(type) || strcmp(json_string_value(type), "function") || !json_is_string(name))
                return nuage__err400(e, "tool_choice", "Invalid 'tool_choice': expected {\"type\": \"function\", \"function\": {\"name\": ...}}.");
            st->choice = NUAGE_TOOLCHOICE_NAMED;
            snprintf(st->named, sizeof st->named, "%s", json_string_value(name));
            bool found = false;
            for (size_t k = 0; k < st->n_names; k++) found |= !strcmp(st->names[k], st->named);
            if (!found)
                return nuage__err400(e, "tool_choice", "Invalid 'tool_choice': no function named '%.64s' in 'tools'.", st->named);
        } else {
            return nuage__err400(e, "tool_choice", "Invalid type for 'tool_choice': expected a string or an object.");
        }
        if (!n && (st->choice == NUAGE_TOOLCHOICE_REQUIRED || st->choice == NUAGE_TOOLCHOICE_NAMED))
            return nuage__err400(e, "tool_choice", "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified.");
    }
    if (!nuage__get_bool(body, "parallel_tool_calls", &st->parallel, NULL, e)) return false;
    st->fmt = nuage__resolve_toolfmt(d);
    st->harmony = st->fmt == NUAGE_TOOLFMT_HARMONY;
    if (n && st->choice != NUAGE_TOOLCHOICE_NONE) {
        st->tools_on = true;
        st->tools = json_incref(tools);
    }
    return true;
}

int nuage__tools_instruct(nuage__structured *st, json_t *msgs) {
    if (!st->tools_on || st->fmt != NUAGE_TOOLFMT_GENERIC) return 0;
    char *ins = nuage_toolfmt_generic_instruction(st->tools);
    if (!ins) return NUAGE_E_NOMEM;
    json_t *first = json_array_get(msgs, 0);
    const char *role = first ? json_string_value(json_object_get(first, "role")) : NULL;
    int rc = 0;
    if (role && (!strcmp(role, "system") || !strcmp(role, "developer")) &&
        json_is_string(json_object_get(first, "content"))) {
        nuage__sb sb = {0};
        nuage__sb_puts(&sb, json_string_value(json_object_get(first, "content")));
        nuage__sb_puts(&sb, "\n\n");
        nuage__sb_puts(&sb, ins);
        if (sb.oom || json_object_set_new(first, "content", json_stringn(sb.p, sb.n))) rc = NUAGE_E_NOMEM;
        nuage__sb_free(&sb);
    } else {
        json_t *m = json_pack("{s:s,s:s}", "role", "system", "content", ins);
        if (!m || json_array_insert_new(msgs, 0, m)) rc = NUAGE_E_NOMEM;
    }
    free(ins);
    return rc;
}

/* ---- grammars ---------------------------------------------------------------- */

/* Fill e from an engine refusal on `param` (what names the request part). */
static bool nuage__cg_refused(nuage__apierr *e, int rc, const char *param, const char *what,
                              const nuage_cg_error *ce) {
    if (rc == NUAGE_E_NOMEM) return nuage__err(e, 500, "server_error", NULL, NULL, "out of memory");
    if (ce->pointer[0] || rc == NUAGE_E_UNSUPPORTED)
        return nuage__err400(e, param, "Invalid %s: %s (at '%s').", what, ce->msg[0] ? ce->msg : "not supported",
                             ce->pointer);
    return nuage__err400(e, param, "Invalid %s: %s.", what, ce->msg[0] ? ce->msg : "refused");
}

/* A JSON Schema (object, or a JSON text in a string) into *x. */
static bool nuage__json_expr(ncg_builder *b, json_t *schema, bool strict, const char *param,
                             const char *what, ncg_expr *x, nuage__apierr *e) {
    json_t *own = NULL;
    if (json_is_string(schema)) {
        json_error_t je;
        own = json_loads(json_string_value(schema), 0, &je);
        if (!own) return nuage__err400(e, param, "Invalid %s: not valid JSON: %s.", what, je.text);
        schema = own;
    }
    if (!json_is_object(schema) && !json_is_boolean(schema)) {
        json_decref(own);
        return nuage__err400(e, param, "Invalid %s: a JSON Schema must be an object.", what);
    }
    nuage_cg_json_opts opts = {.max_ws = NUAGE__API_MAX_WS, .strict = strict};
    nuage_cg_error ce;
    memset(&ce, 0, sizeof ce);
    int rc = ncg_json_schema(b, schema, &opts, x, &ce);
    json_decref(own);
    if (rc) return nuage__cg_refused(e, rc, param, what, &ce);
    return true;
}

/* response_format: *x set, *have true when it constrains. */
static bool nuage__response_format(ncg_builder *b, json_t *body, bool *have, ncg_expr *x, nuage__apierr *e) {
    *have = false;
    json_t *rf = json_object_get(body, "response_format");
    if (!rf || json_is_null(rf)) return true;
    if (!json_is_object(rf))
        return nuage__err400(e, "response_format", "Invalid type for 'response_format': expected an object.");
    const char *type = json_string_value(json_object_get(rf, "type"));
    if (!type)
        return nuage__err400(e, "response_format.type", "Missing required parameter: 'response_format.type'.");
    if (!strcmp(type, "text")) return true;
    if (!strcmp(type, "json_object")) {
        json_t *obj = json_pack("{s:s}", "type", "object");
        if (!obj) return nuage__err(e, 500, "server_error", NULL, NULL, "out of memory");
        bool ok = nuage__json_expr(b, obj, false, "response_format", "response_format", x, e);
        json_decref(obj);
        *have = ok;
        return ok;
    }
    if (strcmp(type, "json_schema"))
        return nuage__err400(e, "response_format.type", "Invalid value: '%.40s'. Supported values are: 'text', 'json_object', and 'json_schema'.", type);
    json_t *js = json_object_get(rf, "json_schema");
    if (!json_is_object(js))
        return nuage__err400(e, "response_format.json_schema", "Missing required parameter: 'response_format.json_schema'.");
    json_t *name = json_object_get(js, "name");
    if (name && !json_is_string(name))
        return nuage__err400(e, "response_format.json_schema.name", "Invalid type for 'response_format.json_schema.name': expected a string.");
    json_t *strict = json_object_get(js, "strict");
    if (strict && !json_is_null(strict) && !json_is_boolean(strict))
        return nuage__err400(e, "response_format.json_schema.strict", "Invalid type for 'response_format.json_schema.strict': expected a boolean.");
    json_t *schema = json_object_get(js, "schema");
    json_t *any = NULL;
    if (!schema || json_is_null(schema)) schema = any = json_object(); /* OpenAI: no schema = any JSON */
    char what[120];
    snprintf(what, sizeof what, "schema for response_format '%.64s'", name ? json_string_value(name) : "");
    bool ok = schema && nuage__json_expr(b, schema, json_is_true(strict), "response_format", what, x, e);
    json_decref(any);
    *have = ok;
    return ok;
}

/* structured_outputs (vLLM) or the older guided_* fields. */
static bool nuage__vllm_outputs(ncg_builder *b, json_t *body, bool *have, ncg_expr *x, nuage__apierr *e) {
    *have = false;
    json_t *so = json_object_get(body, "structured_outputs");
    json_t *legacy = NULL;
    if (!so || json_is_null(so)) {
        static const char *const old[][2] = {{"guided_json", "json"}, {"guided_regex", "regex"},
                                             {"guided_choice", "choice"}, {"guided_grammar", "grammar"}};
        for (size_t i = 0; i < 4; i++) {
            json_t *v = json_object_get(body, old[i][0]);
            if (!v || json_is_null(v)) continue;
            if (!legacy) legacy = json_object();
            if (!legacy) return nuage__err(e, 500, "server_error", NULL, NULL, "out of memory");
            json_object_set(legacy, old[i][1], v);
        }
        if (!legacy) return true;
        so = legacy;
    }
    const char *P = legacy ? "guided_json" : "structured_outputs";
    bool ok = false;
    if (!json_is_object(so)) {
        nuage__err400(e, P, "Invalid type for '%s': expected an object.", P);
        goto done;
    }
    int kinds = 0;
    const char *key;
    json_t *v;
    json_object_foreach(so, key, v) {
        if (json_is_null(v) || json_is_false(v)) continue;
        if (!strcmp(key, "json") || !strcmp(key, "regex") || !strcmp(key, "choice") || !strcmp(key, "grammar") ||
            !strcmp(key, "json_object"))
            kinds++;
        else if (strcmp(key, "disable_any_whitespace") && strcmp(key, "disable_fallback") &&
                 strcmp(key, "disable_additional_properties")) {
            nuage__err400(e, P, "Invalid '%s': '%.40s' is not supported (supported: json, json_object, regex, choice, grammar).", P, key);
            goto done;
        }
    }
    if (kinds > 1) {
        nuage__err400(e, P, "Invalid '%s': give only one of json, json_object, regex, choice and grammar.", P);
        goto done;
    }
    if (kinds == 0) {
        ok = true;
        goto done;
    }
    json_t *j = json_object_get(so, "json"), *re = json_object_get(so, "regex");
    json_t *ch = json_object_get(so, "choice"), *gr = json_object_get(so, "grammar");
    nuage_cg_error ce;
    memset(&ce, 0, sizeof ce);
    if (j && !json_is_null(j)) {
        ok = nuage__json_expr(b, j, false, P, "JSON Schema in structured_outputs", x, e);
    } else if (json_is_true(json_object_get(so, "json_object"))) {
        json_t *obj = json_pack("{s:s}", "type", "object");
        ok = obj && nuage__json_expr(b, obj, false, P, "structured_outputs", x, e);
        json_decref(obj);
    } else if (re && !json_is_null(re)) {
        if (!json_is_string(re)) {
            nuage__err400(e, P, "Invalid type for '%s.regex': expected a string.", P);
            goto done;
        }
        int rc = ncg_regex(b, json_string_value(re), json_string_length(re), true, false, x, &ce);
        ok = rc ? nuage__cg_refused(e, rc, P, "regex in structured_outputs", &ce) : true;
    } else if (ch && !json_is_null(ch)) {
        size_t n = json_is_array(ch) ? json_array_size(ch) : 0;
        if (!n) {
            nuage__err400(e, P, "Invalid '%s.choice': expected a non-empty array of strings.", P);
            goto done;
        }
        ncg_expr *alts = malloc(n * sizeof *alts);
        if (!alts) {
            nuage__err(e, 500, "server_error", NULL, NULL, "out of memory");
            goto done;
        }
        ok = true;
        for (size_t i = 0; i < n && ok; i++) {
            json_t *s = json_array_get(ch, i);
            if (!json_is_string(s)) ok = nuage__err400(e, P, "Invalid '%s.choice[%zu]': expected a string.", P, i);
            else alts[i] = ncg_bytes(b, json_string_value(s), json_string_length(s));
        }
        if (ok) *x = ncg_alt(b, alts, n);
        free(alts);
    } else {
        if (!json_is_string(gr)) {
            nuage__err400(e, P, "Invalid type for '%s.grammar': expected a string (GBNF).", P);
            goto done;
        }
        ncg_rule root;
        int rc = ncg_gbnf(b, json_string_value(gr), json_string_length(gr), &root, &ce);
        ok = rc ? nuage__cg_refused(e, rc, P, "GBNF grammar in structured_outputs", &ce) : true;
        if (ok) *x = ncg_ref(b, root);
    }
    *have = ok;
done:
    json_decref(legacy);
    return ok;
}

/* The canonical text of everything the grammar is built from (the key of
 * the deployment's grammar cache), or NULL when nothing constrains. */
static char *nuage__structured_key(json_t *body, bool think_open, const nuage__structured *st) {
    static const char *const fields[] = {"response_format", "structured_outputs", "guided_json",
                                         "guided_regex", "guided_choice", "guided_grammar"};
    json_t *k = json_object();
    if (!k) return NULL;
    bool any = st->tools_on;
    for (size_t i = 0; i < sizeof fields / sizeof *fields; i++) {
        json_t *v = json_object_get(body, fields[i]);
        if (!v || json_is_null(v)) continue;
        any = true;
        json_object_set(k, fields[i], v);
    }
    char *txt = NULL;
    if (any) {
        if (st->tools_on) {
            json_object_set(k, "tools", st->tools);
            json_object_set_new(k, "choice", json_integer(st->choice));
            json_object_set_new(k, "named", json_string(st->named));
            json_object_set_new(k, "parallel", json_boolean(st->parallel));
            json_object_set_new(k, "fmt", json_integer(st->fmt));
        }
        json_object_set_new(k, "think", json_boolean(think_open));
        txt = json_dumps(k, JSON_COMPACT | JSON_SORT_KEYS);
    }
    json_decref(k);
    return txt;
}

bool nuage__structured_build(const nuage_deployment *d, json_t *body, bool think_open, nuage__structured *st,
                             nuage__apierr *e) {
    char *key = nuage__structured_key(body, think_open, st);
    if (!key) return true;     /* nothing to constrain (or no memory for a key: build below) */
    st->grammar = nuage__gcache_get(d->gcache, key, &st->triggers);
    if (st->grammar) {
        free(key);
        return true;
    }
    ncg_builder *b = ncg_builder_new();
    if (!b) {
        free(key);
        return nuage__err(e, 500, "server_error", NULL, NULL, "out of memory");
    }
    bool ok = false, have_rf = false, have_so = false;
    ncg_expr xrf = -1, xso = -1;
    if (!nuage__response_format(b, body, &have_rf, &xrf, e)) goto done;
    if (!nuage__vllm_outputs(b, body, &have_so, &xso, e)) goto done;
    if (have_rf && have_so) {
        nuage__err400(e, "structured_outputs", "Give either 'response_format' or 'structured_outputs', not both.");
        goto done;
    }
    ncg_expr xout = have_rf ? xrf : xso;
    bool have_out = have_rf || have_so;
    if (have_out && st->harmony) {
        /* gpt-oss answers in the final channel, after its analysis */
        int rc = nuage_toolfmt_harmony_final(b, d->voc, xout, &xout);
        if (rc) {
            nuage__err(e, 500, "server_error", NULL, NULL, "cannot build the harmony answer grammar");
            goto done;
        }
    }
    ncg_rule troot = -1, tafter = -1;
    const char *const *trig = NULL;
    bool tools = st->tools_on && st->choice != NUAGE_TOOLCHOICE_NONE;
    if (tools) {
        /* strictness is per function (toolgrammar.c): "strict": true is
         * enforced exactly, other functions are best effort */
        nuage_cg_json_opts opts = {.max_ws = NUAGE__API_MAX_WS, .strict = false};
        nuage_cg_error ce;
        memset(&ce, 0, sizeof ce);
        int rc = nuage_toolfmt_grammar(b, (nuage_toolfmt)st->fmt, d->voc, st->tools, (nuage_toolchoice)st->choice,
                                       st->named[0] ? st->named : NULL, st->parallel, &opts, &troot,
                                       &tafter, &trig, &ce);
        if (rc) {
            nuage__cg_refused(e, rc, "tools", "tools (a function's parameters)", &ce);
            goto done;
        }
        if (ce.msg[0]) fprintf(stderr, "nuage serve: warning: %s\n", ce.msg);
    }
    /* What the output must be, and from where. */
    ncg_expr start;
    const char *const *triggers = NULL;
    if (tools && (st->choice == NUAGE_TOOLCHOICE_REQUIRED || st->choice == NUAGE_TOOLCHOICE_NAMED)) {
        start = ncg_ref(b, troot);
    } else if (tools && have_out) {
        start = ncg_alt2(b, ncg_ref(b, troot), xout);
    } else if (tools) {
        if (!trig || tafter < 0) { /* the family has no lazy form: calls are only parsed */
            ok = true;
            goto done;
        }
        start = ncg_ref(b, tafter);
        triggers = trig;
    } else if (have_out) {
        start = xout;
    } else {
        ok = true; /* nothing to constrain */
        goto done;
    }
    static const char *const think_end[] = {"</think>", NULL};
    if (think_open && !triggers) {
        /* let the model think; the answer after </think> may start with blanks */
        nuage_cg_json_opts o = {.max_ws = 8};
        start = ncg_seq2(b, ncg_json_ws(b, &o), start);
        triggers = think_end;
    }
    if (!d->cg_tokens) {
        nuage__err(e, 500, "server_error", NULL, NULL, "constrained decoding is not available for this model");
        goto done;
    }
    ncg_rule root = ncg_rule_new(b, "output");
    int rc = ncg_rule_set(b, root, start);
    nuage_cg_error ce;
    memset(&ce, 0, sizeof ce);
    if (!rc) rc = ncg_builder_finish(b, root, d->cg_tokens, &st->grammar, &ce);
    if (rc) {
        nuage__cg_refused(e, rc, have_rf ? "response_format" : have_so ? "structured_outputs" : "tools",
                          "constraint", &ce);
        goto done;
    }
    if (triggers) {
        int n = 0;
        while (triggers[n]) n++;
        st->triggers = calloc((size_t)n + 1, sizeof *st->triggers);
        if (!st->triggers) {
            nuage__err(e, 500, "server_error", NULL, NULL, "out of memory");
            goto done;
        }
        for (int i = 0; i < n; i++)
            if (!(st->triggers[i] = strdup(triggers[i]))) {
                nuage__err(e, 500, "server_error", NULL, NULL, "out of memory");
                goto done;
            }
    }
    ok = true;
    nuage__gcache_put(d->gcache, key, st->grammar, st->triggers);
done:
    ncg_builder_free(b);
    free(key);
    return ok;
}
