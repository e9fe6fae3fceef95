/*
 * parser.c - tokens to an AST, following Jinja2's grammar and precedence.
 *
 * A recursive-descent parser mirroring jinja2/parser.py so that every
 * template parses into the same structure Jinja2 builds (precedence,
 * left-associative `**`, filters binding tighter than arithmetic, `is`
 * tests with one bare argument, adjacent string literals concatenated,
 * tuples from bare commas, `x if c` without else, chained comparisons).
 *
 * Statements: if/elif/else, for (unpacking, `if` filter, `recursive`,
 * else), set (names, tuples, `ns.attr`, block set with filters), macro
 * (defaults), call blocks, filter blocks, with, break/continue (the
 * loopcontrols extension; only inside a loop body), print,
 * generation/endgeneration (Hugging Face's extension: a scoped body).
 * include/import/extends/block are refused: a chat template is one file.
 * After parsing, unknown filter/test names are rejected as Jinja2's
 * compiler rejects them (but not inside `if` branches, see check_names).
 *
 * Nesting is bounded (NUAGE__J_MAX_NEST) so hostile input cannot overflow
 * the C stack. Errors name the line: "line N: ...".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "template/jinja.h"

typedef struct {
    jarena *a;
    const jtoken *t;
    size_t n, pos;
    char *err;
    size_t errlen;
    int rc;
    int depth;
    int loops;
} parser;

typedef struct { jnode **v; size_t n, cap; } nvec;

static const jtoken *cur(parser *P) { return &P->t[P->pos]; }
static const jtoken *look(parser *P) { return &P->t[P->pos + 1 < P->n ? P->pos + 1 : P->pos]; }
static void next(parser *P) { if (P->pos + 1 < P->n) P->pos++; }

static bool tname(const jtoken *t, const char *s) { return t->type == TK_NAME && strcmp(t->s, s) == 0; }
static bool top(const jtoken *t, int op) { return t->type == TK_OP && t->op == op; }

static const char *describe(const jtoken *t, char *buf, size_t n) {
    static const char *opnames[] = {
        "", "+", "-", "*", "/", "//", "%", "**", "~", "[", "]", "(", ")", "{", "}",
        "==", "!=", ">", ">=", "<", "<=", "=", ".", ":", "|", ",", ";", "in", "not in"};
    switch (t->type) {
    case TK_EOF: return "end of template";
    case TK_DATA: return "template data";
    case TK_VBEGIN: return "begin of print statement";
    case TK_VEND: return "end of print statement";
    case TK_BBEGIN: return "begin of statement block";
    case TK_BEND: return "end of statement block";
    case TK_STRING: return "string";
    case TK_INT: return "integer";
    case TK_FLOAT: return "float";
    case TK_NAME: snprintf(buf, n, "%s", t->s); return buf;
    case TK_OP: return opnames[t->op];
    }
    return "?";
}

static jnode *pfail(parser *P, int line, const char *fmt, const char *a1, const char *a2) {
    if (P->rc == 0) {
        char msg[200];
        snprintf(msg, sizeof msg, fmt, a1 ? a1 : "", a2 ? a2 : "");
        if (P->err && P->errlen) snprintf(P->err, P->errlen, "line %d: %s", line, msg);
        P->rc = NUAGE_E_TEMPLATE;
    }
    return NULL;
}

static jnode *unexpected(parser *P) {
    char b[64];
    return pfail(P, cur(P)->line, "unexpected '%s'", describe(cur(P), b, sizeof b), NULL);
}

static bool expect_op(parser *P, int op, const char *what) {
    if (top(cur(P), op)) { next(P); return true; }
    char b[64];
    pfail(P, cur(P)->line, "expected token '%s', got '%s'", what, describe(cur(P), b, sizeof b));
    return false;
}

static bool expect_type(parser *P, int type, const char *what) {
    if (cur(P)->type == type) { next(P); return true; }
    char b[64];
    pfail(P, cur(P)->line, "expected token '%s', got '%s'", what, describe(cur(P), b, sizeof b));
    return false;
}

static bool expect_name(parser *P, const char *name) {
    if (tname(cur(P), name)) { next(P); return true; }
    char b[64];
    pfail(P, cur(P)->line, "expected token '%s', got '%s'", name, describe(cur(P), b, sizeof b));
    return false;
}

/* An immortal string constant in the arena (attribute names, literals). */
static jval arena_str(parser *P, const char *src, size_t len) {
    jstr *s = nuage__jarena_alloc(P->a, sizeof *s + len + 1);
    if (!s) { if (!P->rc) P->rc = NUAGE_E_NOMEM; return jv_missing(); }
    s->h.rc = -1;
    s->len = len;
    memcpy(s->s, src, len);
    s->s[len] = 0;
    s->ncp = nuage__utf8_count(s->s, len);
    return jv_strv(s);
}

static jnode *mk(parser *P, int kind, int line) {
    jnode *n = nuage__jarena_alloc(P->a, sizeof *n);
    if (!n) { if (!P->rc) P->rc = NUAGE_E_NOMEM; return NULL; }
    n->kind = (uint8_t)kind;
    n->line = line;
    n->val = jv_missing();
    return n;
}

static bool vpush(parser *P, nvec *v, jnode *n) {
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 8;
        jnode **p = realloc(v->v, cap * sizeof *p);
        if (!p) { if (!P->rc) P->rc = NUAGE_E_NOMEM; return false; }
        v->v = p;
        v->cap = cap;
    }
    v->v[v->n++] = n;
    return true;
}

/* Move a vector into the arena; frees the vector. */
static bool vfinish(parser *P, nvec *v, jnode ***out, uint32_t *nout) {
    *out = NULL;
    *nout = (uint32_t)v->n;
    if (v->n) {
        *out = nuage__jarena_alloc(P->a, v->n * sizeof **out);
        if (!*out) { if (!P->rc) P->rc = NUAGE_E_NOMEM; free(v->v); v->v = NULL; return false; }
        memcpy(*out, v->v, v->n * sizeof **out);
    }
    free(v->v);
    v->v = NULL;
    v->n = v->cap = 0;
    return true;
}

static jnode *parse_expression(parser *P, bool with_condexpr);
static jnode *parse_unary(parser *P, bool with_filter);
static jnode *parse_primary(parser *P);
static jnode *parse_postfix(parser *P, jnode *node);
static jnode *parse_tuple(parser *P, int mode, const char *extra1, const char *extra2,
                          bool explicit_parens);
enum { TUP_SIMPLE, TUP_COND, TUP_NOCOND };

static bool enter(parser *P) {
    if (++P->depth > NUAGE__J_MAX_NEST) {
        pfail(P, cur(P)->line, "expression nested too deeply", NULL, NULL);
        return false;
    }
    return true;
}

/* ---- call arguments: ( args, k=v, *a, **kw ) into n ------------------------------ */
static bool parse_call_args(parser *P, jnode *n) {
    int line = cur(P)->line;
    if (!expect_op(P, OP_LPAREN, "(")) return false;
    nvec args = {0}, kwv = {0};
    const char **kwn = NULL;
    size_t nkw = 0, capkw = 0;
    bool require_comma = false, ok = true;
    while (ok && !top(cur(P), OP_RPAREN)) {
        if (require_comma) {
            if (!expect_op(P, OP_COMMA, ",")) { ok = false; break; }
            if (top(cur(P), OP_RPAREN)) break;
        }
        if (top(cur(P), OP_MUL)) {
            if (n->b || n->c) { pfail(P, line, "invalid syntax for function call expression", NULL, NULL); ok = false; break; }
            next(P);
            if (!(n->b = parse_expression(P, true))) { ok = false; break; }
        } else if (top(cur(P), OP_POW)) {
            if (n->c) { pfail(P, line, "invalid syntax for function call expression", NULL, NULL); ok = false; break; }
            next(P);
            if (!(n->c = parse_expression(P, true))) { ok = false; break; }
        } else if (cur(P)->type == TK_NAME && top(look(P), OP_ASSIGN)) {
            if (n->c) { pfail(P, line, "invalid syntax for function call expression", NULL, NULL); ok = false; break; }
            const char *key = cur(P)->s;
            next(P);
            next(P);
            jnode *v = parse_expression(P, true);
            if (!v) { ok = false; break; }
            if (nkw == capkw) {
                capkw = capkw ? capkw * 2 : 4;
                const char **p = realloc(kwn, capkw * sizeof *p);
                if (!p) { P->rc = P->rc ? P->rc : NUAGE_E_NOMEM; ok = false; break; }
                kwn = p;
            }
            kwn[nkw++] = key;
            if (!vpush(P, &kwv, v)) { ok = false; break; }
        } else {
            if (n->b || n->c || nkw) { pfail(P, line, "invalid syntax for function call expression", NULL, NULL); ok = false; break; }
            jnode *v = parse_expression(P, true);
            if (!v || !vpush(P, &args, v)) { ok = false; break; }
        }
        require_comma = true;
    }
    if (ok) ok = expect_op(P, OP_RPAREN, ")");
    if (ok) ok = vfinish(P, &args, &n->items, &n->nitems) && vfinish(P, &kwv, &n->items2, &n->nitems2);
    if (ok && nkw) {
        n->names = nuage__jarena_alloc(P->a, nkw * sizeof *n->names);
        if (!n->names) { P->rc = P->rc ? P->rc : NUAGE_E_NOMEM; ok = false; }
        else { memcpy(n->names, kwn, nkw * sizeof *kwn); n->nnames = (uint32_t)nkw; }
    }
    free(args.v);
    free(kwv.v);
    free(kwn);
    return ok;
}

/* name(.name)* for filters and tests */
static const char *parse_dotted_name(parser *P) {
    if (cur(P)->type != TK_NAME) { expect_type(P, TK_NAME, "name"); return NULL; }
    const char *name = cur(P)->s;
    next(P);
    while (top(cur(P), OP_DOT) && look(P)->type == TK_NAME) {
        size_t l1 = strlen(name), l2 = look(P)->len;
        char *s = nuage__jarena_alloc(P->a, l1 + l2 + 2);
        if (!s) { P->rc = NUAGE_E_NOMEM; return NULL; }
        memcpy(s, name, l1);
        s[l1] = '.';
        memcpy(s + l1 + 1, look(P)->s, l2 + 1);
        name = s;
        next(P);
        next(P);
    }
    return name;
}

static jnode *parse_filter(parser *P, jnode *node, bool start_inline) {
    while (top(cur(P), OP_PIPE) || start_inline) {
        if (!start_inline) next(P);
        int line = cur(P)->line;
        const char *name = parse_dotted_name(P);
        if (!name) return NULL;
        jnode *f = mk(P, JN_FILTER, line);
        if (!f) return NULL;
        f->a = node;
        f->name = name;
        if (top(cur(P), OP_LPAREN) && !parse_call_args(P, f)) return NULL;
        node = f;
        start_inline = false;
    }
    return node;
}

static jnode *parse_test(parser *P, jnode *node) {
    int line = cur(P)->line;
    next(P);   /* is */
    bool negated = false;
    if (tname(cur(P), "not")) { next(P); negated = true; }
    const char *name = parse_dotted_name(P);
    if (!name) return NULL;
    jnode *t = mk(P, JN_TEST, line);
    if (!t) return NULL;
    t->a = node;
    t->name = name;
    const jtoken *c = cur(P);
    if (top(c, OP_LPAREN)) {
        if (!parse_call_args(P, t)) return NULL;
    } else if ((c->type == TK_NAME || c->type == TK_STRING || c->type == TK_INT || c->type == TK_FLOAT ||
                top(c, OP_LBRACKET) || top(c, OP_LBRACE)) &&
               !tname(c, "else") && !tname(c, "or") && !tname(c, "and")) {
        if (tname(c, "is")) return pfail(P, c->line, "You cannot chain multiple tests with is", NULL, NULL);
        jnode *arg = parse_primary(P);
        if (!arg || !(arg = parse_postfix(P, arg))) return NULL;
        t->items = nuage__jarena_alloc(P->a, sizeof *t->items);
        if (!t->items) { P->rc = NUAGE_E_NOMEM; return NULL; }
        t->items[0] = arg;
        t->nitems = 1;
    }
    if (negated) {
        jnode *n = mk(P, JN_NOT, line);
        if (!n) return NULL;
        n->a = t;
        return n;
    }
    return t;
}

static jnode *parse_filter_expr(parser *P, jnode *node) {
    while (node) {
        if (top(cur(P), OP_PIPE)) node = parse_filter(P, node, false);
        else if (tname(cur(P), "is")) node = parse_test(P, node);
        else if (top(cur(P), OP_LPAREN)) {
            jnode *c = mk(P, JN_CALL, cur(P)->line);
            if (!c) return NULL;
            c->a = node;
            if (!parse_call_args(P, c)) return NULL;
            node = c;
        } else break;
    }
    return node;
}

static jnode *parse_subscribed(parser *P) {
    int line = cur(P)->line;
    jnode *args[3] = {NULL, NULL, NULL};
    if (top(cur(P), OP_COLON)) {
        next(P);
    } else {
        jnode *node = parse_expression(P, true);
        if (!node || !top(cur(P), OP_COLON)) return node;
        next(P);
        args[0] = node;
    }
    if (!top(cur(P), OP_COLON) && !top(cur(P), OP_RBRACKET) && !top(cur(P), OP_COMMA))
        if (!(args[1] = parse_expression(P, true))) return NULL;
    if (top(cur(P), OP_COLON)) {
        next(P);
        if (!top(cur(P), OP_RBRACKET) && !top(cur(P), OP_COMMA))
            if (!(args[2] = parse_expression(P, true))) return NULL;
    }
    jnode *s = mk(P, JN_SLICE, line);
    if (!s) return NULL;
    s->b = args[0];
    s->c = args[1];
    s->d = args[2];
    return s;
}

static jnode *parse_postfix(parser *P, jnode *node) {
    while (node) {
        const jtoken *t = cur(P);
        if (top(t, OP_DOT)) {
            next(P);
            const jtoken *a = cur(P);
            if (a->type == TK_NAME) {
                jnode *g = mk(P, JN_ATTR, a->line);
                if (!g) return NULL;
                g->a = node;
                g->name = a->s;
                g->val = arena_str(P, a->s, a->len);
                if (g->val.t == JV_MISSING) return NULL;
                next(P);
                node = g;
            } else if (a->type == TK_INT) {
                jnode *g = mk(P, JN_ITEM, a->line), *k = mk(P, JN_CONST, a->line);
                if (!g || !k) return NULL;
                k->val = jv_int(a->i);
                g->a = node;
                g->b = k;
                next(P);
                node = g;
            } else {
                return pfail(P, a->line, "expected name or number", NULL, NULL);
            }
        } else if (top(t, OP_LBRACKET)) {
            next(P);
            nvec args = {0};
            while (!top(cur(P), OP_RBRACKET)) {
                if (args.n && !expect_op(P, OP_COMMA, ",")) { free(args.v); return NULL; }
                jnode *s = parse_subscribed(P);
                if (!s || !vpush(P, &args, s)) { free(args.v); return NULL; }
            }
            if (!expect_op(P, OP_RBRACKET, "]")) { free(args.v); return NULL; }
            if (args.n == 0) { free(args.v); return pfail(P, t->line, "expected subscript expression", NULL, NULL); }
            if (args.n == 1 && args.v[0]->kind == JN_SLICE) {
                jnode *s = args.v[0];
                free(args.v);
                s->a = node;
                node = s;
                continue;
            }
            jnode *g = mk(P, JN_ITEM, t->line);
            if (!g) { free(args.v); return NULL; }
            g->a = node;
            if (args.n == 1) {
                g->b = args.v[0];
                free(args.v);
            } else {
                for (size_t i = 0; i < args.n; i++)
                    if (args.v[i]->kind == JN_SLICE) { free(args.v); return pfail(P, t->line, "multiple slices are not supported", NULL, NULL); }
                jnode *tu = mk(P, JN_TUPLE, t->line);
                if (!tu || !vfinish(P, &args, &tu->items, &tu->nitems)) { free(args.v); return NULL; }
                g->b = tu;
            }
            node = g;
        } else if (top(t, OP_LPAREN)) {
            jnode *c = mk(P, JN_CALL, t->line);
            if (!c) return NULL;
            c->a = node;
            if (!parse_call_args(P, c)) return NULL;
            node = c;
        } else {
            break;
        }
    }
    return node;
}

static jnode *parse_list_or_dict(parser *P, bool dict) {
    int line = cur(P)->line;
    next(P);
    int close = dict ? OP_RBRACE : OP_RBRACKET;
    nvec keys = {0}, vals = {0};
    jnode *n = mk(P, dict ? JN_DICT : JN_LIST, line);
    while (n && !top(cur(P), close)) {
        if (keys.n && !expect_op(P, OP_COMMA, ",")) { n = NULL; break; }
        if (top(cur(P), close)) break;
        jnode *k = parse_expression(P, true);
        if (!k || !vpush(P, &keys, k)) { n = NULL; break; }
        if (dict) {
            if (!expect_op(P, OP_COLON, ":")) { n = NULL; break; }
            jnode *v = parse_expression(P, true);
            if (!v || !vpush(P, &vals, v)) { n = NULL; break; }
        }
    }
    if (n && !expect_op(P, close, dict ? "}" : "]")) n = NULL;
    if (n && !(vfinish(P, &keys, &n->items, &n->nitems) && vfinish(P, &vals, &n->items2, &n->nitems2)))
        n = NULL;
    free(keys.v);
    free(vals.v);
    return n;
}

static jnode *parse_primary(parser *P) {
    const jtoken *t = cur(P);
    jnode *n = NULL;
    if (!enter(P)) return NULL;
    if (t->type == TK_NAME) {
        n = mk(P, JN_CONST, t->line);
        if (!n) goto out;
        if (!strcmp(t->s, "true") || !strcmp(t->s, "True")) n->val = jv_bool(true);
        else if (!strcmp(t->s, "false") || !strcmp(t->s, "False")) n->val = jv_bool(false);
        else if (!strcmp(t->s, "none") || !strcmp(t->s, "None")) n->val = jv_none();
        else { n->kind = JN_NAME; n->name = t->s; }
        next(P);
    } else if (t->type == TK_STRING) {
        size_t total = 0, i = P->pos;
        while (P->t[i].type == TK_STRING) total += P->t[i++].len;
        jstr *s = nuage__jarena_alloc(P->a, sizeof *s + total + 1);
        n = mk(P, JN_CONST, t->line);
        if (!s || !n) { P->rc = P->rc ? P->rc : NUAGE_E_NOMEM; n = NULL; goto out; }
        s->h.rc = -1;
        s->len = 0;
        while (cur(P)->type == TK_STRING) {
            memcpy(s->s + s->len, cur(P)->s, cur(P)->len);
            s->len += cur(P)->len;
            next(P);
        }
        s->s[s->len] = 0;
        s->ncp = nuage__utf8_count(s->s, s->len);
        n->val = jv_strv(s);
    } else if (t->type == TK_INT || t->type == TK_FLOAT) {
        n = mk(P, JN_CONST, t->line);
        if (!n) goto out;
        n->val = t->type == TK_INT ? jv_int(t->i) : jv_float(t->f);
        next(P);
    } else if (top(t, OP_LPAREN)) {
        next(P);
        n = parse_tuple(P, TUP_COND, NULL, NULL, true);
        if (n && !expect_op(P, OP_RPAREN, ")")) n = NULL;
    } else if (top(t, OP_LBRACKET)) {
        n = parse_list_or_dict(P, false);
    } else if (top(t, OP_LBRACE)) {
        n = parse_list_or_dict(P, true);
    } else {
        n = unexpected(P);
    }
out:
    P->depth--;
    return n;
}

static jnode *parse_unary(parser *P, bool with_filter) {
    const jtoken *t = cur(P);
    jnode *node;
    if (!enter(P)) return NULL;
    if (top(t, OP_SUB) || top(t, OP_ADD)) {
        next(P);
        node = mk(P, top(t, OP_SUB) ? JN_NEG : JN_POS, t->line);
        if (node && !(node->a = parse_unary(P, false))) node = NULL;
    } else {
        node = parse_primary(P);
    }
    node = parse_postfix(P, node);
    if (with_filter) node = parse_filter_expr(P, node);
    P->depth--;
    return node;
}

static jnode *binop(parser *P, int kind, int op, jnode *l, jnode *r, int line) {
    if (!l || !r) return NULL;
    jnode *n = mk(P, kind, line);
    if (!n) return NULL;
    n->op = (uint8_t)op;
    n->a = l;
    n->b = r;
    return n;
}

static jnode *parse_pow(parser *P) {
    jnode *l = parse_unary(P, true);
    while (l && top(cur(P), OP_POW)) {
        int line = cur(P)->line;
        next(P);
        l = binop(P, JN_BIN, OP_POW, l, parse_unary(P, true), line);
    }
    return l;
}

static jnode *parse_math2(parser *P) {
    jnode *l = parse_pow(P);
    while (l && cur(P)->type == TK_OP &&
           (cur(P)->op == OP_MUL || cur(P)->op == OP_DIV || cur(P)->op == OP_FDIV || cur(P)->op == OP_MOD)) {
        int op = cur(P)->op, line = cur(P)->line;
        next(P);
        l = binop(P, JN_BIN, op, l, parse_pow(P), line);
    }
    return l;
}

static jnode *parse_concat(parser *P) {
    int line = cur(P)->line;
    jnode *first = parse_math2(P);
    if (!first || !top(cur(P), OP_TILDE)) return first;
    nvec v = {0};
    if (!vpush(P, &v, first)) return NULL;
    while (top(cur(P), OP_TILDE)) {
        next(P);
        jnode *x = parse_math2(P);
        if (!x || !vpush(P, &v, x)) { free(v.v); return NULL; }
    }
    jnode *n = mk(P, JN_CONCAT, line);
    if (!n || !vfinish(P, &v, &n->items, &n->nitems)) { free(v.v); return NULL; }
    return n;
}

static jnode *parse_math1(parser *P) {
    jnode *l = parse_concat(P);
    while (l && (top(cur(P), OP_ADD) || top(cur(P), OP_SUB))) {
        int op = cur(P)->op, line = cur(P)->line;
        next(P);
        l = binop(P, JN_BIN, op, l, parse_concat(P), line);
    }
    return l;
}

static jnode *parse_compare(parser *P) {
    int line = cur(P)->line;
    jnode *expr = parse_math1(P);
    if (!expr) return NULL;
    nvec v = {0};
    uint8_t ops[64];
    for (;;) {
        const jtoken *t = cur(P);
        int op = 0;
        if (t->type == TK_OP && (t->op == OP_EQ || t->op == OP_NE || t->op == OP_LT ||
                                 t->op == OP_LE || t->op == OP_GT || t->op == OP_GE)) {
            op = t->op;
            next(P);
        } else if (tname(t, "in")) {
            op = OP_IN;
            next(P);
        } else if (tname(t, "not") && tname(look(P), "in")) {
            op = OP_NOTIN;
            next(P);
            next(P);
        } else {
            break;
        }
        if (v.n >= sizeof ops) { free(v.v); return pfail(P, t->line, "comparison chain too long", NULL, NULL); }
        jnode *r = parse_math1(P);
        if (!r || !vpush(P, &v, r)) { free(v.v); return NULL; }
        ops[v.n - 1] = (uint8_t)op;
    }
    if (!v.n) return expr;
    jnode *n = mk(P, JN_CMP, line);
    if (!n) { free(v.v); return NULL; }
    n->a = expr;
    n->ops = nuage__jarena_alloc(P->a, v.n);
    if (!n->ops) { free(v.v); P->rc = NUAGE_E_NOMEM; return NULL; }
    memcpy(n->ops, ops, v.n);
    if (!vfinish(P, &v, &n->items, &n->nitems)) return NULL;
    return n;
}

static jnode *parse_not(parser *P) {
    if (tname(cur(P), "not")) {
        int line = cur(P)->line;
        next(P);
        if (!enter(P)) return NULL;
        jnode *n = mk(P, JN_NOT, line);
        if (n && !(n->a = parse_not(P))) n = NULL;
        P->depth--;
        return n;
    }
    return parse_compare(P);
}

static jnode *parse_and(parser *P) {
    jnode *l = parse_not(P);
    while (l && tname(cur(P), "and")) {
        int line = cur(P)->line;
        next(P);
        l = binop(P, JN_AND, 0, l, parse_not(P), line);
    }
    return l;
}

static jnode *parse_or(parser *P) {
    jnode *l = parse_and(P);
    while (l && tname(cur(P), "or")) {
        int line = cur(P)->line;
        next(P);
        l = binop(P, JN_OR, 0, l, parse_and(P), line);
    }
    return l;
}

static jnode *parse_condexpr(parser *P) {
    jnode *expr1 = parse_or(P);
    while (expr1 && tname(cur(P), "if")) {
        int line = cur(P)->line;
        next(P);
        jnode *expr2 = parse_or(P), *expr3 = NULL;
        if (!expr2) return NULL;
        if (tname(cur(P), "else")) {
            next(P);
            if (!enter(P)) return NULL;
            expr3 = parse_condexpr(P);
            P->depth--;
            if (!expr3) return NULL;
        }
        jnode *n = mk(P, JN_COND, line);
        if (!n) return NULL;
        n->a = expr2;
        n->b = expr1;
        n->c = expr3;
        expr1 = n;
    }
    return expr1;
}

static jnode *parse_expression(parser *P, bool with_condexpr) {
    return with_condexpr ? parse_condexpr(P) : parse_or(P);
}

static bool is_tuple_end(parser *P, const char *e1, const char *e2) {
    const jtoken *t = cur(P);
    if (t->type == TK_VEND || t->type == TK_BEND || top(t, OP_RPAREN)) return true;
    return (e1 && tname(t, e1)) || (e2 && tname(t, e2));
}

static jnode *parse_tuple(parser *P, int mode, const char *e1, const char *e2, bool explicit_parens) {
    int line = cur(P)->line;
    nvec v = {0};
    bool is_tuple = false;
    for (;;) {
        if (v.n && !expect_op(P, OP_COMMA, ",")) { free(v.v); return NULL; }
        if (is_tuple_end(P, e1, e2)) break;
        jnode *x = mode == TUP_SIMPLE ? parse_primary(P) : parse_expression(P, mode == TUP_COND);
        if (!x || !vpush(P, &v, x)) { free(v.v); return NULL; }
        if (top(cur(P), OP_COMMA)) is_tuple = true;
        else break;
    }
    if (!is_tuple) {
        if (v.n) { jnode *x = v.v[0]; free(v.v); return x; }
        if (!explicit_parens) {
            char b[64];
            return pfail(P, cur(P)->line, "Expected an expression, got '%s'", describe(cur(P), b, sizeof b), NULL);
        }
    }
    jnode *n = mk(P, JN_TUPLE, line);
    if (!n || !vfinish(P, &v, &n->items, &n->nitems)) { free(v.v); return NULL; }
    return n;
}

/* ---- statements ------------------------------------------------------------------ */
static bool subparse(parser *P, nvec *body, const char *const *ends);
static jnode *parse_statement(parser *P);
static int scan_special_body(const jnode *n);

static bool check_target(parser *P, jnode *t, bool allow_tuple) {
    if (t->kind == JN_NAME) return true;
    if (t->kind == JN_TUPLE && allow_tuple) {
        for (uint32_t i = 0; i < t->nitems; i++)
            if (!check_target(P, t->items[i], true)) return false;
        return true;
    }
    pfail(P, t->line, "can't assign to this expression", NULL, NULL);
    return false;
}

static jnode *parse_assign_target(parser *P, const char *e1, bool with_namespace) {
    if (with_namespace && cur(P)->type == TK_NAME && top(look(P), OP_DOT)) {
        const jtoken *ns = cur(P);
        next(P);
        next(P);
        if (cur(P)->type != TK_NAME) { expect_type(P, TK_NAME, "name"); return NULL; }
        jnode *n = mk(P, JN_ATTR, ns->line), *nn = mk(P, JN_NAME, ns->line);
        if (!n || !nn) return NULL;
        nn->name = ns->s;
        n->a = nn;
        n->name = cur(P)->s;
        n->val = arena_str(P, cur(P)->s, cur(P)->len);
        if (n->val.t == JV_MISSING) return NULL;
        next(P);
        return n;
    }
    jnode *t = parse_tuple(P, TUP_SIMPLE, e1, NULL, false);
    if (!t || !check_target(P, t, true)) return NULL;
    return t;
}

/* Header done: expect %}, parse a body up to one of ends (left current). */
static bool parse_statements(parser *P, nvec *body, const char *const *ends, bool drop_needle) {
    if (top(cur(P), OP_COLON)) next(P);
    if (!expect_type(P, TK_BEND, "end of statement block")) return false;
    if (!subparse(P, body, ends)) return false;
    if (cur(P)->type == TK_EOF) {
        char want[128] = "";
        for (int i = 0; ends[i]; i++)
            snprintf(want + strlen(want), sizeof want - strlen(want), "%s'%s'", i ? " or " : "", ends[i]);
        pfail(P, cur(P)->line, "unexpected end of template; expected %s", want, NULL);
        return false;
    }
    if (drop_needle) next(P);
    return true;
}

static bool body_into(parser *P, nvec *v, jnode ***items, uint32_t *n) {
    if (P->rc) { free(v->v); return false; }
    return vfinish(P, v, items, n);
}

/* Which of caller / varargs / kwargs a macro body mentions. */
static int scan_special(const jnode *n, int depth) {
    if (!n || depth > 2 * NUAGE__J_MAX_NEST) return 0;
    int f = 0;
    if (n->kind == JN_NAME) {
        if (!strcmp(n->name, "caller")) f |= JM_CALLER;
        else if (!strcmp(n->name, "varargs")) f |= JM_VARARGS;
        else if (!strcmp(n->name, "kwargs")) f |= JM_KWARGS;
    }
    f |= scan_special(n->a, depth + 1) | scan_special(n->b, depth + 1) |
         scan_special(n->c, depth + 1) | scan_special(n->d, depth + 1);
    for (uint32_t i = 0; i < n->nitems; i++) f |= scan_special(n->items[i], depth + 1);
    for (uint32_t i = 0; i < n->nitems2; i++) f |= scan_special(n->items2[i], depth + 1);
    return f;
}

/* (a, b=default, ...) into names/items2 */
static bool parse_signature(parser *P, jnode *n) {
    if (!expect_op(P, OP_LPAREN, "(")) return false;
    nvec defs = {0};
    const char *names[256];
    size_t k = 0;
    bool have_default = false;
    while (!top(cur(P), OP_RPAREN)) {
        if (k && !expect_op(P, OP_COMMA, ",")) { free(defs.v); return false; }
        if (cur(P)->type != TK_NAME) { free(defs.v); expect_type(P, TK_NAME, "name"); return false; }
        if (k == 256) { free(defs.v); pfail(P, cur(P)->line, "too many macro parameters", NULL, NULL); return false; }
        names[k++] = cur(P)->s;
        next(P);
        jnode *d = NULL;
        if (top(cur(P), OP_ASSIGN)) {
            next(P);
            if (!(d = parse_expression(P, true))) { free(defs.v); return false; }
            have_default = true;
        } else if (have_default) {
            free(defs.v);
            pfail(P, cur(P)->line, "non-default argument follows default argument", NULL, NULL);
            return false;
        }
        if (!vpush(P, &defs, d)) { free(defs.v); return false; }
    }
    next(P);
    if (!vfinish(P, &defs, &n->items2, &n->nitems2)) return false;
    if (k) {
        n->names = nuage__jarena_alloc(P->a, k * sizeof *n->names);
        if (!n->names) { P->rc = NUAGE_E_NOMEM; return false; }
        memcpy(n->names, names, k * sizeof *names);
    }
    n->nnames = (uint32_t)k;
    return true;
}

static jnode *parse_scoped_body(parser *P, jnode *n, const char *end) {
    const char *ends[] = {end, NULL};
    nvec body = {0};
    int loops = P->loops;
    P->loops = 0;
    bool ok = parse_statements(P, &body, ends, true);
    P->loops = loops;
    if (!ok || !body_into(P, &body, &n->items, &n->nitems)) { free(body.v); return NULL; }
    return n;
}

static jnode *parse_for(parser *P, int line) {
    jnode *n = mk(P, JN_FOR, line);
    if (!n) return NULL;
    if (!(n->a = parse_assign_target(P, "in", false))) return NULL;
    if (!expect_name(P, "in")) return NULL;
    if (!(n->b = parse_tuple(P, TUP_NOCOND, "recursive", NULL, false))) return NULL;
    if (tname(cur(P), "if")) {
        next(P);
        if (!(n->c = parse_expression(P, true))) return NULL;
    }
    if (tname(cur(P), "recursive")) { next(P); n->op = 1; }
    static const char *const ends1[] = {"endfor", "else", NULL}, *const ends2[] = {"endfor", NULL};
    nvec body = {0}, els = {0};
    P->loops++;
    bool ok = parse_statements(P, &body, ends1, false);
    P->loops--;
    if (!ok || !body_into(P, &body, &n->items, &n->nitems)) { free(body.v); return NULL; }
    bool is_else = tname(cur(P), "else");
    next(P);
    if (is_else) {
        if (!parse_statements(P, &els, ends2, true) || !body_into(P, &els, &n->items2, &n->nitems2)) {
            free(els.v);
            return NULL;
        }
    }
    return n;
}

static jnode *parse_if(parser *P, int line) {
    static const char *const ends1[] = {"elif", "else", "endif", NULL}, *const ends2[] = {"endif", NULL};
    jnode *root = mk(P, JN_IF, line), *node = root;
    if (!root) return NULL;
    for (;;) {
        if (!(node->a = parse_tuple(P, TUP_NOCOND, NULL, NULL, false))) return NULL;
        nvec body = {0};
        if (!parse_statements(P, &body, ends1, false) || !body_into(P, &body, &node->items, &node->nitems)) {
            free(body.v);
            return NULL;
        }
        const jtoken *t = cur(P);
        next(P);
        if (tname(t, "elif")) {
            jnode *e = mk(P, JN_IF, t->line);
            if (!e) return NULL;
            node->items2 = nuage__jarena_alloc(P->a, sizeof *node->items2);
            if (!node->items2) { P->rc = NUAGE_E_NOMEM; return NULL; }
            node->items2[0] = e;
            node->nitems2 = 1;
            node = e;
            continue;
        }
        if (tname(t, "else")) {
            nvec els = {0};
            if (!parse_statements(P, &els, ends2, true) || !body_into(P, &els, &node->items2, &node->nitems2)) {
                free(els.v);
                return NULL;
            }
        }
        break;
    }
    return root;
}

static jnode *parse_set(parser *P, int line) {
    jnode *target = parse_assign_target(P, NULL, true);
    if (!target) return NULL;
    if (top(cur(P), OP_ASSIGN)) {
        next(P);
        jnode *n = mk(P, JN_SET, line);
        if (!n) return NULL;
        n->a = target;
        if (!(n->b = parse_tuple(P, TUP_COND, NULL, NULL, false))) return NULL;
        return n;
    }
    jnode *n = mk(P, JN_SETBLOCK, line);
    if (!n) return NULL;
    n->a = target;
    if (top(cur(P), OP_PIPE) && !(n->b = parse_filter(P, NULL, false))) return NULL;
    static const char *const ends[] = {"endset", NULL};
    nvec body = {0};
    if (!parse_statements(P, &body, ends, true) || !body_into(P, &body, &n->items, &n->nitems)) {
        free(body.v);
        return NULL;
    }
    return n;
}

static jnode *parse_statement(parser *P) {
    const jtoken *t = cur(P);
    if (t->type != TK_NAME) return unexpected(P);
    const char *k = t->s;
    int line = t->line;
    if (!enter(P)) return NULL;
    jnode *n = NULL;
    next(P);
    if (!strcmp(k, "for")) n = parse_for(P, line);
    else if (!strcmp(k, "if")) n = parse_if(P, line);
    else if (!strcmp(k, "set")) n = parse_set(P, line);
    else if (!strcmp(k, "print")) {
        if ((n = mk(P, JN_PRINT, line)) && !(n->a = parse_tuple(P, TUP_COND, NULL, NULL, false))) n = NULL;
    } else if (!strcmp(k, "macro")) {
        if (cur(P)->type != TK_NAME) { expect_type(P, TK_NAME, "name"); n = NULL; }
        else if ((n = mk(P, JN_MACRO, line))) {
            n->name = cur(P)->s;
            next(P);
            if (!parse_signature(P, n) || !parse_scoped_body(P, n, "endmacro")) n = NULL;
            else n->op = (uint8_t)scan_special_body(n);
        }
    } else if (!strcmp(k, "call")) {
        if ((n = mk(P, JN_CALLBLOCK, line))) {
            n->name = "caller";
            if (top(cur(P), OP_LPAREN) && !parse_signature(P, n)) n = NULL;
            if (n && !(n->a = parse_expression(P, true))) n = NULL;
            if (n && n->a->kind != JN_CALL) n = pfail(P, line, "expected call", NULL, NULL);
            if (n && !parse_scoped_body(P, n, "endcall")) n = NULL;
            if (n) n->op = (uint8_t)scan_special_body(n);
        }
    } else if (!strcmp(k, "filter")) {
        if ((n = mk(P, JN_FILTERBLOCK, line))) {
            if (!(n->b = parse_filter(P, NULL, true))) n = NULL;
            static const char *const ends[] = {"endfilter", NULL};
            nvec body = {0};
            if (n && (!parse_statements(P, &body, ends, true) || !body_into(P, &body, &n->items, &n->nitems))) {
                free(body.v);
                n = NULL;
            }
        }
    } else if (!strcmp(k, "with")) {
        jnode *tg = mk(P, JN_TUPLE, line), *vs = mk(P, JN_TUPLE, line);
        nvec tv = {0}, vv = {0};
        n = mk(P, JN_WITH, line);
        while (n && tg && vs && cur(P)->type != TK_BEND) {
            if (tv.n && !expect_op(P, OP_COMMA, ",")) { n = NULL; break; }
            jnode *x = parse_assign_target(P, NULL, false);
            if (!x || !vpush(P, &tv, x) || !expect_op(P, OP_ASSIGN, "=")) { n = NULL; break; }
            jnode *y = parse_expression(P, true);
            if (!y || !vpush(P, &vv, y)) { n = NULL; break; }
        }
        if (n && tg && vs && vfinish(P, &tv, &tg->items, &tg->nitems) && vfinish(P, &vv, &vs->items, &vs->nitems)) {
            n->a = tg;
            n->b = vs;
            static const char *const ends[] = {"endwith", NULL};
            nvec body = {0};
            if (!parse_statements(P, &body, ends, true) || !body_into(P, &body, &n->items, &n->nitems)) {
                free(body.v);
                n = NULL;
            }
        } else {
            n = NULL;
        }
        free(tv.v);
        free(vv.v);
    } else if (!strcmp(k, "generation")) {
        if ((n = mk(P, JN_SCOPE, line)) && !parse_scoped_body(P, n, "endgeneration")) n = NULL;
    } else if (!strcmp(k, "break") || !strcmp(k, "continue")) {
        if (P->loops == 0) n = pfail(P, line, "'%s' outside of a loop", k, NULL);
        else n = mk(P, k[0] == 'b' ? JN_BREAK : JN_CONTINUE, line);
    } else if (!strcmp(k, "include") || !strcmp(k, "import") || !strcmp(k, "from") ||
               !strcmp(k, "extends") || !strcmp(k, "block")) {
        n = pfail(P, line, "tag '%s' is not supported in chat templates", k, NULL);
    } else {
        n = pfail(P, line, "Encountered unknown tag '%s'", k, NULL);
    }
    P->depth--;
    return n;
}

static int scan_special_body(const jnode *n) {
    int f = 0;
    for (uint32_t i = 0; i < n->nitems; i++) f |= scan_special(n->items[i], 0);
    return f;
}

/* Parse until EOF or a block tag whose name is in ends (current = that name). */
static bool subparse(parser *P, nvec *body, const char *const *ends) {
    for (;;) {
        const jtoken *t = cur(P);
        if (t->type == TK_EOF || P->rc) return P->rc == 0;
        if (t->type == TK_DATA) {
            jnode *n = mk(P, JN_TEXT, t->line);
            if (!n) return false;
            n->val = arena_str(P, t->s, t->len);
            if (n->val.t == JV_MISSING) return false;
            if (!vpush(P, body, n)) return false;
            next(P);
        } else if (t->type == TK_VBEGIN) {
            next(P);
            jnode *n = mk(P, JN_PRINT, t->line);
            if (!n || !(n->a = parse_tuple(P, TUP_COND, NULL, NULL, false))) return false;
            if (!expect_type(P, TK_VEND, "end of print statement")) return false;
            if (!vpush(P, body, n)) return false;
        } else if (t->type == TK_BBEGIN) {
            next(P);
            if (ends && cur(P)->type == TK_NAME)
                for (int i = 0; ends[i]; i++)
                    if (!strcmp(cur(P)->s, ends[i])) return true;
            jnode *n = parse_statement(P);
            if (!n) return false;
            if (!expect_type(P, TK_BEND, "end of statement block")) return false;
            if (!vpush(P, body, n)) return false;
        } else {
            unexpected(P);
            return false;
        }
    }
}

/*
 * Unknown filters and tests are compile-time errors in Jinja2, except in
 * "soft" frames: anywhere inside an `if` statement (its test and bodies)
 * or an inline if-expression, where they only fail if they run. Bodies
 * that get a frame of their own (for, macro, call, filter, set and with
 * blocks) are not soft again. Returns false (error recorded) on the first
 * unknown name outside a soft frame. Also Jinja2's rule that nothing inside
 * a for loop (its target included) may assign the name `loop`.
 */
static bool stores_loop(const jnode *t) {
    if (!t) return false;
    if (t->kind == JN_NAME) return !strcmp(t->name, "loop");
    if (t->kind == JN_TUPLE)
        for (uint32_t i = 0; i < t->nitems; i++)
            if (stores_loop(t->items[i])) return true;
    return false;
}

static bool check_names(parser *P, const jnode *n, bool soft, bool in_for, int depth) {
    if (!n || depth > 4 * NUAGE__J_MAX_NEST) return true;
    if (n->kind == JN_FOR) in_for = true;
    if (in_for && (n->kind == JN_FOR || n->kind == JN_SET || n->kind == JN_SETBLOCK || n->kind == JN_WITH) &&
        stores_loop(n->a)) {
        pfail(P, n->line, "Can't assign to special loop variable in for-loop target", NULL, NULL);
        return false;
    }
    bool body_soft = soft, a_soft = soft, b_soft = soft, c_soft = soft;
    switch (n->kind) {
    case JN_FILTER:
        if (!soft && !nuage__jknown_filter(n->name)) {
            pfail(P, n->line, "No filter named '%s'.", n->name, NULL);
            return false;
        }
        break;
    case JN_TEST:
        if (!soft && !nuage__jhas_test(n->name)) {
            pfail(P, n->line, "No test named '%s'.", n->name, NULL);
            return false;
        }
        break;
    case JN_IF: case JN_COND:
        body_soft = a_soft = b_soft = c_soft = true;
        break;
    case JN_FOR:
        c_soft = body_soft = false;   /* the loop filter and bodies run in the loop frame */
        break;
    case JN_SETBLOCK: case JN_MACRO: case JN_FILTERBLOCK: case JN_WITH: case JN_SCOPE:
        body_soft = false;
        if (n->kind == JN_SETBLOCK || n->kind == JN_FILTERBLOCK) b_soft = false;
        break;
    case JN_CALLBLOCK:
        body_soft = false;
        break;
    default:
        break;
    }
    bool items_soft = body_soft, items2_soft = body_soft;
    if (n->kind == JN_MACRO || n->kind == JN_CALLBLOCK) items2_soft = false;        /* defaults */
    else if (n->kind != JN_IF && n->kind != JN_FOR && n->kind != JN_SETBLOCK && n->kind != JN_FILTERBLOCK &&
             n->kind != JN_WITH && n->kind != JN_SCOPE)
        items_soft = items2_soft = soft;                                             /* expressions */
    if (!check_names(P, n->a, a_soft, in_for, depth + 1) || !check_names(P, n->b, b_soft, in_for, depth + 1) ||
        !check_names(P, n->c, c_soft, in_for, depth + 1) || !check_names(P, n->d, soft, in_for, depth + 1))
        return false;
    for (uint32_t i = 0; i < n->nitems; i++)
        if (!check_names(P, n->items[i], items_soft, in_for, depth + 1)) return false;
    for (uint32_t i = 0; i < n->nitems2; i++)
        if (!check_names(P, n->items2[i], items2_soft, in_for, depth + 1)) return false;
    return true;
}

int nuage__jparse(jarena *a, const jtoken *toks, size_t ntoks, jnode ***body, uint32_t *nbody,
                  char *err, size_t errlen) {
    parser P = {.a = a, .t = toks, .n = ntoks, .err = err, .errlen = errlen};
    nvec v = {0};
    bool ok = subparse(&P, &v, NULL);
    for (size_t i = 0; ok && i < v.n; i++) ok = check_names(&P, v.v[i], false, false, 0);
    if (!ok || !vfinish(&P, &v, body, nbody)) {
        free(v.v);
        if (P.rc == NUAGE_E_NOMEM && err && errlen) snprintf(err, errlen, "out of memory");
        return P.rc ? P.rc : NUAGE_E_TEMPLATE;
    }
    return 0;
}
