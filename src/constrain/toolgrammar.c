/*
 * toolgrammar.c - the grammar that forces valid tool calls in a family's
 * own syntax (nuage_toolfmt_grammar).
 *
 * Each declared function gets one rule holding its arguments' grammar
 * (ncg_json_schema of its "parameters", or any object when it has none),
 * shared by every place a call may appear.
 *
 * Strictness is per function, as OpenAI defines it: a function with
 * "strict": true (or every function when opts->strict) is enforced
 * exactly -- objects without additionalProperties get no undeclared keys,
 * and a schema the engine cannot enforce fails the build (the API's 400).
 * For other functions OpenAI promises only best effort: their schema is
 * enforced when the engine supports it (JSON Schema's defaults:
 * undeclared keys allowed), and when it does not (NUAGE_E_UNSUPPORTED)
 * the arguments fall back to any JSON object, and err->msg says which
 * function and why although the build succeeds. Around it, each family's
 * envelope is written exactly as the chat template renders an assistant
 * turn with tool_calls (that is what the model was trained to write), with
 * JSON whitespace (ncg_json_ws, bounded) allowed where JSON allows it in
 * JSON envelopes, so a model's natural spacing is never fought.
 *
 * Markup that is a single control token of the vocabulary (Mistral's
 * [TOOL_CALLS], DeepSeek's <｜tool▁calls▁begin｜>, harmony's <|message|>) is
 * named by token id (ncg_token), since control tokens never match by
 * bytes; anything else (Qwen's <tool_call> is a user-defined token, whose
 * bytes match by bytes) is a byte string. Markup that is an end-of-
 * generation token (harmony's <|call|>) is left out: the matcher allows
 * EOS exactly when the calls are complete, which ends the turn the same
 * way.
 *
 * Two entry points for the scheduler: *root forces calls from the first
 * token (tool_choice required / named); for "auto", *after is what may
 * follow once the model has written one of *triggers (the text that opens
 * a call), so generation is free until the model decides to call and then
 * the arguments are forced to match the schema. Every family has triggers
 * such that one `after` grammar fits all of them.
 *
 * Families whose two variants share a family name (Mistral Nemo vs Small
 * 3.x, DeepSeek R1 vs V3.1) are told apart by the vocabulary where it can
 * (Small 3.x has an [ARGS] token) and otherwise offered as alternatives;
 * the parser reads both.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "constrain/toolcall.h"
#include "constrain/toolgemma.h"
#include "nuage/nuage.h"

#include "constrain/toolmarkup.h"

#define MAX_FN 512

typedef struct {
    ncg_builder *b;
    const nuage_vocab *v;
    ncg_expr ws;                 /* JSON whitespace */
    size_t n;                    /* functions allowed */
    const char *names[MAX_FN];
    ncg_rule args[MAX_FN];       /* their arguments */
    bool parallel;
} tg;

#define SEQ(g, ...) seq_of((g), (const ncg_expr[]){__VA_ARGS__}, \
                           sizeof((const ncg_expr[]){__VA_ARGS__}) / sizeof(ncg_expr))

static ncg_expr seq_of(tg *g, const ncg_expr *items, size_t n) { return ncg_seq(g->b, items, n); }
static ncg_expr S(tg *g, const char *s) { return ncg_str(g->b, s); }

/* The id of text when it is exactly one token of the vocabulary, or -1. */
static int32_t token_of(const tg *g, const char *text) {
    if (!g->v) return -1;
    return nuage_vocab_find_n(g->v, text, strlen(text));
}

/* Markup text: a control token by id, else bytes. */
static ncg_expr M(tg *g, const char *text) {
    int32_t t = token_of(g, text);
    if (t >= 0 && (nuage_vocab_token_attr(g->v, t) & NUAGE_TOKEN_ATTR_CONTROL)) return ncg_token(g->b, t);
    return S(g, text);
}

/* Closing markup: nothing when it is an end-of-generation token (the
 * matcher's EOS at the end does its job), else M. */
static ncg_expr M_end(tg *g, const char *text) {
    int32_t t = token_of(g, text);
    if (t >= 0 && nuage_vocab_is_eog(g->v, t)) return ncg_empty(g->b);
    return M(g, text);
}

/* "NAME" as a JSON string literal (names are [A-Za-z0-9_.-]). */
static ncg_expr qname(tg *g, size_t i) {
    return SEQ(g, S(g, "\""), S(g, g->names[i]), S(g, "\""));
}

static ncg_expr A(tg *g, size_t i) { return ncg_ref(g->b, g->args[i]); }

/* {"name": "NAME", "<key>": ARGS} with JSON whitespace, for function i. */
static ncg_expr envelope(tg *g, size_t i, const char *key, bool mistral_id) {
    ncg_expr J = g->ws;
    char k[32];
    snprintf(k, sizeof k, "\"%s\"", key);
    ncg_expr id = ncg_empty(g->b);
    if (mistral_id) {
        /* Nemo also writes a 9-character call id */
        ncg_expr alnum = ncg_alt(g->b, (const ncg_expr[]){ncg_byte_range(g->b, 'a', 'z'),
                                 ncg_byte_range(g->b, 'A', 'Z'), ncg_byte_range(g->b, '0', '9')}, 3);
        id = ncg_opt(g->b, SEQ(g, J, S(g, ","), J, S(g, "\"id\""), J, S(g, ":"), J, S(g, "\""),
                               ncg_repeat(g->b, alnum, 9, 9), S(g, "\"")));
    }
    return SEQ(g, S(g, "{"), J, S(g, "\"name\""), J, S(g, ":"), J, qname(g, i), J, S(g, ","), J, S(g, k), J,
               S(g, ":"), J, A(g, i), id, J, S(g, "}"));
}

/* Alternatives over the allowed functions of f(g, i, ud). */
typedef ncg_expr (*per_fn)(tg *g, size_t i, const void *ud);

static ncg_expr each_fn(tg *g, per_fn f, const void *ud) {
    ncg_expr alts[MAX_FN];
    for (size_t i = 0; i < g->n; i++) alts[i] = f(g, i, ud);
    return ncg_alt(g->b, alts, g->n);
}

/* item (sep item)* when parallel, else item. */
static ncg_expr list_of(tg *g, ncg_expr item, ncg_expr sep) {
    if (!g->parallel) return item;
    return SEQ(g, item, ncg_repeat(g->b, SEQ(g, sep, item), 0, NCG_INF));
}

/* ---- per family: the whole calls part (root) and what follows the
 * trigger (after) ---- */

static ncg_expr fn_envelope_args(tg *g, size_t i, const void *ud) {
    (void)ud;
    return envelope(g, i, "arguments", false);
}

static ncg_expr fn_envelope_params(tg *g, size_t i, const void *ud) {
    (void)ud;
    return envelope(g, i, "parameters", false);
}

static void fam_hermes(tg *g, ncg_expr *root, ncg_expr *after) {
    /* <tool_call>\n{...}\n</tool_call>, several separated by a newline.
     * The newlines are Qwen's and Hermes' spelling; templates that write
     * the call on one line (nuage's own tools template) train models
     * without them, so each newline is optional: forcing it would push
     * such a model off what it learned. */
    ncg_expr nl = ncg_opt(g->b, S(g, "\n"));
    ncg_expr rest = SEQ(g, nl, each_fn(g, fn_envelope_args, NULL), nl, M(g, "</tool_call>"));
    ncg_expr call = SEQ(g, M(g, "<tool_call>"), rest);
    ncg_expr more = g->parallel ? ncg_repeat(g->b, SEQ(g, g->ws, call), 0, NCG_INF) : ncg_empty(g->b);
    *root = SEQ(g, call, more);
    *after = SEQ(g, rest, more);
}

/* what follows the trigger {"name" in one Llama call */
static ncg_expr fn_llama_rest(tg *g, size_t i, const void *ud) {
    (void)ud;
    ncg_expr J = g->ws;
    return SEQ(g, J, S(g, ":"), J, qname(g, i), J, S(g, ","), J, S(g, "\"parameters\""), J, S(g, ":"), J,
               A(g, i), J, S(g, "}"));
}

static void fam_llama3(tg *g, ncg_expr *root, ncg_expr *after) {
    /* one bare JSON object: the template refuses several calls per turn */
    *root = each_fn(g, fn_envelope_params, NULL);
    *after = each_fn(g, fn_llama_rest, NULL);
}

static ncg_expr fn_mistral_obj(tg *g, size_t i, const void *ud) {
    (void)ud;
    return envelope(g, i, "arguments", true);
}

static ncg_expr fn_mistral_small(tg *g, size_t i, const void *ud) {
    (void)ud;
    return SEQ(g, S(g, g->names[i]), M(g, "[ARGS]"), A(g, i));
}

static void fam_mistral(tg *g, ncg_expr *root, ncg_expr *after) {
    ncg_expr trig = M(g, "[TOOL_CALLS]");
    bool small = token_of(g, "[ARGS]") >= 0, nemo = !small || !g->v;
    ncg_expr alts[2];
    size_t na = 0;
    if (nemo) {
        ncg_expr objs = list_of(g, each_fn(g, fn_mistral_obj, NULL), SEQ(g, g->ws, S(g, ","), g->ws));
        alts[na++] = SEQ(g, S(g, "["), g->ws, objs, g->ws, S(g, "]"));
    }
    if (small || !g->v) {
        /* [TOOL_CALLS]NAME[ARGS]{...}, repeated for parallel calls */
        ncg_expr one = each_fn(g, fn_mistral_small, NULL);
        alts[na++] = list_of(g, one, trig);
    }
    *after = ncg_alt(g->b, alts, na);
    *root = SEQ(g, trig, *after);
}

static ncg_expr fn_deepseek(tg *g, size_t i, const void *ud) {
    (void)ud;
    /* R1: function<sep>NAME\n```json\n{...}\n```   V3.1: NAME<sep>{...} */
    ncg_expr r1 = SEQ(g, S(g, "function"), M(g, DS_SEP), S(g, g->names[i]), S(g, "\n```json\n"), A(g, i),
                      S(g, "\n```"));
    ncg_expr v31 = SEQ(g, S(g, g->names[i]), M(g, DS_SEP), A(g, i));
    return SEQ(g, M(g, DS_CALL_BEGIN), ncg_alt2(g->b, r1, v31), M(g, DS_CALL_END));
}

static void fam_deepseek(tg *g, ncg_expr *root, ncg_expr *after) {
    ncg_expr calls = list_of(g, each_fn(g, fn_deepseek, NULL), ncg_opt(g->b, S(g, "\n")));
    *after = SEQ(g, calls, M_end(g, DS_CALLS_END));
    *root = SEQ(g, M(g, DS_CALLS_BEGIN), *after);
}

static ncg_expr fn_kimi(tg *g, size_t i, const void *ud) {
    (void)ud;
    return SEQ(g, M(g, "<|tool_call_begin|>"), S(g, "functions."), S(g, g->names[i]), S(g, ":"),
               ncg_repeat(g->b, ncg_byte_range(g->b, '0', '9'), 1, 3), M(g, "<|tool_call_argument_begin|>"),
               A(g, i), M(g, "<|tool_call_end|>"));
}

static void fam_kimi(tg *g, ncg_expr *root, ncg_expr *after) {
    ncg_expr calls = list_of(g, each_fn(g, fn_kimi, NULL), ncg_empty(g->b));
    *after = SEQ(g, calls, M_end(g, "<|tool_calls_section_end|>"));
    *root = SEQ(g, M(g, "<|tool_calls_section_begin|>"), *after);
}

/* What follows "to=functions." in a harmony call header: NAME, the rest
 * of the header in either order the model writes it, the body. */
static ncg_expr fn_harmony(tg *g, size_t i, const void *ud) {
    (void)ud;
    ncg_expr json = ncg_alt2(g->b, S(g, " json"), SEQ(g, S(g, " "), M(g, "<|constrain|>"), S(g, "json")));
    ncg_expr tail = ncg_alt2(g->b, SEQ(g, M(g, "<|channel|>"), S(g, "commentary"), ncg_opt(g->b, json)),
                             ncg_opt(g->b, json));
    return SEQ(g, S(g, g->names[i]), tail, M(g, "<|message|>"), A(g, i));
}

/* The output continues "<|start|>assistant": first any number of
 * analysis (reasoning) messages -- and, with preamble, commentary messages
 * without a recipient (what gpt-oss tells the user before calling) --
 * each up to the next message's role. A message's text cannot run past
 * its <|end|>: when <|end|> is a control token no text byte can make it;
 * when it is bytes (gpt-oss makes it user-defined), the text holds no
 * "<|". */
static ncg_expr harmony_before(tg *g, bool preamble) {
    ncg_expr text;
    int32_t end = token_of(g, "<|end|>");
    if (end >= 0 && (nuage_vocab_token_attr(g->v, end) & NUAGE_TOKEN_ATTR_CONTROL)) {
        static const uint32_t any[] = {0x1, 0x10FFFF};
        text = ncg_repeat(g->b, ncg_char_ranges(g->b, any, 1, false), 0, NCG_INF);
    } else {
        static const uint32_t not_lt[] = {0, 0, '<', '<'}, not_bar[] = {0, 0, '|', '|'};
        ncg_expr lt = SEQ(g, S(g, "<"), ncg_char_ranges(g->b, not_bar, 2, true));
        text = ncg_repeat(g->b, ncg_alt2(g->b, ncg_char_ranges(g->b, not_lt, 2, true), lt), 0, NCG_INF);
    }
    ncg_expr channel = preamble ? ncg_alt2(g->b, S(g, "analysis"), S(g, "commentary")) : S(g, "analysis");
    ncg_expr msg = SEQ(g, M(g, "<|channel|>"), channel, M(g, "<|message|>"), text, M(g, "<|end|>"), M(g, "<|start|>"),
                       S(g, "assistant"));
    return ncg_repeat(g->b, msg, 0, NCG_INF);
}

static void fam_harmony(tg *g, ncg_expr *root, ncg_expr *after) {
    /* one call per message: <|call|> ends the turn */
    *after = SEQ(g, each_fn(g, fn_harmony, NULL), M_end(g, "<|call|>"));
    /* recipient first (" to=functions.NAME<|channel|>commentary json") or
     * channel first ("<|channel|>commentary to=functions.NAME <|constrain|>json") */
    ncg_expr hdr = ncg_alt2(g->b, S(g, " to=functions."),
                            SEQ(g, M(g, "<|channel|>"), S(g, "commentary to=functions.")));
    *root = SEQ(g, harmony_before(g, true), hdr, *after);
}

int nuage_toolfmt_harmony_final(ncg_builder *b, const nuage_vocab *vocab, ncg_expr answer, ncg_expr *out) {
    if (!b || !out || answer < 0) return NUAGE_E_INVAL;
    tg *g = calloc(1, sizeof *g);
    if (!g) return NUAGE_E_NOMEM;
    g->b = b;
    g->v = vocab;
    /* gpt-oss may name the answer's type: "<|channel|>final <|constrain|>json" */
    ncg_expr ctype = ncg_opt(b, SEQ(g, S(g, " "), ncg_opt(b, M(g, "<|constrain|>")), S(g, "json")));
    *out = SEQ(g, harmony_before(g, false), M(g, "<|channel|>"), S(g, "final"), ctype, M(g, "<|message|>"), answer,
               M_end(g, "<|return|>"));
    free(g);
    return *out < 0 ? (int)*out : 0;
}

static void fam_generic(tg *g, ncg_expr *root, ncg_expr *after) {
    ncg_expr J = g->ws;
    ncg_expr calls = list_of(g, each_fn(g, fn_envelope_args, NULL), SEQ(g, J, S(g, ","), J));
    *after = SEQ(g, J, S(g, ":"), J, S(g, "["), J, calls, J, S(g, "]"), J, S(g, "}"));
    *root = SEQ(g, S(g, "{"), J, S(g, "\"tool_calls\""), *after);
}

static ncg_expr fn_gemma4(tg *g, size_t i, const void *ud) {
    (void)ud;
    return SEQ(g, S(g, "call:"), S(g, g->names[i]), A(g, i), M(g, GEMMA_CALL_CLOSE));
}

static void fam_gemma4(tg *g, ncg_expr *root, ncg_expr *after) {
    /* <|tool_call>call:NAME{...}<tool_call|>, back to back when parallel */
    ncg_expr rest = each_fn(g, fn_gemma4, NULL);
    ncg_expr call = SEQ(g, M(g, GEMMA_CALL_OPEN), rest);
    ncg_expr more = g->parallel ? ncg_repeat(g->b, call, 0, NCG_INF) : ncg_empty(g->b);
    *root = SEQ(g, call, more);
    *after = SEQ(g, rest, more);
}

static const char *const trig_hermes[] = {"<tool_call>", NULL};
static const char *const trig_llama3[] = {"{\"name\"", NULL};
static const char *const trig_mistral[] = {"[TOOL_CALLS]", NULL};
static const char *const trig_deepseek[] = {DS_CALLS_BEGIN, NULL};
static const char *const trig_kimi[] = {"<|tool_calls_section_begin|>", NULL};
static const char *const trig_harmony[] = {" to=functions.", NULL};
static const char *const trig_generic[] = {"{\"tool_calls\"", NULL};
static const char *const trig_gemma4[] = {GEMMA_CALL_OPEN, NULL};

bool nuage_toolfmt_trigger_at_start(nuage_toolfmt fmt) {
    return fmt == NUAGE_TOOLFMT_LLAMA3 || fmt == NUAGE_TOOLFMT_GENERIC;
}

/* ---- entry point ---- */

static json_t *tool_function(json_t *tool) {
    json_t *f = json_object_get(tool, "function");
    return json_is_object(f) ? f : tool;
}

static bool name_ok(const char *s) {
    if (!s || !*s || strlen(s) > 256) return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '_' ||
              *s == '-' || *s == '.'))
            return false;
    return true;
}

static int fail(nuage_cg_error *err, int rc, const char *fmt, const char *a) {
    if (err) {
        snprintf(err->msg, sizeof err->msg, fmt, a ? a : "");
        err->pointer[0] = 0;
    }
    return rc;
}

int nuage_toolfmt_grammar(ncg_builder *b, nuage_toolfmt fmt, const nuage_vocab *vocab, const void *tools_,
                          nuage_toolchoice choice, const char *name, bool parallel,
                          const nuage_cg_json_opts *opts, ncg_rule *root, ncg_rule *after,
                          const char *const **triggers, nuage_cg_error *err) {
    json_t *tools = (json_t *)tools_;
    if (!b || !root) return fail(err, NUAGE_E_INVAL, "no builder", NULL);
    if (choice == NUAGE_TOOLCHOICE_NONE) return fail(err, NUAGE_E_INVAL, "tool_choice none: no call grammar", NULL);
    if (!json_is_array(tools) || json_array_size(tools) == 0) return fail(err, NUAGE_E_INVAL, "no tools", NULL);
    if (choice == NUAGE_TOOLCHOICE_NAMED && !name)
        return fail(err, NUAGE_E_INVAL, "tool_choice names no function", NULL);
    tg *g = calloc(1, sizeof *g);
    if (!g) return NUAGE_E_NOMEM;
    g->b = b;
    g->v = vocab;
    g->parallel = parallel;
    g->ws = ncg_json_ws(b, opts);
    int rc = 0;
    size_t i;
    json_t *tool;
    char loose_note[sizeof err->msg] = "";
    json_array_foreach(tools, i, tool) {
        json_t *f = tool_function(tool);
        const char *fname = json_string_value(json_object_get(f, "name"));
        if (!name_ok(fname)) {
            rc = fail(err, NUAGE_E_INVAL, "tool name '%s' is not [A-Za-z0-9_.-]+", fname);
            goto out;
        }
        if (choice == NUAGE_TOOLCHOICE_NAMED && strcmp(fname, name)) continue;
        if (g->n == MAX_FN) { rc = fail(err, NUAGE_E_UNSUPPORTED, "more than 512 tools", NULL); goto out; }
        nuage_cg_json_opts o = opts ? *opts : (nuage_cg_json_opts){.max_ws = 64, .strict = false};
        if (json_is_true(json_object_get(f, "strict"))) o.strict = true;
        json_t *params = json_object_get(f, "parameters");
        json_t *any = NULL;
        if (!json_is_object(params)) params = any = json_pack("{s:s}", "type", "object");
        if (!params) { rc = NUAGE_E_NOMEM; goto out; }
        char rname[300];
        snprintf(rname, sizeof rname, "args:%s", fname);
        ncg_rule r = ncg_rule_new(b, rname);
        ncg_expr e = -1;
        nuage_cg_error sub = {{0}, {0}};
        if (r < 0) rc = r;
        else if (fmt == NUAGE_TOOLFMT_GEMMA4) rc = nuage__gemma_args(b, params, M(g, GEMMA_QUOTE), &e, &sub);
        else rc = ncg_json_schema(b, params, &o, &e, &sub);
        json_decref(any);
        if (rc == NUAGE_E_UNSUPPORTED && !o.strict) {
            /* not strict: best effort, any JSON object */
            if (!loose_note[0]) /* the first such function */
                snprintf(loose_note, sizeof loose_note, "tool %.64s: not strict, arguments are any JSON object: %.120s", fname,
                         sub.msg);
            json_t *obj = json_pack("{s:s}", "type", "object");
            if (!obj) rc = NUAGE_E_NOMEM;
            else if (fmt == NUAGE_TOOLFMT_GEMMA4) rc = nuage__gemma_args(b, obj, M(g, GEMMA_QUOTE), &e, &sub);
            else rc = ncg_json_schema(b, obj, &o, &e, &sub);
            json_decref(obj);
        }
        if (rc == 0) rc = ncg_rule_set(b, r, e);
        if (rc) {
            if (err) {
                snprintf(err->msg, sizeof err->msg, "tool %.64s: %.180s", fname, sub.msg[0] ? sub.msg : "grammar error");
                snprintf(err->pointer, sizeof err->pointer, "%s", sub.pointer);
            }
            goto out;
        }
        g->names[g->n] = fname;
        g->args[g->n++] = r;
    }
    if (g->n == 0) {
        rc = fail(err, NUAGE_E_INVAL, "tool_choice names function '%s', which is not in tools", name);
        goto out;
    }
    ncg_expr er = -1, ea = -1;
    const char *const *trig = NULL;
    switch (fmt) {
    case NUAGE_TOOLFMT_HERMES: fam_hermes(g, &er, &ea); trig = trig_hermes; break;
    case NUAGE_TOOLFMT_LLAMA3: fam_llama3(g, &er, &ea); trig = trig_llama3; break;
    case NUAGE_TOOLFMT_MISTRAL: fam_mistral(g, &er, &ea); trig = trig_mistral; break;
    case NUAGE_TOOLFMT_DEEPSEEK: fam_deepseek(g, &er, &ea); trig = trig_deepseek; break;
    case NUAGE_TOOLFMT_KIMI: fam_kimi(g, &er, &ea); trig = trig_kimi; break;
    case NUAGE_TOOLFMT_HARMONY: fam_harmony(g, &er, &ea); trig = trig_harmony; break;
    case NUAGE_TOOLFMT_GENERIC: fam_generic(g, &er, &ea); trig = trig_generic; break;
    case NUAGE_TOOLFMT_GEMMA4: fam_gemma4(g, &er, &ea); trig = trig_gemma4; break;
    default: rc = fail(err, NUAGE_E_INVAL, "unknown tool format", NULL); goto out;
    }
    ncg_rule rr = ncg_rule_new(b, "tool_calls");
    rc = rr < 0 ? rr : ncg_rule_set(b, rr, er);
    if (rc == 0 && after) {
        ncg_rule ra = ncg_rule_new(b, "tool_calls_after_trigger");
        rc = ra < 0 ? ra : ncg_rule_set(b, ra, ea);
        if (rc == 0) *after = ra;
    }
    if (rc) {
        fail(err, rc, "tool-call grammar could not be built", NULL);
        goto out;
    }
    *root = rr;
    if (triggers) *triggers = trig;
    if (err) {
        snprintf(err->msg, sizeof err->msg, "%s", loose_note);
        err->pointer[0] = 0;
    }
out:
    free(g);
    return rc;
}
