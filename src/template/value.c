/*
 * value.c - the template language's values and their Python behaviour.
 *
 * A template value models a Python object as Jinja2 sees it: None, bool,
 * int, float, str, list, tuple, dict, a Jinja namespace, callables, the loop
 * object, and Undefined. This file owns their life cycle (reference counts;
 * immortal objects have a negative count), the byte buffer used for all
 * output, and the Python semantics every other file relies on:
 * truthiness, ==, <, and str()/repr() printing, including float repr (the
 * shortest digit string that round-trips, formatted as Python does:
 * 0.93, 1.0, 1e+16, 1e-05) and string repr quoting/escaping rules.
 *
 * Containers are immutable once built (the sandbox forbids mutating
 * methods) except namespaces, so cycles can only go through namespaces and
 * scopes; eval.c breaks those at the end of a render.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "template/jinja.h"

/* ---- byte buffer ------------------------------------------------------------ */
int nuage__jbuf_put(jbuf *b, const char *s, size_t n) {
    if (n == 0) return 0;
    size_t limit = b->limit ? b->limit : NUAGE__J_MAX_OUTPUT;
    if (b->n + n > limit || b->n + n < b->n) return NUAGE_E_RANGE;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->n + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) return NUAGE_E_NOMEM;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
    return 0;
}

int nuage__jbuf_putc(jbuf *b, char c) { return nuage__jbuf_put(b, &c, 1); }

int nuage__jbuf_printf(jbuf *b, const char *fmt, ...) {
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (k < 0) return NUAGE_E_INVAL;
    if ((size_t)k >= sizeof tmp) k = sizeof tmp - 1;
    return nuage__jbuf_put(b, tmp, (size_t)k);
}

void nuage__jbuf_free(jbuf *b) {
    free(b->p);
    b->p = NULL;
    b->n = b->cap = 0;
}

/* ---- life cycle ---------------------------------------------------------------- */
void nuage__jscope_unref(jscope *s);

void nuage__jv_unref(jval v) {
    if (!jv_heap(v)) return;
    if (v.u.h->rc < 0) return;
    if (--v.u.h->rc > 0) return;
    switch (v.t) {
    case JV_UNDEF: case JV_STR:
        free(v.u.s);
        break;
    case JV_LIST:
        for (size_t i = 0; i < v.u.l->n; i++) jv_unref(v.u.l->v[i]);
        free(v.u.l->poison);
        free(v.u.l->v);
        free(v.u.l);
        break;
    case JV_DICT: case JV_NS:
        for (size_t i = 0; i < v.u.d->n; i++) { jv_unref(v.u.d->k[i]); jv_unref(v.u.d->v[i]); }
        free(v.u.d->k);
        free(v.u.d->v);
        free(v.u.d);
        break;
    case JV_FUNC:
        if (v.u.fn->scope) nuage__jscope_unref(v.u.fn->scope);
        jv_unref(v.u.fn->self);
        jv_unref(v.u.fn->caller);
        free(v.u.fn);
        break;
    case JV_LOOP:
        if (v.u.lp->items) jv_unref(jv_list(v.u.lp->items));
        if (v.u.lp->scope) nuage__jscope_unref(v.u.lp->scope);
        jv_unref(v.u.lp->last);
        free(v.u.lp);
        break;
    default:
        break;
    }
}

jstr *nuage__jstr_new(const char *s, size_t n) {
    jstr *r = malloc(sizeof *r + n + 1);
    if (!r) return NULL;
    r->h.rc = 1;
    r->len = n;
    if (n) memcpy(r->s, s, n);
    r->s[n] = 0;
    r->ncp = nuage__utf8_count(r->s, n);
    return r;
}

jval nuage__jv_str(const char *s, size_t n) {
    jstr *r = nuage__jstr_new(s, n);
    return r ? jv_strv(r) : jv_missing();
}

jval nuage__jv_cstr(const char *s) { return nuage__jv_str(s, strlen(s)); }

jlist *nuage__jlist_new(size_t cap) {
    jlist *l = calloc(1, sizeof *l);
    if (!l) return NULL;
    l->h.rc = 1;
    if (cap) {
        l->v = malloc(cap * sizeof *l->v);
        if (!l->v) { free(l); return NULL; }
        l->cap = cap;
    }
    return l;
}

int nuage__jlist_push(jlist *l, jval v) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 8;
        if (l->n >= NUAGE__J_MAX_ITEMS) { jv_unref(v); return NUAGE_E_RANGE; }
        jval *p = realloc(l->v, cap * sizeof *p);
        if (!p) { jv_unref(v); return NUAGE_E_NOMEM; }
        l->v = p;
        l->cap = cap;
    }
    l->v[l->n++] = v;
    return 0;
}

jdict *nuage__jdict_new(size_t cap) {
    jdict *d = calloc(1, sizeof *d);
    if (!d) return NULL;
    d->h.rc = 1;
    if (cap) {
        d->k = malloc(cap * sizeof *d->k);
        d->v = malloc(cap * sizeof *d->v);
        if (!d->k || !d->v) { free(d->k); free(d->v); free(d); return NULL; }
        d->cap = cap;
    }
    return d;
}

int nuage__jdict_append(jdict *d, jval k, jval v) {
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 8;
        if (d->n >= NUAGE__J_MAX_ITEMS) { jv_unref(k); jv_unref(v); return NUAGE_E_RANGE; }
        jval *pk = realloc(d->k, cap * sizeof *pk);
        if (pk) d->k = pk;
        jval *pv = pk ? realloc(d->v, cap * sizeof *pv) : NULL;
        if (!pk || !pv) { jv_unref(k); jv_unref(v); return NUAGE_E_NOMEM; }
        d->v = pv;
        d->cap = cap;
    }
    d->k[d->n] = k;
    d->v[d->n] = v;
    d->n++;
    return 0;
}

static size_t dict_find(const jdict *d, jval k) {
    for (size_t i = 0; i < d->n; i++) {
        const jval *dk = &d->k[i];
        if (k.t == JV_STR) {
            if (dk->t == JV_STR && dk->u.s->len == k.u.s->len &&
                memcmp(dk->u.s->s, k.u.s->s, k.u.s->len) == 0)
                return i;
        } else if (nuage__jv_eq(*dk, k)) {
            return i;
        }
    }
    return SIZE_MAX;
}

int nuage__jdict_set(jdict *d, jval k, jval v) {
    size_t i = dict_find(d, k);
    if (i != SIZE_MAX) {
        jv_unref(k);
        jv_unref(d->v[i]);
        d->v[i] = v;
        return 0;
    }
    return nuage__jdict_append(d, k, v);
}

const jval *nuage__jdict_get(const jdict *d, jval k) {
    size_t i = dict_find(d, k);
    return i == SIZE_MAX ? NULL : &d->v[i];
}

const jval *nuage__jdict_gets(const jdict *d, const char *k, size_t n) {
    for (size_t i = 0; i < d->n; i++) {
        const jval *dk = &d->k[i];
        if (dk->t == JV_STR && dk->u.s->len == n && memcmp(dk->u.s->s, k, n) == 0)
            return &d->v[i];
    }
    return NULL;
}

/* ---- Python semantics ------------------------------------------------------------ */
bool nuage__jv_truthy(jval v) {
    switch (v.t) {
    case JV_MISSING: case JV_UNDEF: case JV_NONE: return false;
    case JV_BOOL: return v.u.b;
    case JV_INT: return v.u.i != 0;
    case JV_FLOAT: return v.u.f != 0.0;
    case JV_STR: return v.u.s->len != 0;
    case JV_LIST: return v.u.l->lazy == JL_GEN || v.u.l->n != 0;
    case JV_DICT: return v.u.d->n != 0;
    default: return true;
    }
}

static double num_f(jval v) {
    return v.t == JV_FLOAT ? v.u.f : v.t == JV_INT ? (double)v.u.i : (double)v.u.b;
}

static bool num_eq(jval a, jval b) {
    if (a.t == JV_FLOAT || b.t == JV_FLOAT) return num_f(a) == num_f(b);
    int64_t x = a.t == JV_INT ? a.u.i : a.u.b, y = b.t == JV_INT ? b.u.i : b.u.b;
    return x == y;
}

bool nuage__jv_eq(jval a, jval b) {
    if (jv_isnum(a) && jv_isnum(b)) return num_eq(a, b);
    if (a.t == JV_MISSING) a.t = JV_UNDEF;
    if (b.t == JV_MISSING) b.t = JV_UNDEF;
    if (a.t != b.t) return false;
    switch (a.t) {
    case JV_UNDEF: case JV_NONE: return true;
    case JV_STR:
        return a.u.s == b.u.s ||
               (a.u.s->len == b.u.s->len && memcmp(a.u.s->s, b.u.s->s, a.u.s->len) == 0);
    case JV_LIST:
        if (a.u.l == b.u.l) return true;
        if (a.u.l->lazy || b.u.l->lazy) return false;
        if (a.u.l->tuple != b.u.l->tuple || a.u.l->n != b.u.l->n) return false;
        for (size_t i = 0; i < a.u.l->n; i++)
            if (!nuage__jv_eq(a.u.l->v[i], b.u.l->v[i])) return false;
        return true;
    case JV_DICT:
        if (a.u.d == b.u.d) return true;
        if (a.u.d->n != b.u.d->n) return false;
        for (size_t i = 0; i < a.u.d->n; i++) {
            const jval *o = nuage__jdict_get(b.u.d, a.u.d->k[i]);
            if (!o || !nuage__jv_eq(a.u.d->v[i], *o)) return false;
        }
        return true;
    default:
        return a.u.h == b.u.h;
    }
}

int nuage__jv_cmp(jval a, jval b, int *res) {
    if (jv_isnum(a) && jv_isnum(b)) {
        if (a.t != JV_FLOAT && b.t != JV_FLOAT) {
            int64_t x = a.t == JV_INT ? a.u.i : a.u.b, y = b.t == JV_INT ? b.u.i : b.u.b;
            *res = x < y ? -1 : x > y;
        } else {
            double x = num_f(a), y = num_f(b);
            *res = x < y ? -1 : x > y;   /* NaN compares as equal-ish: neither < nor > */
        }
        return 0;
    }
    if (a.t == JV_STR && b.t == JV_STR) {
        size_t n = a.u.s->len < b.u.s->len ? a.u.s->len : b.u.s->len;
        int r = memcmp(a.u.s->s, b.u.s->s, n);
        if (r == 0) r = a.u.s->len < b.u.s->len ? -1 : a.u.s->len > b.u.s->len;
        *res = r < 0 ? -1 : r > 0;
        return 0;
    }
    if (a.t == JV_LIST && b.t == JV_LIST && a.u.l->tuple == b.u.l->tuple && !a.u.l->lazy && !b.u.l->lazy) {
        size_t n = a.u.l->n < b.u.l->n ? a.u.l->n : b.u.l->n;
        for (size_t i = 0; i < n; i++) {
            if (nuage__jv_eq(a.u.l->v[i], b.u.l->v[i])) continue;
            return nuage__jv_cmp(a.u.l->v[i], b.u.l->v[i], res);
        }
        *res = a.u.l->n < b.u.l->n ? -1 : a.u.l->n > b.u.l->n;
        return 0;
    }
    return -1;
}

bool nuage__jv_hashable(jval v) {
    if (v.t == JV_LIST) {
        if (!v.u.l->tuple) return false;
        for (size_t i = 0; i < v.u.l->n; i++)
            if (!nuage__jv_hashable(v.u.l->v[i])) return false;
        return true;
    }
    return v.t != JV_DICT;
}

const char *nuage__jv_typename(jval v) {
    switch (v.t) {
    case JV_MISSING: case JV_UNDEF: return "Undefined";
    case JV_NONE: return "NoneType";
    case JV_BOOL: return "bool";
    case JV_INT: return "int";
    case JV_FLOAT: return "float";
    case JV_STR: return "str";
    case JV_LIST:
        switch (v.u.l->lazy) {
        case JL_GEN: return "generator";
        case JL_ITEMS: return "dict_items";
        case JL_KEYS: return "dict_keys";
        case JL_VALUES: return "dict_values";
        }
        return v.u.l->tuple ? "tuple" : "list";
    case JV_DICT: return "dict";
    case JV_NS: return "Namespace";
    case JV_FUNC:
        return v.u.fn->kind == JF_MACRO ? "Macro" :
               v.u.fn->kind == JF_METHOD ? "builtin_function_or_method" : "function";
    case JV_LOOP: return "LoopContext";
    }
    return "object";
}

/* ---- printing -------------------------------------------------------------------------- */
void nuage__jfloat_repr(double f, char *buf) {
    if (isnan(f)) { strcpy(buf, "nan"); return; }
    if (isinf(f)) { strcpy(buf, f < 0 ? "-inf" : "inf"); return; }
    if (f == 0) { strcpy(buf, signbit(f) ? "-0.0" : "0.0"); return; }
    char tmp[40];
    int prec;
    for (prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*e", prec - 1, f);
        if (strtod(tmp, NULL) == f) break;
    }
    /* tmp = [-]d[.ddd]e[+-]XX : split into digits and decimal exponent */
    char digits[24];
    int nd = 0;
    const char *p = tmp;
    bool neg = false;
    if (*p == '-') { neg = true; p++; }
    for (; *p && *p != 'e'; p++)
        if (*p >= '0' && *p <= '9') digits[nd++] = *p;
    int e10 = atoi(p + 1);
    while (nd > 1 && digits[nd - 1] == '0') nd--;
    digits[nd] = 0;
    int decpt = e10 + 1;   /* value = 0.DIGITS * 10^decpt */
    char *o = buf;
    if (neg) *o++ = '-';
    if (decpt > -4 && decpt <= 16) {
        if (decpt <= 0) {
            *o++ = '0'; *o++ = '.';
            for (int i = 0; i < -decpt; i++) *o++ = '0';
            memcpy(o, digits, (size_t)nd); o += nd;
        } else if (decpt >= nd) {
            memcpy(o, digits, (size_t)nd); o += nd;
            for (int i = nd; i < decpt; i++) *o++ = '0';
            *o++ = '.'; *o++ = '0';
        } else {
            memcpy(o, digits, (size_t)decpt); o += decpt;
            *o++ = '.';
            memcpy(o, digits + decpt, (size_t)(nd - decpt)); o += nd - decpt;
        }
        *o = 0;
    } else {
        *o++ = digits[0];
        if (nd > 1) { *o++ = '.'; memcpy(o, digits + 1, (size_t)(nd - 1)); o += nd - 1; }
        sprintf(o, "e%c%02d", e10 < 0 ? '-' : '+', e10 < 0 ? -e10 : e10);
    }
}

static int write_str_repr(jbuf *b, const jstr *s) {
    bool has_sq = memchr(s->s, '\'', s->len) != NULL;
    bool has_dq = memchr(s->s, '"', s->len) != NULL;
    char q = (has_sq && !has_dq) ? '"' : '\'';
    int rc = nuage__jbuf_putc(b, q);
    size_t i = 0;
    while (rc == 0 && i < s->len) {
        size_t adv;
        uint32_t cp = nuage__utf8_dec(s->s + i, s->len - i, &adv);
        if (cp == (uint32_t)q || cp == '\\') {
            char e[2] = {'\\', (char)cp};
            rc = nuage__jbuf_put(b, e, 2);
        } else if (cp == '\n') rc = nuage__jbuf_put(b, "\\n", 2);
        else if (cp == '\r') rc = nuage__jbuf_put(b, "\\r", 2);
        else if (cp == '\t') rc = nuage__jbuf_put(b, "\\t", 2);
        else if (!nuage__u_isprintable(cp)) {
            if (cp < 0x100) rc = nuage__jbuf_printf(b, "\\x%02x", cp);
            else if (cp < 0x10000) rc = nuage__jbuf_printf(b, "\\u%04x", cp);
            else rc = nuage__jbuf_printf(b, "\\U%08x", cp);
        } else {
            rc = nuage__jbuf_put(b, s->s + i, adv);
        }
        i += adv;
    }
    if (rc == 0) rc = nuage__jbuf_putc(b, q);
    return rc;
}

static int write_val(jbuf *b, jval v, bool repr, int depth) {
    char tmp[64];
    int rc = 0;
    if (depth > NUAGE__J_MAX_NEST * 4) return NUAGE_E_RANGE;
    switch (v.t) {
    case JV_MISSING: case JV_UNDEF:
        return repr ? nuage__jbuf_put(b, "Undefined", 9) : 0;
    case JV_NONE: return nuage__jbuf_put(b, "None", 4);
    case JV_BOOL: return v.u.b ? nuage__jbuf_put(b, "True", 4) : nuage__jbuf_put(b, "False", 5);
    case JV_INT:
        snprintf(tmp, sizeof tmp, "%lld", (long long)v.u.i);
        return nuage__jbuf_put(b, tmp, strlen(tmp));
    case JV_FLOAT:
        nuage__jfloat_repr(v.u.f, tmp);
        return nuage__jbuf_put(b, tmp, strlen(tmp));
    case JV_STR:
        return repr ? write_str_repr(b, v.u.s) : nuage__jbuf_put(b, v.u.s->s, v.u.s->len);
    case JV_LIST: {
        const jlist *l = v.u.l;
        if (l->lazy == JL_GEN) return nuage__jbuf_put(b, "<generator object>", 18);
        if (l->lazy) {
            const char *nm = nuage__jv_typename(v);
            rc = nuage__jbuf_put(b, nm, strlen(nm));
            if (rc == 0) rc = nuage__jbuf_putc(b, '(');
            jlist plain = *l;
            plain.lazy = 0;
            if (rc == 0) rc = write_val(b, jv_list(&plain), true, depth + 1);
            if (rc == 0) rc = nuage__jbuf_putc(b, ')');
            return rc;
        }
        rc = nuage__jbuf_putc(b, l->tuple ? '(' : '[');
        for (size_t i = 0; rc == 0 && i < l->n; i++) {
            if (i) rc = nuage__jbuf_put(b, ", ", 2);
            if (rc == 0) rc = write_val(b, l->v[i], true, depth + 1);
        }
        if (rc == 0 && l->tuple && l->n == 1) rc = nuage__jbuf_putc(b, ',');
        if (rc == 0) rc = nuage__jbuf_putc(b, l->tuple ? ')' : ']');
        return rc;
    }
    case JV_DICT: case JV_NS: {
        const jdict *d = v.u.d;
        if (v.t == JV_NS) rc = nuage__jbuf_put(b, "<Namespace ", 11);
        if (rc == 0) rc = nuage__jbuf_putc(b, '{');
        for (size_t i = 0; rc == 0 && i < d->n; i++) {
            if (i) rc = nuage__jbuf_put(b, ", ", 2);
            if (rc == 0) rc = write_val(b, d->k[i], true, depth + 1);
            if (rc == 0) rc = nuage__jbuf_put(b, ": ", 2);
            if (rc == 0) rc = write_val(b, d->v[i], true, depth + 1);
        }
        if (rc == 0) rc = nuage__jbuf_putc(b, '}');
        if (rc == 0 && v.t == JV_NS) rc = nuage__jbuf_putc(b, '>');
        return rc;
    }
    case JV_FUNC:
        if (v.u.fn->kind == JF_MACRO)
            return nuage__jbuf_printf(b, "<Macro '%s'>", v.u.fn->name ? v.u.fn->name : "");
        return nuage__jbuf_printf(b, "<built-in function %s>", v.u.fn->name ? v.u.fn->name : "");
    case JV_LOOP:
        return nuage__jbuf_printf(b, "<LoopContext %zu/%zu>", v.u.lp->index0 + 1, v.u.lp->length);
    }
    return 0;
}

int nuage__jv_write(jbuf *b, jval v, bool repr) { return write_val(b, v, repr, 0); }
