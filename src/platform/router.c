/*
 * router.c - the routing policy of router deployments (router.h), its
 * decision counters, and the registry hook that applies it.
 *
 * Why a score and not a classifier model: the decision has to be made in
 * microseconds, before any model runs, on the HTTP thread, and has to be
 * explainable and tunable by an operator. A handful of features that
 * correlate with "needs reasoning" -- long prompts, code, mathematics,
 * deep conversations, words such as "prove" or "step by step" -- weighed
 * and compared with a threshold does that; explicit signals from the
 * client (reasoning_effort, a model hint) always win over it.
 *
 * Feature extraction works on bytes (UTF-8 passes through untouched):
 *   - prompt length: bytes of every message's text (string content or
 *     text parts; the completions `prompt` string or strings); it
 *     contributes weight * min(length / unit, cap);
 *   - code (last user message): a ``` fence, or at least two distinct
 *     code signals (a line starting with a keyword such as "def ",
 *     "#include", "function ", or tokens such as "();", "=>", "std::");
 *   - mathematics (last user message): a strong sign (LaTeX commands, $$,
 *     mathematical symbols such as the integral or square-root signs), or
 *     two weak ones of different kinds (a mathematical word, x^2-style
 *     exponents, an arithmetic expression, an equals sign beside one);
 *   - depth: user turns; each turn after the first adds weight;
 *   - keywords (last user message): case-insensitive whole-word matches,
 *     each keyword counted once, its weight added (weights may be
 *     negative: "quick" can push towards the fast model).
 *
 * Defaults: threshold 1.0, score_effort "medium"; weights length 0.5 per
 * 2000 bytes up to 2 units, code 1.0, math 1.0, depth 0.25; keywords
 * below (replaced as a whole by a configured "keywords" object); the
 * effort and hint tables below are extended / overridden entry by entry
 * by the configuration.
 */
#include "platform/router.h"

#include <ctype.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "nuage/nuage.h"

typedef struct {
    char name[16];
    int target;
} nuage__rt_level;

typedef struct {
    char name[32];
    int target;
} nuage__rt_hint;

typedef struct {
    char *word;       /* lowercase, owned */
    size_t len;
    double weight;
} nuage__rt_kw;

struct nuage_router_config {
    char *target[2];                      /* owned names */
    nuage__rt_level effort[16];
    int n_effort;
    nuage__rt_hint hints[NUAGE_ROUTER_MAX_HINTS];
    int n_hints;
    double threshold;
    char score_effort[16];
    double w_length, length_unit, length_cap, w_code, w_math, w_depth;
    nuage__rt_kw kw[NUAGE_ROUTER_MAX_KEYWORDS];
    int n_kw;
};

static const struct { const char *name; int target; } nuage__rt_default_effort[] = {
    {"none", NUAGE_ROUTE_FAST},       {"minimal", NUAGE_ROUTE_FAST},
    {"low", NUAGE_ROUTE_REASONING},   {"medium", NUAGE_ROUTE_REASONING},
    {"high", NUAGE_ROUTE_REASONING},
};

static const struct { const char *name; int target; } nuage__rt_default_hints[] = {
    {"fast", NUAGE_ROUTE_FAST},           {"instant", NUAGE_ROUTE_FAST},
    {"mini", NUAGE_ROUTE_FAST},           {"nano", NUAGE_ROUTE_FAST},
    {"chat", NUAGE_ROUTE_FAST},           {"thinking", NUAGE_ROUTE_REASONING},
    {"think", NUAGE_ROUTE_REASONING},     {"reasoning", NUAGE_ROUTE_REASONING},
    {"pro", NUAGE_ROUTE_REASONING},       {"deep", NUAGE_ROUTE_REASONING},
};

static const struct { const char *word; double weight; } nuage__rt_default_kw[] = {
    {"step by step", 1.0}, {"prove", 1.0},    {"proof", 1.0},     {"think carefully", 1.0},
    {"derive", 0.75},      {"analyze", 0.5},  {"analyse", 0.5},   {"reason", 0.5},
    {"debug", 0.5},        {"optimize", 0.5}, {"explain why", 0.5}, {"why", 0.25},
};

static void nuage__rt_err(char *err, size_t errlen, const char *fmt, ...) {
    if (!err || !errlen) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static int nuage__rt_role(const char *s) {
    if (!s) return -1;
    if (!strcmp(s, "fast")) return NUAGE_ROUTE_FAST;
    if (!strcmp(s, "reasoning")) return NUAGE_ROUTE_REASONING;
    return -1;
}

static const char *nuage__rt_role_name(int t) { return t == NUAGE_ROUTE_REASONING ? "reasoning" : "fast"; }

static const char *nuage__rt_rule_name(int r) {
    return r == NUAGE_ROUTE_BY_EFFORT ? "effort" : r == NUAGE_ROUTE_BY_HINT ? "hint" : "score";
}

void nuage_router_config_free(nuage_router_config *c) {
    if (!c) return;
    free(c->target[0]);
    free(c->target[1]);
    for (int i = 0; i < c->n_kw; i++) free(c->kw[i].word);
    free(c);
}

const char *nuage_router_target_name(const nuage_router_config *c, nuage_route_target t) {
    return c->target[t == NUAGE_ROUTE_REASONING ? 1 : 0];
}

/* Set level name -> target in a table (override or append). */
static int nuage__rt_set_level(nuage__rt_level *tab, int *n, int cap, const char *name, int target) {
    for (int i = 0; i < *n; i++)
        if (!strcasecmp(tab[i].name, name)) {
            tab[i].target = target;
            return 0;
        }
    if (*n >= cap || strlen(name) >= sizeof tab[0].name || !*name) return NUAGE_E_INVAL;
    snprintf(tab[*n].name, sizeof tab[0].name, "%s", name);
    tab[(*n)++].target = target;
    return 0;
}

static int nuage__rt_set_hint(nuage_router_config *c, const char *name, int target) {
    for (int i = 0; i < c->n_hints; i++)
        if (!strcasecmp(c->hints[i].name, name)) {
            c->hints[i].target = target;
            return 0;
        }
    if (c->n_hints >= NUAGE_ROUTER_MAX_HINTS || strlen(name) >= sizeof c->hints[0].name || !*name)
        return NUAGE_E_INVAL;
    snprintf(c->hints[c->n_hints].name, sizeof c->hints[0].name, "%s", name);
    c->hints[c->n_hints++].target = target;
    return 0;
}

static int nuage__rt_add_kw(nuage_router_config *c, const char *word, double w) {
    size_t n = strlen(word);
    if (c->n_kw >= NUAGE_ROUTER_MAX_KEYWORDS || n == 0 || n > 128) return NUAGE_E_INVAL;
    char *s = malloc(n + 1);
    if (!s) return NUAGE_E_NOMEM;
    for (size_t i = 0; i <= n; i++) s[i] = (char)tolower((unsigned char)word[i]);
    c->kw[c->n_kw].word = s;
    c->kw[c->n_kw].len = n;
    c->kw[c->n_kw++].weight = w;
    return 0;
}

/* A finite number field of obj into *out (absent: unchanged). */
static int nuage__rt_num(const json_t *obj, const char *key, double *out, double lo, const char *path,
                         char *err, size_t errlen) {
    json_t *v = json_object_get(obj, key);
    if (!v) return 0;
    if (!json_is_number(v) || !isfinite(json_number_value(v)) || json_number_value(v) < lo) {
        nuage__rt_err(err, errlen, "router: %s%s must be a number >= %g", path, key, lo);
        return NUAGE_E_INVAL;
    }
    *out = json_number_value(v);
    return 0;
}

int nuage_router_config_parse(const json_t *j, nuage_router_config **out, char *err, size_t errlen) {
    *out = NULL;
    if (!json_is_object(j)) {
        nuage__rt_err(err, errlen, "router: the configuration must be an object");
        return NUAGE_E_INVAL;
    }
    nuage_router_config *c = calloc(1, sizeof *c);
    if (!c) return NUAGE_E_NOMEM;
    int rc = NUAGE_E_INVAL;
    c->threshold = 1.0;
    snprintf(c->score_effort, sizeof c->score_effort, "medium");
    c->w_length = 0.5;
    c->length_unit = 2000;
    c->length_cap = 2;
    c->w_code = 1.0;
    c->w_math = 1.0;
    c->w_depth = 0.25;
    for (size_t i = 0; i < sizeof nuage__rt_default_effort / sizeof *nuage__rt_default_effort; i++)
        nuage__rt_set_level(c->effort, &c->n_effort, 16, nuage__rt_default_effort[i].name,
                            nuage__rt_default_effort[i].target);
    for (size_t i = 0; i < sizeof nuage__rt_default_hints / sizeof *nuage__rt_default_hints; i++)
        nuage__rt_set_hint(c, nuage__rt_default_hints[i].name, nuage__rt_default_hints[i].target);

    const char *key;
    json_t *v;
    json_object_foreach((json_t *)j, key, v) {
        if (!strcmp(key, "targets")) {
            if (!json_is_object(v)) {
                nuage__rt_err(err, errlen, "router: targets must be an object {\"fast\": ..., \"reasoning\": ...}");
                goto fail;
            }
            const char *k2;
            json_t *t;
            json_object_foreach(v, k2, t) {
                int role = nuage__rt_role(k2);
                if (role < 0 || !json_is_string(t) || !json_string_length(t) || json_string_length(t) > 63) {
                    nuage__rt_err(err, errlen, "router: targets.%s must be \"fast\" or \"reasoning\" naming a deployment",
                                  k2);
                    goto fail;
                }
                free(c->target[role]);
                c->target[role] = strdup(json_string_value(t));
                if (!c->target[role]) { rc = NUAGE_E_NOMEM; goto fail; }
            }
        } else if (!strcmp(key, "effort") || !strcmp(key, "hints")) {
            if (!json_is_object(v)) {
                nuage__rt_err(err, errlen, "router: %s must be an object", key);
                goto fail;
            }
            const char *k2;
            json_t *t;
            json_object_foreach(v, k2, t) {
                int role = nuage__rt_role(json_string_value(t));
                int r2 = role < 0 ? NUAGE_E_INVAL
                         : key[0] == 'e' ? nuage__rt_set_level(c->effort, &c->n_effort, 16, k2, role)
                                         : nuage__rt_set_hint(c, k2, role);
                if (r2) {
                    nuage__rt_err(err, errlen, "router: %s.%s must be \"fast\" or \"reasoning\" (or too many entries)",
                                  key, k2);
                    goto fail;
                }
            }
        } else if (!strcmp(key, "threshold")) {
            if (nuage__rt_num(j, key, &c->threshold, -1e9, "", err, errlen)) goto fail;
        } else if (!strcmp(key, "score_effort")) {
            if (!json_is_string(v) || json_string_length(v) >= sizeof c->score_effort) {
                nuage__rt_err(err, errlen, "router: score_effort must be an effort level string");
                goto fail;
            }
            snprintf(c->score_effort, sizeof c->score_effort, "%s", json_string_value(v));
        } else if (!strcmp(key, "weights")) {
            if (!json_is_object(v)) {
                nuage__rt_err(err, errlen, "router: weights must be an object");
                goto fail;
            }
            const char *k2;
            json_t *t;
            json_object_foreach(v, k2, t) {
                double *dst = !strcmp(k2, "length") ? &c->w_length
                              : !strcmp(k2, "length_unit") ? &c->length_unit
                              : !strcmp(k2, "length_cap") ? &c->length_cap
                              : !strcmp(k2, "code") ? &c->w_code
                              : !strcmp(k2, "math") ? &c->w_math
                              : !strcmp(k2, "depth") ? &c->w_depth : NULL;
                if (!dst) {
                    nuage__rt_err(err, errlen, "router: unknown field weights.%s", k2);
                    goto fail;
                }
                double lo = !strcmp(k2, "length_unit") ? 1 : !strcmp(k2, "length_cap") ? 0 : -1e9;
                if (nuage__rt_num(v, k2, dst, lo, "weights.", err, errlen)) goto fail;
            }
        } else if (!strcmp(key, "keywords")) {
            if (!json_is_object(v)) {
                nuage__rt_err(err, errlen, "router: keywords must be an object {\"word\": weight}");
                goto fail;
            }
            const char *k2;
            json_t *t;
            json_object_foreach(v, k2, t) {
                if (!json_is_number(t) || !isfinite(json_number_value(t)) ||
                    nuage__rt_add_kw(c, k2, json_number_value(t))) {
                    nuage__rt_err(err, errlen, "router: keywords.%s must be a number (at most %d keywords)", k2,
                                  NUAGE_ROUTER_MAX_KEYWORDS);
                    goto fail;
                }
            }
        } else {
            nuage__rt_err(err, errlen, "router: unknown field '%s'", key);
            goto fail;
        }
    }
    if (!c->target[0] || !c->target[1]) {
        nuage__rt_err(err, errlen, "router: targets needs both \"fast\" and \"reasoning\"");
        goto fail;
    }
    if (!json_object_get(j, "keywords"))
        for (size_t i = 0; i < sizeof nuage__rt_default_kw / sizeof *nuage__rt_default_kw; i++)
            if ((rc = nuage__rt_add_kw(c, nuage__rt_default_kw[i].word, nuage__rt_default_kw[i].weight)))
                goto fail;
    *out = c;
    return 0;
fail:
    nuage_router_config_free(c);
    return rc;
}

/* ---- features ------------------------------------------------------------------------ */

/* Calls f on each text piece of content. */
static void nuage__rt_each_text(const json_t *content, void (*f)(void *, const char *, size_t), void *ud) {
    if (json_is_string(content)) {
        f(ud, json_string_value(content), json_string_length(content));
    } else if (json_is_array(content)) {
        size_t i;
        json_t *p;
        json_array_foreach(content, i, p) {
            if (json_is_string(p)) {
                f(ud, json_string_value(p), json_string_length(p));
                continue;
            }
            json_t *t = json_object_get(p, "text");
            if (json_is_string(t)) f(ud, json_string_value(t), json_string_length(t));
        }
    }
}

static void nuage__rt_count(void *ud, const char *s, size_t n) {
    (void)s;
    *(size_t *)ud += n;
}

typedef struct {
    char *buf;
    size_t len, cap;
    bool oom;
} nuage__rt_buf;

static void nuage__rt_append(void *ud, const char *s, size_t n) {
    nuage__rt_buf *b = ud;
    if (b->oom) return;
    if (b->len + n + 2 > b->cap) {
        size_t cap = (b->len + n + 2) * 2;
        char *nb = realloc(b->buf, cap);
        if (!nb) { b->oom = true; return; }
        b->buf = nb;
        b->cap = cap;
    }
    memcpy(b->buf + b->len, s, n);
    b->len += n;
    b->buf[b->len++] = '\n';
    b->buf[b->len] = 0;
}

static bool nuage__rt_isword(unsigned char ch) { return isalnum(ch) || ch == '_' || ch >= 0x80; }

/* Lowercase copy of s[0..n). */
static char *nuage__rt_lower(const char *s, size_t n) {
    char *l = malloc(n + 1);
    if (!l) return NULL;
    for (size_t i = 0; i < n; i++) l[i] = (char)tolower((unsigned char)s[i]);
    l[n] = 0;
    return l;
}

/* Whole-word occurrence of w (lowercase) in lower-cased text t. */
static bool nuage__rt_has_word(const char *t, size_t tn, const char *w, size_t wn) {
    for (const char *p = t; (p = strstr(p, w)) != NULL; p++) {
        size_t at = (size_t)(p - t);
        bool left = at == 0 || !nuage__rt_isword((unsigned char)t[at - 1]) || !nuage__rt_isword((unsigned char)w[0]);
        bool right = at + wn >= tn || !nuage__rt_isword((unsigned char)t[at + wn]) ||
                     !nuage__rt_isword((unsigned char)w[wn - 1]);
        if (left && right) return true;
    }
    return false;
}

static bool nuage__rt_detect_code(const char *t, size_t n) {
    if (strstr(t, "```")) return true;
    static const char *line_starts[] = {"def ", "class ", "import ", "from ", "#include", "function ",
                                        "fn ", "func ", "public ", "private ", "return ", "for (",
                                        "while (", "if (", "int ", "var ", "let ", "const ",
                                        "select ", "package ", "#!/", "struct ", "void "};
    static const char *tokens[] = {"();", "{\n", "};", "=>", "std::", "console.log", "printf(",
                                   "</", "/>", "!=", "&&", "||", "+=", "++"};
    int signals = 0;
    bool seen_start[sizeof line_starts / sizeof *line_starts] = {0};
    /* line starts (case-insensitive for SQL) */
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && (t[j] == ' ' || t[j] == '\t')) j++;
        for (size_t k = 0; k < sizeof line_starts / sizeof *line_starts; k++) {
            size_t l = strlen(line_starts[k]);
            if (!seen_start[k] && j + l <= n && !strncasecmp(t + j, line_starts[k], l)) {
                seen_start[k] = true;
                signals++;
            }
        }
        const char *nl = memchr(t + i, '\n', n - i);
        if (!nl) break;
        i = (size_t)(nl - t) + 1;
    }
    for (size_t k = 0; k < sizeof tokens / sizeof *tokens; k++)
        if (strstr(t, tokens[k])) signals++;
    return signals >= 2;
}

static bool nuage__rt_detect_math(const char *t, size_t n, const char *lower) {
    static const char *strong[] = {"$$", "\\frac", "\\int", "\\sum", "\\sqrt", "\\begin{equation",
                                   "\\lim", "\\partial", "\xe2\x88\xab" /* integral */,
                                   "\xe2\x88\x91" /* n-ary sum */, "\xe2\x88\x9a" /* square root */,
                                   "\xe2\x88\x82" /* partial */, "\xe2\x88\x9e" /* infinity */,
                                   "\xe2\x89\xa4" /* <= */, "\xe2\x89\xa5" /* >= */, "\xcf\x80" /* pi */};
    for (size_t k = 0; k < sizeof strong / sizeof *strong; k++)
        if (strstr(t, strong[k])) return true;
    static const char *words[] = {"integral", "derivative", "equation", "theorem", "lemma",
                                  "probability", "matrix", "polynomial", "eigenvalue", "prime number",
                                  "modulo", "solve for", "logarithm", "factorial", "inequality"};
    int kinds = 0;
    for (size_t k = 0; k < sizeof words / sizeof *words; k++)
        if (nuage__rt_has_word(lower, n, words[k], strlen(words[k]))) {
            kinds++;
            break;
        }
    bool expo = false, arith = false;
    for (size_t i = 1; i + 1 < n; i++) {
        unsigned char a = (unsigned char)t[i - 1], b = (unsigned char)t[i + 1];
        if (t[i] == '^' && isalnum(a) && isalnum(b)) expo = true;
    }
    /* arithmetic: alnum, spaces, operator, spaces, digit */
    for (size_t i = 0; i < n && !arith; i++) {
        if (!isalnum((unsigned char)t[i])) continue;
        size_t j = i + 1;
        while (j < n && t[j] == ' ') j++;
        if (j >= n || !strchr("+-*/", t[j])) continue;
        j++;
        while (j < n && t[j] == ' ') j++;
        /* left operand: a digit, or a one-letter variable ("x", "3x") */
        bool left = isdigit((unsigned char)t[i]) ||
                    (isalpha((unsigned char)t[i]) && (i == 0 || !isalpha((unsigned char)t[i - 1])));
        if (j < n && isdigit((unsigned char)t[j]) && left) arith = true;
    }
    kinds += expo + arith;
    if (arith && memchr(t, '=', n)) kinds++;
    return kinds >= 2;
}

/* Effort requested by the body: NULL when none, "" (not a string) on a
 * wrong type. */
static const char *nuage__rt_effort_of(const json_t *req) {
    json_t *e = json_object_get(req, "reasoning_effort");
    if (!e || json_is_null(e)) {
        json_t *r = json_object_get(req, "reasoning");
        e = json_is_object(r) ? json_object_get(r, "effort") : NULL;
    }
    if (!e || json_is_null(e)) return NULL;
    return json_is_string(e) ? json_string_value(e) : "";
}

int nuage_router_decide(const nuage_router_config *c, const json_t *request, const char *router_name,
                        nuage_router_decision *out) {
    memset(out, 0, sizeof *out);
    const json_t *msgs = json_object_get(request, "messages");
    /* --- features (always computed, for the reasons and the metrics) --- */
    nuage__rt_buf last = {0};
    if (json_is_array(msgs)) {
        size_t i;
        json_t *m;
        const json_t *last_user = NULL;
        json_array_foreach(msgs, i, m) {
            json_t *content = json_object_get(m, "content");
            nuage__rt_each_text(content, nuage__rt_count, &out->prompt_chars);
            const char *role = json_string_value(json_object_get(m, "role"));
            if (role && !strcmp(role, "user")) {
                out->depth++;
                last_user = content;
            }
        }
        if (last_user) nuage__rt_each_text(last_user, nuage__rt_append, &last);
    } else {
        json_t *p = json_object_get(request, "prompt");
        if (json_is_string(p) || json_is_array(p)) {
            nuage__rt_each_text(p, nuage__rt_count, &out->prompt_chars);
            nuage__rt_each_text(p, nuage__rt_append, &last);
            out->depth = 1;
        }
    }
    if (last.oom) {
        free(last.buf);
        return NUAGE_E_NOMEM;
    }
    char kwlist[120] = "";
    size_t kwlen = 0;
    if (last.len > 0) {
        char *lower = nuage__rt_lower(last.buf, last.len);
        if (!lower) {
            free(last.buf);
            return NUAGE_E_NOMEM;
        }
        out->has_code = nuage__rt_detect_code(last.buf, last.len);
        out->has_math = nuage__rt_detect_math(last.buf, last.len, lower);
        for (int k = 0; k < c->n_kw; k++)
            if (nuage__rt_has_word(lower, last.len, c->kw[k].word, c->kw[k].len)) {
                out->keyword_score += c->kw[k].weight;
                int w = snprintf(kwlist + kwlen, sizeof kwlist - kwlen, "%s%s", kwlen ? ", " : "", c->kw[k].word);
                if (w > 0) kwlen = kwlen + (size_t)w < sizeof kwlist ? kwlen + (size_t)w : sizeof kwlist - 1;
            }
        free(lower);
    }
    free(last.buf);
    double units = (double)out->prompt_chars / c->length_unit;
    if (units > c->length_cap) units = c->length_cap;
    double s_len = c->w_length * units;
    double s_code = out->has_code ? c->w_code : 0, s_math = out->has_math ? c->w_math : 0;
    double s_depth = out->depth > 1 ? c->w_depth * (out->depth - 1) : 0;
    out->score = s_len + s_code + s_math + s_depth + out->keyword_score;

    /* --- 1. explicit effort --- */
    const char *effort = nuage__rt_effort_of(request);
    if (effort) {
        for (int i = 0; i < c->n_effort; i++)
            if (!strcasecmp(c->effort[i].name, effort)) {
                out->target = (nuage_route_target)c->effort[i].target;
                out->rule = NUAGE_ROUTE_BY_EFFORT;
                snprintf(out->effort, sizeof out->effort, "%s", c->effort[i].name);
                goto chosen_effort;
            }
        snprintf(out->reasons, sizeof out->reasons, "unknown reasoning_effort '%.40s'", effort);
        return NUAGE_E_INVAL;
    chosen_effort:
        snprintf(out->reasons, sizeof out->reasons, "reasoning_effort=%s", out->effort);
        goto done;
    }
    /* --- 2. model hint --- */
    const char *model = json_string_value(json_object_get(request, "model"));
    if (model) {
        for (int t = 0; t < 2; t++)
            if (!strcmp(model, c->target[t])) {
                out->target = (nuage_route_target)t;
                out->rule = NUAGE_ROUTE_BY_HINT;
                snprintf(out->reasons, sizeof out->reasons, "model names target %s", c->target[t]);
                goto done;
            }
        const char *colon = strrchr(model, ':');
        size_t rn = router_name ? strlen(router_name) : 0;
        bool ours = colon && (!router_name || ((size_t)(colon - model) == rn && !strncmp(model, router_name, rn)));
        if (ours) {
            const char *hint = colon + 1;
            for (int i = 0; i < c->n_hints; i++)
                if (!strcasecmp(c->hints[i].name, hint)) {
                    out->target = (nuage_route_target)c->hints[i].target;
                    out->rule = NUAGE_ROUTE_BY_HINT;
                    snprintf(out->reasons, sizeof out->reasons, "model hint '%s'", c->hints[i].name);
                    goto done;
                }
        }
    }
    /* --- 3. score --- */
    out->rule = NUAGE_ROUTE_BY_SCORE;
    out->target = out->score >= c->threshold ? NUAGE_ROUTE_REASONING : NUAGE_ROUTE_FAST;
    {
        int w = snprintf(out->reasons, sizeof out->reasons, "score %.2f %s %.2f: length %+.2f", out->score,
                         out->score >= c->threshold ? ">=" : "<", c->threshold, s_len);
        size_t at = w > 0 && (size_t)w < sizeof out->reasons ? (size_t)w : sizeof out->reasons - 1;
#define NUAGE__RT_ADD(...)                                                                   \
    do {                                                                                     \
        int w2 = snprintf(out->reasons + at, sizeof out->reasons - at, __VA_ARGS__);         \
        if (w2 > 0) at = at + (size_t)w2 < sizeof out->reasons ? at + (size_t)w2 : sizeof out->reasons - 1; \
    } while (0)
        if (out->has_code) NUAGE__RT_ADD(", code %+.2f", s_code);
        if (out->has_math) NUAGE__RT_ADD(", math %+.2f", s_math);
        if (s_depth != 0) NUAGE__RT_ADD(", depth %d %+.2f", out->depth, s_depth);
        if (kwlen) NUAGE__RT_ADD(", keywords %+.2f (%s)", out->keyword_score, kwlist);
#undef NUAGE__RT_ADD
    }
    if (out->target == NUAGE_ROUTE_REASONING) snprintf(out->effort, sizeof out->effort, "%s", c->score_effort);
done:
    out->deployment = c->target[out->target];
    return 0;
}

/* ---- metrics --------------------------------------------------------------------------- */

#define NUAGE__RT_MAX_COUNTERS 256

typedef struct {
    char router[64], deployment[64];
    int target, rule;
    uint64_t n;
} nuage__rt_counter;

static pthread_mutex_t nuage__rt_mu = PTHREAD_MUTEX_INITIALIZER;
static nuage__rt_counter nuage__rt_counters[NUAGE__RT_MAX_COUNTERS];
static int nuage__rt_n_counters;

void nuage_router_record(const char *router, const nuage_router_decision *d) {
    if (!d || !d->deployment) return;
    if (!router) router = "";
    pthread_mutex_lock(&nuage__rt_mu);
    nuage__rt_counter *c = NULL;
    for (int i = 0; i < nuage__rt_n_counters && !c; i++) {
        nuage__rt_counter *e = &nuage__rt_counters[i];
        if (e->rule == (int)d->rule && e->target == (int)d->target && !strcmp(e->router, router) &&
            !strcmp(e->deployment, d->deployment))
            c = e;
    }
    if (!c && nuage__rt_n_counters < NUAGE__RT_MAX_COUNTERS) {
        c = &nuage__rt_counters[nuage__rt_n_counters++];
        snprintf(c->router, sizeof c->router, "%s", router);
        snprintf(c->deployment, sizeof c->deployment, "%s", d->deployment);
        c->target = (int)d->target;
        c->rule = (int)d->rule;
        c->n = 0;
    }
    if (c) c->n++;
    pthread_mutex_unlock(&nuage__rt_mu);
}

uint64_t nuage_router_count(const char *router, const char *deployment, int rule) {
    uint64_t n = 0;
    pthread_mutex_lock(&nuage__rt_mu);
    for (int i = 0; i < nuage__rt_n_counters; i++) {
        const nuage__rt_counter *e = &nuage__rt_counters[i];
        if (!strcmp(e->router, router) && !strcmp(e->deployment, deployment) && (rule < 0 || e->rule == rule))
            n += e->n;
    }
    pthread_mutex_unlock(&nuage__rt_mu);
    return n;
}

void nuage_router_metrics_reset(void) {
    pthread_mutex_lock(&nuage__rt_mu);
    nuage__rt_n_counters = 0;
    pthread_mutex_unlock(&nuage__rt_mu);
}

/* Label value with \ " and newline escaped. */
static void nuage__rt_label(char *dst, size_t cap, const char *s) {
    size_t k = 0;
    for (; *s && k + 3 < cap; s++) {
        if (*s == '\\' || *s == '"') dst[k++] = '\\';
        if (*s == '\n') {
            dst[k++] = '\\';
            dst[k++] = 'n';
            continue;
        }
        dst[k++] = *s;
    }
    dst[k] = 0;
}

size_t nuage_router_metrics_text(char *buf, size_t cap) {
    size_t need = 0;
#define NUAGE__RT_OUT(...)                                                              \
    do {                                                                                \
        int w = snprintf(buf && need < cap ? buf + need : NULL, buf && need < cap ? cap - need : 0, \
                         __VA_ARGS__);                                                  \
        if (w > 0) need += (size_t)w;                                                   \
    } while (0)
    NUAGE__RT_OUT("# HELP nuage_router_decisions_total Requests routed by router deployments, "
                  "by chosen target and deciding rule.\n"
                  "# TYPE nuage_router_decisions_total counter\n");
    pthread_mutex_lock(&nuage__rt_mu);
    for (int i = 0; i < nuage__rt_n_counters; i++) {
        const nuage__rt_counter *e = &nuage__rt_counters[i];
        char r[140], d[140];
        nuage__rt_label(r, sizeof r, e->router);
        nuage__rt_label(d, sizeof d, e->deployment);
        NUAGE__RT_OUT("nuage_router_decisions_total{router=\"%s\",target=\"%s\",deployment=\"%s\",rule=\"%s\"} %llu\n",
                      r, nuage__rt_role_name(e->target), d, nuage__rt_rule_name(e->rule),
                      (unsigned long long)e->n);
    }
    pthread_mutex_unlock(&nuage__rt_mu);
#undef NUAGE__RT_OUT
    return need;
}

/* ---- the registry hook ------------------------------------------------------------------ */

int nuage_router_route_ex(const nuage_deployment *router, json_t *body, nuage_router_decision *d,
                          char *out, size_t cap, char *err, size_t errlen) {
    nuage_router_decision local;
    if (!d) d = &local;
    if (!router || !router->cfg.router) {
        nuage__rt_err(err, errlen, "deployment '%s' has no router configuration", router ? router->name : "?");
        return NUAGE_E_INVAL;
    }
    nuage_router_config *c;
    int rc = nuage_router_config_parse(router->cfg.router, &c, err, errlen);
    if (rc) return rc;
    rc = nuage_router_decide(c, body, router->name, d);
    if (rc) {
        nuage__rt_err(err, errlen, "%s", d->reasons[0] ? d->reasons : "routing failed");
        nuage_router_config_free(c);
        return rc;
    }
    nuage_router_record(router->name, d);
    if (strlen(d->deployment) >= cap) {
        nuage__rt_err(err, errlen, "deployment name too long");
        nuage_router_config_free(c);
        return NUAGE_E_INVAL;
    }
    snprintf(out, cap, "%s", d->deployment);
    if (d->effort[0] && json_is_object(body) && !nuage__rt_effort_of(body))
        json_object_set_new(body, "reasoning_effort", json_string(d->effort));
    /* d->deployment points into c: re-point it at the caller's copy. */
    d->deployment = out;
    nuage_router_config_free(c);
    return 0;
}

int nuage_router_route(void *ud, const nuage_deployment *router, json_t *body, int64_t tenant_id,
                       char *out, size_t cap, char *err, size_t errlen) {
    (void)ud;
    (void)tenant_id;
    return nuage_router_route_ex(router, body, NULL, out, cap, err, errlen);
}

nuage_router_hook nuage_router_default_hook(void) {
    nuage_router_hook h = {nuage_router_route, NULL};
    return h;
}
