/*
 * methods.c - Python methods callable from templates, and formatting.
 *
 * Templates call methods of the Python objects they are given: str methods
 * (strip, split, startswith, replace, format, ...), the read-only dict
 * methods (get, items, keys, values) and list.index/count. The sandbox
 * refuses the mutating ones (append, pop, update, ...): nuage__jmethod_id
 * reports them as unsafe and expr.c turns that into an error on use.
 *
 * Semantics are Python's: strip()/split() without arguments use
 * str.isspace() (Unicode spaces included), split(sep, maxsplit),
 * startswith accepts a tuple, get(key, default=None). dict.items() /
 * keys() / values() return lists flagged as views (true only when
 * non-empty, not subscriptable, not JSON serializable, as in Python). Also
 * here: argument binding for builtins, str() conversion, and `str % args`
 * / str.format formatting.
 */
#define _GNU_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "template/jinja.h"

enum {
    M_NONE = 0,
    /* str */
    M_STRIP, M_LSTRIP, M_RSTRIP, M_SPLIT, M_RSPLIT, M_SPLITLINES, M_STARTSWITH, M_ENDSWITH,
    M_UPPER, M_LOWER, M_TITLE, M_CAPITALIZE, M_SWAPCASE, M_CASEFOLD, M_REPLACE, M_FIND, M_RFIND,
    M_INDEX, M_RINDEX, M_COUNT, M_JOIN, M_FORMAT, M_ISDIGIT, M_ISALPHA, M_ISALNUM, M_ISSPACE,
    M_ISLOWER, M_ISUPPER, M_ZFILL, M_CENTER, M_LJUST, M_RJUST, M_PARTITION, M_RPARTITION,
    M_REMOVEPREFIX, M_REMOVESUFFIX,
    /* dict */
    M_GET, M_ITEMS, M_KEYS, M_VALUES, M_DCOPY,
    /* list */
    M_LINDEX, M_LCOUNT, M_LCOPY,
    /* loop */
    M_CYCLE, M_CHANGED,
    M_COUNT_
};

static const char *const STR_M[] = {
    [M_STRIP] = "strip", [M_LSTRIP] = "lstrip", [M_RSTRIP] = "rstrip", [M_SPLIT] = "split",
    [M_RSPLIT] = "rsplit", [M_SPLITLINES] = "splitlines", [M_STARTSWITH] = "startswith",
    [M_ENDSWITH] = "endswith", [M_UPPER] = "upper", [M_LOWER] = "lower", [M_TITLE] = "title",
    [M_CAPITALIZE] = "capitalize", [M_SWAPCASE] = "swapcase", [M_CASEFOLD] = "casefold",
    [M_REPLACE] = "replace", [M_FIND] = "find", [M_RFIND] = "rfind", [M_INDEX] = "index",
    [M_RINDEX] = "rindex", [M_COUNT] = "count", [M_JOIN] = "join", [M_FORMAT] = "format",
    [M_ISDIGIT] = "isdigit", [M_ISALPHA] = "isalpha", [M_ISALNUM] = "isalnum",
    [M_ISSPACE] = "isspace", [M_ISLOWER] = "islower", [M_ISUPPER] = "isupper", [M_ZFILL] = "zfill",
    [M_CENTER] = "center", [M_LJUST] = "ljust", [M_RJUST] = "rjust", [M_PARTITION] = "partition",
    [M_RPARTITION] = "rpartition", [M_REMOVEPREFIX] = "removeprefix",
    [M_REMOVESUFFIX] = "removesuffix",
    [M_GET] = "get", [M_ITEMS] = "items", [M_KEYS] = "keys", [M_VALUES] = "values", [M_DCOPY] = "copy",
    [M_LINDEX] = "index", [M_LCOUNT] = "count", [M_LCOPY] = "copy",
    [M_CYCLE] = "cycle", [M_CHANGED] = "changed",
};

const char *nuage__jmethod_name(int id) { return id > 0 && id < M_COUNT_ ? STR_M[id] : "?"; }

int nuage__jmethod_id(jval v, const char *name) {
    int lo, hi;
    static const char *const list_unsafe[] = {"append", "extend", "insert", "pop", "remove", "clear", "sort", "reverse", NULL};
    static const char *const dict_unsafe[] = {"pop", "popitem", "setdefault", "update", "clear", NULL};
    switch (v.t) {
    case JV_STR: lo = M_STRIP; hi = M_REMOVESUFFIX; break;
    case JV_DICT: lo = M_GET; hi = M_DCOPY;
        for (int i = 0; dict_unsafe[i]; i++) if (!strcmp(name, dict_unsafe[i])) return -1;
        break;
    case JV_LIST: lo = M_LINDEX; hi = M_LCOPY;
        if (v.u.l->lazy) return 0;
        if (!v.u.l->tuple)
            for (int i = 0; list_unsafe[i]; i++) if (!strcmp(name, list_unsafe[i])) return -1;
        break;
    case JV_LOOP: lo = M_CYCLE; hi = M_CHANGED; break;
    default: return 0;
    }
    for (int i = lo; i <= hi; i++)
        if (!strcmp(name, STR_M[i])) return i == M_LCOPY && v.u.l->tuple ? 0 : i;   /* tuples have no copy() */
    return 0;
}

/* ---- helpers --------------------------------------------------------------------------------- */
int nuage__jbind(jctx *c, int line, const char *fname, const jargs *a,
                 const char *const *params, size_t nparams, jval *vals) {
    for (size_t i = 0; i < nparams; i++) vals[i] = jv_missing();
    if (a->npos > nparams)
        return nuage__jfail(c, line, "%s() takes at most %zu argument(s) (%zu given)", fname, nparams, a->npos);
    for (size_t i = 0; i < a->npos; i++) vals[i] = a->pos[i];
    for (size_t k = 0; k < a->nkw; k++) {
        size_t i;
        for (i = 0; i < nparams; i++)
            if (!strcmp(params[i], a->kwn[k])) break;
        if (i == nparams) return nuage__jfail(c, line, "%s() got an unexpected keyword argument '%s'", fname, a->kwn[k]);
        if (vals[i].t != JV_MISSING) return nuage__jfail(c, line, "%s() got multiple values for argument '%s'", fname, a->kwn[k]);
        vals[i] = a->kwv[k];
    }
    return 0;
}

jstr *nuage__jto_str(jctx *c, int line, jval v) {
    if (v.t == JV_STR) { jv_ref(v); return v.u.s; }
    jbuf b = {0};
    int rc = nuage__jv_write(&b, v, false);
    if (rc) { nuage__jbuf_free(&b); nuage__jfail_code(c, line, rc); return NULL; }
    jstr *s = nuage__jstr_new(b.p ? b.p : "", b.n);
    nuage__jbuf_free(&b);
    if (!s) nuage__jfail_code(c, line, NUAGE_E_NOMEM);
    return s;
}

static int buf_to_str(jctx *c, int line, jbuf *b, jval *out) {
    if (nuage__jwork(c, line, b->n) < 0) { nuage__jbuf_free(b); return -1; }
    *out = nuage__jv_str(b->p ? b->p : "", b->n);
    nuage__jbuf_free(b);
    return out->t == JV_MISSING ? nuage__jfail_code(c, line, NUAGE_E_NOMEM) : 0;
}

static int mkstr(jctx *c, int line, const char *s, size_t n, jval *out) {
    if (nuage__jwork(c, line, n) < 0) return -1;
    *out = nuage__jv_str(s, n);
    return out->t == JV_MISSING ? nuage__jfail_code(c, line, NUAGE_E_NOMEM) : 0;
}

static int want_str(jctx *c, int line, const char *what, jval v, bool none_ok) {
    if (v.t == JV_STR || v.t == JV_MISSING || (none_ok && v.t == JV_NONE)) return 0;
    return nuage__jfail(c, line, "%s must be str%s, not %s", what, none_ok ? " or None" : "", nuage__jv_typename(v));
}

static int want_int(jctx *c, int line, jval v, int64_t dflt, int64_t *out) {
    if (v.t == JV_MISSING || v.t == JV_NONE) { *out = dflt; return 0; }
    if (v.t == JV_INT) { *out = v.u.i; return 0; }
    if (v.t == JV_BOOL) { *out = v.u.b; return 0; }
    return nuage__jfail(c, line, "'%s' object cannot be interpreted as an integer", nuage__jv_typename(v));
}

/* Is code point cp in the (UTF-8) set chars? */
static bool in_set(uint32_t cp, const jstr *chars) {
    for (size_t i = 0; i < chars->len;) {
        size_t adv;
        if (nuage__utf8_dec(chars->s + i, chars->len - i, &adv) == cp) return true;
        i += adv;
    }
    return false;
}

/* Python str.strip family. chars NULL = whitespace. which: 1 left, 2 right, 3 both. */
int nuage__jstrip(jctx *c, int line, const jstr *s, const jstr *chars, int which, jval *out) {
    size_t a = 0, b = s->len, adv;
    if (which & 1) {
        while (a < b) {
            uint32_t cp = nuage__utf8_dec(s->s + a, b - a, &adv);
            if (chars ? !in_set(cp, chars) : !nuage__u_isspace(cp)) break;
            a += adv;
        }
    }
    if (which & 2) {
        while (b > a) {
            size_t st = b - 1;
            while (st > a && ((unsigned char)s->s[st] & 0xC0) == 0x80) st--;
            uint32_t cp = nuage__utf8_dec(s->s + st, b - st, &adv);
            if (chars ? !in_set(cp, chars) : !nuage__u_isspace(cp)) break;
            b = st;
        }
    }
    return mkstr(c, line, s->s + a, b - a, out);
}

static int push_str(jctx *c, int line, jlist *l, const char *s, size_t n) {
    jval v;
    if (mkstr(c, line, s, n, &v) < 0) return -1;
    int rc = nuage__jlist_push(l, v);
    return rc ? nuage__jfail_code(c, line, rc) : 0;
}

/* Python str.split / rsplit. */
static int do_split(jctx *c, int line, const jstr *s, jval sepv, int64_t maxsplit, bool right, jval *out) {
    jlist *l = nuage__jlist_new(0);
    if (!l) return nuage__jfail_code(c, line, NUAGE_E_NOMEM);
    int rc = 0;
    const char *p = s->s;
    size_t n = s->len;
    if (sepv.t == JV_STR) {
        const jstr *sep = sepv.u.s;
        if (sep->len == 0) { jv_unref(jv_list(l)); return nuage__jfail(c, line, "empty separator"); }
        if (!right) {
            size_t i = 0;
            while (rc == 0) {
                const char *f = (maxsplit < 0 || (int64_t)l->n < maxsplit) ? memmem(p + i, n - i, sep->s, sep->len) : NULL;
                if (!f) { rc = push_str(c, line, l, p + i, n - i); break; }
                rc = push_str(c, line, l, p + i, (size_t)(f - (p + i)));
                i = (size_t)(f - p) + sep->len;
            }
        } else {
            /* collect from the right, then reverse */
            size_t end = n;
            while (rc == 0) {
                const char *f = NULL;
                if ((maxsplit < 0 || (int64_t)l->n < maxsplit) && end >= sep->len)
                    for (size_t k = end - sep->len + 1; k-- > 0;)
                        if (memcmp(p + k, sep->s, sep->len) == 0) { f = p + k; break; }
                if (!f) { rc = push_str(c, line, l, p, end); break; }
                rc = push_str(c, line, l, f + sep->len, end - (size_t)(f - p) - sep->len);
                end = (size_t)(f - p);
            }
            for (size_t i = 0; i < l->n / 2; i++) { jval t = l->v[i]; l->v[i] = l->v[l->n - 1 - i]; l->v[l->n - 1 - i] = t; }
        }
    } else {
        /* whitespace split: runs of str.isspace(), no empty strings */
        size_t adv;
        if (!right) {
            size_t i = 0;
            while (rc == 0) {
                while (i < n && nuage__u_isspace(nuage__utf8_dec(p + i, n - i, &adv))) i += adv;
                if (i >= n) break;
                if (maxsplit >= 0 && (int64_t)l->n >= maxsplit) {
                    size_t e = n;   /* remainder keeps trailing whitespace stripped? Python: no */
                    rc = push_str(c, line, l, p + i, e - i);
                    break;
                }
                size_t j = i;
                while (j < n && !nuage__u_isspace(nuage__utf8_dec(p + j, n - j, &adv))) j += adv;
                rc = push_str(c, line, l, p + i, j - i);
                i = j;
            }
        } else {
            size_t e = n;
            while (rc == 0) {
                while (e > 0) {
                    size_t st = e - 1;
                    while (st > 0 && ((unsigned char)p[st] & 0xC0) == 0x80) st--;
                    if (!nuage__u_isspace(nuage__utf8_dec(p + st, e - st, &adv))) break;
                    e = st;
                }
                if (e == 0) break;
                if (maxsplit >= 0 && (int64_t)l->n >= maxsplit) { rc = push_str(c, line, l, p, e); break; }
                size_t b = e;
                while (b > 0) {
                    size_t st = b - 1;
                    while (st > 0 && ((unsigned char)p[st] & 0xC0) == 0x80) st--;
                    if (nuage__u_isspace(nuage__utf8_dec(p + st, b - st, &adv))) break;
                    b = st;
                }
                rc = push_str(c, line, l, p + b, e - b);
                e = b;
            }
            for (size_t i = 0; i < l->n / 2; i++) { jval t = l->v[i]; l->v[i] = l->v[l->n - 1 - i]; l->v[l->n - 1 - i] = t; }
        }
    }
    if (rc < 0) { jv_unref(jv_list(l)); return -1; }
    *out = jv_list(l);
    return 0;
}

/* Python str.splitlines(keepends=False). */
int nuage__jsplitlines(jctx *c, int line, const jstr *s, bool keepends, jval *out) {
    jlist *l = nuage__jlist_new(0);
    if (!l) return nuage__jfail_code(c, line, NUAGE_E_NOMEM);
    size_t i = 0, start = 0, adv;
    int rc = 0;
    while (rc == 0 && i < s->len) {
        uint32_t cp = nuage__utf8_dec(s->s + i, s->len - i, &adv);
        if (nuage__u_islinebreak(cp)) {
            size_t eol = i + adv;
            if (cp == '\r' && eol < s->len && s->s[eol] == '\n') eol++;
            rc = push_str(c, line, l, s->s + start, (keepends ? eol : i) - start);
            i = start = eol;
        } else {
            i += adv;
        }
    }
    if (rc == 0 && start < s->len) rc = push_str(c, line, l, s->s + start, s->len - start);
    if (rc < 0) { jv_unref(jv_list(l)); return -1; }
    *out = jv_list(l);
    return 0;
}

/* Case conversion: mode 0 upper, 1 lower, 2 title, 3 capitalize, 4 swapcase. */
int nuage__jcase(jctx *c, int line, const jstr *s, int mode, jval *out) {
    jbuf b = {0};
    int rc = 0;
    bool prev_cased = false, first = true;
    for (size_t i = 0; rc == 0 && i < s->len;) {
        size_t adv;
        uint32_t cp = nuage__utf8_dec(s->s + i, s->len - i, &adv);
        bool up;
        switch (mode) {
        case 0: up = true; break;
        case 1: up = false; break;
        case 2: up = !prev_cased; break;
        case 3: up = first; break;
        default: up = nuage__u_islower(cp); break;
        }
        bool cased = nuage__u_isupper(cp) || nuage__u_islower(cp);
        if (mode == 4 && !cased) rc = nuage__jbuf_put(&b, s->s + i, adv);
        else rc = up ? nuage__u_put_upper(&b, cp) : nuage__u_put_lower(&b, cp);
        prev_cased = cased;
        first = false;
        i += adv;
    }
    if (rc) { nuage__jbuf_free(&b); return nuage__jfail_code(c, line, rc); }
    return buf_to_str(c, line, &b, out);
}

int nuage__jreplace(jctx *c, int line, const jstr *s, const jstr *old, const jstr *new_, int64_t count, jval *out) {
    jbuf b = {0};
    int rc = 0;
    size_t i = 0;
    int64_t done = 0;
    if (old->len == 0) {
        /* Python inserts `new` between every character (and at both ends) */
        for (size_t k = 0; rc == 0 && k <= s->len;) {
            if (count < 0 || done < count) { rc = nuage__jbuf_put(&b, new_->s, new_->len); done++; }
            if (k == s->len) break;
            size_t adv;
            nuage__utf8_dec(s->s + k, s->len - k, &adv);
            if (rc == 0) rc = nuage__jbuf_put(&b, s->s + k, adv);
            k += adv;
        }
    } else {
        while (rc == 0) {
            const char *f = (count < 0 || done < count) ? memmem(s->s + i, s->len - i, old->s, old->len) : NULL;
            if (!f) { rc = nuage__jbuf_put(&b, s->s + i, s->len - i); break; }
            rc = nuage__jbuf_put(&b, s->s + i, (size_t)(f - (s->s + i)));
            if (rc == 0) rc = nuage__jbuf_put(&b, new_->s, new_->len);
            i = (size_t)(f - s->s) + old->len;
            done++;
        }
    }
    if (rc) { nuage__jbuf_free(&b); return nuage__jfail_code(c, line, rc); }
    return buf_to_str(c, line, &b, out);
}

/* center/ljust/rjust/zfill helpers: pad s to width code points. */
static int pad(jctx *c, int line, const jstr *s, int64_t width, const char *fill, size_t fl, int align, jval *out) {
    if (width > NUAGE__J_MAX_OUTPUT) return nuage__jfail(c, line, "width too large");
    if (width <= (int64_t)s->ncp) return mkstr(c, line, s->s, s->len, out);
    size_t total = (size_t)width - s->ncp, left;
    if (align == '<') left = 0;
    else if (align == '>') left = total;
    else left = total / 2 + (total & (size_t)width & 1);   /* Python's center rounding */
    jbuf b = {0};
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < left; i++) rc = nuage__jbuf_put(&b, fill, fl);
    if (rc == 0) rc = nuage__jbuf_put(&b, s->s, s->len);
    for (size_t i = left; rc == 0 && i < total; i++) rc = nuage__jbuf_put(&b, fill, fl);
    if (rc) { nuage__jbuf_free(&b); return nuage__jfail_code(c, line, rc); }
    return buf_to_str(c, line, &b, out);
}

int nuage__jcenter(jctx *c, int line, const jstr *s, int64_t width, jval *out) {
    return pad(c, line, s, width, " ", 1, '^', out);
}

/* ---- formatting ------------------------------------------------------------------------------ */
typedef struct { char fill[5]; size_t fl; char align; char sign; bool alt, zero; int64_t width, prec; char type; } fspec;

/* Format one value per spec into b (shared by % and str.format). */
static int format_one(jctx *c, int line, jbuf *b, jval v, const fspec *f) {
    char num[400];
    jbuf tmp = {0};
    int rc = 0;
    char t = f->type;
    if (t == 's' || t == 'r' || t == 0) {
        if (t == 0 && jv_isnum(v) && v.t != JV_BOOL && f->prec >= 0) t = v.t == JV_FLOAT ? 'g' : 'd';
        else {
            rc = nuage__jv_write(&tmp, v, t == 'r');
            if (rc == 0 && f->prec >= 0 && t != 'r') {
                size_t off = nuage__utf8_offset(tmp.p ? tmp.p : "", tmp.n, (size_t)f->prec);
                tmp.n = off < tmp.n ? off : tmp.n;
            }
            goto emit;
        }
    }
    if (!jv_isnum(v)) {
        if (t == 'c' && v.t == JV_STR) { rc = nuage__jbuf_put(&tmp, v.u.s->s, v.u.s->len); goto emit; }
        return nuage__jfail(c, line, "%%%c format: a real number is required, not %s", t, nuage__jv_typename(v));
    }
    {
        double d = v.t == JV_FLOAT ? v.u.f : v.t == JV_INT ? (double)v.u.i : v.u.b;
        long long i = v.t == JV_FLOAT ? (long long)v.u.f : v.t == JV_INT ? v.u.i : v.u.b;
        char flags[8] = "%", *fp = flags + 1;
        if (f->sign == '+' || f->sign == ' ') *fp++ = f->sign;
        if (f->alt) *fp++ = '#';
        *fp = 0;
        int prec = f->prec < 0 ? 6 : (int)(f->prec > 100 ? 100 : f->prec);
        switch (t) {
        case 'd': case 'i': case 'u': snprintf(num, sizeof num, strcat(flags, "lld"), i); break;
        case 'x': case 'X': case 'o':
            if (i < 0) { char ff[12]; snprintf(ff, sizeof ff, "-%%%sll%c", f->alt ? "#" : "", t); snprintf(num, sizeof num, ff, -i); }
            else { char ff[12]; snprintf(ff, sizeof ff, "%s%sll%c", flags, "", t); snprintf(num, sizeof num, ff, i); }
            break;
        case 'c': { char u[4]; size_t k = nuage__utf8_enc((uint32_t)i, u); memcpy(num, u, k); num[k] = 0; break; }
        case 'f': case 'F': case 'e': case 'E': case 'g': case 'G': case '%': {
            char ff[16];
            double x = t == '%' ? d * 100 : d;
            snprintf(ff, sizeof ff, "%s.*%c", flags, t == '%' ? 'f' : t);
            snprintf(num, sizeof num, ff, prec, x);
            if (t == '%') strcat(num, "%");
            break;
        }
        default:
            return nuage__jfail(c, line, "unsupported format character '%c'", t);
        }
        rc = nuage__jbuf_put(&tmp, num, strlen(num));
    }
emit:
    if (rc) { nuage__jbuf_free(&tmp); return nuage__jfail_code(c, line, rc); }
    {
        size_t ncp = nuage__utf8_count(tmp.p ? tmp.p : "", tmp.n);
        int64_t padn = f->width > (int64_t)ncp ? f->width - (int64_t)ncp : 0;
        if (padn > NUAGE__J_MAX_OUTPUT) { nuage__jbuf_free(&tmp); return nuage__jfail(c, line, "width too large"); }
        char align = f->align ? f->align : (jv_isnum(v) && t != 's' && t != 'r' ? '>' : '<');
        const char *fill = f->fl ? f->fill : " ";
        size_t fl = f->fl ? f->fl : 1;
        size_t lead = 0;
        if (f->zero && !f->align && jv_isnum(v) && t != 's' && t != 'r') {
            fill = "0"; fl = 1; align = '=';
        }
        if (align == '=' && tmp.n && (tmp.p[0] == '-' || tmp.p[0] == '+' || tmp.p[0] == ' ')) lead = 1;
        size_t left = align == '<' ? 0 : align == '^' ? (size_t)padn / 2 : (size_t)padn;
        rc = nuage__jbuf_put(b, tmp.p, lead);
        for (size_t k = 0; rc == 0 && k < left; k++) rc = nuage__jbuf_put(b, fill, fl);
        if (rc == 0) rc = nuage__jbuf_put(b, tmp.p ? tmp.p + lead : "", tmp.n - lead);
        for (size_t k = left; rc == 0 && k < (size_t)padn; k++) rc = nuage__jbuf_put(b, fill, fl);
    }
    nuage__jbuf_free(&tmp);
    return rc ? nuage__jfail_code(c, line, rc) : 0;
}

int nuage__jformat_percent(jctx *c, int line, jstr *fmt, jval args, jval *out) {
    jbuf b = {0};
    size_t argi = 0;
    bool tuple = args.t == JV_LIST && args.u.l->tuple, mapping = args.t == JV_DICT;
    const char *s = fmt->s;
    size_t n = fmt->len, i = 0;
    int rc = 0;
    while (rc == 0 && i < n) {
        const char *pct = memchr(s + i, '%', n - i);
        if (!pct) { rc = nuage__jbuf_put(&b, s + i, n - i) ? -2 : 0; break; }
        if (nuage__jbuf_put(&b, s + i, (size_t)(pct - (s + i)))) { rc = -2; break; }
        i = (size_t)(pct - s) + 1;
        if (i >= n) { rc = nuage__jfail(c, line, "incomplete format"); break; }
        jval v = jv_missing();
        if (s[i] == '(') {
            const char *close = memchr(s + i, ')', n - i);
            if (!close || !mapping) { rc = nuage__jfail(c, line, "format requires a mapping"); break; }
            const jval *pv = nuage__jdict_gets(args.u.d, s + i + 1, (size_t)(close - s - i - 1));
            if (!pv) { rc = nuage__jfail(c, line, "format key not found"); break; }
            v = *pv;
            i = (size_t)(close - s) + 1;
        }
        fspec f = {.prec = -1};
        for (; i < n && strchr("-+ #0", s[i]); i++) {
            if (s[i] == '-') f.align = '<';
            else if (s[i] == '0') f.zero = true;
            else if (s[i] == '#') f.alt = true;
            else f.sign = s[i];
        }
        while (i < n && s[i] >= '0' && s[i] <= '9' && f.width < 100000000) f.width = f.width * 10 + (s[i++] - '0');
        if (i < n && s[i] == '.') {
            f.prec = 0;
            for (i++; i < n && s[i] >= '0' && s[i] <= '9' && f.prec < 100000000; i++) f.prec = f.prec * 10 + (s[i] - '0');
        }
        if (i >= n) { rc = nuage__jfail(c, line, "incomplete format"); break; }
        char t = s[i++];
        if (t == '%') { rc = nuage__jbuf_putc(&b, '%') ? -2 : 0; continue; }
        if (v.t == JV_MISSING) {
            if (tuple) {
                if (argi >= args.u.l->n) { rc = nuage__jfail(c, line, "not enough arguments for format string"); break; }
                v = args.u.l->v[argi++];
            } else {
                if (argi++ > 0) { rc = nuage__jfail(c, line, "not enough arguments for format string"); break; }
                v = args;
            }
        }
        if (f.align == '<') f.zero = false;
        f.type = (t == 'i' || t == 'u') ? 'd' : t;
        if (!strchr("sdrxXofFeEgGca", f.type)) { rc = nuage__jfail(c, line, "unsupported format character '%c'", t); break; }
        if (f.type == 'a') f.type = 'r';
        if (f.type == 'd' && v.t == JV_STR) { rc = nuage__jfail(c, line, "%%d format: a real number is required, not str"); break; }
        rc = format_one(c, line, &b, v, &f);
    }
    if (rc == 0 && ((tuple && argi < args.u.l->n) || (!tuple && argi == 0 && args.t != JV_LIST && args.t != JV_DICT)))
        rc = nuage__jfail(c, line, "not all arguments converted during string formatting");
    if (rc == -2) rc = nuage__jfail_code(c, line, NUAGE_E_RANGE);
    if (rc) { nuage__jbuf_free(&b); return -1; }
    return buf_to_str(c, line, &b, out);
}

/* Parse a str.format spec: [[fill]align][sign][#][0][width][.prec][type] */
static void parse_fspec(const char *s, size_t n, fspec *f) {
    memset(f, 0, sizeof *f);
    f->prec = -1;
    size_t i = 0, adv = 0;
    if (n) nuage__utf8_dec(s, n, &adv);
    if (n > adv && strchr("<>=^", s[adv])) { memcpy(f->fill, s, adv); f->fl = adv; f->align = s[adv]; i = adv + 1; }
    else if (n && strchr("<>=^", s[0])) { f->align = s[0]; i = 1; }
    if (i < n && strchr("+- ", s[i])) f->sign = s[i++];
    if (i < n && s[i] == '#') { f->alt = true; i++; }
    if (i < n && s[i] == '0') { f->zero = true; i++; }
    while (i < n && s[i] >= '0' && s[i] <= '9' && f->width < 100000000) f->width = f->width * 10 + (s[i++] - '0');
    if (i < n && s[i] == '.') { f->prec = 0; for (i++; i < n && s[i] >= '0' && s[i] <= '9' && f->prec < 100000000; i++) f->prec = f->prec * 10 + (s[i] - '0'); }
    if (i < n) f->type = s[i];
    if (f->sign == '-') f->sign = 0;
}

static int str_format(jctx *c, int line, const jstr *fmt, const jargs *a, jval *out) {
    jbuf b = {0};
    const char *s = fmt->s;
    size_t n = fmt->len, i = 0, auto_i = 0;
    int rc = 0;
    while (rc == 0 && i < n) {
        char ch = s[i];
        if (ch == '{' && i + 1 < n && s[i + 1] == '{') { rc = nuage__jbuf_putc(&b, '{') ? -2 : 0; i += 2; continue; }
        if (ch == '}' && i + 1 < n && s[i + 1] == '}') { rc = nuage__jbuf_putc(&b, '}') ? -2 : 0; i += 2; continue; }
        if (ch == '}') { rc = nuage__jfail(c, line, "Single '}' encountered in format string"); break; }
        if (ch != '{') { rc = nuage__jbuf_putc(&b, ch) ? -2 : 0; i++; continue; }
        const char *close = memchr(s + i, '}', n - i);
        if (!close) { rc = nuage__jfail(c, line, "Single '{' encountered in format string"); break; }
        const char *field = s + i + 1, *end = close;
        const char *colon = memchr(field, ':', (size_t)(end - field));
        const char *bang = memchr(field, '!', (size_t)((colon ? colon : end) - field));
        const char *name_end = bang ? bang : colon ? colon : end;
        size_t nl = (size_t)(name_end - field);
        jval v = jv_missing();
        if (nl == 0) {
            if (auto_i >= a->npos) { rc = nuage__jfail(c, line, "Replacement index %zu out of range for positional args tuple", auto_i); break; }
            v = a->pos[auto_i++];
        } else if (field[0] >= '0' && field[0] <= '9') {
            size_t k = (size_t)strtoul(field, NULL, 10);
            if (k >= a->npos) { rc = nuage__jfail(c, line, "Replacement index %zu out of range for positional args tuple", k); break; }
            v = a->pos[k];
        } else {
            for (size_t k = 0; k < a->nkw; k++)
                if (strlen(a->kwn[k]) == nl && !memcmp(a->kwn[k], field, nl)) v = a->kwv[k];
            if (v.t == JV_MISSING) { rc = nuage__jfail(c, line, "KeyError: '%.*s'", (int)nl, field); break; }
        }
        fspec f;
        if (colon) parse_fspec(colon + 1, (size_t)(end - colon - 1), &f);
        else parse_fspec("", 0, &f);
        if (bang && bang + 1 < end && bang[1] == 'r') f.type = 'r';
        if (f.type == 'r' && colon) { /* conversion then spec: apply repr first */ }
        if (f.type == 0 && !jv_isnum(v)) f.type = 's';
        if (f.type == 0 && v.t == JV_BOOL) f.type = 's';
        if (f.type == 0 && v.t == JV_INT) f.type = 'd';
        if (f.type == 'n') f.type = v.t == JV_FLOAT ? 'g' : 'd';
        rc = format_one(c, line, &b, v, &f);
        i = (size_t)(close - s) + 1;
    }
    if (rc == -2) rc = nuage__jfail_code(c, line, NUAGE_E_RANGE);
    if (rc) { nuage__jbuf_free(&b); return -1; }
    return buf_to_str(c, line, &b, out);
}

/* ---- the methods -------------------------------------------------------------------------------- */
static int dict_items(jctx *c, int line, const jdict *d, int which, jval *out) {
    jlist *l = nuage__jlist_new(d->n);
    if (!l) return nuage__jfail_code(c, line, NUAGE_E_NOMEM);
    for (size_t i = 0; i < d->n; i++) {
        if (which == 0) {
            jlist *p = nuage__jlist_new(2);
            if (!p) { jv_unref(jv_list(l)); return nuage__jfail_code(c, line, NUAGE_E_NOMEM); }
            p->tuple = true;
            p->v[0] = jv_ref(d->k[i]);
            p->v[1] = jv_ref(d->v[i]);
            p->n = 2;
            l->v[l->n++] = jv_list(p);
        } else {
            l->v[l->n++] = jv_ref(which == 1 ? d->k[i] : d->v[i]);
        }
    }
    *out = jv_list(l);
    return 0;
}

int nuage__jdict_items(jctx *c, int line, const jdict *d, jval *out) {
    if (dict_items(c, line, d, 0, out) < 0) return -1;
    out->u.l->lazy = JL_GEN;
    return 0;
}

static bool affix_match(const jstr *s, const jstr *x, bool end) {
    if (x->len > s->len) return false;
    return memcmp(end ? s->s + s->len - x->len : s->s, x->s, x->len) == 0;
}

static int str_method(jctx *c, int line, int id, const jstr *s, const jargs *a, jval *out) {
    static const char *const p_chars[] = {"chars"}, *const p_split[] = {"sep", "maxsplit"},
                             *const p_prefix[] = {"prefix", "start", "end"}, *const p_replace[] = {"old", "new", "count"},
                             *const p_find[] = {"sub", "start", "end"}, *const p_iter[] = {"iterable"},
                             *const p_width[] = {"width", "fillchar"}, *const p_keep[] = {"keepends"},
                             *const p_sep[] = {"sep"}, *const p_none[] = {NULL};
    jval v[3];
    const char *nm = STR_M[id];
    int64_t k = 0;
    switch (id) {
    case M_STRIP: case M_LSTRIP: case M_RSTRIP:
        if (nuage__jbind(c, line, nm, a, p_chars, 1, v) < 0 || want_str(c, line, "chars", v[0], true) < 0) return -1;
        return nuage__jstrip(c, line, s, v[0].t == JV_STR ? v[0].u.s : NULL,
                             id == M_STRIP ? 3 : id == M_LSTRIP ? 1 : 2, out);
    case M_SPLIT: case M_RSPLIT:
        if (nuage__jbind(c, line, nm, a, p_split, 2, v) < 0 || want_str(c, line, "sep", v[0], true) < 0 ||
            want_int(c, line, v[1], -1, &k) < 0)
            return -1;
        return do_split(c, line, s, v[0], k, id == M_RSPLIT, out);
    case M_SPLITLINES:
        if (nuage__jbind(c, line, nm, a, p_keep, 1, v) < 0) return -1;
        return nuage__jsplitlines(c, line, s, nuage__jv_truthy(v[0]), out);
    case M_STARTSWITH: case M_ENDSWITH: {
        if (nuage__jbind(c, line, nm, a, p_prefix, 3, v) < 0) return -1;
        if (v[1].t != JV_MISSING || v[2].t != JV_MISSING)
            return nuage__jfail(c, line, "%s() start/end arguments are not supported", nm);
        bool r = false;
        if (v[0].t == JV_STR) r = affix_match(s, v[0].u.s, id == M_ENDSWITH);
        else if (v[0].t == JV_LIST && v[0].u.l->tuple) {
            for (size_t i = 0; i < v[0].u.l->n && !r; i++) {
                if (v[0].u.l->v[i].t != JV_STR) return nuage__jfail(c, line, "tuple for %s must only contain str", nm);
                r = affix_match(s, v[0].u.l->v[i].u.s, id == M_ENDSWITH);
            }
        } else {
            return nuage__jfail(c, line, "%s first arg must be str or a tuple of str, not %s", nm, nuage__jv_typename(v[0]));
        }
        *out = jv_bool(r);
        return 0;
    }
    case M_UPPER: case M_LOWER: case M_TITLE: case M_CAPITALIZE: case M_SWAPCASE: case M_CASEFOLD:
        if (nuage__jbind(c, line, nm, a, p_none, 0, v) < 0) return -1;
        return nuage__jcase(c, line, s, id == M_UPPER ? 0 : id == M_TITLE ? 2 : id == M_CAPITALIZE ? 3 : id == M_SWAPCASE ? 4 : 1, out);
    case M_REPLACE:
        if (nuage__jbind(c, line, nm, a, p_replace, 3, v) < 0 || want_int(c, line, v[2], -1, &k) < 0) return -1;
        if (v[0].t != JV_STR || v[1].t != JV_STR) return nuage__jfail(c, line, "replace() arguments must be str");
        return nuage__jreplace(c, line, s, v[0].u.s, v[1].u.s, k, out);
    case M_FIND: case M_RFIND: case M_INDEX: case M_RINDEX: case M_COUNT: {
        if (nuage__jbind(c, line, nm, a, p_find, 3, v) < 0) return -1;
        if (v[0].t != JV_STR) return nuage__jfail(c, line, "must be str, not %s", nuage__jv_typename(v[0]));
        if (v[1].t != JV_MISSING || v[2].t != JV_MISSING) return nuage__jfail(c, line, "%s() start/end arguments are not supported", nm);
        const jstr *sub = v[0].u.s;
        int64_t pos = -1, cnt = 0;
        if (id == M_COUNT) {
            if (sub->len == 0) cnt = (int64_t)s->ncp + 1;
            else for (size_t i = 0; i + sub->len <= s->len;) {
                const char *f = memmem(s->s + i, s->len - i, sub->s, sub->len);
                if (!f) break;
                cnt++;
                i = (size_t)(f - s->s) + sub->len;
            }
            *out = jv_int(cnt);
            return 0;
        }
        const char *f = NULL;
        if (id == M_FIND || id == M_INDEX) f = memmem(s->s, s->len, sub->s, sub->len);
        else if (sub->len <= s->len)
            for (size_t i = s->len - sub->len + 1; i-- > 0;)
                if (memcmp(s->s + i, sub->s, sub->len) == 0) { f = s->s + i; break; }
        if (f) pos = (int64_t)nuage__utf8_count(s->s, (size_t)(f - s->s));
        if (!f && (id == M_INDEX || id == M_RINDEX)) return nuage__jfail(c, line, "substring not found");
        *out = jv_int(pos);
        return 0;
    }
    case M_JOIN: {
        if (nuage__jbind(c, line, nm, a, p_iter, 1, v) < 0) return -1;
        jlist *l;
        if (nuage__jiter_list(c, line, v[0], &l) < 0) return -1;
        jbuf b = {0};
        int rc = 0;
        for (size_t i = 0; rc == 0 && i < l->n; i++) {
            if (l->v[i].t != JV_STR) {
                jv_unref(jv_list(l));
                nuage__jbuf_free(&b);
                return nuage__jfail(c, line, "sequence item %zu: expected str instance, %s found", i, nuage__jv_typename(l->v[i]));
            }
            if (i) rc = nuage__jbuf_put(&b, s->s, s->len);
            if (rc == 0) rc = nuage__jbuf_put(&b, l->v[i].u.s->s, l->v[i].u.s->len);
        }
        jv_unref(jv_list(l));
        if (rc) { nuage__jbuf_free(&b); return nuage__jfail_code(c, line, rc); }
        return buf_to_str(c, line, &b, out);
    }
    case M_FORMAT:
        return str_format(c, line, s, a, out);
    case M_ISDIGIT: case M_ISALPHA: case M_ISALNUM: case M_ISSPACE: case M_ISLOWER: case M_ISUPPER: {
        if (nuage__jbind(c, line, nm, a, p_none, 0, v) < 0) return -1;
        bool r = s->len > 0, cased = false;
        for (size_t i = 0; i < s->len && r;) {
            size_t adv;
            uint32_t cp = nuage__utf8_dec(s->s + i, s->len - i, &adv);
            switch (id) {
            case M_ISDIGIT: r = nuage__u_isdigit(cp); break;
            case M_ISALPHA: r = nuage__u_isalpha(cp); break;
            case M_ISALNUM: r = nuage__u_isalpha(cp) || nuage__u_isdigit(cp); break;
            case M_ISSPACE: r = nuage__u_isspace(cp); break;
            case M_ISLOWER: if (nuage__u_isupper(cp)) r = false; else if (nuage__u_islower(cp)) cased = true; break;
            case M_ISUPPER: if (nuage__u_islower(cp)) r = false; else if (nuage__u_isupper(cp)) cased = true; break;
            }
            i += adv;
        }
        if (id == M_ISLOWER || id == M_ISUPPER) r = r && cased;
        *out = jv_bool(r);
        return 0;
    }
    case M_ZFILL: {
        if (nuage__jbind(c, line, nm, a, p_width, 1, v) < 0 || want_int(c, line, v[0], 0, &k) < 0) return -1;
        if (k <= (int64_t)s->ncp) return mkstr(c, line, s->s, s->len, out);
        if (k > NUAGE__J_MAX_OUTPUT) return nuage__jfail(c, line, "width too large");
        jbuf b = {0};
        int rc = 0;
        size_t sign = (s->len && (s->s[0] == '-' || s->s[0] == '+')) ? 1 : 0;
        rc = nuage__jbuf_put(&b, s->s, sign);
        for (int64_t i = 0; rc == 0 && i < k - (int64_t)s->ncp; i++) rc = nuage__jbuf_putc(&b, '0');
        if (rc == 0) rc = nuage__jbuf_put(&b, s->s + sign, s->len - sign);
        if (rc) { nuage__jbuf_free(&b); return nuage__jfail_code(c, line, rc); }
        return buf_to_str(c, line, &b, out);
    }
    case M_CENTER: case M_LJUST: case M_RJUST: {
        if (nuage__jbind(c, line, nm, a, p_width, 2, v) < 0 || want_int(c, line, v[0], 0, &k) < 0) return -1;
        const char *fill = " ";
        size_t fl = 1;
        if (v[1].t == JV_STR) {
            if (v[1].u.s->ncp != 1) return nuage__jfail(c, line, "The fill character must be exactly one character long");
            fill = v[1].u.s->s;
            fl = v[1].u.s->len;
        }
        return pad(c, line, s, k, fill, fl, id == M_CENTER ? '^' : id == M_LJUST ? '<' : '>', out);
    }
    case M_PARTITION: case M_RPARTITION: {
        if (nuage__jbind(c, line, nm, a, p_sep, 1, v) < 0) return -1;
        if (v[0].t != JV_STR || v[0].u.s->len == 0) return nuage__jfail(c, line, "partition() needs a non-empty str separator");
        const jstr *sep = v[0].u.s;
        const char *f = NULL;
        if (id == M_PARTITION) f = memmem(s->s, s->len, sep->s, sep->len);
        else if (sep->len <= s->len)
            for (size_t i = s->len - sep->len + 1; i-- > 0;)
                if (memcmp(s->s + i, sep->s, sep->len) == 0) { f = s->s + i; break; }
        jlist *l = nuage__jlist_new(3);
        if (!l) return nuage__jfail_code(c, line, NUAGE_E_NOMEM);
        l->tuple = true;
        int rc;
        if (!f) {
            bool left = id == M_PARTITION;
            rc = push_str(c, line, l, left ? s->s : "", left ? s->len : 0);
            if (rc == 0) rc = push_str(c, line, l, "", 0);
            if (rc == 0) rc = push_str(c, line, l, left ? "" : s->s, left ? 0 : s->len);
        } else {
            size_t off = (size_t)(f - s->s);
            rc = push_str(c, line, l, s->s, off);
            if (rc == 0) rc = push_str(c, line, l, sep->s, sep->len);
            if (rc == 0) rc = push_str(c, line, l, s->s + off + sep->len, s->len - off - sep->len);
        }
        if (rc < 0) { jv_unref(jv_list(l)); return -1; }
        *out = jv_list(l);
        return 0;
    }
    case M_REMOVEPREFIX: case M_REMOVESUFFIX: {
        if (nuage__jbind(c, line, nm, a, p_prefix, 1, v) < 0) return -1;
        if (v[0].t != JV_STR) return nuage__jfail(c, line, "%s() argument must be str", nm);
        const jstr *x = v[0].u.s;
        bool end = id == M_REMOVESUFFIX;
        if (!affix_match(s, x, end)) return mkstr(c, line, s->s, s->len, out);
        return mkstr(c, line, end ? s->s : s->s + x->len, s->len - x->len, out);
    }
    }
    return nuage__jfail(c, line, "internal error: unknown str method");
}

int nuage__jmethod_call(jctx *c, int line, int id, jval self, const jargs *a, jval *out) {
    static const char *const p_get[] = {"key", "default"}, *const p_x[] = {"value"}, *const p_none[] = {NULL};
    jval v[2];
    if (self.t == JV_STR) return str_method(c, line, id, self.u.s, a, out);
    switch (id) {
    case M_GET:
        if (nuage__jbind(c, line, "get", a, p_get, 2, v) < 0) return -1;
        if (v[0].t == JV_MISSING) return nuage__jfail(c, line, "get expected at least 1 argument, got 0");
        {
            const jval *r = nuage__jv_hashable(v[0]) ? nuage__jdict_get(self.u.d, v[0]) : NULL;
            *out = r ? jv_ref(*r) : v[1].t == JV_MISSING ? jv_none() : jv_ref(v[1]);
        }
        return 0;
    case M_ITEMS: case M_KEYS: case M_VALUES:
        if (nuage__jbind(c, line, STR_M[id], a, p_none, 0, v) < 0) return -1;
        if (dict_items(c, line, self.u.d, id == M_ITEMS ? 0 : id == M_KEYS ? 1 : 2, out) < 0) return -1;
        out->u.l->lazy = id == M_ITEMS ? JL_ITEMS : id == M_KEYS ? JL_KEYS : JL_VALUES;
        return 0;
    case M_DCOPY: {
        if (nuage__jbind(c, line, "copy", a, p_none, 0, v) < 0) return -1;
        jdict *d = nuage__jdict_new(self.u.d->n);
        if (!d) return nuage__jfail_code(c, line, NUAGE_E_NOMEM);
        for (size_t i = 0; i < self.u.d->n; i++) {
            d->k[i] = jv_ref(self.u.d->k[i]);
            d->v[i] = jv_ref(self.u.d->v[i]);
        }
        d->n = self.u.d->n;
        *out = jv_dict(d);
        return 0;
    }
    case M_LINDEX: case M_LCOUNT: {
        if (nuage__jbind(c, line, STR_M[id], a, p_x, 1, v) < 0) return -1;
        int64_t cnt = 0, pos = -1;
        for (size_t i = 0; i < self.u.l->n; i++)
            if (nuage__jv_eq(self.u.l->v[i], v[0])) { cnt++; if (pos < 0) pos = (int64_t)i; }
        if (id == M_LINDEX && pos < 0) return nuage__jfail(c, line, "value is not in list");
        *out = jv_int(id == M_LCOUNT ? cnt : pos);
        return 0;
    }
    case M_LCOPY:
        if (nuage__jbind(c, line, "copy", a, p_none, 0, v) < 0) return -1;
        *out = jv_ref(self);
        return 0;
    case M_CYCLE:
        if (a->npos == 0) return nuage__jfail(c, line, "no items for cycling given");
        *out = jv_ref(a->pos[self.u.lp->index0 % a->npos]);
        return 0;
    case M_CHANGED: {
        jlist *l = nuage__jlist_new(a->npos);
        if (!l) return nuage__jfail_code(c, line, NUAGE_E_NOMEM);
        l->tuple = true;
        for (size_t i = 0; i < a->npos; i++) l->v[l->n++] = jv_ref(a->pos[i]);
        jval cur = jv_list(l);
        jloop *lp = self.u.lp;
        bool changed = lp->last.t == JV_MISSING || !nuage__jv_eq(lp->last, cur);
        jv_unref(lp->last);
        lp->last = cur;
        *out = jv_bool(changed);
        return 0;
    }
    }
    return nuage__jfail(c, line, "internal error: unknown method");
}
