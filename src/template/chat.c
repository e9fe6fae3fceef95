/*
 * chat.c - the public chat-template API (include/nuage/template.h).
 *
 * Parsing: the text is checked to be UTF-8, line endings are normalised as
 * Jinja2 does (\r\n and \r become \n; one trailing newline is dropped),
 * then lexed and parsed into an AST owned by the template's arena.
 *
 * Rendering binds the variables Hugging Face's apply_chat_template binds:
 * messages, tools and documents (always defined, none when absent),
 * add_generation_prompt, bos_token / eos_token (left undefined when the
 * model has no such token), then the caller's extra variables
 * (chat_template_kwargs); plus the globals range, namespace, dict,
 * raise_exception and strftime_now. Each render has its own context and
 * values, so a template can be rendered concurrently.
 *
 * The evaluator is recursive, and hostile templates nest deeply, so a
 * render runs on its own thread with a known, large stack (and a guard
 * below its end) instead of whatever stack the caller happens to have.
 */
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "template/jinja.h"

int nuage_template_parse(const char *src, size_t len, nuage_template **out, char *err, size_t errlen) {
    *out = NULL;
    if (err && errlen) err[0] = 0;
    if (!src) {
        if (err && errlen) snprintf(err, errlen, "no template text");
        return NUAGE_E_INVAL;
    }
    if (!nuage__utf8_valid(src, len)) {
        if (err && errlen) snprintf(err, errlen, "line 1: template is not valid UTF-8");
        return NUAGE_E_TEMPLATE;
    }
    nuage_template *t = calloc(1, sizeof *t);
    if (!t) goto fail_nomem;
    char *norm = malloc(len + 1);
    if (!norm) goto fail_tmpl;
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (src[i] == '\r') {
            norm[n++] = '\n';
            if (i + 1 < len && src[i + 1] == '\n') i++;
        } else {
            norm[n++] = src[i];
        }
    }
    if (n && norm[n - 1] == '\n') n--;
    norm[n] = 0;
    jtoken *toks;
    size_t ntoks;
    int rc = nuage__jlex(&t->arena, norm, n, &toks, &ntoks, err, errlen);
    if (rc == 0) rc = nuage__jparse(&t->arena, toks, ntoks, &t->body, &t->nbody, err, errlen);
    free(norm);
    if (rc) {
        nuage_template_free(t);
        return rc;
    }
    t->traits = nuage_template_traits_scan(src, len);
    *out = t;
    return 0;

fail_tmpl:
    free(t);
fail_nomem:
    if (err && errlen) snprintf(err, errlen, "out of memory");
    return NUAGE_E_NOMEM;
}

void nuage_template_free(nuage_template *t) {
    if (!t) return;
    nuage__jarena_free(&t->arena);
    free(t);
}

static int set_global(jscope *g, const char *name, int id) {
    jfunc *f = calloc(1, sizeof *f);
    if (!f) return NUAGE_E_NOMEM;
    f->h.rc = 1;
    f->kind = JF_GLOBAL;
    f->id = id;
    f->self = jv_missing();
    f->caller = jv_missing();
    f->name = name;
    jval v = {.t = JV_FUNC, .u.fn = f};
    return nuage__jscope_set(g, name, v);
}

static int set_json(jscope *g, const char *name, const json_t *j) {
    jval v;
    int rc = nuage__jv_from_json(j, &v);
    if (rc) return rc;
    return nuage__jscope_set(g, name, v);
}

static int set_str(jscope *g, const char *name, const char *s) {
    jval v = nuage__jv_cstr(s);
    if (v.t == JV_MISSING) return NUAGE_E_NOMEM;
    return nuage__jscope_set(g, name, v);
}

#define RENDER_STACK ((size_t)32 << 20)
#define RENDER_STACK_GUARD ((size_t)28 << 20)
#define INLINE_STACK_GUARD ((size_t)256 << 10)

typedef struct {
    jctx *c;
    const nuage_template *t;
    jscope *g;
    jbuf *b;
    int rc;
} render_job;

static void *render_main(void *arg) {
    render_job *job = arg;
    job->c->stack_base = __builtin_frame_address(0);
    job->rc = nuage__jexec_body(job->c, job->t->body, job->t->nbody, job->g, job->b);
    return NULL;
}

/* Run the template body on a thread with a RENDER_STACK stack; falls back
 * to the caller's thread (with a small guard) if no thread can be made. */
static int run_render(jctx *c, const nuage_template *t, jscope *g, jbuf *b) {
    render_job job = {c, t, g, b, 0};
    pthread_attr_t attr;
    pthread_t th;
    bool threaded = false;
    if (pthread_attr_init(&attr) == 0) {
        c->stack_limit = RENDER_STACK_GUARD;
        if (pthread_attr_setstacksize(&attr, RENDER_STACK) == 0 &&
            pthread_create(&th, &attr, render_main, &job) == 0) {
            pthread_join(th, NULL);
            threaded = true;
        }
        pthread_attr_destroy(&attr);
    }
    if (!threaded) {
        c->stack_limit = INLINE_STACK_GUARD;
        render_main(&job);
    }
    return job.rc;
}

static void seterr(char *err, size_t errlen, const char *msg) {
    if (err && errlen) snprintf(err, errlen, "%s", msg);
}

int nuage_template_render_json(const nuage_template *t, const void *messages, const void *tools,
                               const void *vars, const nuage_template_input *in, char **out,
                               size_t *out_len, char *err, size_t errlen) {
    *out = NULL;
    if (out_len) *out_len = 0;
    if (err && errlen) err[0] = 0;
    const json_t *jm = messages, *jt = tools, *jvars = vars;
    if (!t || !in || !jm || !json_is_array(jm)) {
        seterr(err, errlen, "messages must be a JSON array");
        return NUAGE_E_INVAL;
    }
    if (jvars && !json_is_object(jvars) && !json_is_null(jvars)) {
        seterr(err, errlen, "variables must be a JSON object");
        return NUAGE_E_INVAL;
    }
    if (in->bos_token && !nuage__utf8_valid(in->bos_token, strlen(in->bos_token))) {
        seterr(err, errlen, "bos_token is not valid UTF-8");
        return NUAGE_E_INVAL;
    }
    if (in->eos_token && !nuage__utf8_valid(in->eos_token, strlen(in->eos_token))) {
        seterr(err, errlen, "eos_token is not valid UTF-8");
        return NUAGE_E_INVAL;
    }
    jctx c = {.err = err, .errlen = errlen};
    if (in->now >= 0) {
        c.now = in->now;
        c.now_utc = true;
    } else {
        const char *sde = getenv("SOURCE_DATE_EPOCH");
        char *end = NULL;
        long long e = sde && *sde ? strtoll(sde, &end, 10) : -1;
        if (sde && *sde && end && !*end && e >= 0) {
            c.now = e;
            c.now_utc = true;
        } else {
            c.now = (int64_t)time(NULL);
            c.now_utc = false;
        }
    }
    jscope *g = nuage__jscope_new(NULL);
    if (!g) { seterr(err, errlen, "out of memory"); return NUAGE_E_NOMEM; }
    c.globals = g;
    int rc = 0;
    if (!rc) rc = set_global(g, "range", JG_RANGE);
    if (!rc) rc = set_global(g, "namespace", JG_NAMESPACE);
    if (!rc) rc = set_global(g, "dict", JG_DICT);
    if (!rc) rc = set_global(g, "raise_exception", JG_RAISE);
    if (!rc) rc = set_global(g, "strftime_now", JG_STRFTIME);
    if (!rc) rc = set_json(g, "messages", jm);
    if (!rc) rc = jt ? set_json(g, "tools", jt) : nuage__jscope_set(g, "tools", jv_none());
    if (!rc) rc = nuage__jscope_set(g, "documents", jv_none());
    if (!rc) rc = nuage__jscope_set(g, "add_generation_prompt", jv_bool(in->add_generation_prompt));
    if (!rc && in->bos_token) rc = set_str(g, "bos_token", in->bos_token);
    if (!rc && in->eos_token) rc = set_str(g, "eos_token", in->eos_token);
    if (!rc && jvars && json_is_object(jvars)) {
        const char *key;
        json_t *val;
        /* scope names must outlive the render: the keys live in jvars */
        json_object_foreach((json_t *)jvars, key, val) {
            if ((rc = set_json(g, key, val))) break;
        }
    }
    if (rc) {
        nuage__jscope_unref(g);
        seterr(err, errlen, rc == NUAGE_E_NOMEM ? "out of memory" : "invalid JSON input (not UTF-8)");
        return rc;
    }
    jbuf b = {0};
    int erc = run_render(&c, t, g, &b);
    nuage__jctx_release(&c);
    nuage__jscope_unref(g);
    if (erc < 0 || c.rc) {
        nuage__jbuf_free(&b);
        return c.rc ? c.rc : NUAGE_E_TEMPLATE;
    }
    if (!b.p) {
        b.p = malloc(1);
        if (!b.p) { seterr(err, errlen, "out of memory"); return NUAGE_E_NOMEM; }
        b.p[0] = 0;
    }
    *out = b.p;
    if (out_len) *out_len = b.n;
    return 0;
}

static json_t *load(const char *s, const char *what, char *err, size_t errlen) {
    json_error_t je;
    json_t *j = json_loads(s, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
    if (!j && err && errlen) snprintf(err, errlen, "%s: invalid JSON at line %d: %s", what, je.line, je.text);
    return j;
}

int nuage_template_render(const nuage_template *t, const nuage_template_input *in, char **out,
                          size_t *out_len, char *err, size_t errlen) {
    *out = NULL;
    if (out_len) *out_len = 0;
    if (!in || !in->messages_json) {
        seterr(err, errlen, "messages are required");
        return NUAGE_E_INVAL;
    }
    json_t *m = load(in->messages_json, "messages", err, errlen), *tl = NULL, *v = NULL;
    int rc = NUAGE_E_INVAL;
    if (!m) goto fail;
    if (in->tools_json && !(tl = load(in->tools_json, "tools", err, errlen))) goto fail;
    if (in->vars_json && !(v = load(in->vars_json, "variables", err, errlen))) goto fail;
    if (tl && json_is_null(tl)) { json_decref(tl); tl = NULL; }
    rc = nuage_template_render_json(t, m, tl, v, in, out, out_len, err, errlen);
fail:
    json_decref(m);
    json_decref(tl);
    json_decref(v);
    return rc;
}

/* ---- traits ---------------------------------------------------------------- */

static const char *find_n(const char *s, size_t n, const char *needle, size_t from) {
    size_t k = strlen(needle);
    for (size_t i = from; i + k <= n; i++)
        if (!memcmp(s + i, needle, k)) return s + i;
    return NULL;
}

static size_t skip_ws(const char *s, size_t n, size_t i) {
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) i++;
    return i;
}

/* After the identifier "content" / "arguments" at s[i..): skip the rest of
 * a subscript ("']" or "\"]") and blanks; index of what follows. */
static size_t after_ident(const char *s, size_t n, size_t i) {
    if (i < n && (s[i] == '\'' || s[i] == '"')) i++;
    if (i < n && s[i] == ']') i++;
    return skip_ws(s, n, i);
}

nuage_template_traits nuage_template_traits_scan(const char *src, size_t len) {
    nuage_template_traits tr = {0};
    if (!src) return tr;
    tr.developer_role = find_n(src, len, "developer", 0) != NULL;
    for (const char *p = src; (p = find_n(src, len, "content", (size_t)(p - src))); p++) {
        /* the field itself (x.content, x['content']), not reasoning_content */
        char prev = p > src ? p[-1] : 0;
        if (prev != '.' && prev != '\'' && prev != '"') continue;
        size_t i = after_ident(src, len, (size_t)(p - src) + 7);
        if (len - i >= 7 && !memcmp(src + i, "is none", 7)) tr.content_none = true;
        if (len - i >= 11 && !memcmp(src + i, "is not none", 11)) tr.content_none = true;
    }
    for (const char *p = src; (p = find_n(src, len, "arguments", (size_t)(p - src))); p++) {
        size_t i = after_ident(src, len, (size_t)(p - src) + 9);
        if (i < len && src[i] == '+' && (i + 1 >= len || src[i + 1] != '}')) tr.args_string = true;
    }
    /* message.thinking, "thinking" in message, message['thinking'] -- not a
     * plain `thinking` variable (DeepSeek V3.1's switch) */
    tr.thinking_field = find_n(src, len, ".thinking", 0) || find_n(src, len, "\"thinking\" in", 0) ||
                        find_n(src, len, "'thinking' in", 0) || find_n(src, len, "['thinking']", 0);
    tr.effort_var = find_n(src, len, "reasoning_effort", 0) != NULL;
    return tr;
}

const nuage_template_traits *nuage_template_traits_of(const nuage_template *t) {
    static const nuage_template_traits none = {0};
    return t ? &t->traits : &none;
}

const char *nuage_template_chatml(void) {
    return "{%- for message in messages -%}\n"
           "{{- '<|im_start|>' + message['role'] + '\\n' -}}\n"
           "{%- if message['content'] is string -%}\n"
           "{{- message['content'] -}}\n"
           "{%- elif message['content'] is iterable -%}\n"
           "{%- for part in message['content'] -%}\n"
           "{%- if part['type'] == 'text' -%}{{- part['text'] -}}{%- endif -%}\n"
           "{%- endfor -%}\n"
           "{%- endif -%}\n"
           "{{- '<|im_end|>\\n' -}}\n"
           "{%- endfor -%}\n"
           "{%- if add_generation_prompt -%}\n"
           "{{- '<|im_start|>assistant\\n' -}}\n"
           "{%- endif -%}\n";
}
