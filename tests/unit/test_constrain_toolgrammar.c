/*
 * test_constrain_toolgrammar.c - the grammars that force tool calls, per
 * family, on a byte-level token table (every byte a token, plus EOS):
 *   - the calls a template renders are accepted, whole (root) and after
 *     the trigger (auto's `after`);
 *   - an undeclared name, arguments against the schema, a second call when
 *     parallel calls are off, or another function under a named choice
 *     are refused;
 *   - a random walk through the grammar (what a random-weight model does
 *     under tool_choice "required") always ends in output the parser reads
 *     back as calls to declared functions with schema-valid arguments.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>

#include "constrain/cg_internal.h"
#include "constrain/toolcall.h"
#include "constrain/tooljson.h"
#include "nuage/nuage.h"
#include "test_toolparse_util.h"

#include "constrain/toolmarkup.h"

static const char *TOOLS_JSON =
    "[{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"description\": \"Weather\","
    " \"parameters\": {\"type\": \"object\", \"properties\": {\"location\": {\"type\": \"string\", \"maxLength\": 12},"
    " \"unit\": {\"type\": \"string\", \"enum\": [\"celsius\", \"fahrenheit\"]}}, \"required\": [\"location\"],"
    " \"additionalProperties\": false}}},"
    " {\"type\": \"function\", \"function\": {\"name\": \"search_docs\", \"parameters\": {\"type\": \"object\","
    " \"properties\": {\"query\": {\"type\": \"string\", \"maxLength\": 8}, \"max_results\": {\"type\": \"integer\","
    " \"minimum\": 1, \"maximum\": 9}}, \"required\": [\"query\", \"max_results\"], \"additionalProperties\": false}}},"
    " {\"type\": \"function\", \"function\": {\"name\": \"ping\"}}]";

static const char *const NAMES[] = {"get_weather", "search_docs", "ping"};

#define W1 "{\"location\": \"Paris\", \"unit\": \"celsius\"}"
#define W1C "{\"location\":\"Paris\",\"unit\":\"celsius\"}"
#define S1 "{\"query\": \"umbrella\", \"max_results\": 2}"
#define BADW "{\"location\": \"Paris\", \"unit\": \"kelvin\"}"

static nuage_cg_tokens *T;
static json_t *TOOLS;
#define N_TOK 257
#define TOK_EOS 256

static int setup(void **st) {
    (void)st;
    static char bytes[256];
    const char *p[N_TOK];
    size_t l[N_TOK];
    uint8_t k[N_TOK];
    for (int i = 0; i < 256; i++) { bytes[i] = (char)i; p[i] = bytes + i; l[i] = 1; k[i] = 0; }
    p[TOK_EOS] = "</s>"; l[TOK_EOS] = 4; k[TOK_EOS] = 2;
    if (ncg_tokens_from_strings(p, l, k, N_TOK, &T)) return -1;
    TOOLS = json_loads(TOOLS_JSON, 0, NULL);
    return TOOLS ? 0 : -1;
}

static int teardown(void **st) {
    (void)st;
    nuage_cg_tokens_free(T);
    json_decref(TOOLS);
    return 0;
}

/* The grammar of fmt (root, or after when want_after); NULL with the
 * error printed when it cannot be built. */
static nuage_grammar *build(nuage_toolfmt fmt, nuage_toolchoice choice, const char *name, bool parallel,
                            bool want_after, const char *const **trig) {
    ncg_builder *b = ncg_builder_new();
    ncg_rule root = -1, after = -1;
    nuage_cg_error err = {{0}, {0}};
    nuage_cg_json_opts opts = {.max_ws = 2, .strict = false};
    int rc = nuage_toolfmt_grammar(b, fmt, NULL, TOOLS, choice, name, parallel, &opts, &root, &after, trig, &err);
    nuage_grammar *g = NULL;
    if (rc == 0) rc = ncg_builder_finish(b, want_after ? after : root, T, &g, &err);
    if (rc) print_message("%s: %d %s %s\n", nuage_toolfmt_name(fmt), rc, err.msg, err.pointer);
    ncg_builder_free(b);
    return g;
}

/* 1 complete, 0 viable prefix, -1 refused. */
static int run(nuage_grammar *g, const char *s) {
    nuage_matcher *m = NULL;
    assert_int_equal(nuage_matcher_new(g, &m), 0);
    int r = nuage_matcher_accept_bytes(m, s, strlen(s)) ? -1 : nuage_matcher_is_accepting(m) ? 1 : 0;
    nuage_matcher_free(m);
    return r;
}

typedef struct {
    nuage_toolfmt fmt;
    const char *one;        /* one call to get_weather with W1 */
    const char *two;        /* get_weather W1 then search_docs S1 (parallel) */
    const char *bad_name;   /* a call to an undeclared function */
    const char *bad_args;   /* get_weather with BADW */
} gcase;

static const gcase G[] = {
    {NUAGE_TOOLFMT_HERMES, "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": " W1 "}\n</tool_call>",
     "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": " W1 "}\n</tool_call>\n"
     "<tool_call>\n{\"name\": \"search_docs\", \"arguments\": " S1 "}\n</tool_call>",
     "<tool_call>\n{\"name\": \"rm\", \"arguments\": {}}\n</tool_call>",
     "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": " BADW "}\n</tool_call>"},
    {NUAGE_TOOLFMT_LLAMA3, "{\"name\": \"get_weather\", \"parameters\": " W1 "}", NULL,
     "{\"name\": \"rm\", \"parameters\": {}}", "{\"name\": \"get_weather\", \"parameters\": " BADW "}"},
    {NUAGE_TOOLFMT_MISTRAL, "[TOOL_CALLS][{\"name\": \"get_weather\", \"arguments\": " W1 ", \"id\": \"a1B2c3D4e\"}]",
     "[TOOL_CALLS][{\"name\": \"get_weather\", \"arguments\": " W1 "}, {\"name\": \"search_docs\", \"arguments\": " S1
     "}]",
     "[TOOL_CALLS][{\"name\": \"rm\", \"arguments\": {}}]",
     "[TOOL_CALLS][{\"name\": \"get_weather\", \"arguments\": " BADW "}]"},
    {NUAGE_TOOLFMT_MISTRAL, "[TOOL_CALLS]get_weather[ARGS]" W1,
     "[TOOL_CALLS]get_weather[ARGS]" W1 "[TOOL_CALLS]search_docs[ARGS]" S1, "[TOOL_CALLS]rm[ARGS]{}",
     "[TOOL_CALLS]get_weather[ARGS]" BADW},
    {NUAGE_TOOLFMT_DEEPSEEK,
     DS_CALLS_BEGIN DS_CALL_BEGIN "function" DS_SEP "get_weather\n```json\n" W1 "\n```" DS_CALL_END DS_CALLS_END,
     DS_CALLS_BEGIN DS_CALL_BEGIN "function" DS_SEP "get_weather\n```json\n" W1 "\n```" DS_CALL_END "\n"
     DS_CALL_BEGIN "function" DS_SEP "search_docs\n```json\n" S1 "\n```" DS_CALL_END DS_CALLS_END,
     DS_CALLS_BEGIN DS_CALL_BEGIN "rm" DS_SEP "{}" DS_CALL_END DS_CALLS_END,
     DS_CALLS_BEGIN DS_CALL_BEGIN "get_weather" DS_SEP BADW DS_CALL_END DS_CALLS_END},
    {NUAGE_TOOLFMT_DEEPSEEK, DS_CALLS_BEGIN DS_CALL_BEGIN "get_weather" DS_SEP W1 DS_CALL_END DS_CALLS_END,
     DS_CALLS_BEGIN DS_CALL_BEGIN "get_weather" DS_SEP W1 DS_CALL_END DS_CALL_BEGIN "search_docs" DS_SEP S1
     DS_CALL_END DS_CALLS_END, NULL, NULL},
    {NUAGE_TOOLFMT_KIMI,
     "<|tool_calls_section_begin|><|tool_call_begin|>functions.get_weather:0<|tool_call_argument_begin|>" W1
     "<|tool_call_end|><|tool_calls_section_end|>",
     "<|tool_calls_section_begin|><|tool_call_begin|>functions.get_weather:0<|tool_call_argument_begin|>" W1
     "<|tool_call_end|><|tool_call_begin|>functions.search_docs:1<|tool_call_argument_begin|>" S1
     "<|tool_call_end|><|tool_calls_section_end|>",
     "<|tool_calls_section_begin|><|tool_call_begin|>functions.rm:0<|tool_call_argument_begin|>{}"
     "<|tool_call_end|><|tool_calls_section_end|>",
     "<|tool_calls_section_begin|><|tool_call_begin|>functions.get_weather:0<|tool_call_argument_begin|>" BADW
     "<|tool_call_end|><|tool_calls_section_end|>"},
    {NUAGE_TOOLFMT_HARMONY, " to=functions.get_weather<|channel|>commentary json<|message|>" W1 "<|call|>", NULL,
     " to=functions.rm<|channel|>commentary json<|message|>{}<|call|>",
     " to=functions.get_weather<|channel|>commentary json<|message|>" BADW "<|call|>"},
    {NUAGE_TOOLFMT_HARMONY, "<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>" W1 "<|call|>",
     NULL, NULL, NULL},
    {NUAGE_TOOLFMT_HARMONY,
     "<|channel|>analysis<|message|>Weather: a < b.<|end|><|start|>assistant to=functions.get_weather<|channel|>"
     "commentary json<|message|>" W1 "<|call|>", NULL, NULL, NULL},
    /* two analysis messages and a preamble before the call */
    {NUAGE_TOOLFMT_HARMONY,
     "<|channel|>analysis<|message|>Weather.<|end|><|start|>assistant<|channel|>analysis<|message|>Call it.<|end|>"
     "<|start|>assistant<|channel|>commentary<|message|>Checking.<|end|><|start|>assistant<|channel|>commentary "
     "to=functions.get_weather <|constrain|>json<|message|>" W1 "<|call|>", NULL, NULL, NULL},
    {NUAGE_TOOLFMT_GENERIC, "{\"tool_calls\": [{\"name\": \"get_weather\", \"arguments\": " W1 "}]}",
     "{\"tool_calls\": [{\"name\": \"get_weather\", \"arguments\": " W1 "}, {\"name\": \"search_docs\", "
     "\"arguments\": " S1 "}]}",
     "{\"tool_calls\": [{\"name\": \"rm\", \"arguments\": {}}]}",
     "{\"tool_calls\": [{\"name\": \"get_weather\", \"arguments\": " BADW "}]}"},
};
#define N_G (sizeof G / sizeof G[0])

/* Accepted by the grammar, and parsed back into the expected calls. */
static void accepts_and_parses(nuage_grammar *g, nuage_toolfmt fmt, const char *text, int n_calls) {
    if (run(g, text) != 1) fail_msg("%s: grammar refuses %s", nuage_toolfmt_name(fmt), text);
    tp_result r;
    tp_parse(fmt, NAMES, 3, text, &r);
    if (r.bad || r.n_calls != n_calls) fail_msg("%s: parser reads %d calls from %s", nuage_toolfmt_name(fmt), r.n_calls, text);
    assert_string_equal(r.name[0], "get_weather");
}

static void test_required(void **st) {
    (void)st;
    for (size_t i = 0; i < N_G; i++) {
        const gcase *c = &G[i];
        nuage_grammar *g = build(c->fmt, NUAGE_TOOLCHOICE_REQUIRED, NULL, true, false, NULL);
        assert_non_null(g);
        accepts_and_parses(g, c->fmt, c->one, 1);
        if (c->two) accepts_and_parses(g, c->fmt, c->two, 2);
        if (c->bad_name) assert_int_equal(run(g, c->bad_name), -1);
        if (c->bad_args && run(g, c->bad_args) != -1) fail_msg("%s accepts %s", nuage_toolfmt_name(c->fmt), c->bad_args);
        assert_int_equal(run(g, "Hello"), -1);
        nuage_grammar_free(g);
        /* one call only */
        g = build(c->fmt, NUAGE_TOOLCHOICE_REQUIRED, NULL, false, false, NULL);
        assert_non_null(g);
        assert_int_equal(run(g, c->one), 1);
        if (c->two && run(g, c->two) == 1) fail_msg("%s: two calls accepted without parallel", nuage_toolfmt_name(c->fmt));
        nuage_grammar_free(g);
    }
}

static void test_named(void **st) {
    (void)st;
    for (size_t i = 0; i < N_G; i++) {
        const gcase *c = &G[i];
        nuage_grammar *g = build(c->fmt, NUAGE_TOOLCHOICE_NAMED, "search_docs", true, false, NULL);
        assert_non_null(g);
        assert_int_equal(run(g, c->one), -1);
        nuage_grammar_free(g);
        g = build(c->fmt, NUAGE_TOOLCHOICE_NAMED, "get_weather", true, false, NULL);
        assert_int_equal(run(g, c->one), 1);
        nuage_grammar_free(g);
    }
    ncg_builder *b = ncg_builder_new();
    ncg_rule root;
    nuage_cg_error err;
    assert_int_equal(nuage_toolfmt_grammar(b, NUAGE_TOOLFMT_HERMES, NULL, TOOLS, NUAGE_TOOLCHOICE_NAMED, "nope",
                                           false, NULL, &root, NULL, NULL, &err), NUAGE_E_INVAL);
    assert_non_null(strstr(err.msg, "nope"));
    assert_int_equal(nuage_toolfmt_grammar(b, NUAGE_TOOLFMT_HERMES, NULL, TOOLS, NUAGE_TOOLCHOICE_NONE, NULL,
                                           false, NULL, &root, NULL, NULL, &err), NUAGE_E_INVAL);
    ncg_builder_free(b);
}

/* auto: the text after the trigger is what `after` accepts */
static void test_auto_after_trigger(void **st) {
    (void)st;
    for (size_t i = 0; i < N_G; i++) {
        const gcase *c = &G[i];
        const char *const *trig = NULL;
        nuage_grammar *g = build(c->fmt, NUAGE_TOOLCHOICE_AUTO, NULL, true, true, &trig);
        assert_non_null(g);
        assert_non_null(trig);
        assert_non_null(trig[0]);
        /* bare-JSON families: a trigger counts only where the parser reads
         * a call, at the start (checked against the parser) */
        if (nuage_toolfmt_trigger_at_start(c->fmt)) {
            char late[1024];
            snprintf(late, sizeof late, "Sure. %s", c->one);
            tp_result lr;
            tp_parse(c->fmt, NAMES, 3, late, &lr);
            assert_int_equal(lr.n_calls, 0);
        }
        const char *at = strstr(c->one, trig[0]);
        if (!at) fail_msg("%s: trigger %s not in %s", nuage_toolfmt_name(c->fmt), trig[0], c->one);
        if (run(g, at + strlen(trig[0])) != 1)
            fail_msg("%s: after refuses %s", nuage_toolfmt_name(c->fmt), at + strlen(trig[0]));
        if (c->two) assert_int_equal(run(g, strstr(c->two, trig[0]) + strlen(trig[0])), 1);
        if (c->bad_args) assert_int_equal(run(g, strstr(c->bad_args, trig[0]) + strlen(trig[0])), -1);
        nuage_grammar_free(g);
    }
}

/* A strict function whose parameters the engine refuses: the error names
 * it. The same function without "strict" is best effort: its arguments
 * become any JSON object, and err->msg says so although the build works. */
static void test_refused_schema(void **st) {
    (void)st;
    for (int strict = 1; strict >= 0; strict--) {
        char js[512];
        snprintf(js, sizeof js,
                 "[{\"type\": \"function\", \"function\": {\"name\": \"f\", %s\"parameters\": "
                 "{\"type\": \"object\", \"properties\": {\"a\": {\"type\": \"array\", \"uniqueItems\": true}}}}}]",
                 strict ? "\"strict\": true, " : "");
        json_t *tools = json_loads(js, 0, NULL);
        assert_non_null(tools);
        ncg_builder *b = ncg_builder_new();
        ncg_rule root;
        nuage_cg_error err;
        int rc = nuage_toolfmt_grammar(b, NUAGE_TOOLFMT_HERMES, NULL, tools, NUAGE_TOOLCHOICE_REQUIRED, NULL, false,
                                       NULL, &root, NULL, NULL, &err);
        assert_non_null(strstr(err.msg, "tool f"));
        assert_non_null(strstr(err.msg, "uniqueItems"));
        if (strict) {
            assert_true(rc == NUAGE_E_UNSUPPORTED || rc == NUAGE_E_INVAL);
            assert_string_equal(err.pointer, "/properties/a/uniqueItems");
        } else {
            assert_int_equal(rc, 0);
            assert_non_null(strstr(err.msg, "not strict"));
            nuage_grammar *g = NULL;
            assert_int_equal(ncg_builder_finish(b, root, T, &g, &err), 0);
            assert_int_equal(run(g, "<tool_call>\n{\"name\": \"f\", \"arguments\": {\"a\": [1, 1], \"z\": null}}\n</tool_call>"), 1);
            assert_int_equal(run(g, "<tool_call>\n{\"name\": \"f\", \"arguments\": [1]}\n</tool_call>"), -1);
            nuage_grammar_free(g);
        }
        ncg_builder_free(b);
        json_decref(tools);
    }
}

/* Strictness is per function: in one request, the strict function's
 * object gets no undeclared keys while the other one's may have them
 * (JSON Schema's default), and both enforce their declared keys. */
static void test_strict_per_function(void **st) {
    (void)st;
    json_t *tools = json_loads(
        "[{\"type\": \"function\", \"function\": {\"name\": \"s\", \"strict\": true, \"parameters\": {\"type\": \"object\","
        " \"properties\": {\"x\": {\"type\": \"string\", \"maxLength\": 4}}, \"required\": [\"x\"]}}},"
        " {\"type\": \"function\", \"function\": {\"name\": \"l\", \"parameters\": {\"type\": \"object\","
        " \"properties\": {\"x\": {\"type\": \"string\", \"maxLength\": 4}}, \"required\": [\"x\"]}}}]", 0, NULL);
    assert_non_null(tools);
    ncg_builder *b = ncg_builder_new();
    ncg_rule root;
    nuage_cg_error err;
    nuage_cg_json_opts opts = {.max_ws = 2, .strict = false};
    assert_int_equal(nuage_toolfmt_grammar(b, NUAGE_TOOLFMT_HERMES, NULL, tools, NUAGE_TOOLCHOICE_REQUIRED, NULL, false,
                                           &opts, &root, NULL, NULL, &err), 0);
    assert_string_equal(err.msg, "");
    nuage_grammar *g = NULL;
    assert_int_equal(ncg_builder_finish(b, root, T, &g, &err), 0);
#define CALL(n, a) "<tool_call>\n{\"name\": \"" n "\", \"arguments\": " a "}\n</tool_call>"
    assert_int_equal(run(g, CALL("s", "{\"x\": \"ab\"}")), 1);
    assert_int_equal(run(g, CALL("l", "{\"x\": \"ab\"}")), 1);
    assert_int_equal(run(g, CALL("s", "{\"x\": \"ab\", \"y\": 1}")), -1);
    assert_int_equal(run(g, CALL("l", "{\"x\": \"ab\", \"y\": 1}")), 1);
    assert_int_equal(run(g, CALL("l", "{\"x\": \"abcdef\"}")), -1);
    assert_int_equal(run(g, CALL("l", "{\"y\": 1}")), -1);
#undef CALL
    nuage_grammar_free(g);
    ncg_builder_free(b);
    json_decref(tools);
}

/* One random walk through g: pick any allowed byte (EOS half the time it
 * is allowed). The output (static) when it ended within max bytes, else
 * NULL. */
static const char *walk(nuage_grammar *g, uint32_t *x, size_t max) {
    uint32_t mask[(N_TOK + 31) / 32];
    static char out[4000];
    nuage_matcher *m = NULL;
    assert_int_equal(nuage_matcher_new(g, &m), 0);
    size_t len = 0;
    bool ended = false;
    if (max > sizeof out - 1) max = sizeof out - 1;
    while (len < max) {
        assert_int_equal(nuage_matcher_fill_mask(m, mask), 0);
        int allowed[N_TOK], na = 0;
        for (int t = 0; t < N_TOK; t++)
            if (mask[t >> 5] >> (t & 31) & 1) allowed[na++] = t;
        assert_true(na > 0);
        *x ^= *x << 13; *x ^= *x >> 17; *x ^= *x << 5;
        bool eos_ok = mask[TOK_EOS >> 5] >> (TOK_EOS & 31) & 1;
        int tok = eos_ok && (*x & 1) ? TOK_EOS : allowed[(*x >> 1) % (uint32_t)na];
        /* printable bytes mostly, so strings end */
        if (tok != TOK_EOS && tok >= 128 && (*x >> 20) % 4) continue;
        /* EOS allowed = accepting; not fed to the matcher (matcher.c's
         * push_step may read the history it reallocates on that path) */
        if (tok == TOK_EOS) { assert_true(nuage_matcher_is_accepting(m)); ended = true; break; }
        assert_int_equal(nuage_matcher_accept_token(m, tok), 0);
        out[len++] = (char)tok;
    }
    nuage_matcher_free(m);
    out[len] = 0;
    return ended ? out : NULL;
}

/* The walk's output parses into calls only (harmony: and preambles, whose
 * content holds no markup), each with one JSON object of arguments
 * (returned parsed, or NULL for ping, whose "any object" may hold numbers
 * jansson cannot load). */
static void parse_walk(nuage_toolfmt fmt, const char *out, tp_result *r) {
    tp_parse(fmt, NAMES, 3, out, r);
    bool content_ok = r->content_len == 0 || (fmt == NUAGE_TOOLFMT_HARMONY && !strstr(r->content, "<|"));
    if (r->bad || r->n_calls < 1 || !content_ok || strstr(r->reasoning, "<|"))
        fail_msg("%s: walk gives %d calls (%s), content [%s]: %s", nuage_toolfmt_name(fmt), r->n_calls, r->why, r->content, out);
    for (int c = 0; c < r->n_calls; c++) {
        size_t end;
        assert_int_equal(nuage__tj_value(r->args[c], strlen(r->args[c]), &end), TJ_OK);
        assert_int_equal(end, strlen(r->args[c]));
        assert_int_equal(r->args[c][0], '{');
    }
}

static json_t *walk_args(nuage_toolfmt fmt, const tp_result *r, int c) {
    if (!strcmp(r->name[c], "ping")) return NULL;
    json_error_t je;
    json_t *a = json_loads(r->args[c], JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
    if (!a) fail_msg("%s: arguments do not load (%s): %s", nuage_toolfmt_name(fmt), je.text, r->args[c]);
    return a;
}

static void test_random_walk_parses(void **st) {
    (void)st;
    uint32_t x = 2463534242u;
    static const nuage_toolfmt fams[] = {NUAGE_TOOLFMT_HERMES, NUAGE_TOOLFMT_LLAMA3, NUAGE_TOOLFMT_MISTRAL,
                                         NUAGE_TOOLFMT_DEEPSEEK, NUAGE_TOOLFMT_KIMI, NUAGE_TOOLFMT_HARMONY,
                                         NUAGE_TOOLFMT_GENERIC};
    int done = 0;
    for (size_t f = 0; f < sizeof fams / sizeof fams[0]; f++) {
        nuage_grammar *g = build(fams[f], NUAGE_TOOLCHOICE_REQUIRED, NULL, true, false, NULL);
        assert_non_null(g);
        for (int w = 0; w < 30; w++) {
            const char *out = walk(g, &x, 4000);
            if (!out) continue;
            static tp_result r;
            parse_walk(fams[f], out, &r);
            for (int c = 0; c < r.n_calls; c++) {
                json_t *a = walk_args(fams[f], &r, c);
                if (!strcmp(r.name[c], "search_docs")) {
                    /* an integer by value: 9.0 is one too (draft 6 on) */
                    double k = json_number_value(json_object_get(a, "max_results"));
                    if (k != (double)(long)k) fail_msg("max_results not an integer: %s", r.args[c]);
                    if (k < 1 || k > 9) fail_msg("max_results out of range: %s", r.args[c]);
                    const char *q = json_string_value(json_object_get(a, "query"));
                    size_t cps = 0;   /* maxLength counts code points */
                    for (; q && *q; q++) cps += ((unsigned char)*q & 0xC0) != 0x80;
                    assert_true(q && cps <= 8);
                }
                json_decref(a);
            }
            done++;
        }
        nuage_grammar_free(g);
    }
    print_message("%d random walks parsed back\n", done);
    assert_true(done >= 100);
}

/* Gemma 4's own argument syntax, from the schema subset it carries. */
static void test_gemma4(void **st) {
    (void)st;
    json_t *saved = TOOLS;
    TOOLS = json_loads("[{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"parameters\": "
                       "{\"type\": \"object\", \"properties\": {\"unit\": {\"enum\": [\"celsius\", \"fahrenheit\"]}, "
                       "\"location\": {\"type\": \"string\"}, \"days\": {\"type\": \"array\", \"items\": "
                       "{\"type\": \"integer\"}}}, \"required\": [\"location\"]}}},"
                       "{\"type\": \"function\", \"function\": {\"name\": \"ping\"}}]", 0, NULL);
    assert_non_null(TOOLS);
#define GQ "<|\"|>"
    const char *one = "<|tool_call>call:get_weather{location:" GQ "Paris" GQ ",unit:" GQ "celsius" GQ "}<tool_call|>";
    const char *two = "<|tool_call>call:get_weather{days:[1,2],location:" GQ "Oslo" GQ "}<tool_call|>"
                      "<|tool_call>call:ping{}<tool_call|>";
    nuage_grammar *g = build(NUAGE_TOOLFMT_GEMMA4, NUAGE_TOOLCHOICE_REQUIRED, NULL, true, false, NULL);
    assert_non_null(g);
    assert_int_equal(run(g, one), 1);
    assert_int_equal(run(g, two), 1);
    /* keys out of sorted order, a missing required key, a bad enum value, an undeclared name */
    assert_int_equal(run(g, "<|tool_call>call:get_weather{unit:" GQ "celsius" GQ ",location:" GQ "P" GQ "}"), -1);
    assert_int_equal(run(g, "<|tool_call>call:get_weather{unit:" GQ "celsius" GQ "}"), -1);
    assert_int_equal(run(g, "<|tool_call>call:get_weather{location:" GQ "P" GQ ",unit:" GQ "kelvin" GQ "}"), -1);
    assert_int_equal(run(g, "<|tool_call>call:rm{}"), -1);
    nuage_grammar_free(g);
    tp_result r;
    tp_parse(NUAGE_TOOLFMT_GEMMA4, NAMES, 3, two, &r);
    assert_int_equal(r.n_calls, 2);
    assert_string_equal(r.args[0], "{\"days\":[1,2],\"location\":\"Oslo\"}");
    const char *const *trig = NULL;
    g = build(NUAGE_TOOLFMT_GEMMA4, NUAGE_TOOLCHOICE_AUTO, NULL, false, true, &trig);
    assert_string_equal(trig[0], "<|tool_call>");
    assert_int_equal(run(g, one + strlen(trig[0])), 1);
    nuage_grammar_free(g);
    /* random walks: calls whose arguments parse and keep the enum */
    g = build(NUAGE_TOOLFMT_GEMMA4, NUAGE_TOOLCHOICE_REQUIRED, NULL, true, false, NULL);
    uint32_t x = 88172645u;
    int done = 0;
    for (int w = 0; w < 40; w++) {
        const char *out = walk(g, &x, 600);   /* escaping may grow it 6x */
        if (!out) continue;
        static tp_result wr;
        parse_walk(NUAGE_TOOLFMT_GEMMA4, out, &wr);
        for (int c = 0; c < wr.n_calls; c++) {
            json_t *a = walk_args(NUAGE_TOOLFMT_GEMMA4, &wr, c);
            if (a) {
                assert_true(json_is_string(json_object_get(a, "location")));
                json_t *u = json_object_get(a, "unit");
                assert_true(!u || !strcmp(json_string_value(u), "celsius") || !strcmp(json_string_value(u), "fahrenheit"));
            }
            json_decref(a);
        }
        done++;
    }
    print_message("%d gemma4 walks parsed back\n", done);
    assert_true(done >= 10);
    nuage_grammar_free(g);
    json_decref(TOOLS);
    /* keywords the syntax cannot honour are refused, with where (strict
     * functions; others fall back to any object, see test_refused_schema) */
    TOOLS = saved;
    ncg_builder *b = ncg_builder_new();
    ncg_rule root;
    nuage_cg_error err;
    nuage_cg_json_opts strict = {.max_ws = 2, .strict = true};
    assert_int_equal(nuage_toolfmt_grammar(b, NUAGE_TOOLFMT_GEMMA4, NULL, TOOLS, NUAGE_TOOLCHOICE_REQUIRED, NULL,
                                           false, &strict, &root, NULL, NULL, &err), NUAGE_E_UNSUPPORTED);
    assert_non_null(strstr(err.msg, "maxLength"));
    assert_string_equal(err.pointer, "/properties/location");
    ncg_builder_free(b);
    b = ncg_builder_new();
    assert_int_equal(nuage_toolfmt_grammar(b, NUAGE_TOOLFMT_GEMMA4, NULL, TOOLS, NUAGE_TOOLCHOICE_REQUIRED, NULL,
                                           false, NULL, &root, NULL, NULL, &err), 0);
    assert_non_null(strstr(err.msg, "maxLength"));
    ncg_builder_free(b);
}

/* Harmony with a response_format: the answer is the final channel's
 * message, after an optional analysis message; bare JSON, JSON in another
 * channel or JSON against the schema are refused, and random walks parse
 * back into reasoning plus a content that is the schema's JSON. */
static void test_harmony_final(void **st) {
    (void)st;
    ncg_builder *b = ncg_builder_new();
    json_t *schema = json_loads("{\"type\": \"object\", \"properties\": {\"n\": {\"type\": \"integer\", "
                                "\"minimum\": 0, \"maximum\": 99}}, \"required\": [\"n\"], "
                                "\"additionalProperties\": false}", 0, NULL);
    assert_non_null(schema);
    nuage_cg_json_opts opts = {.max_ws = 2, .strict = true};
    nuage_cg_error err = {{0}, {0}};
    ncg_expr ans = -1, out = -1;
    assert_int_equal(ncg_json_schema(b, schema, &opts, &ans, &err), 0);
    assert_int_equal(nuage_toolfmt_harmony_final(b, NULL, ans, &out), 0);
    ncg_rule root = ncg_rule_new(b, "out");
    assert_int_equal(ncg_rule_set(b, root, out), 0);
    nuage_grammar *g = NULL;
    assert_int_equal(ncg_builder_finish(b, root, T, &g, &err), 0);
    ncg_builder_free(b);
    json_decref(schema);
    assert_int_equal(run(g, "<|channel|>final<|message|>{\"n\": 7}<|return|>"), 1);
    assert_int_equal(run(g, "<|channel|>analysis<|message|>Pick n < 99.<|end|><|start|>assistant<|channel|>final "
                            "<|constrain|>json<|message|>{\"n\": 42}<|return|>"), 1);
    assert_int_equal(run(g, "<|channel|>final json<|message|>{\"n\":0}"), 0);   /* <|return|> still to come */
    assert_int_equal(run(g, "{\"n\": 7}"), -1);
    assert_int_equal(run(g, "<|channel|>commentary<|message|>{\"n\": 7}"), -1);
    assert_int_equal(run(g, "<|channel|>final<|message|>{\"n\": 100}"), -1);
    assert_int_equal(run(g, "<|channel|>analysis<|message|>a <|channel|>final"), -1);
    uint32_t x = 362436069u;
    int done = 0;
    for (int w = 0; w < 40; w++) {
        const char *text = walk(g, &x, 2000);
        if (!text) continue;
        tp_result r;
        tp_parse(NUAGE_TOOLFMT_HARMONY, NULL, 0, text, &r);
        json_error_t je;
        json_t *a = json_loads(r.content, 0, &je);
        if (!a) fail_msg("harmony answer is not JSON (%s): [%s] from %s", je.text, r.content, text);
        json_t *n = json_object_get(a, "n");
        double k = json_number_value(n);   /* an integer by value: 9.0 is one too */
        if (!json_is_number(n) || k != (double)(long)k || k < 0 || k > 99) fail_msg("n out of the schema: %s", r.content);
        assert_null(strstr(r.reasoning, "<|"));
        json_decref(a);
        done++;
    }
    print_message("%d harmony answers parsed back\n", done);
    assert_true(done >= 20);
    nuage_grammar_free(g);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_required),
        cmocka_unit_test(test_named),
        cmocka_unit_test(test_auto_after_trigger),
        cmocka_unit_test(test_refused_schema),
        cmocka_unit_test(test_strict_per_function),
        cmocka_unit_test(test_random_walk_parses),
        cmocka_unit_test(test_gemma4),
        cmocka_unit_test(test_harmony_final),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
