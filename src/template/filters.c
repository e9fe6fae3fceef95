/*
 * filters.c - Jinja2's builtin filters and tests.
 *
 * Each filter follows jinja2/filters.py (3.1) on the values a chat
 * template sees: arguments bind like the Python signature (positional or
 * by keyword), Undefined is handled as Jinja2 handles it (it prints as "",
 * iterates as empty, |default replaces it, |tojson rejects it), strings
 * are converted with str() where Jinja2 calls soft_str. Filters that
 * return generators in Jinja2 (map, select*, reject*, unique, batch,
 * items, reverse) return lists flagged JL_GEN, which behave like
 * generators where templates can tell: always true (so
 * `{% if xs|select(...) %}` holds even when nothing is selected), no
 * length, not subscriptable. They are computed eagerly, but an error inside
 * one is kept in the result and raised only when it is consumed (see
 * run_lazy). |tojson is Hugging Face's
 * override (json.dumps, no HTML escaping, ensure_ascii=False), see
 * tojson.c.
 *
 * Tests (`x is defined`, `is string`, `is sequence`, ...) are the Jinja2
 * ones with Python's type notions: bool counts as a number but not as an
 * integer, `sequence` and `iterable` hold for strings, lists, dicts and
 * undefined, `mapping` only for dicts.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "template/jinja.h"

typedef int (*filter_fn)(jctx *c, int line, jval v, const jargs *a, jval *out);

static int nomem(jctx *c, int line) { return nuage__jfail_code(c, line, NUAGE_E_NOMEM); }

static int str_out(jctx *c, int line, jbuf *b, jval *out) {
    if (nuage__jwork(c, line, b->n) < 0) { nuage__jbuf_free(b); return -1; }
    *out = nuage__jv_str(b->p ? b->p : "", b->n);
    nuage__jbuf_free(b);
    return out->t == JV_MISSING ? nomem(c, line) : 0;
}

/* soft_str(v): the str() of v; undefined -> "". */
static int to_str(jctx *c, int line, jval v, jval *out) {
    jstr *s = nuage__jto_str(c, line, v);
    if (!s) return -1;
    *out = jv_strv(s);
    return 0;
}

static int want_int(jctx *c, int line, const char *what, jval v, int64_t dflt, int64_t *out) {
    if (v.t == JV_MISSING || v.t == JV_NONE) { *out = dflt; return 0; }
    if (v.t == JV_INT) { *out = v.u.i; return 0; }
    if (v.t == JV_BOOL) { *out = v.u.b; return 0; }
    return nuage__jfail(c, line, "%s must be an integer, not %s", what, nuage__jv_typename(v));
}

/* make_attrgetter: item lookup along "a.b.0"; default replaces undefined. */
static int attr_get(jctx *c, int line, jval item, jval attr, jval dflt, jval *out) {
    jval cur = jv_ref(item);
    if (attr.t == JV_INT) {
        jval r;
        int rc = nuage__jgetattr(c, line, cur, attr, false, &r);
        jv_unref(cur);
        if (rc < 0) return -1;
        cur = r;
    } else if (attr.t == JV_STR) {
        const char *s = attr.u.s->s, *end = s + attr.u.s->len;
        while (s <= end) {
            const char *dot = memchr(s, '.', (size_t)(end - s));
            size_t n = dot ? (size_t)(dot - s) : (size_t)(end - s);
            jval key;
            bool digits = n > 0;
            for (size_t i = 0; i < n; i++) if (s[i] < '0' || s[i] > '9') digits = false;
            if (digits && n < 18) key = jv_int(strtoll(s, NULL, 10));
            else { key = nuage__jv_str(s, n); if (key.t == JV_MISSING) { jv_unref(cur); return nomem(c, line); } }
            jval r;
            int rc = nuage__jgetattr(c, line, cur, key, false, &r);
            jv_unref(key);
            jv_unref(cur);
            if (rc < 0) return -1;
            cur = r;
            if (dflt.t != JV_MISSING && dflt.t != JV_NONE && cur.t == JV_UNDEF) { jv_unref(cur); cur = jv_ref(dflt); }
            if (!dot) break;
            s = dot + 1;
        }
    } else {
        jv_unref(cur);
        return nuage__jfail(c, line, "attribute must be a string or integer");
    }
    *out = cur;
    return 0;
}

/* ignore_case: lower() of strings, other values unchanged. */
static int fold(jctx *c, int line, jval v, bool case_sensitive, jval *out) {
    if (v.t == JV_STR && !case_sensitive) return nuage__jcase(c, line, v.u.s, 1, out);
    *out = jv_ref(v);
    return 0;
}

/* ---- stable sort with fallible comparisons ------------------------------------------------- */
typedef struct { jval key; jval val; } kv;

static int sort_kv(jctx *c, int line, kv *a, size_t n, bool reverse) {
    if (n < 2) return 0;
    kv *tmp = malloc(n * sizeof *tmp);
    if (!tmp) return nomem(c, line);
    int rc = 0;
    for (size_t w = 1; w < n && rc == 0; w *= 2) {
        for (size_t lo = 0; lo < n && rc == 0; lo += 2 * w) {
            size_t mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n;
            size_t i = lo, j = mid, k = lo;
            while (i < mid && j < hi) {
                int r;
                if (nuage__jv_cmp(a[j].key, a[i].key, &r) < 0) {
                    rc = nuage__jfail(c, line, "'<' not supported between instances of '%s' and '%s'",
                                      nuage__jv_typename(a[j].key), nuage__jv_typename(a[i].key));
                    break;
                }
                /* take from the right only when strictly before (stable) */
                bool right = reverse ? r > 0 : r < 0;
                tmp[k++] = right ? a[j++] : a[i++];
            }
            if (rc) break;
            while (i < mid) tmp[k++] = a[i++];
            while (j < hi) tmp[k++] = a[j++];
            memcpy(a + lo, tmp + lo, (hi - lo) * sizeof *a);
        }
    }
    free(tmp);
    return rc;
}

static void kv_free(kv *a, size_t n) {
    if (!a) return;
    for (size_t i = 0; i < n; i++) { jv_unref(a[i].key); jv_unref(a[i].val); }
    free(a);
}

/* ---- filters -------------------------------------------------------------------------------- */
#define BIND(name, ...)                                                                            \
    static const char *const params[] = {__VA_ARGS__};                                             \
    jval p[sizeof params / sizeof params[0]];                                                      \
    if (nuage__jbind(c, line, name, a, params, sizeof params / sizeof params[0], p) < 0) return -1

static int f_default(jctx *c, int line, jval v, const jargs *a, jval *out) {
    BIND("default", "default_value", "boolean");
    if (v.t == JV_UNDEF || v.t == JV_MISSING || (nuage__jv_truthy(p[1]) && !nuage__jv_truthy(v))) {
        if (p[0].t == JV_MISSING) { *out = nuage__jv_str("", 0); return out->t == JV_MISSING ? nomem(c, line) : 0; }
        *out = jv_ref(p[0]);
    } else {
        *out = jv_ref(v);
    }
    return 0;
}

static int f_length(jctx *c, int line, jval v, const jargs *a, jval *out) {
    BIND("length", NULL);
    (void)p;
    switch (v.t) {
    case JV_STR: *out = jv_int((int64_t)v.u.s->ncp); return 0;
    case JV_LIST:
        if (v.u.l->lazy == JL_GEN) return nuage__jfail(c, line, "object of type 'generator' has no len()");
        *out = jv_int((int64_t)v.u.l->n);
        return 0;
    case JV_DICT: *out = jv_int((int64_t)v.u.d->n); return 0;
    case JV_UNDEF: case JV_MISSING: *out = jv_int(0); return 0;
    case JV_LOOP: *out = jv_int((int64_t)v.u.lp->length); return 0;
    default: return nuage__jfail(c, line, "object of type '%s' has no len()", nuage__jv_typename(v));
    }
}

static int f_list(jctx *c, int line, jval v, const jargs *a, jval *out) {
    BIND("list", NULL);
    (void)p;
    jlist *l;
    if (v.t == JV_LIST && v.u.l->poison) return nuage__jfail(c, 0, "%s", v.u.l->poison->s);
    if (v.t == JV_LIST && (v.u.l->tuple || v.u.l->lazy)) {
        jlist *src = v.u.l;
        if (!(l = nuage__jlist_new(src->n))) return nomem(c, line);
        for (size_t i = 0; i < src->n; i++) l->v[l->n++] = jv_ref(src->v[i]);
    } else if (nuage__jiter_list(c, line, v, &l) < 0) {
        return -1;
    }
    *out = jv_list(l);
    return 0;
}

static int f_string(jctx *c, int line, jval v, const jargs *a, jval *out) {
    BIND("string", NULL);
    (void)p;
    return to_str(c, line, v, out);
}

static int f_case(jctx *c, int line, jval v, const jargs *a, jval *out, int mode) {
    BIND("upper", NULL);
    (void)p;
    jval s;
    if (to_str(c, line, v, &s) < 0) return -1;
    int rc = nuage__jcase(c, line, s.u.s, mode, out);
    jv_unref(s);
    return rc;
}
static int f_upper(jctx *c, int line, jval v, const jargs *a, jval *out) { return f_case(c, line, v, a, out, 0); }
static int f_lower(jctx *c, int line, jval v, const jargs *a, jval *out) { return f_case(c, line, v, a, out, 1); }
static int f_capitalize(jctx *c, int line, jval v, const jargs *a, jval *out) { return f_case(c, line, v, a, out, 3); }

/* Jinja's title: split at runs of [-\s({[<], capitalize each piece. */
static int f_title(jctx *c, int line, jval v, const jargs *a, jval *out) {
    BIND("title", NULL);
    (void)p;
    jval s;
    if (to_str(c, line, v, &s) < 0) return -1;
    jbuf b = {0};
    int rc = 0;
    bool start = true;
    for (size_t i = 0; rc == 0 && i < s.u.s->len;) {
        size_t adv;
        uint32_t cp = nuage__utf8_dec(s.u.s->s + i, s.u.s->len - i, &adv);
        bool sep = cp == '-' || cp == '(' || cp == '{' || cp == '[' || cp == '<' || nuage__u_isspace(cp);
        if (sep) { rc = nuage__jbuf_put(&b, s.u.s->s + i, adv); start = true; }
        else { rc = start ? nuage__u_put_upper(&b, cp) : nuage__u_put_lower(&b, cp); start = false; }
        i += adv;
    }
    jv_unref(s);
    if (rc) { nuage__jbuf_free(&b); return nuage__jfail_code(c, line, rc); }
    return str_out(c, line, &b, out);
}

static int f_trim(jctx *c, int line, jval v, const jargs *a, jval *out) {
    BIND("trim", "chars");
    jval s;
    if (p[0].t != JV_MISSING && p[0].t != JV_NONE && p[0].t != JV_STR)
        return nuage__jfail(c, line, "strip arg must be None or str");
    if (to_str(c, line, v, &s) < 0) return -1;
    int rc = nuage__jstrip(c, line, s.u.s, p[0].t == JV_STR ? p[0].u.s : NULL, 3, out);
    jv_unref(s);
    return rc;
}

static int f_replace(jctx *c, int line, jval v, const jargs *a, jval *out) {
    BIND("replace", "old", "new", "count");
    int64_t count = 0;
    if (p[0].t == JV_MISSING || p[1].t == JV_MISSING) return nuage__jfail(c, line, "replace() missing arguments");
    if (want_int(c, line, "count", p[2], -1, &count) < 0) return -1;
    jval s, o, n;
    if (to_str(c, line, v, &s) < 0) return -1;
    if (to_str(c, line, p[0], &o) < 0) { jv_unref(s); return -1; }
    if (to_str(c, line, p[1], &n) < 0) { jv_unref(s); jv_unref(o); return -1; }
    int rc = nuage__jreplace(c, line, s.u.s, o.u.s, n.u.s, count, out);
    jv_unref(s); jv_unref(o); jv_unref(n);
    return rc;
}

static int f_indent(jctx *c, int line, jval v, const jargs *a, jval *out) {
    BIND("indent", "width", "first", "blank");
    jbuf ind = {0}, b = {0};
    int rc = 0;
    if (p[0].t == JV_STR) rc = nuage__jbuf_put(&ind, p[0].u.s->s, p[0].u.s->len);
    else {
        int64_t w = 0;
        if (want_int(c, line, "width", p[0], 4, &w) < 0) return -1;
        if (w > 10000) return nuage__jfail(c, line, "indent width too large");
        for (int64_t i = 0; rc == 0 && i < w; i++) rc = nuage__jbuf_putc(&ind, ' ');
    }
    jval s, lines;
    if (rc == 0 && v.t != JV_STR) {
        nuage__jbuf_free(&ind);
        if (v.t == JV_UNDEF || v.t == JV_MISSING) return nuage__jfail(c, line, "%s", v.u.s ? v.u.s->s : "value is undefined");
        return nuage__jfail(c, line, "'%s' object has no attribute 'splitlines'", nuage__jv_typename(v));
    }
    if (rc) { nuage__jbuf_free(&ind); return nuage__jfail_code(c, line, rc); }
    if (to_str(c, line, v, &s) < 0) { nuage__jbuf_free(&ind); return -1; }
    /* s += "\n"; lines = s.splitlines() */
    jbuf sn = {0};
    rc = nuage__jbuf_put(&sn, s.u.s->s, s.u.s->len);
    if (rc == 0) rc = nuage__jbuf_putc(&sn, '\n');
    jv_unref(s);
    jstr *ss = rc ? NULL : nuage__jstr_new(sn.p, sn.n);
    nuage__jbuf_free(&sn);
    if (!ss) { nuage__jbuf_free(&ind); return rc ? nuage__jfail_code(c, line, rc) : nomem(c, line); }
    rc = nuage__jsplitlines(c, line, ss, false, &lines);
    jv_unref(jv_strv(ss));
    if (rc < 0) { nuage__jbuf_free(&ind); return -1; }
    bool first = nuage__jv_truthy(p[1]), blank = nuage__jv_truthy(p[2]);
    jlist *l = lines.u.l;
    if (first) rc = nuage__jbuf_put(&b, ind.p, ind.n);
    for (size_t i = 0; rc == 0 && i < l->n; i++) {
        const jstr *ln = l->v[i].u.s;
        if (i) {
            rc = nuage__jbuf_putc(&b, '\n');
            if (rc == 0 && (blank || ln->len)) rc = nuage__jbuf_put(&b, ind.p, ind.n);
        }
        if (rc == 0) rc = nuage__jbuf_put(&b, ln->s, ln->len);
    }
    jv_unref(lines);
    nuage__jbuf_free(&ind);
    if (rc) { nuage__jbuf_free(&b); return nuage__jfail_code(c, line, rc); }
    return str_out(c, line, &b, out);
}

static int f_join(jctx *c, int line, jval v, const jargs *a, jval *out) {
    BIND("join", "d", "attribute");
    jlist *l;
    if (nuage__jiter_list(c, line, v, &l) < 0) return -1;
    jval sep = jv_missing();
    if (p[0].t != JV_MISSING && to_str(c, line, p[0], &sep) < 0) { jv_unref(jv_list(l)); return -1; }
    jbuf b = {0};
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < l->n; i++) {
        if (i && sep.t == JV_STR) rc = nuage__jbuf_put(&b, sep.u.s->s, sep.u.s->len);
        jval item = jv_ref(l->v[i]);
        if (rc == 0 && p[1].t != JV_MISSING && p[1].t != JV_NONE) {
            jval r;
            if (attr_get(c, line, item, p[1], jv_missing(), &r) < 0) rc = -1;
            jv_unref(item);
            item = rc ? jv_missing() : r;
        }
        if (rc == 0) {
            int w = nuage__jv_write(&b, item, false);
            if (w) rc = nuage__jfail_code(c, line, w);
        }
        jv_unref(item);
    }
    jv_unref(jv_list(l));
    jv_unref(sep);
    if (rc) { nuage__jbuf_free(&b); return -1; }
    return str_out(c, line, &b, out);
}

static int f_items(jctx *c, int line, jval v, const jargs *a, jval *out) {
    BIND("items", NULL);
    (void)p;
    if (v.t == JV_UNDEF || v.t == JV_MISSING) {
        jlist *l = nuage__jlist_new(0);
        if (!l) return nomem(c, line);
        *out = jv_list(l);
        return 0;
    }
    if (v.t != JV_DICT) return nuage__jfail(c, line, "Can only get item pairs from a mapping.");
    return nuage__jdict_items(c, line, v.u.d, out);
}

static int f_dictsort(jctx *c, int line, jval v, const jargs *a, jval *out) {
    BIND("dictsort", "case_sensitive", "by", "reverse");
    int pos = 0;
    if (p[1].t == JV_STR && !strcmp(p[1].u.s->s, "value")) pos = 1;
    else if (p[1].t != JV_MISSING && !(p[1].t == JV_STR && !strcmp(p[1].u.s->s, "key")))
        return nuage__jfail(c, line, "You can only sort by either \"key\" or \"value\"");
    if (v.t == JV_UNDEF || v.t == JV_MISSING) return nuage__jfail(c, line, "%s", v.u.s ? v.u.s->s : "value is undefined");
    if (v.t != JV_DICT) return nuage__jfail(c, line, "'%s' object has no attribute 'items'", nuage__jv_typename(v));
    jdict *d = v.u.d;
    kv *arr = calloc(d->n ? d->n : 1, sizeof *arr);
    if (!arr) return nomem(c, line);
    int rc = 0;
    size_t n = 0;
    for (; n < d->n && rc == 0; n++) {
        jlist *pair = nuage__jlist_new(2);
        if (!pair) { rc = nomem(c, line); break; }
        pair->tuple = true;
        pair->v[0] = jv_ref(d->k[n]);
        pair->v[1] = jv_ref(d->v[n]);
        pair->n = 2;
        arr[n].val = jv_list(pair);
        arr[n].key = jv_missing();
        rc = fold(c, line, pos ? d->v[n] : d->k[n], nuage__jv_truthy(p[0]), &arr[n].key);
    }
    if (rc == 0) rc = sort_kv(c, line, arr, n, nuage__jv_truthy(p[2]));
    jlist *l = rc ? NULL : nuage__jlist_new(n);
    if (rc == 0 && !l) rc = nomem(c, line);
    if (rc == 0) {
        for (size_t i = 0; i < n; i++) { l->v[l->n++] = arr[i].val; arr[i].val = jv_missing(); }
        *out = jv_list(l);
    }
    kv_free(arr, n);
    return rc;
}

/* Python sorted/unique/min/max helpers over an iterable. */
static int keyed_items(jctx *c, int line, jval v, jval attr, bool cs, kv **arr, size_t *n) {
    jlist *l;
    *arr = NULL;
    *n = 0;
    if (nuage__jiter_list(c, line, v, &l) < 0) return -1;
    *arr = calloc(l->n ? l->n : 1, sizeof **arr);
    *n = 0;
    if (!*arr) { jv_unref(jv_list(l)); return nomem(c, line); }
    int rc = 0;
    for (size_t i = 0; i < l->n && rc == 0; i++) {
        jval key;
        if (attr.t != JV_MISSING && attr.t != JV_NONE) {
            jval r;
            if (attr_get(c, line, l->v[i], attr, jv_missing(), &r) < 0) { rc = -1; break; }
            rc = fold(c, line, r, cs, &key);
            jv_unref(r);
        } else {
            rc = fold(c, line, l->v[i], cs, &key);
        }
        if (rc < 0) break;
        (*arr)[*n].key = key;
        (*arr)[*n].val = jv_ref(l->v[i]);
        (*n)++;
    }
    jv_unref(jv_list(l));
    return rc;
}

static int f_sort(jctx *c, int line, jval v, const jargs *a, jval *out) {
    BIND("sort", "reverse", "case_sensitive", "attribute");
    kv *arr;
    size_t n;
    int rc = keyed_items(c, line, v, p[2], nuage__jv_truthy(p[1]), &arr, &n);
    if (rc == 0) rc = sort_kv(c, line, arr, n, nuage__jv_truthy(p[0]));
    jlist *l = rc ? NULL : nuage__jlist_new(n);
    if (rc == 0 && !l) rc = nomem(c, line);
    if (rc == 0) {
        for (size_t i = 0; i < n; i++) { l->v[l->n++] = arr[i].val; arr[i].val = jv_missing(); }
        *out = jv_list(l);
    }
    kv_free(arr, n);
    return rc;
}

static int f_unique(jctx *c, int line, jval v, const jargs *a, jval *out) {
    BIND("unique", "case_sensitive", "attribute");
    kv *arr;
    size_t n;
    int rc = keyed_items(c, line, v, p[1], nuage__jv_truthy(p[0]), &arr, &n);
    jlist *l = rc ? NULL : nuage__jlist_new(n);
    if (rc == 0 && !l) rc = nomem(c, line);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        bool seen = false;
        for (size_t j = 0; j < i && !seen; j++) seen = nuage__jv_eq(arr[j].key, arr[i].key);
        if (!seen) l->v[l->n++] = jv_ref(arr[i].val);
    }
    if (rc == 0) { l->lazy = JL_GEN; *out = jv_list(l); }
    kv_free(arr, n);
    return rc;
}

static int f_minmax(jctx *c, int line, jval v, const jargs *a, jval *out, bool max) {
    BIND(max ? "max" : "min", "case_sensitive", "attribute");
    kv *arr;
    size_t n;
    int rc = keyed_items(c, line, v, p[1], nuage__jv_truthy(p[0]), &arr, &n);
    if (rc == 0 && n == 0) {
        jval u = nuage__jv_cstr("No aggregated item, sequence was empty.");
        if (u.t == JV_MISSING) rc = nomem(c, line); else { u.t = JV_UNDEF; *out = u; }
    } else if (rc == 0) {
        size_t best = 0;
        for (size_t i = 1; i < n && rc == 0; i++) {
            int r;
            if (nuage__jv_cmp(arr[i].key, arr[best].key, &r) < 0)
                rc = nuage__jfail(c, line, "'<' not supported between instances of '%s' and '%s'",
                                  nuage__jv_typename(arr[i].key), nuage__jv_typename(arr[best].key));
            else if (max ? r > 0 : r < 0) best = i;
        }
        if (rc == 0) *out = jv_ref(arr[best].val);
    }
    kv_free(arr, n);
    return rc;
}
static int f_min(jctx *c, int line, jval v, const jargs *a, jval *out) { return f_minmax(c, line, v, a, out, false); }
static int f_max(jctx *c, int line, jval v, const jargs *a, jval *out) { return f_minmax(c, line, v, a, out, true); }

static int f_first_last(jctx *c, int line, jval v, const jargs *a, jval *out, bool last) {
    BIND(last ? "last" : "first", NULL);
    (void)p;
    jlist *l;
    if (last && v.t == JV_LIST && v.u.l->lazy == JL_GEN)
        return nuage__jfail(c, line, "'%s' object is not reversible", nuage__jv_typename(v));
    if (nuage__jiter_list(c, line, v, &l) < 0) return -1;
    if (l->n) *out = jv_ref(l->v[last ? l->n - 1 : 0]);
    else {
        jval u = nuage__jv_cstr(last ? "No last item, sequence was empty." : "No first item, sequence was empty.");
        if (u.t != JV_MISSING) u.t = JV_UNDEF; else u = jv_undef();
        *out = u;
    }
    jv_unref(jv_list(l));
    return 0;
}
static int f_first(jctx *c, int line, jval v, const jargs *a, jval *out) { return f_first_last(c, line, v, a, out, false); }
static int f_last(jctx *c, int line, jval v, const jargs *a, jval *out) { return f_first_last(c, line, v, a, out, true); }

static int f_reverse(jctx *c, int line, jval v, const jargs *a, jval *out) {
    BIND("reverse", NULL);
    (void)p;
    jlist *l;
    if (nuage__jiter_list(c, line, v, &l) < 0) return -1;
    if (v.t == JV_STR) {
        jbuf b = {0};
        int rc = 0;
        for (size_t i = l->n; rc == 0 && i-- > 0;) rc = nuage__jbuf_put(&b, l->v[i].u.s->s, l->v[i].u.s->len);
        jv_unref(jv_list(l));
        if (rc) { nuage__jbuf_free(&b); return nuage__jfail_code(c, line, rc); }
        return str_out(c, line, &b, out);
    }
    jlist *r = nuage__jlist_new(l->n);
    if (!r) { jv_unref(jv_list(l)); return nomem(c, line); }
    for (size_t i = l->n; i-- > 0;) r->v[r->n++] = jv_ref(l->v[i]);
    jv_unref(jv_list(l));
    /* reversed(list) is an iterator; a generator is listed and reversed */
    if (!(v.t == JV_LIST && v.u.l->lazy == JL_GEN)) r->lazy = JL_GEN;
    *out = jv_list(r);
    return 0;
}

/* map / select / reject / selectattr / rejectattr */
/* Jinja's map/select/reject do nothing (yield nothing) for a falsy value. */
static int falsy_empty(jctx *c, int line, jval v, jlist **l) {
    if (nuage__jv_truthy(v)) return nuage__jiter_list(c, line, v, l);
    *l = nuage__jlist_new(0);
    return *l ? 0 : nomem(c, line);
}

static int f_map(jctx *c, int line, jval v, const jargs *a, jval *out) {
    jlist *l;
    if (falsy_empty(c, line, v, &l) < 0) return -1;
    jlist *r = nuage__jlist_new(l->n);
    if (!r) { jv_unref(jv_list(l)); return nomem(c, line); }
    int rc = 0;
    jval attr = jv_missing(), dflt = jv_missing();
    if (a->npos == 0) {
        for (size_t k = 0; k < a->nkw; k++) {
            if (!strcmp(a->kwn[k], "attribute")) attr = a->kwv[k];
            else if (!strcmp(a->kwn[k], "default")) dflt = a->kwv[k];
            else rc = nuage__jfail(c, line, "Unexpected keyword argument '%s'", a->kwn[k]);
        }
        if (rc == 0 && attr.t == JV_MISSING && l->n) rc = nuage__jfail(c, line, "map requires a filter argument");
    } else if (a->pos[0].t != JV_STR) {
        rc = nuage__jfail(c, line, "map requires a filter name");
    }
    jargs rest = {a->npos ? a->pos + 1 : NULL, a->npos ? a->npos - 1 : 0, a->kwn, a->kwv, a->nkw};
    for (size_t i = 0; rc == 0 && i < l->n; i++) {
        jval x;
        if (a->npos == 0) rc = attr_get(c, line, l->v[i], attr, dflt, &x);
        else rc = nuage__jfilter(c, line, a->pos[0].u.s->s, l->v[i], &rest, &x);
        if (rc == 0) r->v[r->n++] = x;
    }
    jv_unref(jv_list(l));
    if (rc < 0) { jv_unref(jv_list(r)); return -1; }
    r->lazy = JL_GEN;
    *out = jv_list(r);
    return 0;
}

static int select_impl(jctx *c, int line, jval v, const jargs *a, jval *out, bool attr, bool keep) {
    jlist *l;
    if (falsy_empty(c, line, v, &l) < 0) return -1;
    jlist *r = nuage__jlist_new(0);
    if (!r) { jv_unref(jv_list(l)); return nomem(c, line); }
    int rc = 0;
    size_t off = attr ? 1 : 0;
    if (attr && a->npos < 1 && l->n) rc = nuage__jfail(c, line, "Missing parameter for attribute name");
    const char *test = NULL;
    if (rc == 0 && a->npos > off) {
        if (a->pos[off].t != JV_STR) rc = nuage__jfail(c, line, "test name must be a string");
        else test = a->pos[off].u.s->s;
    }
    jargs rest = {a->npos > off + 1 ? a->pos + off + 1 : NULL, a->npos > off + 1 ? a->npos - off - 1 : 0,
                  a->kwn, a->kwv, a->nkw};
    for (size_t i = 0; rc == 0 && i < l->n; i++) {
        jval x = jv_ref(l->v[i]);
        if (attr) {
            jval y;
            rc = attr_get(c, line, x, a->pos[0], jv_missing(), &y);
            jv_unref(x);
            if (rc < 0) break;
            x = y;
        }
        bool t;
        if (test) rc = nuage__jtest(c, line, test, x, &rest, &t);
        else t = nuage__jv_truthy(x);
        jv_unref(x);
        if (rc == 0 && t == keep) {
            int e = nuage__jlist_push(r, jv_ref(l->v[i]));
            if (e) rc = nuage__jfail_code(c, line, e);
        }
    }
    jv_unref(jv_list(l));
    if (rc < 0) { jv_unref(jv_list(r)); return -1; }
    r->lazy = JL_GEN;
    *out = jv_list(r);
    return 0;
}
static int f_select(jctx *c, int line, jval v, const jargs *a, jval *out) { return select_impl(c, line, v, a, out, false, true); }
static int f_reject(jctx *c, int line, jval v, const jargs *a, jval *out) { return select_impl(c, line, v, a, out, false, false); }
static int f_selectattr(jctx *c, int line, jval v, const jargs *a, jval *out) { return select_impl(c, line, v, a, out, true, true); }
static int f_rejectattr(jctx *c, int line, jval v, const jargs *a, jval *out) { return select_impl(c, line, v, a, out, true, false); }

static int f_safe(jctx *c, int line, jval v, const jargs *a, jval *out) { return f_string(c, line, v, a, out); }

static int f_escape(jctx *c, int line, jval v, const jargs *a, jval *out) {
    BIND("escape", NULL);
    (void)p;
    jval s;
    if (to_str(c, line, v, &s) < 0) return -1;
    jbuf b = {0};
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < s.u.s->len; i++) {
        char ch = s.u.s->s[i];
        switch (ch) {
        case '&': rc = nuage__jbuf_put(&b, "&amp;", 5); break;
        case '<': rc = nuage__jbuf_put(&b, "&lt;", 4); break;
        case '>': rc = nuage__jbuf_put(&b, "&gt;", 4); break;
        case '"': rc = nuage__jbuf_put(&b, "&#34;", 5); break;
        case '\'': rc = nuage__jbuf_put(&b, "&#39;", 5); break;
        default: rc = nuage__jbuf_putc(&b, ch);
        }
    }
    jv_unref(s);
    if (rc) { nuage__jbuf_free(&b); return nuage__jfail_code(c, line, rc); }
    return str_out(c, line, &b, out);
}

/* Python int(str, 10): optional whitespace, sign, digits with single underscores. */
static bool parse_pyint(const char *s, size_t n, int64_t base, int64_t *out) {
    size_t i = 0;
    while (i < n && (s[i] == ' ' || (s[i] >= '\t' && s[i] <= '\r'))) i++;
    while (n > i && (s[n - 1] == ' ' || (s[n - 1] >= '\t' && s[n - 1] <= '\r'))) n--;
    bool neg = false;
    if (i < n && (s[i] == '+' || s[i] == '-')) neg = s[i++] == '-';
    if (base == 16 && i + 1 < n && s[i] == '0' && (s[i + 1] == 'x' || s[i + 1] == 'X')) i += 2;
    if (i >= n) return false;
    unsigned __int128 v = 0;
    bool prev_us = true;
    for (; i < n; i++) {
        int d;
        char ch = s[i];
        if (ch == '_') { if (prev_us) return false; prev_us = true; continue; }
        if (ch >= '0' && ch <= '9') d = ch - '0';
        else if (ch >= 'a' && ch <= 'z') d = ch - 'a' + 10;
        else if (ch >= 'A' && ch <= 'Z') d = ch - 'A' + 10;
        else return false;
        if (d >= base) return false;
        v = v * (unsigned)base + (unsigned)d;
        if (v > (unsigned __int128)INT64_MAX + 1) return false;
        prev_us = false;
    }
    if (prev_us) return false;
    if (!neg && v > INT64_MAX) return false;
    *out = neg ? (int64_t)(0 - (uint64_t)v) : (int64_t)v;
    return true;
}

static bool parse_pyfloat(const char *s, size_t n, double *out) {
    char buf[128];
    if (n >= sizeof buf) return false;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) if (s[i] != '_') buf[k++] = s[i];
    buf[k] = 0;
    char *end;
    double d = strtod(buf, &end);
    if (end == buf) return false;
    while (*end == ' ' || (*end >= '\t' && *end <= '\r')) end++;
    if (*end) return false;
    /* strtod accepts hex floats and "infinity" variants Python also accepts */
    *out = d;
    return true;
}

static int f_int(jctx *c, int line, jval v, const jargs *a, jval *out) {
    BIND("int", "default", "base");
    int64_t base = 0;
    if (want_int(c, line, "base", p[1], 10, &base) < 0) return -1;
    jval dflt = p[0].t == JV_MISSING ? jv_int(0) : p[0];
    int64_t i;
    double d;
    switch (v.t) {
    case JV_INT: *out = v; return 0;
    case JV_BOOL: *out = jv_int(v.u.b); return 0;
    case JV_FLOAT:
        if (isnan(v.u.f) || isinf(v.u.f) || fabs(v.u.f) >= 9.2e18) { *out = jv_ref(dflt); return 0; }
        *out = jv_int((int64_t)v.u.f);
        return 0;
    case JV_STR:
        if (base >= 2 && base <= 36 && parse_pyint(v.u.s->s, v.u.s->len, base, &i)) { *out = jv_int(i); return 0; }
        if (parse_pyfloat(v.u.s->s, v.u.s->len, &d) && !isnan(d) && !isinf(d) && fabs(d) < 9.2e18) {
            *out = jv_int((int64_t)d);
            return 0;
        }
        *out = jv_ref(dflt);
        return 0;
    case JV_UNDEF: case JV_MISSING:
        return nuage__jfail(c, line, "%s", v.u.s ? v.u.s->s : "value is undefined");
    default:
        *out = jv_ref(dflt);
        return 0;
    }
}

static int f_float(jctx *c, int line, jval v, const jargs *a, jval *out) {
    BIND("float", "default");
    jval dflt = p[0].t == JV_MISSING ? jv_float(0.0) : p[0];
    double d;
    switch (v.t) {
    case JV_INT: *out = jv_float((double)v.u.i); return 0;
    case JV_BOOL: *out = jv_float(v.u.b); return 0;
    case JV_FLOAT: *out = v; return 0;
    case JV_STR:
        if (parse_pyfloat(v.u.s->s, v.u.s->len, &d)) *out = jv_float(d);
        else *out = jv_ref(dflt);
        return 0;
    case JV_UNDEF: case JV_MISSING:
        return nuage__jfail(c, line, "%s", v.u.s ? v.u.s->s : "value is undefined");
    default:
        *out = jv_ref(dflt);
        return 0;
    }
}

static int f_abs(jctx *c, int line, jval v, const jargs *a, jval *out) {
    BIND("abs", NULL);
    (void)p;
    if (v.t == JV_INT) {
        if (v.u.i == INT64_MIN) return nuage__jfail(c, line, "integer overflow in abs");
        *out = jv_int(v.u.i < 0 ? -v.u.i : v.u.i);
    } else if (v.t == JV_BOOL) *out = jv_int(v.u.b);
    else if (v.t == JV_FLOAT) *out = jv_float(fabs(v.u.f));
    else return nuage__jfail(c, line, "bad operand type for abs(): '%s'", nuage__jv_typename(v));
    return 0;
}

static int f_round(jctx *c, int line, jval v, const jargs *a, jval *out) {
    BIND("round", "precision", "method");
    int64_t prec = 0;
    if (want_int(c, line, "precision", p[0], 0, &prec) < 0) return -1;
    const char *m = p[1].t == JV_STR ? p[1].u.s->s : "common";
    if (strcmp(m, "common") && strcmp(m, "ceil") && strcmp(m, "floor"))
        return nuage__jfail(c, line, "method must be common, ceil or floor");
    if (!jv_isnum(v)) return nuage__jfail(c, line, "type %s doesn't define __round__ method", nuage__jv_typename(v));
    if (!strcmp(m, "common") && v.t != JV_FLOAT) { *out = jv_int(v.t == JV_INT ? v.u.i : v.u.b); return 0; }
    double x = v.t == JV_FLOAT ? v.u.f : v.t == JV_INT ? (double)v.u.i : v.u.b;
    if (prec > 300) prec = 300;
    if (prec < -300) prec = -300;
    if (!strcmp(m, "common")) {
        if (isnan(x) || isinf(x)) { *out = jv_float(x); return 0; }
        if (prec >= 0) {
            char buf[400];
            snprintf(buf, sizeof buf, "%.*f", (int)prec, x);
            *out = jv_float(strtod(buf, NULL));
        } else {
            double p10 = pow(10.0, (double)-prec);
            double y = x / p10, r = nearbyint(y);
            *out = jv_float(r * p10);
        }
        return 0;
    }
    double p10 = pow(10.0, (double)prec);
    double r = (m[0] == 'c' ? ceil(x * p10) : floor(x * p10)) / p10;
    *out = jv_float(r);
    return 0;
}

static int f_sum(jctx *c, int line, jval v, const jargs *a, jval *out) {
    BIND("sum", "attribute", "start");
    jlist *l;
    if (nuage__jiter_list(c, line, v, &l) < 0) return -1;
    jval acc = p[1].t == JV_MISSING ? jv_int(0) : jv_ref(p[1]);
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < l->n; i++) {
        jval x = jv_ref(l->v[i]);
        if (p[0].t != JV_MISSING && p[0].t != JV_NONE) {
            jval y;
            rc = attr_get(c, line, x, p[0], jv_missing(), &y);
            jv_unref(x);
            if (rc < 0) break;
            x = y;
        }
        /* acc + x through the expression evaluator's '+' */
        jnode na = {0}, nb = {0}, nbin = {0};
        na.kind = nb.kind = JN_CONST;
        na.val = acc;
        nb.val = x;
        nbin.kind = JN_BIN;
        nbin.op = OP_ADD;
        nbin.line = line;
        nbin.a = &na;
        nbin.b = &nb;
        jval r;
        rc = nuage__jeval(c, &nbin, NULL, &r);
        jv_unref(acc);
        jv_unref(x);
        acc = rc ? jv_missing() : r;
    }
    jv_unref(jv_list(l));
    if (rc < 0) { jv_unref(acc); return -1; }
    *out = acc;
    return 0;
}

static int f_truncate(jctx *c, int line, jval v, const jargs *a, jval *out) {
    BIND("truncate", "length", "killwords", "end", "leeway");
    int64_t length = 0, leeway = 0;
    if (want_int(c, line, "length", p[0], 255, &length) < 0 || want_int(c, line, "leeway", p[3], 5, &leeway) < 0) return -1;
    jval s, end;
    if (v.t == JV_UNDEF || v.t == JV_MISSING) { *out = jv_ref(v); return 0; }
    if ((v.t == JV_LIST && !v.u.l->lazy) || v.t == JV_DICT) {
        size_t n = v.t == JV_LIST ? v.u.l->n : v.u.d->n;
        if ((int64_t)n <= length + leeway) { *out = jv_ref(v); return 0; }
        return nuage__jfail(c, line, "can only concatenate %s (not \"str\") to %s", nuage__jv_typename(v), nuage__jv_typename(v));
    }
    if (v.t != JV_STR) return nuage__jfail(c, line, "object of type '%s' has no len()", nuage__jv_typename(v));
    if (to_str(c, line, v, &s) < 0) return -1;
    if (p[2].t == JV_MISSING) end = nuage__jv_str("...", 3);
    else if (to_str(c, line, p[2], &end) < 0) { jv_unref(s); return -1; }
    if (end.t == JV_MISSING) { jv_unref(s); return nomem(c, line); }
    int rc = 0;
    const jstr *ss = s.u.s;
    if (length < (int64_t)end.u.s->ncp) rc = nuage__jfail(c, line, "expected length >= %zu, got %lld", end.u.s->ncp, (long long)length);
    else if (leeway < 0) rc = nuage__jfail(c, line, "expected leeway >= 0, got %lld", (long long)leeway);
    else if ((int64_t)ss->ncp <= length + leeway) { *out = jv_ref(s); }
    else {
        size_t keep = nuage__utf8_offset(ss->s, ss->len, (size_t)(length - (int64_t)end.u.s->ncp));
        if (!nuage__jv_truthy(p[1])) {
            /* rsplit(" ", 1)[0] */
            size_t k = keep;
            while (k > 0 && ss->s[k - 1] != ' ') k--;
            if (k > 0) keep = k - 1;
        }
        jbuf b = {0};
        rc = nuage__jbuf_put(&b, ss->s, keep);
        if (rc == 0) rc = nuage__jbuf_put(&b, end.u.s->s, end.u.s->len);
        if (rc) { nuage__jbuf_free(&b); rc = nuage__jfail_code(c, line, rc); }
        else rc = str_out(c, line, &b, out);
    }
    jv_unref(s);
    jv_unref(end);
    return rc;
}

static int f_wordcount(jctx *c, int line, jval v, const jargs *a, jval *out) {
    BIND("wordcount", NULL);
    (void)p;
    jval s;
    if (to_str(c, line, v, &s) < 0) return -1;
    int64_t n = 0;
    bool in = false;
    for (size_t i = 0; i < s.u.s->len;) {
        size_t adv;
        uint32_t cp = nuage__utf8_dec(s.u.s->s + i, s.u.s->len - i, &adv);
        bool w = cp == '_' || nuage__u_isalpha(cp) || nuage__u_isdigit(cp);
        if (w && !in) n++;
        in = w;
        i += adv;
    }
    jv_unref(s);
    *out = jv_int(n);
    return 0;
}

static int f_center(jctx *c, int line, jval v, const jargs *a, jval *out) {
    BIND("center", "width");
    int64_t w = 0;
    if (want_int(c, line, "width", p[0], 80, &w) < 0) return -1;
    jval s;
    if (to_str(c, line, v, &s) < 0) return -1;
    int rc = nuage__jcenter(c, line, s.u.s, w, out);
    jv_unref(s);
    return rc;
}

static int f_format(jctx *c, int line, jval v, const jargs *a, jval *out) {
    if (a->npos && a->nkw) return nuage__jfail(c, line, "can't handle positional and keyword arguments at the same time");
    jval s;
    if (to_str(c, line, v, &s) < 0) return -1;
    jval args;
    int rc = 0;
    if (a->nkw) {
        jdict *d = nuage__jdict_new(a->nkw);
        if (!d) { jv_unref(s); return nomem(c, line); }
        for (size_t i = 0; rc == 0 && i < a->nkw; i++) {
            jval k = nuage__jv_cstr(a->kwn[i]);
            if (k.t == JV_MISSING) rc = nomem(c, line);
            else if ((rc = nuage__jdict_set(d, k, jv_ref(a->kwv[i])))) rc = nuage__jfail_code(c, line, rc);
        }
        args = jv_dict(d);
    } else {
        jlist *l = nuage__jlist_new(a->npos);
        if (!l) { jv_unref(s); return nomem(c, line); }
        l->tuple = true;
        for (size_t i = 0; i < a->npos; i++) l->v[l->n++] = jv_ref(a->pos[i]);
        args = jv_list(l);
    }
    if (rc == 0) rc = nuage__jformat_percent(c, line, s.u.s, args, out);
    jv_unref(args);
    jv_unref(s);
    return rc;
}

static int f_batch(jctx *c, int line, jval v, const jargs *a, jval *out) {
    BIND("batch", "linecount", "fill_with");
    int64_t n = 0;
    if (want_int(c, line, "linecount", p[0], 0, &n) < 0) return -1;
    if (n <= 0) return nuage__jfail(c, line, "batch linecount must be positive");
    jlist *l;
    if (nuage__jiter_list(c, line, v, &l) < 0) return -1;
    jlist *r = nuage__jlist_new(0), *cur = NULL;
    int rc = r ? 0 : nomem(c, line);
    for (size_t i = 0; rc == 0 && i < l->n; i++) {
        if (!cur && !(cur = nuage__jlist_new((size_t)n < l->n ? (size_t)n : l->n))) { rc = nomem(c, line); break; }
        if ((rc = nuage__jlist_push(cur, jv_ref(l->v[i])))) { rc = nuage__jfail_code(c, line, rc); break; }
        if ((int64_t)cur->n == n) {
            if ((rc = nuage__jlist_push(r, jv_list(cur)))) rc = nuage__jfail_code(c, line, rc);
            cur = NULL;
        }
    }
    if (rc == 0 && cur) {
        while (p[1].t != JV_MISSING && p[1].t != JV_NONE && (int64_t)cur->n < n && rc == 0)
            if ((rc = nuage__jlist_push(cur, jv_ref(p[1])))) rc = nuage__jfail_code(c, line, rc);
        if (rc == 0 && (rc = nuage__jlist_push(r, jv_list(cur)))) rc = nuage__jfail_code(c, line, rc);
        cur = NULL;
    }
    if (cur) jv_unref(jv_list(cur));
    jv_unref(jv_list(l));
    if (rc) { if (r) jv_unref(jv_list(r)); return -1; }
    r->lazy = JL_GEN;
    *out = jv_list(r);
    return 0;
}

static int f_groupby(jctx *c, int line, jval v, const jargs *a, jval *out) {
    BIND("groupby", "attribute", "default", "case_sensitive");
    kv *arr;
    size_t n;
    bool cs = nuage__jv_truthy(p[2]);
    int rc = keyed_items(c, line, v, p[0], cs, &arr, &n);
    if (rc == 0 && p[1].t != JV_MISSING)
        for (size_t i = 0; i < n; i++)
            if (arr[i].key.t == JV_UNDEF) { jv_unref(arr[i].key); arr[i].key = jv_ref(p[1]); }
    if (rc == 0) rc = sort_kv(c, line, arr, n, false);
    jlist *r = rc ? NULL : nuage__jlist_new(0);
    if (rc == 0 && !r) rc = nomem(c, line);
    for (size_t i = 0; rc == 0 && i < n;) {
        size_t j = i;
        jlist *grp = nuage__jlist_new(0), *tup = nuage__jlist_new(2);
        if (!grp || !tup) { if (grp) jv_unref(jv_list(grp)); if (tup) jv_unref(jv_list(tup)); rc = nomem(c, line); break; }
        while (j < n && nuage__jv_eq(arr[j].key, arr[i].key)) {
            if ((rc = nuage__jlist_push(grp, jv_ref(arr[j].val)))) { rc = nuage__jfail_code(c, line, rc); break; }
            j++;
        }
        jval grouper;
        if (rc == 0 && !cs && p[0].t != JV_MISSING) rc = attr_get(c, line, arr[i].val, p[0], p[1], &grouper);
        else grouper = jv_ref(arr[i].key);
        tup->tuple = true;
        tup->group = 1;
        tup->v[tup->n++] = rc ? jv_none() : grouper;
        tup->v[tup->n++] = jv_list(grp);
        int e = nuage__jlist_push(r, jv_list(tup));
        if (rc == 0 && e) rc = nuage__jfail_code(c, line, e);
        i = j;
    }
    kv_free(arr, n);
    if (rc) { if (r) jv_unref(jv_list(r)); return -1; }
    *out = jv_list(r);
    return 0;
}

static int f_attr(jctx *c, int line, jval v, const jargs *a, jval *out) {
    BIND("attr", "name");
    if (p[0].t != JV_STR) { *out = jv_undef(); return 0; }
    if (v.t == JV_UNDEF || v.t == JV_MISSING) return nuage__jfail(c, line, "%s", v.u.s ? v.u.s->s : "value is undefined");
    /* only Python attributes (methods), never dict keys */
    if (v.t == JV_LOOP) return nuage__jgetattr(c, line, v, p[0], true, out);
    if (nuage__jmethod_id(v, p[0].u.s->s) != 0 && v.t != JV_NS) return nuage__jgetattr(c, line, v, p[0], true, out);
    if (v.t == JV_NS) return nuage__jgetattr(c, line, v, p[0], true, out);
    *out = jv_undef();
    return 0;
}

static int f_tojson(jctx *c, int line, jval v, const jargs *a, jval *out) {
    BIND("tojson", "ensure_ascii", "indent", "separators", "sort_keys");
    jjson_opts o = {0};
    jbuf ind = {0};
    o.ensure_ascii = nuage__jv_truthy(p[0]);
    o.sort_keys = nuage__jv_truthy(p[3]);
    int rc = 0;
    if (p[1].t != JV_MISSING && p[1].t != JV_NONE) {
        o.has_indent = true;
        if (p[1].t == JV_STR) { o.indent = p[1].u.s->s; o.indent_len = p[1].u.s->len; }
        else if (p[1].t == JV_INT || p[1].t == JV_BOOL) {
            int64_t w = p[1].t == JV_INT ? p[1].u.i : p[1].u.b;
            if (w > 1000) return nuage__jfail(c, line, "indent too large");
            for (int64_t i = 0; rc == 0 && i < w; i++) rc = nuage__jbuf_putc(&ind, ' ');
            if (rc) return nuage__jfail_code(c, line, rc);
            o.indent = ind.p ? ind.p : "";
            o.indent_len = ind.n;
        } else {
            return nuage__jfail(c, line, "can't multiply sequence by non-int of type '%s'", nuage__jv_typename(p[1]));
        }
    }
    o.item_sep = o.has_indent ? "," : ", ";
    o.item_sep_len = o.has_indent ? 1 : 2;
    o.key_sep = ": ";
    o.key_sep_len = 2;
    if (p[2].t != JV_MISSING && p[2].t != JV_NONE) {
        if (p[2].t != JV_LIST || p[2].u.l->n != 2 || p[2].u.l->v[0].t != JV_STR || p[2].u.l->v[1].t != JV_STR) {
            nuage__jbuf_free(&ind);
            return nuage__jfail(c, line, "separators must be a pair of strings");
        }
        o.item_sep = p[2].u.l->v[0].u.s->s;
        o.item_sep_len = p[2].u.l->v[0].u.s->len;
        o.key_sep = p[2].u.l->v[1].u.s->s;
        o.key_sep_len = p[2].u.l->v[1].u.s->len;
    }
    jbuf b = {0};
    rc = nuage__jv_to_json(c, line, &b, v, &o);
    nuage__jbuf_free(&ind);
    if (rc < 0) { nuage__jbuf_free(&b); return -1; }
    return str_out(c, line, &b, out);
}

static const struct { const char *name; filter_fn fn; } FILTERS[] = {
    {"abs", f_abs}, {"attr", f_attr}, {"batch", f_batch}, {"capitalize", f_capitalize},
    {"center", f_center}, {"count", f_length}, {"d", f_default}, {"default", f_default},
    {"dictsort", f_dictsort}, {"e", f_escape}, {"escape", f_escape}, {"first", f_first},
    {"float", f_float}, {"forceescape", f_escape}, {"format", f_format}, {"groupby", f_groupby},
    {"indent", f_indent}, {"int", f_int}, {"items", f_items}, {"join", f_join}, {"last", f_last},
    {"length", f_length}, {"list", f_list}, {"lower", f_lower}, {"map", f_map}, {"max", f_max},
    {"min", f_min}, {"reject", f_reject}, {"rejectattr", f_rejectattr}, {"replace", f_replace},
    {"reverse", f_reverse}, {"round", f_round}, {"safe", f_safe}, {"select", f_select},
    {"selectattr", f_selectattr}, {"sort", f_sort}, {"string", f_string}, {"sum", f_sum},
    {"title", f_title}, {"tojson", f_tojson}, {"trim", f_trim}, {"truncate", f_truncate},
    {"unique", f_unique}, {"upper", f_upper}, {"wordcount", f_wordcount},
};

/* Jinja2 filters this engine does not implement: a template naming them
 * still parses and fails only if it runs them. */
static const char *const UNSUPPORTED[] = {"filesizeformat", "pprint", "random", "slice", "striptags",
                                          "urlencode", "urlize", "wordwrap", "xmlattr", NULL};

bool nuage__jhas_filter(const char *name) {
    for (size_t i = 0; i < sizeof FILTERS / sizeof FILTERS[0]; i++)
        if (!strcmp(FILTERS[i].name, name)) return true;
    return false;
}

bool nuage__jknown_filter(const char *name) {
    for (int i = 0; UNSUPPORTED[i]; i++)
        if (!strcmp(UNSUPPORTED[i], name)) return true;
    return nuage__jhas_filter(name);
}

/*
 * The filters that are generator functions in Jinja2 run nothing until
 * consumed, so their errors only surface then (`{% if 1|map('x') %}` is
 * true). Run fn eagerly; if it fails with a template error, return a
 * "poisoned" generator carrying the message instead.
 */
static int run_lazy(jctx *c, int line, filter_fn fn, jval v, const jargs *a, jval *out) {
    char msg[512] = "";
    char *saved_err = c->err;
    size_t saved_len = c->errlen;
    c->err = msg;
    c->errlen = sizeof msg;
    int rc = fn(c, line, v, a, out);
    c->err = saved_err;
    c->errlen = saved_len;
    if (rc == 0) return 0;
    if (c->rc != NUAGE_E_TEMPLATE) {   /* out of memory and such: not deferred */
        if (saved_err && saved_len) snprintf(saved_err, saved_len, "%s", msg);
        return -1;
    }
    c->rc = 0;
    jlist *l = nuage__jlist_new(0);
    jstr *p = nuage__jstr_new(msg, strlen(msg));
    if (!l || !p) {
        if (l) jv_unref(jv_list(l));
        free(p);
        return nomem(c, line);
    }
    l->lazy = JL_GEN;
    l->poison = p;
    *out = jv_list(l);
    return 0;
}

int nuage__jfilter(jctx *c, int line, const char *name, jval v, const jargs *a, jval *out) {
    static const char *const lazy[] = {"map", "select", "reject", "selectattr", "rejectattr", "unique",
                                       "batch", "items", NULL};
    for (size_t i = 0; i < sizeof FILTERS / sizeof FILTERS[0]; i++)
        if (!strcmp(FILTERS[i].name, name)) {
            if (++c->steps > NUAGE__J_MAX_STEPS)
                return nuage__jfail(c, line, "template evaluation exceeded %u steps", NUAGE__J_MAX_STEPS);
            for (int k = 0; lazy[k]; k++)
                if (!strcmp(lazy[k], name)) return run_lazy(c, line, FILTERS[i].fn, v, a, out);
            return FILTERS[i].fn(c, line, v, a, out);
        }
    if (nuage__jknown_filter(name)) return nuage__jfail(c, line, "filter '%s' is not supported", name);
    return nuage__jfail(c, line, "No filter named '%s'.", name);
}

/* ---- tests ------------------------------------------------------------------------------------- */
static const char *const TESTS[] = {
    "defined", "undefined", "none", "boolean", "false", "true", "integer", "float", "number",
    "string", "mapping", "sequence", "iterable", "callable", "sameas", "escaped", "lower", "upper",
    "even", "odd", "divisibleby", "in", "eq", "equalto", "==", "ne", "!=", "lt", "<", "lessthan",
    "le", "<=", "gt", ">", "greaterthan", "ge", ">=", "filter", "test", NULL};

bool nuage__jhas_test(const char *name) {
    for (int i = 0; TESTS[i]; i++)
        if (!strcmp(TESTS[i], name)) return true;
    return false;
}

static int one_arg(jctx *c, int line, const char *name, const jargs *a, jval *arg) {
    static const char *const params[] = {"value"};
    if (nuage__jbind(c, line, name, a, params, 1, arg) < 0) return -1;
    if (arg->t == JV_MISSING) return nuage__jfail(c, line, "test '%s' needs an argument", name);
    return 0;
}

/* *out = (v op arg) for one comparison operator (OP_EQ ... OP_IN), through
 * the evaluator's own comparison so tests and operators agree. */
static int compare(jctx *c, int line, jval v, uint8_t op, jval arg, bool *out) {
    jnode na = {0}, nb = {0}, cmp = {0};
    jnode *items[1] = {&nb};
    na.kind = nb.kind = JN_CONST;
    na.val = v;
    nb.val = arg;
    cmp.kind = JN_CMP;
    cmp.line = line;
    cmp.a = &na;
    cmp.items = items;
    cmp.nitems = 1;
    cmp.ops = &op;
    jval r;
    if (nuage__jeval(c, &cmp, NULL, &r) < 0) return -1;
    *out = r.u.b;
    return 0;
}

int nuage__jtest(jctx *c, int line, const char *name, jval v, const jargs *a, bool *out) {
    jval arg;
    bool undef = v.t == JV_UNDEF || v.t == JV_MISSING;
    if (!strcmp(name, "defined")) *out = !undef;
    else if (!strcmp(name, "undefined")) *out = undef;
    else if (!strcmp(name, "none")) *out = v.t == JV_NONE;
    else if (!strcmp(name, "boolean")) *out = v.t == JV_BOOL;
    else if (!strcmp(name, "false")) *out = v.t == JV_BOOL && !v.u.b;
    else if (!strcmp(name, "true")) *out = v.t == JV_BOOL && v.u.b;
    else if (!strcmp(name, "integer")) *out = v.t == JV_INT;
    else if (!strcmp(name, "float")) *out = v.t == JV_FLOAT;
    else if (!strcmp(name, "number")) *out = jv_isnum(v);
    else if (!strcmp(name, "string")) *out = v.t == JV_STR;
    else if (!strcmp(name, "mapping")) *out = v.t == JV_DICT;
    else if (!strcmp(name, "sequence")) *out = undef || v.t == JV_STR || (v.t == JV_LIST && !v.u.l->lazy) || v.t == JV_DICT;
    else if (!strcmp(name, "iterable")) *out = undef || v.t == JV_STR || v.t == JV_LIST || v.t == JV_DICT || v.t == JV_LOOP;
    else if (!strcmp(name, "callable")) *out = undef || v.t == JV_FUNC || v.t == JV_LOOP;  /* Undefined has __call__ */
    else if (!strcmp(name, "escaped")) *out = false;
    else if (!strcmp(name, "lower") || !strcmp(name, "upper")) {
        jval s, r;
        static const char *const none[] = {NULL};
        jargs empty = {0};
        (void)none;
        if (to_str(c, line, v, &s) < 0) return -1;
        int id = nuage__jmethod_id(s, name[0] == 'l' ? "islower" : "isupper");
        int rc = nuage__jmethod_call(c, line, id, s, &empty, &r);
        jv_unref(s);
        if (rc < 0) return -1;
        *out = r.u.b;
    } else if (!strcmp(name, "even") || !strcmp(name, "odd") || !strcmp(name, "divisibleby")) {
        /* value % 2 == 1 / value % 2 == 0 / value % num == 0, with Python's % */
        jval d = jv_int(2), r;
        if (name[0] == 'd' && one_arg(c, line, name, a, &d) < 0) return -1;
        jnode na = {0}, nb = {0}, bin = {0};
        na.kind = nb.kind = JN_CONST;
        na.val = v;
        nb.val = d;
        bin.kind = JN_BIN;
        bin.op = OP_MOD;
        bin.line = line;
        bin.a = &na;
        bin.b = &nb;
        if (nuage__jeval(c, &bin, NULL, &r) < 0) return -1;
        *out = nuage__jv_eq(r, jv_int(name[0] == 'o' ? 1 : 0));
        jv_unref(r);
    } else if (!strcmp(name, "in")) {
        if (one_arg(c, line, name, a, &arg) < 0) return -1;
        return compare(c, line, v, OP_IN, arg, out);
    } else if (!strcmp(name, "sameas")) {
        if (one_arg(c, line, name, a, &arg) < 0) return -1;
        if (v.t != arg.t) *out = false;
        else if (jv_heap(v)) *out = v.u.h == arg.u.h;
        else *out = nuage__jv_eq(v, arg);
    } else if (!strcmp(name, "filter") || !strcmp(name, "test")) {
        if (one_arg(c, line, name, a, &arg) < 0) return -1;
        *out = arg.t == JV_STR && (name[0] == 'f' ? nuage__jhas_filter(arg.u.s->s) : nuage__jhas_test(arg.u.s->s));
    } else {
        int op = 0;
        if (!strcmp(name, "eq") || !strcmp(name, "equalto") || !strcmp(name, "==")) op = OP_EQ;
        else if (!strcmp(name, "ne") || !strcmp(name, "!=")) op = OP_NE;
        else if (!strcmp(name, "lt") || !strcmp(name, "<") || !strcmp(name, "lessthan")) op = OP_LT;
        else if (!strcmp(name, "le") || !strcmp(name, "<=")) op = OP_LE;
        else if (!strcmp(name, "gt") || !strcmp(name, ">") || !strcmp(name, "greaterthan")) op = OP_GT;
        else if (!strcmp(name, "ge") || !strcmp(name, ">=")) op = OP_GE;
        else return nuage__jfail(c, line, "No test named '%s'.", name);
        if (one_arg(c, line, name, a, &arg) < 0) return -1;
        return compare(c, line, v, (uint8_t)op, arg, out);
    }
    return 0;
}
