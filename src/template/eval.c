/*
 * eval.c - running statements: scopes, loops, macros, calls, the sandbox.
 *
 * Scoping follows what Jinja2's compiler produces, observed on the
 * reference engine: the template's top level and `if` bodies share one
 * scope; every iteration of a `for` body gets a fresh child scope (a
 * `{% set %}` inside does not outlive the iteration, hence namespace());
 * macro calls, call-block callers, `with` and `{% generation %}` bodies
 * get child scopes too. A macro's scope is a child of the scope it was
 * defined in, looked up when it runs (late binding), so macros see the
 * template's top-level variables as they are at call time and can call
 * macros defined after them.
 *
 * Loops materialise their iterable (filtered by the `if` clause first, so
 * loop.index/length/last count kept items only) and expose `loop` with
 * index, index0, revindex(0), first, last, length, previtem, nextitem,
 * depth(0), cycle() and changed(); `recursive` loops are callable.
 * break/continue unwind through a flag in the context.
 *
 * The sandbox: evaluation steps, bytes built, call depth and C stack use
 * are all bounded, and crossing a bound is an ordinary template error.
 * Namespaces and scopes captured by macros can form reference cycles
 * (ns.x = ns, a macro stored in the scope it captures); they are recorded
 * in the context and cleared when the render ends.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "template/jinja.h"

/* ---- context ---------------------------------------------------------------------------- */
int nuage__jfail(jctx *c, int line, const char *fmt, ...) {
    if (c->rc == 0) {
        c->rc = NUAGE_E_TEMPLATE;
        if (c->err && c->errlen) {
            int k = 0;
            if (line > 0) k = snprintf(c->err, c->errlen, "line %d: ", line);
            if (k < 0 || (size_t)k >= c->errlen) k = 0;
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(c->err + k, c->errlen - (size_t)k, fmt, ap);
            va_end(ap);
        }
    }
    return -1;
}

int nuage__jfail_code(jctx *c, int line, int code) {
    if (code == NUAGE_E_NOMEM) {
        if (c->rc == 0) {
            c->rc = NUAGE_E_NOMEM;
            if (c->err && c->errlen) snprintf(c->err, c->errlen, "out of memory");
        }
        return -1;
    }
    if (code == NUAGE_E_RANGE)
        return nuage__jfail(c, line, "output too large (limit %u bytes)", NUAGE__J_MAX_OUTPUT);
    return nuage__jfail(c, line, "%s", nuage_strerror(code));
}

int nuage__jwork(jctx *c, int line, size_t n) {
    c->work += n;
    if (c->work > NUAGE__J_MAX_WORK)
        return nuage__jfail(c, line, "template built more than %llu bytes", (unsigned long long)NUAGE__J_MAX_WORK);
    return 0;
}

int nuage__jown(jctx *c, jval v) {
    if (c->nowned == c->capowned) {
        size_t cap = c->capowned ? c->capowned * 2 : 16;
        jval *p = realloc(c->owned, cap * sizeof *p);
        if (!p) return nuage__jfail_code(c, 0, NUAGE_E_NOMEM);
        c->owned = p;
        c->capowned = cap;
    }
    c->owned[c->nowned++] = jv_ref(v);
    return 0;
}

/* Stack guard: the C stack used since the render started. */
int nuage__jstack_check(jctx *c, int line) {
    const char *here = __builtin_frame_address(0);
    if (c->stack_base && c->stack_base - here > (ptrdiff_t)c->stack_limit)
        return nuage__jfail(c, line, "template nesting too deep (stack limit)");
    return 0;
}

/* ---- scopes --------------------------------------------------------------------------------- */
jscope *nuage__jscope_new(jscope *parent) {
    jscope *s = malloc(sizeof *s);
    if (!s) return NULL;
    s->rc = 1;
    s->parent = parent;
    s->n = 0;
    s->cap = 4;
    s->names = s->inames;
    s->vals = s->ivals;
    if (parent) parent->rc++;
    return s;
}

/* Drop the scope's variables (keeps its storage for reuse). */
static void scope_empty(jscope *s) {
    size_t n = s->n;
    s->n = 0;
    for (size_t i = 0; i < n; i++) jv_unref(s->vals[i]);
}

static void scope_clear(jscope *s) {
    scope_empty(s);
    if (s->names != s->inames) {
        free(s->names);
        free(s->vals);
        s->names = s->inames;
        s->vals = s->ivals;
        s->cap = 4;
    }
}

void nuage__jscope_unref(jscope *s) {
    while (s && --s->rc == 0) {
        jscope *p = s->parent;
        scope_clear(s);
        free(s);
        s = p;
    }
}

const jval *nuage__jscope_lookup(const jscope *s, const char *name) {
    for (; s; s = s->parent)
        for (size_t i = s->n; i-- > 0;)
            if (s->names[i] == name || strcmp(s->names[i], name) == 0) return &s->vals[i];
    return NULL;
}

int nuage__jscope_set(jscope *s, const char *name, jval v) {
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->names[i], name) == 0) {
            jv_unref(s->vals[i]);
            s->vals[i] = v;
            return 0;
        }
    if (s->n == s->cap) {
        size_t cap = s->cap * 2;
        bool inl = s->names == s->inames;
        const char **pn = inl ? malloc(cap * sizeof *pn) : realloc(s->names, cap * sizeof *pn);
        if (!pn) { jv_unref(v); return NUAGE_E_NOMEM; }
        if (inl) memcpy(pn, s->inames, s->n * sizeof *pn);
        s->names = pn;
        jval *pv = inl ? malloc(cap * sizeof *pv) : realloc(s->vals, cap * sizeof *pv);
        if (!pv) {
            if (inl) { free(pn); s->names = s->inames; }
            jv_unref(v);
            return NUAGE_E_NOMEM;
        }
        if (inl) memcpy(pv, s->ivals, s->n * sizeof *pv);
        s->vals = pv;
        s->cap = cap;
    }
    s->names[s->n] = name;
    s->vals[s->n++] = v;
    return 0;
}

/* A scope captured by a macro: record it for cycle breaking. */
static int own_scope(jctx *c, jscope *s) {
    if (c->nowned == c->capowned) {
        size_t cap = c->capowned ? c->capowned * 2 : 16;
        jval *p = realloc(c->owned, cap * sizeof *p);
        if (!p) return nuage__jfail_code(c, 0, NUAGE_E_NOMEM);
        c->owned = p;
        c->capowned = cap;
    }
    /* stored as a JV_MISSING-tagged pointer: see nuage__jctx_release */
    jval v = jv_missing();
    v.u.h = (jhdr *)s;
    s->rc++;
    c->owned[c->nowned++] = v;
    return 0;
}

void nuage__jctx_release(jctx *c) {
    /* first clear contents (breaking cycles), then drop our references */
    for (size_t i = 0; i < c->nowned; i++) {
        jval v = c->owned[i];
        if (v.t == JV_MISSING) {
            scope_clear((jscope *)v.u.h);
        } else if (v.t == JV_NS) {
            jdict *d = v.u.d;
            size_t n = d->n;
            d->n = 0;
            for (size_t k = 0; k < n; k++) { jv_unref(d->k[k]); jv_unref(d->v[k]); }
        }
    }
    for (size_t i = 0; i < c->nowned; i++) {
        jval v = c->owned[i];
        if (v.t == JV_MISSING) nuage__jscope_unref((jscope *)v.u.h);
        else jv_unref(v);
    }
    free(c->owned);
    c->owned = NULL;
    c->nowned = c->capowned = 0;
}

/* ---- assignment ------------------------------------------------------------------------------ */
static int assign(jctx *c, const jnode *t, jval v, jscope *sc) {
    if (t->kind == JN_NAME) {
        int rc = nuage__jscope_set(sc, t->name, jv_ref(v));
        return rc ? nuage__jfail_code(c, t->line, rc) : 0;
    }
    if (t->kind == JN_ATTR) {   /* ns.attr */
        const jval *ns = nuage__jscope_lookup(sc, t->a->name);
        if (!ns || ns->t != JV_NS)
            return nuage__jfail(c, t->line, "cannot assign attribute on non-namespace object");
        int rc = nuage__jdict_set(ns->u.d, jv_ref(t->val), jv_ref(v));
        return rc ? nuage__jfail_code(c, t->line, rc) : 0;
    }
    /* tuple unpacking */
    jlist *l;
    if (nuage__jiter_list(c, t->line, v, &l) < 0) return -1;
    int rc = 0;
    if (l->n < t->nitems)
        rc = nuage__jfail(c, t->line, "not enough values to unpack (expected %u, got %zu)", t->nitems, l->n);
    else if (l->n > t->nitems)
        rc = nuage__jfail(c, t->line, "too many values to unpack (expected %u)", t->nitems);
    for (uint32_t i = 0; rc == 0 && i < t->nitems; i++) rc = assign(c, t->items[i], l->v[i], sc);
    jv_unref(jv_list(l));
    return rc;
}

/* ---- output ------------------------------------------------------------------------------------ */
static int out_put(jctx *c, int line, jbuf *out, const char *s, size_t n) {
    int rc = nuage__jbuf_put(out, s, n);
    if (rc) return nuage__jfail_code(c, line, rc);
    return nuage__jwork(c, line, n);
}

static int out_val(jctx *c, int line, jbuf *out, jval v) {
    if (v.t == JV_STR) return out_put(c, line, out, v.u.s->s, v.u.s->len);
    size_t before = out->n;
    int rc = nuage__jv_write(out, v, false);
    if (rc) return nuage__jfail_code(c, line, rc);
    return nuage__jwork(c, line, out->n - before);
}

/* Apply a chain of FILTER nodes whose innermost operand is NULL to v. */
static int apply_filter_chain(jctx *c, const jnode *f, jscope *sc, jval v, jval *out) {
    if (!f) { *out = jv_ref(v); return 0; }
    jval inner;
    if (apply_filter_chain(c, f->a, sc, v, &inner) < 0) return -1;
    /* evaluate this filter with its operand replaced by `inner` */
    jnode tmp = *f;
    jnode cst = {0};
    cst.kind = JN_CONST;
    cst.line = f->line;
    cst.val = inner;
    tmp.a = &cst;
    int rc = nuage__jeval(c, &tmp, sc, out);
    jv_unref(inner);
    return rc;
}

static int render_to_string(jctx *c, int line, jnode *const *body, uint32_t n, jscope *sc, jval *out) {
    jbuf b = {0};
    int rc = nuage__jexec_body(c, body, n, sc, &b);
    if (rc == 0) {
        *out = nuage__jv_str(b.p ? b.p : "", b.n);
        if (out->t == JV_MISSING) rc = nuage__jfail_code(c, line, NUAGE_E_NOMEM);
    }
    nuage__jbuf_free(&b);
    return rc;
}

/* ---- loops ------------------------------------------------------------------------------------- */
static int run_for(jctx *c, const jnode *n, jval iterable, jscope *sc, int depth0, jbuf *out) {
    jlist *items;
    if (nuage__jiter_list(c, n->line, iterable, &items) < 0) return -1;
    int rc = 0;
    if (n->c) {   /* loop filter: keep the items for which the condition holds */
        jlist *kept = nuage__jlist_new(0);
        if (!kept) { jv_unref(jv_list(items)); return nuage__jfail_code(c, n->line, NUAGE_E_NOMEM); }
        for (size_t i = 0; rc == 0 && i < items->n; i++) {
            jscope *fs = nuage__jscope_new(sc);
            if (!fs) { rc = nuage__jfail_code(c, n->line, NUAGE_E_NOMEM); break; }
            jval cond;
            rc = assign(c, n->a, items->v[i], fs);
            if (rc == 0) rc = nuage__jeval(c, n->c, fs, &cond);
            if (rc == 0) {
                if (nuage__jv_truthy(cond)) {
                    int e = nuage__jlist_push(kept, jv_ref(items->v[i]));
                    if (e) rc = nuage__jfail_code(c, n->line, e);
                }
                jv_unref(cond);
            }
            nuage__jscope_unref(fs);
        }
        jv_unref(jv_list(items));
        items = kept;
        if (rc < 0) { jv_unref(jv_list(items)); return -1; }
    }
    jloop *lp = calloc(1, sizeof *lp);
    if (!lp) { jv_unref(jv_list(items)); return nuage__jfail_code(c, n->line, NUAGE_E_NOMEM); }
    lp->h.rc = 1;
    lp->items = items;
    lp->length = items->n;
    lp->depth0 = depth0;
    lp->last = jv_missing();
    if (n->op) {   /* recursive: the loop object must be able to re-run us */
        lp->forn = n;
        lp->scope = sc;
        sc->rc++;
    }
    jval loopv = {.t = JV_LOOP, .u.lp = lp};
    jscope *is = NULL;
    /* Jinja2 runs `else` unless some iteration reached the end of the body
     * (so also when every iteration hit continue, or the first one broke) */
    bool completed = false;
    for (size_t i = 0; i < items->n; i++) {
        if (++c->steps > NUAGE__J_MAX_STEPS) {
            rc = nuage__jfail(c, n->line, "template evaluation exceeded %u steps", NUAGE__J_MAX_STEPS);
            break;
        }
        lp->index0 = i;
        /* a fresh scope per iteration; reuse the last one if nothing kept it */
        if (is && is->rc == 1) scope_empty(is);
        else {
            if (is) nuage__jscope_unref(is);
            if (!(is = nuage__jscope_new(sc))) { rc = nuage__jfail_code(c, n->line, NUAGE_E_NOMEM); break; }
        }
        rc = assign(c, n->a, items->v[i], is);
        if (rc == 0) {
            int e = nuage__jscope_set(is, "loop", jv_ref(loopv));
            if (e) rc = nuage__jfail_code(c, n->line, e);
        }
        if (rc == 0) rc = nuage__jexec_body(c, n->items, n->nitems, is, out);
        if (rc < 0) break;
        if (c->loopctl == 0) completed = true;
        if (c->loopctl == 1) { c->loopctl = 0; break; }
        if (c->loopctl == 2) c->loopctl = 0;
    }
    if (is) nuage__jscope_unref(is);
    if (rc == 0 && !completed && n->nitems2) {
        jscope *es = nuage__jscope_new(sc);
        if (!es) rc = nuage__jfail_code(c, n->line, NUAGE_E_NOMEM);
        else {
            rc = nuage__jexec_body(c, n->items2, n->nitems2, es, out);
            nuage__jscope_unref(es);
        }
    }
    jv_unref(loopv);
    return rc;
}

/* ---- macros ------------------------------------------------------------------------------------ */
/* A macro value for a MACRO / CALLBLOCK node closing over scope sc. *out
 * is always a value the caller must release, also when this fails. */
static int make_macro(jctx *c, const jnode *n, jscope *sc, jval caller, jval *out) {
    *out = jv_missing();
    jfunc *f = calloc(1, sizeof *f);
    if (!f) return nuage__jfail_code(c, n->line, NUAGE_E_NOMEM);
    f->h.rc = 1;
    f->kind = JF_MACRO;
    f->node = n;
    f->scope = sc;
    sc->rc++;
    f->self = jv_missing();
    f->caller = jv_ref(caller);
    f->name = n->kind == JN_MACRO ? n->name : "caller";
    out->t = JV_FUNC;
    out->u.fn = f;
    return own_scope(c, sc);
}

static int call_macro(jctx *c, int line, jfunc *f, const jargs *a, jval *out) {
    const jnode *n = f->node;
    int flags = n->op;
    if (c->depth >= NUAGE__J_MAX_DEPTH)
        return nuage__jfail(c, line, "maximum recursion depth exceeded (%d nested calls)", NUAGE__J_MAX_DEPTH);
    jscope *ms = nuage__jscope_new(f->scope);
    if (!ms) return nuage__jfail_code(c, line, NUAGE_E_NOMEM);
    int rc = 0;
    uint32_t np = n->nnames;
    bool bound[256] = {false};
    jlist *varargs = NULL;
    jdict *kwargs = NULL;
    jval caller = jv_ref(f->caller);
    for (size_t i = 0; rc == 0 && i < a->npos; i++) {
        if (i < np) {
            rc = nuage__jscope_set(ms, n->names[i], jv_ref(a->pos[i]));
            if (rc) rc = nuage__jfail_code(c, line, rc);
            bound[i] = true;
        } else if (flags & JM_VARARGS) {
            if (!varargs && !(varargs = nuage__jlist_new(0))) rc = nuage__jfail_code(c, line, NUAGE_E_NOMEM);
            else if ((rc = nuage__jlist_push(varargs, jv_ref(a->pos[i])))) rc = nuage__jfail_code(c, line, rc);
        } else {
            rc = nuage__jfail(c, line, "macro '%s' takes not more than %u argument(s)", f->name, np);
        }
    }
    for (size_t k = 0; rc == 0 && k < a->nkw; k++) {
        uint32_t i;
        for (i = 0; i < np; i++)
            if (!strcmp(n->names[i], a->kwn[k])) break;
        if (i < np) {
            if (bound[i]) { rc = nuage__jfail(c, line, "macro '%s' got multiple values for argument '%s'", f->name, a->kwn[k]); break; }
            rc = nuage__jscope_set(ms, n->names[i], jv_ref(a->kwv[k]));
            if (rc) rc = nuage__jfail_code(c, line, rc);
            bound[i] = true;
        } else if (!strcmp(a->kwn[k], "caller") && (flags & JM_CALLER)) {
            jv_unref(caller);
            caller = jv_ref(a->kwv[k]);
        } else if (flags & JM_KWARGS) {
            if (!kwargs && !(kwargs = nuage__jdict_new(0))) rc = nuage__jfail_code(c, line, NUAGE_E_NOMEM);
            else {
                jval key = nuage__jv_cstr(a->kwn[k]);
                if (key.t == JV_MISSING) rc = nuage__jfail_code(c, line, NUAGE_E_NOMEM);
                else if ((rc = nuage__jdict_set(kwargs, key, jv_ref(a->kwv[k])))) rc = nuage__jfail_code(c, line, rc);
            }
        } else {
            rc = nuage__jfail(c, line, "macro '%s' takes no keyword argument '%s'", f->name, a->kwn[k]);
        }
    }
    /* defaults, evaluated in the macro's scope after the earlier parameters */
    for (uint32_t i = 0; rc == 0 && i < np; i++) {
        if (bound[i]) continue;
        jval d;
        if (n->items2 && n->items2[i]) {
            if (nuage__jeval(c, n->items2[i], ms, &d) < 0) { rc = -1; break; }
        } else {
            char msg[200];
            snprintf(msg, sizeof msg, "parameter '%s' was not provided", n->names[i]);
            d = nuage__jv_cstr(msg);
            if (d.t == JV_MISSING) d = jv_undef(); else d.t = JV_UNDEF;
        }
        rc = nuage__jscope_set(ms, n->names[i], d);
        if (rc) rc = nuage__jfail_code(c, line, rc);
    }
    if (rc == 0 && (flags & JM_VARARGS)) {
        if (!varargs && !(varargs = nuage__jlist_new(0))) rc = nuage__jfail_code(c, line, NUAGE_E_NOMEM);
        else {
            varargs->tuple = true;
            rc = nuage__jscope_set(ms, "varargs", jv_ref(jv_list(varargs)));
            if (rc) rc = nuage__jfail_code(c, line, rc);
        }
    }
    if (rc == 0 && (flags & JM_KWARGS)) {
        if (!kwargs && !(kwargs = nuage__jdict_new(0))) rc = nuage__jfail_code(c, line, NUAGE_E_NOMEM);
        else if ((rc = nuage__jscope_set(ms, "kwargs", jv_ref(jv_dict(kwargs))))) rc = nuage__jfail_code(c, line, rc);
    }
    if (rc == 0 && (flags & JM_CALLER)) {
        jval cv = caller.t == JV_MISSING ? jv_undef() : jv_ref(caller);
        if ((rc = nuage__jscope_set(ms, "caller", cv))) rc = nuage__jfail_code(c, line, rc);
    }
    if (rc == 0) {
        c->depth++;
        int saved = c->loopctl;
        rc = render_to_string(c, line, n->items, n->nitems, ms, out);
        c->loopctl = saved;
        c->depth--;
    }
    if (varargs) jv_unref(jv_list(varargs));
    if (kwargs) jv_unref(jv_dict(kwargs));
    jv_unref(caller);
    nuage__jscope_unref(ms);
    return rc;
}

/* ---- global functions ----------------------------------------------------------------------- */
static int g_range(jctx *c, int line, const jargs *a, jval *out) {
    int64_t v[3] = {0, 0, 1};
    if (a->nkw) return nuage__jfail(c, line, "range() takes no keyword arguments");
    if (a->npos < 1 || a->npos > 3) return nuage__jfail(c, line, "range expected 1 to 3 arguments, got %zu", a->npos);
    for (size_t i = 0; i < a->npos; i++) {
        jval x = a->pos[i];
        if (x.t == JV_INT) v[i] = x.u.i;
        else if (x.t == JV_BOOL) v[i] = x.u.b;
        else return nuage__jfail(c, line, "'%s' object cannot be interpreted as an integer", nuage__jv_typename(x));
    }
    int64_t start = 0, stop, step = 1;
    if (a->npos == 1) stop = v[0];
    else { start = v[0]; stop = v[1]; if (a->npos == 3) step = v[2]; }
    if (step == 0) return nuage__jfail(c, line, "range() arg 3 must not be zero");
    __int128 len = 0;
    if (step > 0 && stop > start) len = ((__int128)stop - start + step - 1) / step;
    if (step < 0 && stop < start) len = ((__int128)start - stop - step - 1) / -step;
    if (len > NUAGE__J_MAX_RANGE)
        return nuage__jfail(c, line, "Range too big. The sandbox blocks ranges larger than MAX_RANGE (%d).", NUAGE__J_MAX_RANGE);
    jlist *l = nuage__jlist_new((size_t)len);
    if (!l) return nuage__jfail_code(c, line, NUAGE_E_NOMEM);
    for (int64_t i = 0; i < (int64_t)len; i++) l->v[l->n++] = jv_int(start + i * step);
    *out = jv_list(l);
    return 0;
}

/* dict(...) / namespace(...): a mapping or (key, value) pairs, then kwargs. */
static int g_dict(jctx *c, int line, const jargs *a, bool ns, jval *out) {
    if (a->npos > 1) return nuage__jfail(c, line, "%s expected at most 1 argument, got %zu", ns ? "namespace" : "dict", a->npos);
    jdict *d = nuage__jdict_new(0);
    if (!d) return nuage__jfail_code(c, line, NUAGE_E_NOMEM);
    jval dv = {.t = ns ? JV_NS : JV_DICT, .u.d = d};
    int rc = 0;
    if (a->npos == 1) {
        jval src = a->pos[0];
        if (src.t == JV_DICT || src.t == JV_NS) {
            for (size_t i = 0; rc == 0 && i < src.u.d->n; i++)
                rc = nuage__jdict_set(d, jv_ref(src.u.d->k[i]), jv_ref(src.u.d->v[i]));
            if (rc) rc = nuage__jfail_code(c, line, rc);
        } else {
            jlist *l;
            if (nuage__jiter_list(c, line, src, &l) < 0) { jv_unref(dv); return -1; }
            for (size_t i = 0; rc == 0 && i < l->n; i++) {
                jlist *p;
                if (nuage__jiter_list(c, line, l->v[i], &p) < 0) { rc = -1; break; }
                if (p->n != 2) rc = nuage__jfail(c, line, "dictionary update sequence element #%zu has length %zu; 2 is required", i, p->n);
                else if (!nuage__jv_hashable(p->v[0])) rc = nuage__jfail(c, line, "unhashable type: '%s'", nuage__jv_typename(p->v[0]));
                else if ((rc = nuage__jdict_set(d, jv_ref(p->v[0]), jv_ref(p->v[1])))) rc = nuage__jfail_code(c, line, rc);
                jv_unref(jv_list(p));
            }
            jv_unref(jv_list(l));
        }
    }
    for (size_t i = 0; rc == 0 && i < a->nkw; i++) {
        jval k = nuage__jv_cstr(a->kwn[i]);
        if (k.t == JV_MISSING) rc = nuage__jfail_code(c, line, NUAGE_E_NOMEM);
        else if ((rc = nuage__jdict_set(d, k, jv_ref(a->kwv[i])))) rc = nuage__jfail_code(c, line, rc);
    }
    if (rc == 0 && ns) rc = nuage__jown(c, dv);
    if (rc < 0) { jv_unref(dv); return -1; }
    *out = dv;
    return 0;
}

static int g_strftime(jctx *c, int line, const jargs *a, jval *out) {
    static const char *const params[] = {"format"};
    jval fmt;
    if (nuage__jbind(c, line, "strftime_now", a, params, 1, &fmt) < 0) return -1;
    if (fmt.t != JV_STR) return nuage__jfail(c, line, "strftime_now() argument must be str, not %s", nuage__jv_typename(fmt));
    time_t t = (time_t)c->now;
    struct tm tm;
    if (c->now_utc) gmtime_r(&t, &tm);
    else localtime_r(&t, &tm);
    if (fmt.u.s->len == 0) goto empty;
    for (size_t cap = 256; cap <= (1u << 20); cap *= 4) {
        char *buf = malloc(cap);
        if (!buf) return nuage__jfail_code(c, line, NUAGE_E_NOMEM);
        size_t k = strftime(buf, cap, fmt.u.s->s, &tm);
        if (k > 0) {
            *out = nuage__jv_str(buf, k);
            free(buf);
            return out->t == JV_MISSING ? nuage__jfail_code(c, line, NUAGE_E_NOMEM) : 0;
        }
        free(buf);
    }
empty:
    *out = nuage__jv_str("", 0);
    return out->t == JV_MISSING ? nuage__jfail_code(c, line, NUAGE_E_NOMEM) : 0;
}

static int call_global(jctx *c, int line, jfunc *f, const jargs *a, jval *out) {
    switch (f->id) {
    case JG_RANGE: return g_range(c, line, a, out);
    case JG_NAMESPACE: return g_dict(c, line, a, true, out);
    case JG_DICT: return g_dict(c, line, a, false, out);
    case JG_STRFTIME: return g_strftime(c, line, a, out);
    case JG_RAISE: {
        jval msg = a->npos ? a->pos[0] : a->nkw ? a->kwv[0] : jv_undef();
        jstr *s = nuage__jto_str(c, line, msg);
        if (!s) return -1;
        nuage__jfail(c, 0, "%s", s->s);
        jv_unref(jv_strv(s));
        return -1;
    }
    }
    return nuage__jfail(c, line, "internal error: unknown global");
}

int nuage__jcall(jctx *c, int line, jval fn, const jargs *a, jval *out) {
    if (fn.t == JV_UNDEF || fn.t == JV_MISSING) {
        if (fn.u.s) return nuage__jfail(c, line, "%s", fn.u.s->s);
        return nuage__jfail(c, line, "'Undefined' object is not callable");
    }
    if (fn.t == JV_LOOP) {
        jloop *lp = fn.u.lp;
        if (!lp->forn) return nuage__jfail(c, line, "Tried to call non recursive loop. Maybe you forgot the 'recursive' modifier.");
        if (a->npos != 1 || a->nkw) return nuage__jfail(c, line, "loop() takes exactly one argument");
        if (c->depth >= NUAGE__J_MAX_DEPTH) return nuage__jfail(c, line, "maximum recursion depth exceeded");
        jbuf b = {0};
        c->depth++;
        int rc = run_for(c, lp->forn, a->pos[0], lp->scope, lp->depth0 + 1, &b);
        c->depth--;
        if (rc == 0) {
            *out = nuage__jv_str(b.p ? b.p : "", b.n);
            if (out->t == JV_MISSING) rc = nuage__jfail_code(c, line, NUAGE_E_NOMEM);
        }
        nuage__jbuf_free(&b);
        return rc;
    }
    if (fn.t != JV_FUNC) return nuage__jfail(c, line, "'%s' object is not callable", nuage__jv_typename(fn));
    jfunc *f = fn.u.fn;
    switch (f->kind) {
    case JF_MACRO: return call_macro(c, line, f, a, out);
    case JF_GLOBAL: return call_global(c, line, f, a, out);
    case JF_METHOD: return nuage__jmethod_call(c, line, f->id, f->self, a, out);
    default: return nuage__jfail(c, line, "object is not callable");
    }
}

/* ---- statements ------------------------------------------------------------------------------- */
/* {% call(args) m(...) %}body{% endcall %}: m(..., caller=<body as a macro>). Kept
 * out of exec_stmt so its large locals do not weigh on every statement frame. */
static __attribute__((noinline)) int exec_callblock(jctx *c, const jnode *n, jscope *sc, jbuf *out) {
    jval v = jv_missing();
    int rc;
    /* evaluate the call with an extra caller= keyword argument */
    jval caller = jv_missing();
    if (make_macro(c, n, sc, jv_missing(), &caller) < 0) { jv_unref(caller); return -1; }
    const jnode *call = n->a;
    jnode tmp = *call;
    const char *names[65];
    jnode *vals[65];
    jnode cst = {0};
    if (call->nnames >= 64) { jv_unref(caller); return nuage__jfail(c, n->line, "too many keyword arguments"); }
    for (uint32_t i = 0; i < call->nnames; i++) { names[i] = call->names[i]; vals[i] = call->items2[i]; }
    cst.kind = JN_CONST;
    cst.line = n->line;
    cst.val = caller;
    names[call->nnames] = "caller";
    vals[call->nnames] = &cst;
    tmp.names = names;
    tmp.items2 = vals;
    tmp.nnames = tmp.nitems2 = call->nnames + 1;
    rc = nuage__jeval(c, &tmp, sc, &v);
    jv_unref(caller);
    if (rc < 0) return -1;
    rc = out_val(c, n->line, out, v);
    jv_unref(v);
    return rc;
}

static int exec_stmt(jctx *c, const jnode *n, jscope *sc, jbuf *out) {
    jval v = jv_missing();
    int rc = 0;
    if (++c->steps > NUAGE__J_MAX_STEPS)
        return nuage__jfail(c, n->line, "template evaluation exceeded %u steps", NUAGE__J_MAX_STEPS);
    if (nuage__jstack_check(c, n->line) < 0) return -1;
    switch (n->kind) {
    case JN_TEXT:
        return out_put(c, n->line, out, n->val.u.s->s, n->val.u.s->len);
    case JN_PRINT:
        if (nuage__jeval(c, n->a, sc, &v) < 0) return -1;
        rc = out_val(c, n->line, out, v);
        jv_unref(v);
        return rc;
    case JN_IF:
        if (nuage__jeval(c, n->a, sc, &v) < 0) return -1;
        rc = nuage__jv_truthy(v);
        jv_unref(v);
        return rc ? nuage__jexec_body(c, n->items, n->nitems, sc, out)
                  : nuage__jexec_body(c, n->items2, n->nitems2, sc, out);
    case JN_FOR:
        if (nuage__jeval(c, n->b, sc, &v) < 0) return -1;
        rc = run_for(c, n, v, sc, 0, out);
        jv_unref(v);
        return rc;
    case JN_SET:
        if (nuage__jeval(c, n->b, sc, &v) < 0) return -1;
        rc = assign(c, n->a, v, sc);
        jv_unref(v);
        return rc;
    case JN_SETBLOCK: case JN_FILTERBLOCK: {
        jscope *bs = nuage__jscope_new(sc);
        if (!bs) return nuage__jfail_code(c, n->line, NUAGE_E_NOMEM);
        jval body, res;
        rc = render_to_string(c, n->line, n->items, n->nitems, bs, &body);
        nuage__jscope_unref(bs);
        if (rc < 0) return -1;
        if (c->loopctl) {   /* break/continue inside: the captured text is dropped */
            jv_unref(body);
            return 0;
        }
        rc = apply_filter_chain(c, n->b, sc, body, &res);
        jv_unref(body);
        if (rc < 0) return -1;
        rc = n->kind == JN_SETBLOCK ? assign(c, n->a, res, sc) : out_val(c, n->line, out, res);
        jv_unref(res);
        return rc;
    }
    case JN_MACRO:
        if (make_macro(c, n, sc, jv_missing(), &v) < 0) { jv_unref(v); return -1; }
        rc = nuage__jscope_set(sc, n->name, v);
        return rc ? nuage__jfail_code(c, n->line, rc) : 0;
    case JN_CALLBLOCK:
        return exec_callblock(c, n, sc, out);
    case JN_WITH: {
        jscope *ws = nuage__jscope_new(sc);
        if (!ws) return nuage__jfail_code(c, n->line, NUAGE_E_NOMEM);
        for (uint32_t i = 0; rc == 0 && i < n->a->nitems; i++) {
            if (nuage__jeval(c, n->b->items[i], sc, &v) < 0) { rc = -1; break; }
            rc = assign(c, n->a->items[i], v, ws);
            jv_unref(v);
        }
        if (rc == 0) rc = nuage__jexec_body(c, n->items, n->nitems, ws, out);
        nuage__jscope_unref(ws);
        return rc;
    }
    case JN_SCOPE: {
        jscope *ss = nuage__jscope_new(sc);
        if (!ss) return nuage__jfail_code(c, n->line, NUAGE_E_NOMEM);
        rc = nuage__jexec_body(c, n->items, n->nitems, ss, out);
        nuage__jscope_unref(ss);
        return rc;
    }
    case JN_BREAK: c->loopctl = 1; return 0;
    case JN_CONTINUE: c->loopctl = 2; return 0;
    default:
        return nuage__jfail(c, n->line, "internal error: expression node as statement");
    }
}

int nuage__jexec_body(jctx *c, jnode *const *body, uint32_t n, jscope *sc, jbuf *out) {
    for (uint32_t i = 0; i < n; i++) {
        if (exec_stmt(c, body[i], sc, out) < 0) return -1;
        if (c->loopctl) return 0;
    }
    return 0;
}
