/*
 * expr.c - evaluating expressions.
 *
 * Each JN_* expression node evaluates to a new reference. The operators
 * follow Python as Jinja2 runs them: `+` adds numbers or concatenates two
 * strings / two lists (string + number is an error), `/` is always float,
 * `//` and `%` floor (the sign of `%` follows the divisor), `*` repeats
 * strings and lists, `str % args` formats, `==` never fails (a string is
 * never equal to a number) while `<` between unrelated types does, `in`
 * is substring / element / key membership. Integers are 64-bit; overflow
 * is an error rather than a silent wrap.
 *
 * Attribute and item access implement Jinja2's sandboxed getattr/getitem:
 * `x.name` tries a (safe) Python attribute, i.e. a method such as
 * dict.items or str.strip, before the key; `x[k]` tries the key first.
 * Missing keys and out-of-range indices give Undefined (with a hint used
 * if that Undefined is later misused); attributes of Undefined, calling
 * it or doing arithmetic with it are errors. Mutating methods (append,
 * update, ...) come back as an "unsafe" Undefined, so using them fails.
 */
#define _GNU_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "template/jinja.h"

/* Undefined carrying a hint (formatted message); plain undefined on OOM. */
static jval undef_hint(const char *fmt, const char *a, const char *b) {
    char msg[300];
    snprintf(msg, sizeof msg, fmt, a ? a : "", b ? b : "");
    jval v = nuage__jv_cstr(msg);
    if (v.t == JV_MISSING) return jv_undef();
    v.t = JV_UNDEF;
    return v;
}

/* Error for misusing an undefined value. */
static int undef_error(jctx *c, int line, jval u) {
    if (u.t == JV_UNDEF && u.u.s) return nuage__jfail(c, line, "%s", u.u.s->s);
    return nuage__jfail(c, line, "value is undefined");
}

static bool steal_ok(jctx *c, int line, int rc) {
    if (rc == 0) return true;
    nuage__jfail_code(c, line, rc);
    return false;
}

/* ---- strings ----------------------------------------------------------------------- */
static int new_str(jctx *c, int line, const char *s, size_t n, jval *out) {
    if (n > NUAGE__J_MAX_OUTPUT) return nuage__jfail(c, line, "string too long (limit %u bytes)", NUAGE__J_MAX_OUTPUT);
    if (nuage__jwork(c, line, n) < 0) return -1;
    *out = nuage__jv_str(s, n);
    if (out->t == JV_MISSING) return nuage__jfail_code(c, line, NUAGE_E_NOMEM);
    return 0;
}

/* Code point `idx` of s as a new string. */
static int str_char(jctx *c, int line, const jstr *s, size_t idx, jval *out) {
    size_t off = s->ncp == s->len ? idx : nuage__utf8_offset(s->s, s->len, idx), adv;
    nuage__utf8_dec(s->s + off, s->len - off, &adv);
    return new_str(c, line, s->s + off, adv, out);
}

/* ---- item / attribute access ------------------------------------------------------------ */
static bool as_index(jval k, int64_t *i) {
    if (k.t == JV_INT) { *i = k.u.i; return true; }
    if (k.t == JV_BOOL) { *i = k.u.b; return true; }
    return false;
}

static int loop_attr(jctx *c, int line, jloop *lp, const char *name, jval *out) {
    size_t i = lp->index0, n = lp->length;
    if (!strcmp(name, "index")) *out = jv_int((int64_t)i + 1);
    else if (!strcmp(name, "index0")) *out = jv_int((int64_t)i);
    else if (!strcmp(name, "revindex")) *out = jv_int((int64_t)(n - i));
    else if (!strcmp(name, "revindex0")) *out = jv_int((int64_t)(n - i - 1));
    else if (!strcmp(name, "first")) *out = jv_bool(i == 0);
    else if (!strcmp(name, "last")) *out = jv_bool(i + 1 == n);
    else if (!strcmp(name, "length")) *out = jv_int((int64_t)n);
    else if (!strcmp(name, "depth")) *out = jv_int(lp->depth0 + 1);
    else if (!strcmp(name, "depth0")) *out = jv_int(lp->depth0);
    else if (!strcmp(name, "previtem"))
        *out = i > 0 ? jv_ref(lp->items->v[i - 1]) : undef_hint("there is no previous item", NULL, NULL);
    else if (!strcmp(name, "nextitem"))
        *out = i + 1 < n ? jv_ref(lp->items->v[i + 1]) : undef_hint("there is no next item", NULL, NULL);
    else {
        jval self = {.t = JV_LOOP, .u.lp = lp};
        int id = nuage__jmethod_id(self, name);
        if (id <= 0) { *out = undef_hint("'LoopContext object' has no attribute '%s'", name, NULL); return 0; }
        jfunc *f = calloc(1, sizeof *f);
        if (!f) return nuage__jfail_code(c, line, NUAGE_E_NOMEM);
        f->h.rc = 1; f->kind = JF_METHOD; f->id = id; f->self = jv_ref(self);
        f->caller = jv_missing(); f->name = nuage__jmethod_name(id);
        out->t = JV_FUNC; out->u.fn = f;
    }
    return 0;
}

/* Bound method `name` of v, or 0 when v has no such (safe) attribute;
 * an unsafe (mutating) one gives an unsafe Undefined. Returns 1 if found. */
static int method_attr(jctx *c, int line, jval v, const char *name, jval *out) {
    int id = nuage__jmethod_id(v, name);
    if (id == 0) return 0;
    if (id < 0) {
        *out = undef_hint("access to attribute '%s' of '%s' object is unsafe.", name, nuage__jv_typename(v));
        return 1;
    }
    jfunc *f = calloc(1, sizeof *f);
    if (!f) { nuage__jfail_code(c, line, NUAGE_E_NOMEM); return -1; }
    f->h.rc = 1;
    f->kind = JF_METHOD;
    f->id = id;
    f->self = jv_ref(v);
    f->caller = jv_missing();
    f->name = nuage__jmethod_name(id);
    out->t = JV_FUNC;
    out->u.fn = f;
    return 1;
}

/* Plain item lookup (obj[key]); 1 found, 0 not found, -1 error. */
static int item_lookup(jctx *c, int line, jval obj, jval key, jval *out) {
    int64_t i;
    switch (obj.t) {
    case JV_DICT: case JV_NS: {
        if (!nuage__jv_hashable(key)) return 0;
        const jval *v = nuage__jdict_get(obj.u.d, key);
        if (!v) return 0;
        *out = jv_ref(*v);
        return 1;
    }
    case JV_LIST:
        if (obj.u.l->lazy || !as_index(key, &i)) return 0;
        if (i < 0) i += (int64_t)obj.u.l->n;
        if (i < 0 || (uint64_t)i >= obj.u.l->n) return 0;
        *out = jv_ref(obj.u.l->v[i]);
        return 1;
    case JV_STR:
        if (!as_index(key, &i)) return 0;
        if (i < 0) i += (int64_t)obj.u.s->ncp;
        if (i < 0 || (uint64_t)i >= obj.u.s->ncp) return 0;
        return str_char(c, line, obj.u.s, (size_t)i, out) < 0 ? -1 : 1;
    default:
        return 0;
    }
}

int nuage__jgetattr(jctx *c, int line, jval obj, jval key, bool attr_first, jval *out) {
    if (obj.t == JV_UNDEF || obj.t == JV_MISSING) return undef_error(c, line, obj);
    const char *kname = key.t == JV_STR ? key.u.s->s : NULL;
    if (obj.t == JV_LOOP && kname) return loop_attr(c, line, obj.u.lp, kname, out);
    if (obj.t == JV_LIST && obj.u.l->group && kname && attr_first &&
        (!strcmp(kname, "grouper") || !strcmp(kname, "list"))) {
        *out = jv_ref(obj.u.l->v[kname[0] == 'l']);
        return 0;
    }
    if (attr_first && kname && obj.t != JV_NS) {
        int r = method_attr(c, line, obj, kname, out);
        if (r) return r < 0 ? -1 : 0;
    }
    int r = item_lookup(c, line, obj, key, out);
    if (r) return r < 0 ? -1 : 0;
    if (!attr_first && kname && obj.t != JV_NS) {
        r = method_attr(c, line, obj, kname, out);
        if (r) return r < 0 ? -1 : 0;
    }
    if (kname) {
        if (obj.t == JV_NONE) *out = undef_hint("'None' has no attribute '%s'", kname, NULL);
        else *out = undef_hint("'%s object' has no attribute '%s'", nuage__jv_typename(obj), kname);
    } else {
        jbuf b = {0};
        nuage__jv_write(&b, key, true);
        *out = undef_hint("'%s object' has no element %s", nuage__jv_typename(obj), b.p ? b.p : "");
        nuage__jbuf_free(&b);
    }
    return 0;
}

/* ---- slices --------------------------------------------------------------------------- */
static int slice_index(jctx *c, int line, jval v, bool *present, int64_t *out) {
    if (v.t == JV_NONE || v.t == JV_MISSING) { *present = false; return 0; }
    if (!as_index(v, out)) return nuage__jfail(c, line, "slice indices must be integers or None");
    *present = true;
    return 0;
}

static int do_slice(jctx *c, int line, jval obj, jval vs, jval ve, jval vst, jval *out) {
    bool hs = false, he = false, ht = false;
    int64_t s = 0, e = 0, st = 1;
    if (obj.t == JV_UNDEF) return undef_error(c, line, obj);
    if (slice_index(c, line, vs, &hs, &s) < 0 || slice_index(c, line, ve, &he, &e) < 0 ||
        slice_index(c, line, vst, &ht, &st) < 0)
        return -1;
    if (!ht) st = 1;
    if (st == 0) return nuage__jfail(c, line, "slice step cannot be zero");
    int64_t len;
    if (obj.t == JV_LIST && !obj.u.l->lazy) len = (int64_t)obj.u.l->n;
    else if (obj.t == JV_STR) len = (int64_t)obj.u.s->ncp;
    else { *out = undef_hint("'%s object' cannot be sliced", nuage__jv_typename(obj), NULL); return 0; }
    if (st > 0) {
        if (!hs) s = 0; else { if (s < 0) s += len; if (s < 0) s = 0; else if (s > len) s = len; }
        if (!he) e = len; else { if (e < 0) e += len; if (e < 0) e = 0; else if (e > len) e = len; }
    } else {
        if (!hs) s = len - 1; else { if (s < 0) s += len; if (s < 0) s = -1; else if (s >= len) s = len - 1; }
        if (!he) e = -1; else { if (e < 0) e += len; if (e < 0) e = -1; else if (e >= len) e = len - 1; }
    }
    if (obj.t == JV_LIST) {
        jlist *l = nuage__jlist_new(0);
        if (!l) return nuage__jfail_code(c, line, NUAGE_E_NOMEM);
        l->tuple = obj.u.l->tuple;
        for (int64_t i = s; st > 0 ? i < e : i > e; i += st)
            if (!steal_ok(c, line, nuage__jlist_push(l, jv_ref(obj.u.l->v[i])))) { jv_unref(jv_list(l)); return -1; }
        *out = jv_list(l);
        return 0;
    }
    const jstr *str = obj.u.s;
    if (st == 1 && str->ncp == str->len)
        return new_str(c, line, str->s + s, e > s ? (size_t)(e - s) : 0, out);
    /* general case: code point offsets */
    size_t *off = malloc(((size_t)len + 1) * sizeof *off);
    if (!off) return nuage__jfail_code(c, line, NUAGE_E_NOMEM);
    size_t k = 0;
    for (size_t i = 0; i < str->len; i++)
        if (((unsigned char)str->s[i] & 0xC0) != 0x80) off[k++] = i;
    off[k] = str->len;
    jbuf b = {0};
    int rc = 0;
    for (int64_t i = s; rc == 0 && (st > 0 ? i < e : i > e); i += st)
        rc = nuage__jbuf_put(&b, str->s + off[i], off[i + 1] - off[i]);
    free(off);
    if (rc == 0) rc = new_str(c, line, b.p ? b.p : "", b.n, out) < 0 ? 1 : 0;
    else nuage__jfail_code(c, line, rc);
    nuage__jbuf_free(&b);
    return rc ? -1 : 0;
}

/* ---- arithmetic ---------------------------------------------------------------------------- */
static int type_error2(jctx *c, int line, const char *op, jval a, jval b) {
    return nuage__jfail(c, line, "unsupported operand type(s) for %s: '%s' and '%s'", op,
                        nuage__jv_typename(a), nuage__jv_typename(b));
}

static double numf(jval v) { return v.t == JV_FLOAT ? v.u.f : v.t == JV_INT ? (double)v.u.i : (double)v.u.b; }
static int64_t numi(jval v) { return v.t == JV_INT ? v.u.i : (int64_t)v.u.b; }

static int repeat(jctx *c, int line, jval seq, int64_t times, jval *out) {
    if (times < 0) times = 0;
    if (seq.t == JV_STR) {
        size_t n = seq.u.s->len;
        if (n && (uint64_t)times > NUAGE__J_MAX_OUTPUT / n)
            return nuage__jfail(c, line, "string too long (limit %u bytes)", NUAGE__J_MAX_OUTPUT);
        if (nuage__jwork(c, line, n * (size_t)times) < 0) return -1;
        jstr *s = malloc(sizeof *s + n * (size_t)times + 1);
        if (!s) return nuage__jfail_code(c, line, NUAGE_E_NOMEM);
        s->h.rc = 1;
        s->len = n * (size_t)times;
        if (s->len) {   /* doubling copies */
            memcpy(s->s, seq.u.s->s, n);
            for (size_t done = n; done < s->len;) {
                size_t k = done <= s->len - done ? done : s->len - done;
                memcpy(s->s + done, s->s, k);
                done += k;
            }
        }
        s->s[s->len] = 0;
        s->ncp = seq.u.s->ncp * (size_t)times;
        *out = jv_strv(s);
        return 0;
    }
    size_t n = seq.u.l->n;
    if (n && (uint64_t)times > NUAGE__J_MAX_ITEMS / n)
        return nuage__jfail(c, line, "list too long");
    if (nuage__jwork(c, line, n * (size_t)times * sizeof(jval)) < 0) return -1;
    jlist *l = nuage__jlist_new(n * (size_t)times);
    if (!l) return nuage__jfail_code(c, line, NUAGE_E_NOMEM);
    l->tuple = seq.u.l->tuple;
    for (int64_t i = 0; i < times; i++)
        for (size_t j = 0; j < n; j++) l->v[l->n++] = jv_ref(seq.u.l->v[j]);
    *out = jv_list(l);
    return 0;
}

static int binop(jctx *c, int line, int op, jval a, jval b, jval *out) {
    static const char *names[] = {[OP_ADD] = "+", [OP_SUB] = "-", [OP_MUL] = "*", [OP_DIV] = "/",
                                  [OP_FDIV] = "//", [OP_MOD] = "%", [OP_POW] = "**"};
    if (a.t == JV_UNDEF || a.t == JV_MISSING) return undef_error(c, line, a);
    if (b.t == JV_UNDEF || b.t == JV_MISSING) return undef_error(c, line, b);
    if (jv_isnum(a) && jv_isnum(b)) {
        bool fl = a.t == JV_FLOAT || b.t == JV_FLOAT;
        if (fl || op == OP_DIV) {
            double x = numf(a), y = numf(b), r;
            switch (op) {
            case OP_ADD: r = x + y; break;
            case OP_SUB: r = x - y; break;
            case OP_MUL: r = x * y; break;
            case OP_DIV:
                if (y == 0) return nuage__jfail(c, line, "division by zero");
                r = x / y; break;
            case OP_FDIV: case OP_MOD: {
                if (y == 0) return nuage__jfail(c, line, "float division by zero");
                double mod = fmod(x, y);
                if (mod) { if ((y < 0) != (mod < 0)) mod += y; }
                else mod = copysign(0.0, y);
                if (op == OP_MOD) { r = mod; break; }
                double div = (x - mod) / y;
                if (div) { r = floor(div); if (div - r > 0.5) r += 1.0; }
                else r = copysign(0.0, x / y);
                break;
            }
            default: /* POW */
                if (x == 0 && y < 0) return nuage__jfail(c, line, "0.0 cannot be raised to a negative power");
                if (x < 0 && y != floor(y)) return nuage__jfail(c, line, "complex result of ** is not supported");
                r = pow(x, y);
                break;
            }
            *out = jv_float(r);
            return 0;
        }
        int64_t x = numi(a), y = numi(b), r;
        switch (op) {
        case OP_ADD: if (__builtin_add_overflow(x, y, &r)) goto overflow; break;
        case OP_SUB: if (__builtin_sub_overflow(x, y, &r)) goto overflow; break;
        case OP_MUL: if (__builtin_mul_overflow(x, y, &r)) goto overflow; break;
        case OP_FDIV: case OP_MOD:
            if (y == 0) return nuage__jfail(c, line, "integer division or modulo by zero");
            if (x == INT64_MIN && y == -1) goto overflow;
            if (op == OP_FDIV) { r = x / y; if ((x % y != 0) && ((x < 0) != (y < 0))) r--; }
            else { r = x % y; if (r != 0 && ((r < 0) != (y < 0))) r += y; }
            break;
        default: /* POW */
            if (y < 0) {
                if (x == 0) return nuage__jfail(c, line, "0.0 cannot be raised to a negative power");
                *out = jv_float(pow((double)x, (double)y));
                return 0;
            }
            r = 1;
            for (int64_t base = x, e = y; e; e >>= 1) {
                if ((e & 1) && __builtin_mul_overflow(r, base, &r)) goto overflow;
                if ((e >> 1) && __builtin_mul_overflow(base, base, &base)) goto overflow;
            }
            break;
        }
        *out = jv_int(r);
        return 0;
    overflow:
        return nuage__jfail(c, line, "integer overflow in '%s'", names[op]);
    }
    if (op == OP_ADD) {
        if (a.t == JV_STR && b.t == JV_STR) {
            size_t n = a.u.s->len + b.u.s->len;
            if (n > NUAGE__J_MAX_OUTPUT) return nuage__jfail(c, line, "string too long (limit %u bytes)", NUAGE__J_MAX_OUTPUT);
            if (nuage__jwork(c, line, n) < 0) return -1;
            jstr *s = malloc(sizeof *s + n + 1);
            if (!s) return nuage__jfail_code(c, line, NUAGE_E_NOMEM);
            s->h.rc = 1;
            memcpy(s->s, a.u.s->s, a.u.s->len);
            memcpy(s->s + a.u.s->len, b.u.s->s, b.u.s->len);
            s->s[n] = 0;
            s->len = n;
            s->ncp = a.u.s->ncp + b.u.s->ncp;
            *out = jv_strv(s);
            return 0;
        }
        if (a.t == JV_LIST && b.t == JV_LIST && a.u.l->tuple == b.u.l->tuple && !a.u.l->lazy && !b.u.l->lazy) {
            size_t n = a.u.l->n + b.u.l->n;
            if (n > NUAGE__J_MAX_ITEMS) return nuage__jfail(c, line, "list too long");
            if (nuage__jwork(c, line, n * sizeof(jval)) < 0) return -1;
            jlist *l = nuage__jlist_new(n);
            if (!l) return nuage__jfail_code(c, line, NUAGE_E_NOMEM);
            l->tuple = a.u.l->tuple;
            for (size_t i = 0; i < a.u.l->n; i++) l->v[l->n++] = jv_ref(a.u.l->v[i]);
            for (size_t i = 0; i < b.u.l->n; i++) l->v[l->n++] = jv_ref(b.u.l->v[i]);
            *out = jv_list(l);
            return 0;
        }
        if (a.t == JV_STR)
            return nuage__jfail(c, line, "can only concatenate str (not \"%s\") to str", nuage__jv_typename(b));
        if (a.t == JV_LIST)
            return nuage__jfail(c, line, "can only concatenate %s (not \"%s\") to %s", nuage__jv_typename(a),
                                nuage__jv_typename(b), nuage__jv_typename(a));
    }
    if (op == OP_MUL && !(a.t == JV_LIST && a.u.l->lazy) && !(b.t == JV_LIST && b.u.l->lazy)) {
        if ((a.t == JV_STR || a.t == JV_LIST) && (b.t == JV_INT || b.t == JV_BOOL))
            return repeat(c, line, a, numi(b), out);
        if ((b.t == JV_STR || b.t == JV_LIST) && (a.t == JV_INT || a.t == JV_BOOL))
            return repeat(c, line, b, numi(a), out);
    }
    if (op == OP_MOD && a.t == JV_STR) return nuage__jformat_percent(c, line, a.u.s, b, out);
    return type_error2(c, line, names[op], a, b);
}

static int contains(jctx *c, int line, jval hay, jval needle, bool *out) {
    switch (hay.t) {
    case JV_STR:
        if (needle.t != JV_STR)
            return nuage__jfail(c, line, "'in <string>' requires string as left operand, not %s",
                                nuage__jv_typename(needle));
        *out = needle.u.s->len == 0 ||
               memmem(hay.u.s->s, hay.u.s->len, needle.u.s->s, needle.u.s->len) != NULL;
        return 0;
    case JV_LIST:
        if (hay.u.l->poison) return nuage__jfail(c, 0, "%s", hay.u.l->poison->s);
        *out = false;
        for (size_t i = 0; i < hay.u.l->n && !*out; i++) *out = nuage__jv_eq(hay.u.l->v[i], needle);
        return 0;
    case JV_DICT:
        if (!nuage__jv_hashable(needle))
            return nuage__jfail(c, line, "unhashable type: '%s'", nuage__jv_typename(needle));
        *out = nuage__jdict_get(hay.u.d, needle) != NULL;
        return 0;
    case JV_UNDEF: case JV_MISSING:
        *out = false;
        return 0;
    default:
        return nuage__jfail(c, line, "argument of type '%s' is not iterable", nuage__jv_typename(hay));
    }
}

static int compare(jctx *c, int line, int op, jval a, jval b, bool *out) {
    if (op == OP_EQ || op == OP_NE) {
        *out = nuage__jv_eq(a, b) == (op == OP_EQ);
        return 0;
    }
    if (op == OP_IN || op == OP_NOTIN) {
        if (contains(c, line, b, a, out) < 0) return -1;
        if (op == OP_NOTIN) *out = !*out;
        return 0;
    }
    static const char *names[] = {[OP_LT] = "<", [OP_LE] = "<=", [OP_GT] = ">", [OP_GE] = ">="};
    if (a.t == JV_UNDEF || a.t == JV_MISSING) return undef_error(c, line, a);
    if (b.t == JV_UNDEF || b.t == JV_MISSING) return undef_error(c, line, b);
    int r;
    if (nuage__jv_cmp(a, b, &r) < 0)
        return nuage__jfail(c, line, "'%s' not supported between instances of '%s' and '%s'", names[op],
                            nuage__jv_typename(a), nuage__jv_typename(b));
    if ((a.t == JV_FLOAT && isnan(a.u.f)) || (b.t == JV_FLOAT && isnan(b.u.f))) { *out = false; return 0; }
    *out = op == OP_LT ? r < 0 : op == OP_LE ? r <= 0 : op == OP_GT ? r > 0 : r >= 0;
    return 0;
}

/* ---- argument lists --------------------------------------------------------------------- */
#define ARGV_INLINE 6
typedef struct {
    jval ipos[ARGV_INLINE]; const char *ikwn[ARGV_INLINE]; jval ikwv[ARGV_INLINE];
    jval *pos; const char **kwn; jval *kwv;   /* inline arrays or heap ones */
    size_t npos, nkw;
    jlist *dyn; jdict *dynkw;                  /* expanded *args / **kwargs (owned) */
} argv_t;

static void args_free(argv_t *v) {
    for (size_t i = 0; i < v->npos; i++) jv_unref(v->pos[i]);
    for (size_t i = 0; i < v->nkw; i++) jv_unref(v->kwv[i]);
    if (v->pos != v->ipos) free(v->pos);
    if (v->kwn != v->ikwn) free((void *)v->kwn);
    if (v->kwv != v->ikwv) free(v->kwv);
    if (v->dyn) jv_unref(jv_list(v->dyn));
    if (v->dynkw) jv_unref(jv_dict(v->dynkw));
}

static int iter_list(jctx *c, int line, jval v, jlist **out);

/* Evaluate the arguments of a CALL / FILTER / TEST node into v / a.
 * v must be released with args_free whatever this returns. */
static int eval_args(jctx *c, const jnode *n, jscope *sc, argv_t *v, jargs *a) {
    v->pos = v->ipos;
    v->kwn = v->ikwn;
    v->kwv = v->ikwv;
    v->npos = v->nkw = 0;
    v->dyn = NULL;
    v->dynkw = NULL;
    size_t extra = 0, extrakw = 0;
    if (n->b) {
        jval d;
        if (nuage__jeval(c, n->b, sc, &d) < 0) return -1;
        int rc = iter_list(c, n->line, d, &v->dyn);
        jv_unref(d);
        if (rc < 0) return -1;
        extra = v->dyn->n;
    }
    if (n->c) {
        jval d;
        if (nuage__jeval(c, n->c, sc, &d) < 0) return -1;
        if (d.t != JV_DICT) {
            jv_unref(d);
            return nuage__jfail(c, n->line, "argument after ** must be a mapping");
        }
        v->dynkw = d.u.d;
        extrakw = d.u.d->n;
    }
    size_t total = n->nitems + extra, totalkw = n->nitems2 + extrakw;
    if (total > NUAGE__J_MAX_RANGE || totalkw > NUAGE__J_MAX_RANGE) return nuage__jfail(c, n->line, "too many arguments");
    if (total > ARGV_INLINE && !(v->pos = malloc(total * sizeof *v->pos))) {
        v->pos = v->ipos;
        return nuage__jfail_code(c, n->line, NUAGE_E_NOMEM);
    }
    if (totalkw > ARGV_INLINE) {
        v->kwn = malloc(totalkw * sizeof *v->kwn);
        v->kwv = malloc(totalkw * sizeof *v->kwv);
        if (!v->kwn || !v->kwv) {
            free((void *)v->kwn);
            free(v->kwv);
            v->kwn = v->ikwn;
            v->kwv = v->ikwv;
            return nuage__jfail_code(c, n->line, NUAGE_E_NOMEM);
        }
    }
    for (uint32_t i = 0; i < n->nitems; i++) {
        if (nuage__jeval(c, n->items[i], sc, &v->pos[v->npos]) < 0) return -1;
        v->npos++;
    }
    for (size_t i = 0; i < extra; i++) v->pos[v->npos++] = jv_ref(v->dyn->v[i]);
    for (uint32_t i = 0; i < n->nitems2; i++) {
        if (nuage__jeval(c, n->items2[i], sc, &v->kwv[v->nkw]) < 0) return -1;
        v->kwn[v->nkw++] = n->names[i];
    }
    for (size_t i = 0; i < extrakw; i++) {
        jdict *d = v->dynkw;
        if (d->k[i].t != JV_STR) return nuage__jfail(c, n->line, "keywords must be strings");
        v->kwn[v->nkw] = d->k[i].u.s->s;
        v->kwv[v->nkw++] = jv_ref(d->v[i]);
    }
    a->pos = v->pos;
    a->npos = v->npos;
    a->kwn = v->kwn;
    a->kwv = v->kwv;
    a->nkw = v->nkw;
    return 0;
}

/* Items of an iterable as a list (a new reference): list/tuple itself, dict
 * keys, string characters, undefined -> empty. */
static int iter_list(jctx *c, int line, jval v, jlist **out) {
    if (v.t == JV_LIST && v.u.l->poison) return nuage__jfail(c, 0, "%s", v.u.l->poison->s);
    if (v.t == JV_LIST) { jv_ref(v); *out = v.u.l; return 0; }
    if (v.t == JV_UNDEF || v.t == JV_MISSING) {
        *out = nuage__jlist_new(0);
        return *out ? 0 : nuage__jfail_code(c, line, NUAGE_E_NOMEM);
    }
    if (v.t == JV_DICT) {
        jlist *l = nuage__jlist_new(v.u.d->n);
        if (!l) return nuage__jfail_code(c, line, NUAGE_E_NOMEM);
        for (size_t i = 0; i < v.u.d->n; i++) l->v[l->n++] = jv_ref(v.u.d->k[i]);
        *out = l;
        return 0;
    }
    if (v.t == JV_STR) {
        jlist *l = nuage__jlist_new(v.u.s->ncp);
        if (!l) return nuage__jfail_code(c, line, NUAGE_E_NOMEM);
        for (size_t i = 0; i < v.u.s->len;) {
            size_t adv;
            nuage__utf8_dec(v.u.s->s + i, v.u.s->len - i, &adv);
            jval ch = nuage__jv_str(v.u.s->s + i, adv);
            if (ch.t == JV_MISSING) { jv_unref(jv_list(l)); return nuage__jfail_code(c, line, NUAGE_E_NOMEM); }
            l->v[l->n++] = ch;
            i += adv;
        }
        *out = l;
        return 0;
    }
    return nuage__jfail(c, line, "'%s' object is not iterable", nuage__jv_typename(v));
}

int nuage__jiter_list(jctx *c, int line, jval v, jlist **out) { return iter_list(c, line, v, out); }

/* ---- the evaluator ------------------------------------------------------------------------ */
int nuage__jeval(jctx *c, const jnode *n, jscope *sc, jval *out) {
    *out = jv_undef();
    if (++c->steps > NUAGE__J_MAX_STEPS)
        return nuage__jfail(c, n->line, "template evaluation exceeded %u steps", NUAGE__J_MAX_STEPS);
    if (nuage__jstack_check(c, n->line) < 0) return -1;
    jval a = jv_missing(), b = jv_missing();
    int rc = 0;
    switch (n->kind) {
    case JN_CONST:
        *out = jv_ref(n->val);
        return 0;
    case JN_NAME: {
        const jval *v = nuage__jscope_lookup(sc, n->name);
        *out = v ? jv_ref(*v) : undef_hint("'%s' is undefined", n->name, NULL);
        return 0;
    }
    case JN_LIST: case JN_TUPLE: {
        jlist *l = nuage__jlist_new(n->nitems);
        if (!l) return nuage__jfail_code(c, n->line, NUAGE_E_NOMEM);
        l->tuple = n->kind == JN_TUPLE;
        for (uint32_t i = 0; i < n->nitems; i++) {
            if (nuage__jeval(c, n->items[i], sc, &l->v[l->n]) < 0) { jv_unref(jv_list(l)); return -1; }
            l->n++;
        }
        *out = jv_list(l);
        return 0;
    }
    case JN_DICT: {
        jdict *d = nuage__jdict_new(n->nitems);
        if (!d) return nuage__jfail_code(c, n->line, NUAGE_E_NOMEM);
        jval dv = jv_dict(d); /* handed to *out only when complete (as a list is) */
        for (uint32_t i = 0; i < n->nitems; i++) {
            if (nuage__jeval(c, n->items[i], sc, &a) < 0) { jv_unref(dv); return -1; }
            if (!nuage__jv_hashable(a)) {
                rc = nuage__jfail(c, n->line, "unhashable type: '%s'", nuage__jv_typename(a));
                jv_unref(a);
                jv_unref(dv);
                return rc;
            }
            if (nuage__jeval(c, n->items2[i], sc, &b) < 0) { jv_unref(a); jv_unref(dv); return -1; }
            if (!steal_ok(c, n->line, nuage__jdict_set(d, a, b))) { jv_unref(dv); return -1; }
        }
        *out = dv;
        return 0;
    }
    case JN_ATTR:
        if (nuage__jeval(c, n->a, sc, &a) < 0) return -1;
        rc = nuage__jgetattr(c, n->line, a, n->val, true, out);
        jv_unref(a);
        return rc;
    case JN_ITEM:
        if (nuage__jeval(c, n->a, sc, &a) < 0) return -1;
        if (nuage__jeval(c, n->b, sc, &b) < 0) { jv_unref(a); return -1; }
        rc = nuage__jgetattr(c, n->line, a, b, false, out);
        jv_unref(a);
        jv_unref(b);
        return rc;
    case JN_SLICE: {
        jval s = jv_missing(), e = jv_missing(), st = jv_missing();
        if (nuage__jeval(c, n->a, sc, &a) < 0) return -1;
        if ((n->b && nuage__jeval(c, n->b, sc, &s) < 0) || (n->c && nuage__jeval(c, n->c, sc, &e) < 0) ||
            (n->d && nuage__jeval(c, n->d, sc, &st) < 0))
            rc = -1;
        if (rc == 0) rc = do_slice(c, n->line, a, s, e, st, out);
        jv_unref(a); jv_unref(s); jv_unref(e); jv_unref(st);
        return rc;
    }
    case JN_CALL: case JN_FILTER: case JN_TEST: {
        argv_t av;
        jargs ja;
        if (n->kind == JN_CALL || n->a) {
            if (nuage__jeval(c, n->a, sc, &a) < 0) return -1;
        }
        if (eval_args(c, n, sc, &av, &ja) < 0) { args_free(&av); jv_unref(a); return -1; }
        if (n->kind == JN_CALL) rc = nuage__jcall(c, n->line, a, &ja, out);
        else if (n->kind == JN_FILTER) rc = nuage__jfilter(c, n->line, n->name, a, &ja, out);
        else {
            bool r = false;
            rc = nuage__jtest(c, n->line, n->name, a, &ja, &r);
            *out = jv_bool(r);
        }
        args_free(&av);
        jv_unref(a);
        return rc;
    }
    case JN_NEG: case JN_POS:
        if (nuage__jeval(c, n->a, sc, &a) < 0) return -1;
        if (a.t == JV_UNDEF) { rc = undef_error(c, n->line, a); }
        else if (a.t == JV_INT || a.t == JV_BOOL) {
            int64_t x = numi(a);
            if (n->kind == JN_NEG && x == INT64_MIN) rc = nuage__jfail(c, n->line, "integer overflow in '-'");
            else *out = jv_int(n->kind == JN_NEG ? -x : x);
        } else if (a.t == JV_FLOAT) *out = jv_float(n->kind == JN_NEG ? -a.u.f : a.u.f);
        else rc = nuage__jfail(c, n->line, "bad operand type for unary %s: '%s'", n->kind == JN_NEG ? "-" : "+",
                               nuage__jv_typename(a));
        jv_unref(a);
        return rc;
    case JN_NOT:
        if (nuage__jeval(c, n->a, sc, &a) < 0) return -1;
        *out = jv_bool(!nuage__jv_truthy(a));
        jv_unref(a);
        return 0;
    case JN_BIN:
        if (nuage__jeval(c, n->a, sc, &a) < 0) return -1;
        if (nuage__jeval(c, n->b, sc, &b) < 0) { jv_unref(a); return -1; }
        rc = binop(c, n->line, n->op, a, b, out);
        jv_unref(a);
        jv_unref(b);
        return rc;
    case JN_AND: case JN_OR:
        if (nuage__jeval(c, n->a, sc, &a) < 0) return -1;
        if (nuage__jv_truthy(a) == (n->kind == JN_OR)) { *out = a; return 0; }
        jv_unref(a);
        return nuage__jeval(c, n->b, sc, out);
    case JN_CMP: {
        if (nuage__jeval(c, n->a, sc, &a) < 0) return -1;
        bool r = true;
        for (uint32_t i = 0; i < n->nitems && r; i++) {
            if (nuage__jeval(c, n->items[i], sc, &b) < 0) { jv_unref(a); return -1; }
            rc = compare(c, n->line, n->ops[i], a, b, &r);
            jv_unref(a);
            a = b;
            if (rc < 0) { jv_unref(a); return -1; }
        }
        jv_unref(a);
        *out = jv_bool(r);
        return 0;
    }
    case JN_COND:
        if (nuage__jeval(c, n->a, sc, &a) < 0) return -1;
        rc = nuage__jv_truthy(a);
        jv_unref(a);
        if (rc) return nuage__jeval(c, n->b, sc, out);
        if (n->c) return nuage__jeval(c, n->c, sc, out);
        *out = undef_hint("the inline if-expression evaluated to false and no else section was defined.", NULL, NULL);
        return 0;
    case JN_CONCAT: {
        jbuf buf = {0};
        for (uint32_t i = 0; i < n->nitems && rc == 0; i++) {
            if (nuage__jeval(c, n->items[i], sc, &a) < 0) { rc = -1; break; }
            int w = nuage__jv_write(&buf, a, false);
            jv_unref(a);
            if (w) rc = nuage__jfail_code(c, n->line, w);
        }
        if (rc == 0) rc = new_str(c, n->line, buf.p ? buf.p : "", buf.n, out);
        nuage__jbuf_free(&buf);
        return rc;
    }
    default:
        return nuage__jfail(c, n->line, "internal error: statement node in expression");
    }
}
