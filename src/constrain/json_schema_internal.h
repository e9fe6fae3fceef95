/*
 * json_schema_internal.h - shared state of the JSON Schema front end
 * (json_schema.c: entry, conjunctions, $ref, combinators, enum/const;
 * json_schema_num.c: numbers; json_schema_str.c: strings and keys;
 * json_schema_obj.c: objects and arrays; json_schema_not.c: not, if/then/
 * else, dependencies; json_schema_keys.c: pattern keys and their
 * complement).
 *
 * The compiler works on *conjunctions*: a list of schema objects that must
 * all hold at one place of the instance (allOf branches and $ref targets
 * are flattened into the list; anyOf/oneOf are distributed over it). Every
 * keyword handler looks across the whole list, so "allOf": [{"$ref": ...},
 * {"required": [...]}] compiles as one object grammar.
 */
#ifndef NUAGE_CONSTRAIN_JSON_SCHEMA_INTERNAL_H
#define NUAGE_CONSTRAIN_JSON_SCHEMA_INTERNAL_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "constrain/grammar.h"
#include "nuage/nuage.h"

#define JS_MAX_CONJ 48      /* schemas in one conjunction */
#define JS_MAX_DEPTH 64     /* nesting of compile calls */
#define JS_MAX_DIGITS 40    /* significant digits of a numeric bound */

/* A decimal number: value = (neg ? -1 : 1) * 0.d[0]d[1]..d[nd-1] * 10^ip,
 * d[0] != 0 and d[nd-1] != 0; zero is nd == 0. Digits are '0'..'9'. */
typedef struct js_dec {
    bool neg;
    int nd;
    int ip;
    char d[JS_MAX_DIGITS];
} js_dec;

typedef struct js_bound {
    bool set;
    bool excl;
    js_dec v;
} js_bound;

/* One schema of a conjunction and the keywords already consumed from it. */
enum { JS_USED_REF = 1, JS_USED_ALLOF = 2, JS_USED_ANYOF = 4, JS_USED_ONEOF = 8, JS_USED_NOT = 16, JS_USED_IF = 32,
       JS_USED_DEP = 64 };
typedef struct js_item {
    const json_t *s;
    unsigned used;
} js_item;

typedef struct js_conj {
    int n;
    js_item it[JS_MAX_CONJ];
} js_conj;

typedef struct js_memo {
    int n;
    const json_t *key[JS_MAX_CONJ];
    ncg_rule rule;
    char *text;       /* the schemas' compact serialization (owned), or NULL */
    uint64_t hash;    /* of text */
} js_memo;

typedef struct js_strcache {
    bool is_pattern;
    const char *text;     /* borrowed from the schema */
    ncg_rule rule;
} js_strcache;

typedef struct js_ctx {
    ncg_builder *b;
    int max_ws;
    bool strict;
    int draft;                /* 4, 6, 7, 2019, 2020 */
    const json_t *root;
    nuage_cg_error *err;
    int rc;                   /* first error (negative) or 0 */
    int depth;
    ncg_expr ws;              /* cached whitespace expression */
    ncg_rule any_rule;        /* any JSON value; -1 until made */
    ncg_rule str_char_rule;   /* one string character; -1 until made */
    ncg_rule str_rest_rule;   /* rest of a string body + quote; -1 until made */
    ncg_rule str_tail_rule[5]; /* k hex digits then str_rest (k = 1..3), a
                                  surrogate pair's rest after "\u" (0), any
                                  character but raw ASCII and \u00XX then
                                  str_rest (4); -1 until made */
    js_memo *memo;
    int n_memo, cap_memo;
    js_strcache *strc;        /* pattern / format rules */
    int n_strc, cap_strc;
    struct { uint32_t min, max; ncg_rule rule; } lenc[32];   /* counted strings */
    int n_lenc;
    long n_alts;              /* anyOf/oneOf branches compiled so far */
    nuage_cg_tokens *bytes_table;   /* 256 one-byte tokens, for key tests */
    json_t **synth;           /* schemas made by the compiler ("not"); owned */
    int n_synth, cap_synth;
} js_ctx;

/* ---- json_schema.c ---- */
/* Record a refusal (NUAGE_E_UNSUPPORTED) or a malformed schema
 * (NUAGE_E_INVAL) at keyword kw of schema node; returns rc as an ncg_expr
 * so callers can `return js_fail(...)`. Keeps the first error only. */
ncg_expr js_fail(js_ctx *c, int rc, const json_t *node, const char *kw, const char *fmt, ...);
/* Compile one schema (boolean or object) at a value position. */
ncg_expr js_value(js_ctx *c, const json_t *schema);
/* Compile a conjunction (consumed: *cj may be modified). */
ncg_expr js_conj_value(js_ctx *c, js_conj *cj);
/* Any JSON value. */
ncg_expr js_any(js_ctx *c);
/* Compile a conjunction into a rule, memoized on its schemas (so $ref
 * recursion terminates); used for property values and array items. */
ncg_expr js_conj_ref(js_ctx *c, js_conj *cj);
/* JSON equality (numbers compare by value, 1 == 1.0; bool != number). */
bool js_json_equal(const json_t *a, const json_t *b);
/* An exact literal for a JSON value (any whitespace/escape/number form
 * that the value's equality allows), object keys in the given order. */
ncg_expr js_literal(js_ctx *c, const json_t *v);
/* Whitespace between tokens. */
ncg_expr js_ws(js_ctx *c);

/* Resolve a JSON-pointer $ref within the document; NULL with an error. */
const json_t *js_resolve_ref(js_ctx *c, const json_t *at, const char *ref);
/* A format validators assert (others are annotations). */
bool js_format_known(const char *fmt);

/* ---- json_schema_not.c ---- */
/* The negation of schema y as a positive schema (owned by c), or NULL
 * with c->rc set (refused: no exact positive form). at: the schema
 * holding the "not". */
json_t *js_negate(js_ctx *c, const json_t *y, const json_t *at);
/* if/then/else of schema s as anyOf [allOf [if, then], allOf [not if, else]]
 * (owned by c), or NULL with c->rc set. */
json_t *js_conditional(js_ctx *c, const json_t *s);
/* s's dependencies / dependentRequired / dependentSchemas (kw) as an allOf
 * of anyOf (owned by c), or NULL with c->rc set. */
json_t *js_dependencies(js_ctx *c, const json_t *s, const char *kw);
/* Keep s (a new reference) until the compile ends. 0 or NUAGE_E_NOMEM. */
int js_keep(js_ctx *c, json_t *s);
/* The private "strings not in" list of a synthesized schema, or NULL. */
const json_t *js_not_strings(const js_ctx *c, const json_t *s);

/* ---- json_schema_num.c ---- */
int js_dec_from_json(const json_t *v, js_dec *out);   /* 0, or -1 if not a number */
int js_dec_cmp(const js_dec *a, const js_dec *b);     /* <0, 0, >0 */
bool js_dec_is_int(const js_dec *a);
/* A JSON number in [lo, hi] (either may be unset). integer: only integer
 * values (with int_frac0: 1.0 allowed as JSON Schema draft 6+). */
ncg_expr js_number(js_ctx *c, const js_bound *lo, const js_bound *hi, bool integer, bool int_frac0);
/* An integer multiple of k (k > 0), any sign, optional .0+ when int_frac0. */
ncg_expr js_multiple_of(js_ctx *c, uint64_t k, bool int_frac0);

/* ---- json_schema_str.c ---- */
/* One character of a JSON string body (raw or escaped). */
ncg_expr js_str_char(js_ctx *c);
/* A JSON string (with quotes) of min..max code points (max NCG_INF). */
ncg_expr js_string(js_ctx *c, uint32_t min, uint32_t max);
/* A JSON string (with quotes) whose decoded value is s (UTF-8, n bytes),
 * in every encoding JSON allows. */
ncg_expr js_string_lit(js_ctx *c, const char *s, size_t n);
/* A JSON string (with quotes) whose decoded value is none of names. */
ncg_expr js_string_not_in(js_ctx *c, const char *const *names, const size_t *lens, int n);

/* One character, every spelling: code point cp / any code point not in
 * xs[0..n) (sorted in place; BMP only, else NUAGE_E_UNSUPPORTED). */
ncg_expr js_char_lit(js_ctx *c, uint32_t cp);
ncg_expr js_char_not(js_ctx *c, uint32_t *xs, int n);

/* ---- json_schema_keys.c ---- */
/* For a pattern of a simple shape (a universal one, ^CLASS{m,n}$, or a
 * literal ^prefix): the JSON strings (with quotes) whose decoded value
 * matches it (*yes) and those that do not (*no); 1, or 0 when the
 * pattern has another shape, or a negative error. *universal: every
 * string matches (*no is nothing). */
int js_key_split(js_ctx *c, const char *pat, ncg_expr *yes, ncg_expr *no, bool *universal);

/* ---- json_schema_obj.c ---- */
ncg_expr js_object(js_ctx *c, const js_conj *cj);
/* String value (decoded) satisfies pattern (is_pattern) or format pat:
 * 1, 0, or a negative error (the pattern / format is refused). */
int js_string_satisfies(js_ctx *c, bool is_pattern, const char *pat, const char *s, size_t len);
ncg_expr js_array(js_ctx *c, const js_conj *cj);

#endif
