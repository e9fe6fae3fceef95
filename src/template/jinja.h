/*
 * jinja.h - internals of the chat-template interpreter (src/template/).
 *
 * Pipeline: lexer.c turns the template text into tokens exactly as Jinja2's
 * lexer does (newline normalisation, trim_blocks, lstrip_blocks, `-`/`+`
 * whitespace control, raw blocks); parser.c builds an AST (jnode, allocated
 * in the template's arena and immutable afterwards); eval.c runs statements
 * and expr.c evaluates expressions over jval values; filters.c, methods.c
 * and tojson.c are the builtin library; unicode.c the Python string
 * classes (isspace, isprintable, case); chat.c is the public API.
 *
 * Values (value.c) are small tagged unions passed by value. Strings, lists,
 * dicts, namespaces, callables and loop objects live on the heap with a
 * reference count; a negative count marks an immortal object (AST
 * constants), never touched at run time, so that one parsed template can be
 * rendered by several threads at once. Every function that returns a jval
 * hands over one reference; functions documented as "borrowed" do not.
 * Strings are UTF-8 with a byte length and a cached code-point count; lists
 * and tuples share one type (a flag tells them apart); dicts keep insertion
 * order and look keys up linearly (the dicts of chat templates are small).
 *
 * All internal names with external linkage start with nuage__ ; the short
 * type names below (jval, jstr, ...) are private to this directory.
 */
#ifndef NUAGE_TEMPLATE_JINJA_H
#define NUAGE_TEMPLATE_JINJA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nuage/nuage.h"
#include "nuage/template.h"

/* ---- limits (the sandbox) ------------------------------------------------ */
/* Work per render: a render runs on a request's thread, so a hostile
 * template may cost at most a few tenths of a second of CPU and tens of
 * MiB (building a string costs ~6 ns a byte; a step ~50 ns). A 20,000-
 * message conversation through ChatML takes ~1M steps and 1 MiB; the
 * longest real prompts are well under the output cap. */
#define NUAGE__J_MAX_OUTPUT   (16u << 20)   /* bytes of any one string / output */
#define NUAGE__J_MAX_WORK     ((uint64_t)64 << 20) /* bytes built in one render */
#define NUAGE__J_MAX_STEPS    5000000u      /* evaluation steps per render */
#define NUAGE__J_MAX_DEPTH    400           /* nested macro / loop calls */
#define NUAGE__J_MAX_RANGE    100000        /* Jinja's sandbox MAX_RANGE */
#define NUAGE__J_MAX_ITEMS    (4u << 20)    /* elements of one list */
#define NUAGE__J_MAX_NEST     200           /* parser nesting, repr nesting */

/* ---- values ---------------------------------------------------------------- */
typedef enum {
    JV_MISSING = 0, /* internal: an absent argument; never visible to templates */
    JV_UNDEF,       /* undefined; u.s is an optional hint (why), may be NULL */
    JV_NONE, JV_BOOL, JV_INT, JV_FLOAT,
    JV_STR, JV_LIST, JV_DICT, JV_NS, JV_FUNC, JV_LOOP
} jtype;

typedef struct { int32_t rc; } jhdr;
typedef struct jstr jstr;
typedef struct jlist jlist;
typedef struct jdict jdict;
typedef struct jfunc jfunc;
typedef struct jloop jloop;

typedef struct {
    uint8_t t;
    union {
        bool b; int64_t i; double f;
        jhdr *h; jstr *s; jlist *l; jdict *d; jfunc *fn; jloop *lp;
    } u;
} jval;

struct jstr { jhdr h; size_t len; size_t ncp; char s[]; };  /* s NUL-terminated */
/* lazy: 0 a list/tuple; JL_GEN a generator (what Jinja's map/select/... return:
 * always true, no len, not subscriptable); JL_ITEMS/JL_KEYS/JL_VALUES a dict
 * view (true when non-empty, has a len, not subscriptable). */
enum { JL_GEN = 1, JL_ITEMS, JL_KEYS, JL_VALUES };
struct jlist {
    jhdr h;
    bool tuple;
    uint8_t group;     /* groupby result: .grouper / .list attributes */
    uint8_t lazy;      /* JL_* above */
    size_t n, cap;
    jval *v;
    jstr *poison;      /* JL_GEN whose computation failed: the error, raised
                          when the generator is consumed (as Jinja2 would) */
};
struct jdict { jhdr h; size_t n, cap; jval *k, *v; };      /* also namespaces */

typedef struct jnode jnode;
typedef struct jscope jscope;

typedef enum { JF_MACRO, JF_GLOBAL, JF_METHOD, JF_LOOPCALL } jfkind;
struct jfunc {
    jhdr h;
    uint8_t kind;
    int id;               /* JF_GLOBAL / JF_METHOD: which builtin */
    const jnode *node;    /* JF_MACRO: the MACRO or CALLBLOCK node */
    jscope *scope;        /* JF_MACRO: defining scope (reference) */
    jval self;            /* JF_METHOD / JF_LOOPCALL: bound object */
    jval caller;          /* JF_MACRO: `caller` for a call block, else missing */
    const char *name;     /* for messages */
};

struct jloop {
    jhdr h;
    size_t index0, length;
    jlist *items;         /* the (filtered) items iterated */
    int depth0;
    const jnode *forn;    /* recursive loops: the FOR node ... */
    jscope *scope;        /* ... and the scope it runs in (reference) */
    jval last;            /* loop.changed() memory (missing = never called) */
};

static inline jval jv_missing(void) { jval v; v.t = JV_MISSING; v.u.h = NULL; return v; }
static inline jval jv_undef(void) { jval v; v.t = JV_UNDEF; v.u.h = NULL; return v; }
static inline jval jv_none(void) { jval v; v.t = JV_NONE; v.u.h = NULL; return v; }
static inline jval jv_bool(bool b) { jval v; v.u.h = NULL; v.t = JV_BOOL; v.u.b = b; return v; }
static inline jval jv_int(int64_t i) { jval v; v.t = JV_INT; v.u.i = i; return v; }
static inline jval jv_float(double f) { jval v; v.t = JV_FLOAT; v.u.f = f; return v; }
static inline bool jv_heap(jval v) { return v.t >= JV_STR || (v.t == JV_UNDEF && v.u.h); }
static inline jval jv_ref(jval v) { if (jv_heap(v) && v.u.h->rc >= 0) v.u.h->rc++; return v; }
void nuage__jv_unref(jval v);
#define jv_unref nuage__jv_unref
static inline bool jv_isnum(jval v) { return v.t == JV_INT || v.t == JV_FLOAT || v.t == JV_BOOL; }

/* Constructors: NULL / JV_MISSING on out-of-memory. */
jstr *nuage__jstr_new(const char *s, size_t n);
jval nuage__jv_str(const char *s, size_t n);    /* JV_MISSING on OOM */
jval nuage__jv_cstr(const char *s);
jlist *nuage__jlist_new(size_t cap);
int nuage__jlist_push(jlist *l, jval v);          /* steals v; 0 / NUAGE_E_NOMEM */
jdict *nuage__jdict_new(size_t cap);
int nuage__jdict_set(jdict *d, jval k, jval v);   /* steals k and v */
int nuage__jdict_append(jdict *d, jval k, jval v);/* steals; k known to be new */
const jval *nuage__jdict_get(const jdict *d, jval k);          /* borrowed */
const jval *nuage__jdict_gets(const jdict *d, const char *k, size_t n);
static inline jval jv_list(jlist *l) { jval v; v.t = JV_LIST; v.u.l = l; return v; }
static inline jval jv_dict(jdict *d) { jval v; v.t = JV_DICT; v.u.d = d; return v; }
static inline jval jv_strv(jstr *s) { jval v; v.t = JV_STR; v.u.s = s; return v; }

bool nuage__jv_truthy(jval v);
bool nuage__jv_eq(jval a, jval b);
/* Python's a < b ordering: 0 and *res = -1/0/1, or -1 when not comparable. */
int nuage__jv_cmp(jval a, jval b, int *res);
bool nuage__jv_hashable(jval v);
const char *nuage__jv_typename(jval v);          /* Python's type(x).__name__ */

/* ---- growable byte buffer with a size limit ----------------------------- */
typedef struct { char *p; size_t n, cap, limit; } jbuf;
/* Append; 0, NUAGE_E_NOMEM, or NUAGE_E_RANGE when the limit would be passed. */
int nuage__jbuf_put(jbuf *b, const char *s, size_t n);
int nuage__jbuf_putc(jbuf *b, char c);
int nuage__jbuf_printf(jbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void nuage__jbuf_free(jbuf *b);

/* Python str(v) (repr=false) or repr(v) appended to b; 0 or an error code
 * (NUAGE_E_RANGE: too large or nested too deeply). */
int nuage__jv_write(jbuf *b, jval v, bool repr);
/* repr(float) of Python: shortest round-trip digits. buf >= 32 bytes. */
void nuage__jfloat_repr(double f, char *buf);

/* ---- UTF-8 and Unicode (unicode.c) ---------------------------------------- */
uint32_t nuage__utf8_dec(const char *s, size_t n, size_t *adv);
size_t nuage__utf8_enc(uint32_t cp, char *out);
bool nuage__utf8_valid(const char *s, size_t n);
size_t nuage__utf8_count(const char *s, size_t n);
/* Byte offset of code point index i (0..ncp) in s. */
size_t nuage__utf8_offset(const char *s, size_t n, size_t i);
bool nuage__u_isspace(uint32_t cp);
bool nuage__u_isprintable(uint32_t cp);
bool nuage__u_islinebreak(uint32_t cp);
bool nuage__u_isalpha(uint32_t cp);
bool nuage__u_isdigit(uint32_t cp);
bool nuage__u_isupper(uint32_t cp);
bool nuage__u_islower(uint32_t cp);
/* Case mapping appended to b (ß upper-cases to SS); 0 or error. */
int nuage__u_put_upper(jbuf *b, uint32_t cp);
int nuage__u_put_lower(jbuf *b, uint32_t cp);

/* ---- lexer ---------------------------------------------------------------- */
typedef enum {
    TK_EOF, TK_DATA, TK_VBEGIN, TK_VEND, TK_BBEGIN, TK_BEND,
    TK_NAME, TK_STRING, TK_INT, TK_FLOAT, TK_OP
} jtoktype;

typedef enum {
    OP_NONE, OP_ADD, OP_SUB, OP_MUL, OP_DIV, OP_FDIV, OP_MOD, OP_POW, OP_TILDE,
    OP_LBRACKET, OP_RBRACKET, OP_LPAREN, OP_RPAREN, OP_LBRACE, OP_RBRACE,
    OP_EQ, OP_NE, OP_GT, OP_GE, OP_LT, OP_LE, OP_ASSIGN, OP_DOT, OP_COLON,
    OP_PIPE, OP_COMMA, OP_SEMICOLON,
    /* comparison operators that are names */
    OP_IN, OP_NOTIN
} jop;

typedef struct {
    uint8_t type;
    uint8_t op;
    int line;
    const char *s;   /* DATA, NAME, STRING: text (arena, NUL-terminated) */
    size_t len;
    int64_t i;       /* INT */
    double f;        /* FLOAT */
} jtoken;

typedef struct jarena jarena;
/* Tokenize normalized source; tokens in arena. 0 or NUAGE_E_TEMPLATE
 * (message in err) / NUAGE_E_NOMEM. */
int nuage__jlex(jarena *a, const char *src, size_t n, jtoken **toks, size_t *ntoks,
                char *err, size_t errlen);

/* ---- arena ---------------------------------------------------------------- */
struct jarena { struct jchunk *head; };
void *nuage__jarena_alloc(jarena *a, size_t n);   /* zeroed, 16-aligned; NULL on OOM */
char *nuage__jarena_strdup(jarena *a, const char *s, size_t n);
void nuage__jarena_free(jarena *a);

/* ---- AST ------------------------------------------------------------------ */
typedef enum {
    /* expressions */
    JN_CONST, JN_NAME, JN_LIST, JN_TUPLE, JN_DICT, JN_ATTR, JN_ITEM, JN_SLICE,
    JN_CALL, JN_FILTER, JN_TEST, JN_NEG, JN_POS, JN_NOT, JN_BIN, JN_AND, JN_OR,
    JN_CMP, JN_COND, JN_CONCAT,
    /* statements */
    JN_TEXT, JN_PRINT, JN_IF, JN_FOR, JN_SET, JN_SETBLOCK, JN_MACRO,
    JN_CALLBLOCK, JN_FILTERBLOCK, JN_WITH, JN_BREAK, JN_CONTINUE, JN_SCOPE
} jnkind;

/* Macro flags: which special names its body uses. */
enum { JM_CALLER = 1, JM_VARARGS = 2, JM_KWARGS = 4 };

/*
 * One AST node; the meaning of the fields depends on the kind:
 *  CONST val | NAME name | LIST/TUPLE items | DICT items=keys items2=values
 *  ATTR a.name | ITEM a[b] | SLICE a[b:c:d] (NULL = omitted)
 *  CALL a(items, names=items2, *b, **c) | FILTER/TEST a|name(args as CALL)
 *    (FILTER with a == NULL: the filter of a filter block / set block)
 *  NEG/POS/NOT a | BIN a op b | AND/OR a b | CMP a (ops[i] items[i])...
 *  COND b if a else c (c may be NULL) | CONCAT items
 *  TEXT val | PRINT a | IF a: items else items2 | FOR a in b if c: items
 *  else items2 (op = recursive) | SET a = b | SETBLOCK a |b: items
 *  MACRO name(names = items2 defaults, NULL when none): items (op = JM_*)
 *  CALLBLOCK call a, caller(names = items2): items | FILTERBLOCK b: items
 *  WITH a (TUPLE of targets) = b (TUPLE of values): items | SCOPE items
 */
struct jnode {
    uint8_t kind, op;
    int line;
    jnode *a, *b, *c, *d;
    jnode **items; uint32_t nitems;
    jnode **items2; uint32_t nitems2;
    const char **names; uint32_t nnames;
    uint8_t *ops;
    const char *name;
    jval val;
};

/* Parse tokens into a body (array of statement nodes). */
int nuage__jparse(jarena *a, const jtoken *toks, size_t ntoks, jnode ***body,
                  uint32_t *nbody, char *err, size_t errlen);

struct nuage_template {
    jarena arena;
    jnode **body;
    uint32_t nbody;
    nuage_template_traits traits;  /* read from the source by nuage_template_parse */
};

/* ---- evaluation ------------------------------------------------------------ */
struct jscope {
    int32_t rc;
    jscope *parent;
    size_t n, cap;
    const char **names;    /* inames/ivals until more than 4 entries */
    jval *vals;
    const char *inames[4];
    jval ivals[4];
};

typedef struct {
    const jval *pos; size_t npos;
    const char *const *kwn; const jval *kwv; size_t nkw;
} jargs;

typedef struct jctx {
    char *err; size_t errlen;
    int rc;                 /* first error (0 = none) */
    uint64_t steps;
    uint64_t work;
    int depth;
    int64_t now; bool now_utc;
    jscope *globals;
    int loopctl;            /* 1 break, 2 continue pending */
    jval *owned; size_t nowned, capowned; /* cycle breakers, see eval.c */
    const char *stack_base; size_t stack_limit;  /* C stack guard */
} jctx;

/* Record an error (first one wins); returns -1 for `return fail(...)`. */
int nuage__jfail(jctx *c, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Record an error from a code (NOMEM, RANGE from buffers). */
int nuage__jfail_code(jctx *c, int line, int code);
/* Account for n bytes built; -1 (error recorded) past the work budget. */
int nuage__jwork(jctx *c, int line, size_t n);
/* Keep a reference to v until the end of the render and then clear it (used
 * for namespaces and scopes, which can form reference cycles). */
int nuage__jown(jctx *c, jval v);

/* Release what a render recorded with nuage__jown (end of render). */
void nuage__jctx_release(jctx *c);
/* Error once the C stack grew more than c->stack_limit past c->stack_base. */
int nuage__jstack_check(jctx *c, int line);
/* Items of an iterable as a new list reference (dict -> keys, str ->
 * characters, undefined -> empty); error for other types. */
int nuage__jiter_list(jctx *c, int line, jval v, jlist **out);

jscope *nuage__jscope_new(jscope *parent);
void nuage__jscope_unref(jscope *s);
const jval *nuage__jscope_lookup(const jscope *s, const char *name);
int nuage__jscope_set(jscope *s, const char *name, jval v);   /* steals v */

int nuage__jeval(jctx *c, const jnode *n, jscope *sc, jval *out);
int nuage__jexec_body(jctx *c, jnode *const *body, uint32_t n, jscope *sc, jbuf *out);
/* Call any callable value with evaluated arguments. */
int nuage__jcall(jctx *c, int line, jval fn, const jargs *a, jval *out);
/* Python-like attribute then item (attr=true) or item then attribute. */
int nuage__jgetattr(jctx *c, int line, jval obj, jval key, bool attr_first, jval *out);

/* Builtin globals (expr.c) */
enum { JG_RANGE = 1, JG_NAMESPACE, JG_RAISE, JG_STRFTIME, JG_DICT };

/* Filters / tests / methods. Return 0 or -1 (error recorded). */
int nuage__jfilter(jctx *c, int line, const char *name, jval v, const jargs *a, jval *out);
int nuage__jtest(jctx *c, int line, const char *name, jval v, const jargs *a, bool *out);
bool nuage__jhas_filter(const char *name);
bool nuage__jhas_test(const char *name);
/* Filters Jinja2 has (implemented or not): unknown names fail at parse time. */
bool nuage__jknown_filter(const char *name);
/* Method id for attribute `name` on v, 0 if none, -1 if a mutating method. */
int nuage__jmethod_id(jval v, const char *name);
int nuage__jmethod_call(jctx *c, int line, int id, jval self, const jargs *a, jval *out);
const char *nuage__jmethod_name(int id);

/* Bind arguments Python-style: params[i] receive positional or keyword
 * values (borrowed, JV_MISSING when absent). -1 on unknown keyword / too
 * many arguments (error recorded). */
int nuage__jbind(jctx *c, int line, const char *fname, const jargs *a,
                 const char *const *params, size_t nparams, jval *vals);

/* String operations shared by methods and filters (methods.c); each returns
 * 0 and a new value in *out, or -1 with the error recorded. */
/* strip: chars NULL = whitespace; which 1 left, 2 right, 3 both. */
int nuage__jstrip(jctx *c, int line, const jstr *s, const jstr *chars, int which, jval *out);
/* mode 0 upper, 1 lower, 2 title (str.title), 3 capitalize, 4 swapcase. */
int nuage__jcase(jctx *c, int line, const jstr *s, int mode, jval *out);
int nuage__jreplace(jctx *c, int line, const jstr *s, const jstr *old, const jstr *new_, int64_t count, jval *out);
int nuage__jsplitlines(jctx *c, int line, const jstr *s, bool keepends, jval *out);
int nuage__jcenter(jctx *c, int line, const jstr *s, int64_t width, jval *out);
/* (key, value) tuples of d as a generator-like list (the |items filter). */
int nuage__jdict_items(jctx *c, int line, const jdict *d, jval *out);

/* str(v) as a new jstr (undefined -> ""); NULL on error (recorded). */
jstr *nuage__jto_str(jctx *c, int line, jval v);
/* Python `str % args` formatting. */
int nuage__jformat_percent(jctx *c, int line, jstr *fmt, jval args, jval *out);

/* ---- JSON (tojson.c) ------------------------------------------------------- */
typedef struct {
    bool ensure_ascii, sort_keys;
    const char *indent; size_t indent_len; bool has_indent;
    const char *item_sep; size_t item_sep_len;
    const char *key_sep; size_t key_sep_len;
} jjson_opts;
int nuage__jv_to_json(jctx *c, int line, jbuf *b, jval v, const jjson_opts *o);
/* Convert a jansson json_t (passed as void *) into a value: 0, NUAGE_E_NOMEM,
 * or NUAGE_E_INVAL (string not UTF-8, nesting deeper than 4096). */
int nuage__jv_from_json(const void *json, jval *out);

#endif
