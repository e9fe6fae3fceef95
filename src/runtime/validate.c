/*
 * validate.c - OpenAI request validation and the text helpers of the HTTP
 * layer (see validate.h).
 *
 * Design. The OpenAI API is strict about types ("temperature": "0.5" is a
 * 400, not a silent coercion) and documents a range for every sampling
 * field; clients rely on getting a 400 whose `param` names the field, so
 * every check here is per field and produces that shape. Range limits
 * follow the API reference: temperature 0..2, top_p 0..1, presence and
 * frequency penalties -2..2, n >= 1 (bounded by the server's parallelism),
 * max_tokens >= 1, top_logprobs 0..20 (only with logprobs), logit_bias
 * values -100..100 on token ids inside the vocabulary, at most 4 stop
 * sequences. The llama.cpp extensions (top_k, min_p, repetition_penalty,
 * ignore_eos) are checked to the sampler's own ranges.
 *
 * Message content is normalised before templating: chat templates expect
 * a string, so an array of {type: "text", text} parts is joined with "\n"
 * (as llama.cpp's server did before typed content existed).
 */
#include "runtime/validate.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- string builder ------------------------------------------------------ */

static bool nuage__sb_grow(nuage__sb *b, size_t extra) {
    if (b->oom) return false;
    if (b->n + extra + 1 <= b->cap) return true;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->n + extra + 1) {
        if (cap > SIZE_MAX / 2) { b->oom = true; return false; }
        cap *= 2;
    }
    char *p = realloc(b->p, cap);
    if (!p) { b->oom = true; return false; }
    b->p = p;
    b->cap = cap;
    return true;
}

void nuage__sb_put(nuage__sb *b, const char *s, size_t n) {
    if (!nuage__sb_grow(b, n)) return;
    if (n) memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

void nuage__sb_puts(nuage__sb *b, const char *s) { nuage__sb_put(b, s, strlen(s)); }

void nuage__sb_printf(nuage__sb *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char tmp[256];
    int k = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (k < 0) return;
    if ((size_t)k < sizeof tmp) {
        nuage__sb_put(b, tmp, (size_t)k);
        return;
    }
    if (!nuage__sb_grow(b, (size_t)k)) return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->n, (size_t)k + 1, fmt, ap);
    va_end(ap);
    b->n += (size_t)k;
}

/* Length of the valid UTF-8 sequence starting at s[0] (n bytes left), or
 * 0 if it is not one. */
static size_t nuage__utf8_seq(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    if (c < 0x80) return 1;
    size_t len;
    unsigned cp;
    if (c >= 0xC2 && c <= 0xDF) { len = 2; cp = c & 0x1F; }
    else if (c >= 0xE0 && c <= 0xEF) { len = 3; cp = c & 0x0F; }
    else if (c >= 0xF0 && c <= 0xF4) { len = 4; cp = c & 0x07; }
    else return 0;
    if (n < len) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) return 0;
    if (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) return 0;
    return len;
}

bool nuage__utf8_ok(const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        size_t k = nuage__utf8_seq(u + i, n - i);
        if (!k) return false;
        i += k;
    }
    return true;
}

void nuage__sb_json_str(nuage__sb *b, const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    if (!nuage__sb_grow(b, n + 2)) return;
    b->p[b->n++] = '"';
    size_t run = 0; /* start of a run of bytes copied verbatim */
    for (size_t i = 0; i < n;) {
        unsigned c = u[i];
        const char *esc = NULL;
        char tmp[8];
        size_t adv = 1;
        if (c == '"') esc = "\\\"";
        else if (c == '\\') esc = "\\\\";
        else if (c == '\n') esc = "\\n";
        else if (c == '\r') esc = "\\r";
        else if (c == '\t') esc = "\\t";
        else if (c < 0x20 || c == 0x7F) {
            snprintf(tmp, sizeof tmp, "\\u%04x", c);
            esc = tmp;
        } else if (c >= 0x80) {
            adv = nuage__utf8_seq(u + i, n - i);
            if (!adv) {
                snprintf(tmp, sizeof tmp, "\\\\x%02x", c);
                esc = tmp;
                adv = 1;
            }
        }
        if (esc) {
            nuage__sb_put(b, s + run, i - run);
            nuage__sb_puts(b, esc);
            run = i + adv;
        }
        i += adv;
    }
    nuage__sb_put(b, s + run, n - run);
    nuage__sb_put(b, "\"", 1);
}

void nuage__sb_consume(nuage__sb *b, size_t k) {
    if (k >= b->n) {
        b->n = 0;
        if (b->p) b->p[0] = 0;
        return;
    }
    memmove(b->p, b->p + k, b->n - k + 1);
    b->n -= k;
}

void nuage__sb_free(nuage__sb *b) {
    free(b->p);
    *b = (nuage__sb){0};
}

json_t *nuage__json_text(const char *s, size_t n) {
    if (nuage__utf8_ok(s, n)) return json_stringn(s, n);
    nuage__sb b = {0};
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        size_t k = nuage__utf8_seq(u + i, n - i);
        if (k) {
            nuage__sb_put(&b, s + i, k);
            i += k;
        } else {
            nuage__sb_printf(&b, "\\x%02x", u[i]);
            i++;
        }
    }
    json_t *j = b.oom ? NULL : json_stringn(b.p ? b.p : "", b.n);
    nuage__sb_free(&b);
    return j;
}

/* ---- errors -------------------------------------------------------------- */

static bool nuage__verr(nuage__apierr *e, int status, const char *type, const char *code,
                        const char *param, const char *fmt, va_list ap) {
    e->status = status;
    e->type = type;
    e->code = code;
    snprintf(e->param, sizeof e->param, "%s", param ? param : "");
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    return false;
}

bool nuage__err(nuage__apierr *e, int status, const char *type, const char *code,
                const char *param, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    nuage__verr(e, status, type, code, param, fmt, ap);
    va_end(ap);
    return false;
}

bool nuage__err400(nuage__apierr *e, const char *param, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    nuage__verr(e, 400, "invalid_request_error", NULL, param, fmt, ap);
    va_end(ap);
    return false;
}

json_t *nuage__err_json(const nuage__apierr *e) {
    json_t *msg = nuage__json_text(e->message, strlen(e->message));
    json_t *param = e->param[0] ? nuage__json_text(e->param, strlen(e->param)) : json_null();
    return json_pack("{s:{s:o,s:s,s:o,s:o}}", "error", "message", msg ? msg : json_string(""),
                     "type", e->type ? e->type : "invalid_request_error", "param",
                     param ? param : json_null(), "code",
                     e->code ? json_string(e->code) : json_null());
}

/* ---- typed fields -------------------------------------------------------- */

static const char *nuage__json_type_name(const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a decimal";
    case JSON_TRUE: case JSON_FALSE: return "a boolean";
    default: return "null";
    }
}

static json_t *nuage__field(json_t *obj, const char *key, bool *present) {
    json_t *v = obj ? json_object_get(obj, key) : NULL;
    if (v && json_is_null(v)) v = NULL;
    if (present) *present = v != NULL;
    return v;
}

bool nuage__get_number(json_t *obj, const char *key, double lo, double hi, double *out,
                       bool *present, nuage__apierr *e) {
    json_t *v = nuage__field(obj, key, present);
    if (!v) return true;
    if (!json_is_number(v))
        return nuage__err400(e, key, "Invalid type for '%s': expected a decimal, but got %s instead.",
                             key, nuage__json_type_name(v));
    double d = json_number_value(v);
    if (!isfinite(d) || d < lo)
        return nuage__err400(e, key, "Invalid '%s': decimal below minimum value. Expected a value >= %g, but got %g instead.",
                             key, lo, d);
    if (d > hi)
        return nuage__err400(e, key, "Invalid '%s': decimal above maximum value. Expected a value <= %g, but got %g instead.",
                             key, hi, d);
    *out = d;
    return true;
}

bool nuage__get_int(json_t *obj, const char *key, int64_t lo, int64_t hi, int64_t *out,
                    bool *present, nuage__apierr *e) {
    json_t *v = nuage__field(obj, key, present);
    if (!v) return true;
    int64_t x;
    if (json_is_integer(v)) {
        x = (int64_t)json_integer_value(v);
    } else if (json_is_real(v) && floor(json_real_value(v)) == json_real_value(v) &&
               fabs(json_real_value(v)) < 9.0e18) {
        x = (int64_t)json_real_value(v);
    } else {
        return nuage__err400(e, key, "Invalid type for '%s': expected an integer, but got %s instead.",
                             key, json_is_real(v) ? "a decimal" : nuage__json_type_name(v));
    }
    if (x < lo)
        return nuage__err400(e, key, "Invalid '%s': integer below minimum value. Expected a value >= %lld, but got %lld instead.",
                             key, (long long)lo, (long long)x);
    if (x > hi)
        return nuage__err400(e, key, "Invalid '%s': integer above maximum value. Expected a value <= %lld, but got %lld instead.",
                             key, (long long)hi, (long long)x);
    *out = x;
    return true;
}

bool nuage__get_bool(json_t *obj, const char *key, bool *out, bool *present, nuage__apierr *e) {
    json_t *v = nuage__field(obj, key, present);
    if (!v) return true;
    if (!json_is_boolean(v))
        return nuage__err400(e, key, "Invalid type for '%s': expected a boolean, but got %s instead.",
                             key, nuage__json_type_name(v));
    *out = json_is_true(v);
    return true;
}

bool nuage__get_string(json_t *obj, const char *key, const char **out, bool *present,
                       nuage__apierr *e) {
    json_t *v = nuage__field(obj, key, present);
    if (!v) return true;
    if (!json_is_string(v))
        return nuage__err400(e, key, "Invalid type for '%s': expected a string, but got %s instead.",
                             key, nuage__json_type_name(v));
    *out = json_string_value(v);
    return true;
}

/* ---- generation parameters ----------------------------------------------- */

void nuage__gen_params_free(nuage__gen_params *g) {
    free(g->bias_tok);
    free(g->bias_val);
    for (int i = 0; i < g->n_stops; i++) free(g->stops[i]);
    g->bias_tok = NULL;
    g->bias_val = NULL;
    g->n_stops = 0;
}

static bool nuage__parse_stop(json_t *body, nuage__gen_params *g, nuage__apierr *e) {
    json_t *v = nuage__field(body, "stop", NULL);
    if (!v) return true;
    json_t *one[1];
    json_t **items;
    size_t n;
    if (json_is_string(v)) {
        one[0] = v;
        items = one;
        n = 1;
    } else if (json_is_array(v)) {
        n = json_array_size(v);
        if (n > NUAGE_MAX_STOP)
            return nuage__err400(e, "stop", "Invalid 'stop': array too long. Expected an array with maximum length %d, but got an array with length %zu instead.",
                                 NUAGE_MAX_STOP, n);
        items = NULL;
    } else {
        return nuage__err400(e, "stop", "Invalid type for 'stop': expected a string or an array of strings, but got %s instead.",
                             nuage__json_type_name(v));
    }
    for (size_t i = 0; i < n; i++) {
        json_t *s = items ? items[i] : json_array_get(v, i);
        if (!json_is_string(s)) {
            char param[32];
            snprintf(param, sizeof param, "stop[%zu]", i);
            return nuage__err400(e, param, "Invalid type for '%s': expected a string, but got %s instead.",
                                 param, nuage__json_type_name(s));
        }
        size_t len = json_string_length(s);
        if (len == 0) continue; /* an empty stop sequence can never match */
        char *c = malloc(len + 1);
        if (!c) return nuage__err(e, 500, "server_error", NULL, "stop", "out of memory");
        memcpy(c, json_string_value(s), len + 1);
        g->stops[g->n_stops++] = c;
    }
    return true;
}

static bool nuage__parse_bias(json_t *body, int n_vocab, nuage__gen_params *g, nuage__apierr *e) {
    json_t *v = nuage__field(body, "logit_bias", NULL);
    if (!v) return true;
    if (!json_is_object(v))
        return nuage__err400(e, "logit_bias", "Invalid type for 'logit_bias': expected an object, but got %s instead.",
                             nuage__json_type_name(v));
    size_t n = json_object_size(v);
    if (n == 0) return true;
    if (n > (size_t)n_vocab)
        return nuage__err400(e, "logit_bias", "Invalid 'logit_bias': more entries than tokens in the vocabulary.");
    g->bias_tok = malloc(n * sizeof *g->bias_tok);
    g->bias_val = malloc(n * sizeof *g->bias_val);
    if (!g->bias_tok || !g->bias_val) return nuage__err(e, 500, "server_error", NULL, "logit_bias", "out of memory");
    const char *key;
    json_t *val;
    int k = 0;
    json_object_foreach(v, key, val) {
        char param[96];
        snprintf(param, sizeof param, "logit_bias.%.60s", key);
        char *end;
        errno = 0;
        long id = strtol(key, &end, 10);
        if (!*key || *end || errno || id < 0 || id >= n_vocab)
            return nuage__err400(e, param, "Invalid 'logit_bias': key '%.60s' is not a token id in [0, %d).",
                                 key, n_vocab);
        if (!json_is_number(val))
            return nuage__err400(e, param, "Invalid type for '%s': expected a number, but got %s instead.",
                                 param, nuage__json_type_name(val));
        double d = json_number_value(val);
        if (!(d >= -100.0 && d <= 100.0))
            return nuage__err400(e, param, "Invalid '%s': expected a value between -100 and 100, but got %g instead.",
                                 param, d);
        g->bias_tok[k] = (int32_t)id;
        g->bias_val[k] = (float)d;
        k++;
    }
    g->sp.bias_tokens = g->bias_tok;
    g->sp.bias_values = g->bias_val;
    g->sp.n_bias = k;
    return true;
}

bool nuage__parse_gen_params(json_t *body, bool chat, int n_vocab, int max_n,
                             nuage__gen_params *g, nuage__apierr *e) {
    memset(g, 0, sizeof *g);
    g->n = 1;
    g->max_tokens = -1;
    g->top_logprobs = -1;
    g->sp = nuage_sampler_default_params();
    double d;
    int64_t x;
    bool present;

    if (!nuage__get_int(body, "n", 1, max_n > 0 ? max_n : 1, &x, &present, e)) return false;
    if (present) g->n = (int)x;
    /* max_completion_tokens supersedes the deprecated max_tokens. */
    if (!nuage__get_int(body, "max_tokens", 1, INT64_MAX, &x, &present, e)) return false;
    if (present) g->max_tokens = x;
    if (chat) {
        if (!nuage__get_int(body, "max_completion_tokens", 1, INT64_MAX, &x, &present, e)) return false;
        if (present) g->max_tokens = x;
    }
    if (!nuage__get_number(body, "temperature", 0, 2, &d, &present, e)) return false;
    if (present) g->sp.temperature = (float)d;
    if (!nuage__get_number(body, "top_p", 0, 1, &d, &present, e)) return false;
    /* The sampler wants top_p in (0, 1]; 0 means "only the top token". */
    if (present) g->sp.top_p = d > 0 ? (float)d : 1e-9f;
    if (!nuage__get_number(body, "presence_penalty", -2, 2, &d, &present, e)) return false;
    if (present) g->sp.presence_penalty = (float)d;
    if (!nuage__get_number(body, "frequency_penalty", -2, 2, &d, &present, e)) return false;
    if (present) g->sp.frequency_penalty = (float)d;
    /* llama.cpp extensions */
    if (!nuage__get_int(body, "top_k", INT32_MIN, INT32_MAX, &x, &present, e)) return false;
    if (present) g->sp.top_k = x > 0 ? (int32_t)x : 0;
    if (!nuage__get_number(body, "min_p", 0, 1, &d, &present, e)) return false;
    if (present) g->sp.min_p = (float)d;
    if (!nuage__get_number(body, "repetition_penalty", 0, 100, &d, &present, e)) return false;
    if (present) {
        if (!(d > 0)) return nuage__err400(e, "repetition_penalty", "Invalid 'repetition_penalty': expected a value > 0, but got %g instead.", d);
        g->sp.repetition_penalty = (float)d;
    }
    if (!nuage__get_bool(body, "ignore_eos", &g->ignore_eos, NULL, e)) return false;
    if (!nuage__get_int(body, "seed", INT64_MIN, INT64_MAX, &x, &present, e)) return false;
    if (present) {
        g->sp.seed = (uint64_t)x;
        g->seed_given = true;
    }
    const char *user;
    if (!nuage__get_string(body, "user", &user, NULL, e)) return false;

    if (chat) {
        bool lp = false;
        if (!nuage__get_bool(body, "logprobs", &lp, NULL, e)) return false;
        if (!nuage__get_int(body, "top_logprobs", 0, NUAGE_MAX_TOP_LOGPROBS, &x, &present, e)) return false;
        if (present && !lp)
            return nuage__err400(e, "top_logprobs", "Invalid 'top_logprobs': 'logprobs' must be set to true when 'top_logprobs' is used.");
        if (lp) g->top_logprobs = present ? (int)x : 0;
    } else {
        if (!nuage__get_int(body, "logprobs", 0, NUAGE_MAX_TOP_LOGPROBS, &x, &present, e)) return false;
        if (present) g->top_logprobs = (int)x;
        if (!nuage__get_bool(body, "echo", &g->echo, NULL, e)) return false;
        const char *suffix;
        if (!nuage__get_string(body, "suffix", &suffix, NULL, e)) return false; /* accepted, ignored */
    }

    if (!nuage__get_bool(body, "stream", &g->stream, NULL, e)) return false;
    json_t *so = nuage__field(body, "stream_options", NULL);
    if (so) {
        if (!json_is_object(so))
            return nuage__err400(e, "stream_options", "Invalid type for 'stream_options': expected an object, but got %s instead.",
                                 nuage__json_type_name(so));
        if (!g->stream)
            return nuage__err400(e, "stream_options", "The 'stream_options' parameter is only allowed when 'stream' is enabled.");
        if (!nuage__get_bool(so, "include_usage", &g->include_usage, NULL, e)) {
            snprintf(e->param, sizeof e->param, "stream_options.include_usage");
            return false;
        }
    }
    if (!nuage__parse_stop(body, g, e)) return false;
    if (!nuage__parse_bias(body, n_vocab, g, e)) return false;
    return true;
}

/* ---- messages ------------------------------------------------------------ */

static const char *const nuage__roles[] = {"system", "developer", "user", "assistant", "tool"};

/* The tool-call fields of message i (role r): an assistant's tool_calls
 * (array of {id, type "function", function {name, arguments: string or
 * object}}) and a tool message's tool_call_id (required, as OpenAI). */
static bool nuage__check_tool_fields(json_t *m, const char *r, size_t i, nuage__apierr *e) {
    char param[128];
    if (!strcmp(r, "tool")) {
        json_t *id = json_object_get(m, "tool_call_id");
        snprintf(param, sizeof param, "messages[%zu].tool_call_id", i);
        if (!id || json_is_null(id))
            return nuage__err400(e, param, "Missing required parameter: '%s'.", param);
        if (!json_is_string(id))
            return nuage__err400(e, param, "Invalid type for '%s': expected a string, but got %s instead.",
                                 param, nuage__json_type_name(id));
        return true;
    }
    json_t *tc = json_object_get(m, "tool_calls");
    if (!tc || json_is_null(tc)) return true;
    snprintf(param, sizeof param, "messages[%zu].tool_calls", i);
    if (strcmp(r, "assistant"))
        return nuage__err400(e, param, "Invalid parameter: only assistant messages may have '%s'.", param);
    if (!json_is_array(tc))
        return nuage__err400(e, param, "Invalid type for '%s': expected an array, but got %s instead.",
                             param, nuage__json_type_name(tc));
    size_t k;
    json_t *call;
    json_array_foreach(tc, k, call) {
        snprintf(param, sizeof param, "messages[%zu].tool_calls[%zu]", i, k);
        if (!json_is_object(call))
            return nuage__err400(e, param, "Invalid type for '%s': expected an object, but got %s instead.",
                                 param, nuage__json_type_name(call));
        json_t *type = json_object_get(call, "type");
        if (type && !json_is_null(type) && (!json_is_string(type) || strcmp(json_string_value(type), "function"))) {
            snprintf(param, sizeof param, "messages[%zu].tool_calls[%zu].type", i, k);
            return nuage__err400(e, param, "Invalid value for '%s': expected 'function'.", param);
        }
        json_t *id = json_object_get(call, "id");
        if (id && !json_is_null(id) && !json_is_string(id)) {
            snprintf(param, sizeof param, "messages[%zu].tool_calls[%zu].id", i, k);
            return nuage__err400(e, param, "Invalid type for '%s': expected a string.", param);
        }
        json_t *fn = json_object_get(call, "function");
        snprintf(param, sizeof param, "messages[%zu].tool_calls[%zu].function", i, k);
        if (!json_is_object(fn))
            return nuage__err400(e, param, fn ? "Invalid type for '%s': expected an object." : "Missing required parameter: '%s'.", param);
        json_t *name = json_object_get(fn, "name");
        if (!json_is_string(name)) {
            snprintf(param, sizeof param, "messages[%zu].tool_calls[%zu].function.name", i, k);
            return nuage__err400(e, param, name ? "Invalid type for '%s': expected a string." : "Missing required parameter: '%s'.", param);
        }
        json_t *args = json_object_get(fn, "arguments");
        if (!json_is_string(args) && !json_is_object(args)) {
            snprintf(param, sizeof param, "messages[%zu].tool_calls[%zu].function.arguments", i, k);
            return nuage__err400(e, param, args ? "Invalid type for '%s': expected a string." : "Missing required parameter: '%s'.", param);
        }
    }
    return true;
}

json_t *nuage__parse_messages(json_t *body, nuage__apierr *e) {
    json_t *msgs = json_object_get(body, "messages");
    if (!msgs || json_is_null(msgs)) {
        nuage__err400(e, "messages", "Missing required parameter: 'messages'.");
        return NULL;
    }
    if (!json_is_array(msgs)) {
        nuage__err400(e, "messages", "Invalid type for 'messages': expected an array, but got %s instead.",
                      nuage__json_type_name(msgs));
        return NULL;
    }
    size_t n = json_array_size(msgs);
    if (n == 0) {
        nuage__err400(e, "messages", "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.");
        return NULL;
    }
    json_t *out = json_array();
    if (!out) goto fail_oom;
    for (size_t i = 0; i < n; i++) {
        json_t *m = json_array_get(msgs, i);
        char param[96];
        snprintf(param, sizeof param, "messages[%zu]", i);
        if (!json_is_object(m)) {
            nuage__err400(e, param, "Invalid type for '%s': expected an object, but got %s instead.",
                          param, nuage__json_type_name(m));
            goto fail;
        }
        json_t *role = json_object_get(m, "role");
        snprintf(param, sizeof param, "messages[%zu].role", i);
        if (!role || !json_is_string(role)) {
            nuage__err400(e, param, role ? "Invalid type for '%s': expected a string." : "Missing required parameter: '%s'.", param);
            goto fail;
        }
        const char *r = json_string_value(role);
        bool ok = false;
        for (size_t k = 0; k < sizeof nuage__roles / sizeof *nuage__roles; k++)
            if (!strcmp(r, nuage__roles[k])) ok = true;
        if (!ok) {
            nuage__err400(e, param, "Invalid value: '%.40s'. Supported values are: 'system', 'developer', 'user', 'assistant', and 'tool'.", r);
            goto fail;
        }
        json_t *name = json_object_get(m, "name");
        if (name && !json_is_null(name) && !json_is_string(name)) {
            snprintf(param, sizeof param, "messages[%zu].name", i);
            nuage__err400(e, param, "Invalid type for '%s': expected a string, but got %s instead.",
                          param, nuage__json_type_name(name));
            goto fail;
        }
        json_t *content = json_object_get(m, "content");
        snprintf(param, sizeof param, "messages[%zu].content", i);
        json_t *norm;
        bool is_assistant = !strcmp(r, "assistant");
        if (!content || json_is_null(content)) {
            if (!is_assistant) {
                nuage__err400(e, param, "Missing required parameter: '%s'.", param);
                goto fail;
            }
            norm = json_null();
        } else if (json_is_string(content)) {
            norm = json_incref(content);
        } else if (json_is_array(content)) {
            nuage__sb sb = {0};
            size_t np = json_array_size(content);
            for (size_t k = 0; k < np; k++) {
                json_t *part = json_array_get(content, k);
                char pp[128];
                snprintf(pp, sizeof pp, "messages[%zu].content[%zu]", i, k);
                if (!json_is_object(part)) {
                    nuage__sb_free(&sb);
                    nuage__err400(e, pp, "Invalid type for '%s': expected an object, but got %s instead.",
                                  pp, nuage__json_type_name(part));
                    goto fail;
                }
                json_t *type = json_object_get(part, "type");
                json_t *text = json_object_get(part, "text");
                if (!json_is_string(type) || strcmp(json_string_value(type), "text")) {
                    nuage__sb_free(&sb);
                    snprintf(pp, sizeof pp, "messages[%zu].content[%zu].type", i, k);
                    nuage__err400(e, pp, "Invalid value for '%s': only content parts of type 'text' are supported.", pp);
                    goto fail;
                }
                if (!json_is_string(text)) {
                    nuage__sb_free(&sb);
                    snprintf(pp, sizeof pp, "messages[%zu].content[%zu].text", i, k);
                    nuage__err400(e, pp, "Invalid type for '%s': expected a string.", pp);
                    goto fail;
                }
                if (k) nuage__sb_put(&sb, "\n", 1);
                nuage__sb_put(&sb, json_string_value(text), json_string_length(text));
            }
            if (sb.oom) {
                nuage__sb_free(&sb);
                goto fail_oom;
            }
            norm = json_stringn(sb.p ? sb.p : "", sb.n);
            nuage__sb_free(&sb);
        } else {
            nuage__err400(e, param, "Invalid type for '%s': expected a string or an array of content parts, but got %s instead.",
                          param, nuage__json_type_name(content));
            goto fail;
        }
        /* Content decoded by jansson is valid UTF-8 already; check again so
         * that the template and tokenizer never see anything else. */
        if (norm && json_is_string(norm) && !nuage__utf8_ok(json_string_value(norm), json_string_length(norm))) {
            json_decref(norm);
            nuage__err400(e, param, "Invalid '%s': not valid UTF-8.", param);
            goto fail;
        }
        if (!nuage__check_tool_fields(m, r, i, e)) {
            json_decref(norm);
            goto fail;
        }
        json_t *copy = json_copy(m);
        if (!norm || !copy || json_object_set_new(copy, "content", norm) || json_array_append_new(out, copy)) {
            json_decref(copy);
            goto fail_oom;
        }
    }
    return out;
fail_oom:
    nuage__err(e, 500, "server_error", NULL, NULL, "out of memory");
fail:
    json_decref(out);
    return NULL;
}

bool nuage__check_model(json_t *body, const char *const *names, int n_names, nuage__apierr *e) {
    const char *model = NULL;
    bool present;
    if (!nuage__get_string(body, "model", &model, &present, e)) return false;
    if (!present) return true;
    for (int i = 0; i < n_names; i++)
        if (names[i] && !strcmp(model, names[i])) return true;
    return nuage__err(e, 404, "invalid_request_error", "model_not_found", "model",
                      "The model '%.200s' does not exist or you do not have access to it.", model);
}
