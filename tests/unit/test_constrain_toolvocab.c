/*
 * test_constrain_toolvocab.c - tool-call grammars against a vocabulary
 * with the families' special tokens (a small SentencePiece vocabulary
 * written as GGUF in memory: 256 byte tokens plus the markup tokens with
 * the attributes real models give them):
 *   - control-token markup ([TOOL_CALLS], [ARGS], DeepSeek's) is matched
 *     by token id only: its bytes are refused;
 *   - user-defined markup (<tool_call>) matches by bytes and as the token;
 *   - the vocabulary picks the Mistral variant ([ARGS] present: Small 3.x);
 *   - an end-of-generation closer (harmony's <|call|>) is left to EOS,
 *     which the mask offers exactly when the call is complete.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>

#include "constrain/toolcall.h"
#include "engine/gguf.h"
#include "nuage/constrain.h"
#include "nuage/nuage.h"
#include "nuage/tokenizer.h"
#include "unit/test_gguf_writer.h"

#include "constrain/toolmarkup.h"

/* markup tokens and their GGUF token types (3 control, 4 user-defined) */
static const struct { const char *text; int32_t type; } SPECIAL[] = {
    {"[TOOL_CALLS]", 3}, {"[ARGS]", 3}, {"<tool_call>", 4}, {"</tool_call>", 4},
    {"<|call|>", 3}, {"<|return|>", 3}, {"<|end|>", 3}, {"<|channel|>", 3}, {"<|message|>", 3},
    {"<|start|>", 3}, {"<|constrain|>", 3},
    {DS_CALLS_BEGIN, 3}, {DS_CALLS_END, 3}, {DS_CALL_BEGIN, 3}, {DS_CALL_END, 3}, {DS_SEP, 3},
};
#define N_SPECIAL (sizeof SPECIAL / sizeof SPECIAL[0])
#define FIRST_SPECIAL 259   /* <unk> <s> </s>, 256 byte tokens */

static uint8_t *FILE_BUF;
static nuage_gguf *GG;
static nuage_vocab *V;
static nuage_cg_tokens *T;
static json_t *TOOLS;

static int setup(void **st) {
    (void)st;
    gw w;
    gw_init(&w, 3);
    gw_kv_str(&w, "general.architecture", "llama");
    gw_kv_str(&w, "tokenizer.ggml.model", "llama");
    uint32_t n = FIRST_SPECIAL + (uint32_t)N_SPECIAL;
    gw_key(&w, "tokenizer.ggml.tokens", 9);
    gw_u32(&w.kv, 8);
    gw_u64(&w.kv, n);
    gw_str(&w.kv, "<unk>");
    gw_str(&w.kv, "<s>");
    gw_str(&w.kv, "</s>");
    for (int b = 0; b < 256; b++) {
        char hex[8];
        snprintf(hex, sizeof hex, "<0x%02X>", b);
        gw_str(&w.kv, hex);
    }
    for (size_t i = 0; i < N_SPECIAL; i++) gw_str(&w.kv, SPECIAL[i].text);
    gw_key(&w, "tokenizer.ggml.scores", 9);
    gw_u32(&w.kv, 6);
    gw_u64(&w.kv, n);
    for (uint32_t i = 0; i < n; i++) gw_f32(&w.kv, 0.0f);
    gw_key(&w, "tokenizer.ggml.token_type", 9);
    gw_u32(&w.kv, 5);
    gw_u64(&w.kv, n);
    gw_u32(&w.kv, 2);
    gw_u32(&w.kv, 3);
    gw_u32(&w.kv, 3);
    for (int b = 0; b < 256; b++) gw_u32(&w.kv, 6);
    for (size_t i = 0; i < N_SPECIAL; i++) gw_u32(&w.kv, (uint32_t)SPECIAL[i].type);
    size_t len;
    FILE_BUF = gw_finish(&w, &len);
    gw_free(&w);
    char err[256];
    if (nuage_gguf_open_buffer(FILE_BUF, len, &GG, err, sizeof err)) { print_message("gguf: %s\n", err); return -1; }
    if (nuage_vocab_from_gguf(GG, &V, err, sizeof err)) { print_message("vocab: %s\n", err); return -1; }
    if (nuage_cg_tokens_new(V, &T)) return -1;
    TOOLS = json_loads("[{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"parameters\": "
                       "{\"type\": \"object\", \"properties\": {\"city\": {\"type\": \"string\"}}, "
                       "\"required\": [\"city\"], \"additionalProperties\": false}}}]", 0, NULL);
    return TOOLS ? 0 : -1;
}

static int teardown(void **st) {
    (void)st;
    json_decref(TOOLS);
    nuage_cg_tokens_free(T);
    nuage_vocab_free(V);
    nuage_gguf_close(GG);
    free(FILE_BUF);
    return 0;
}

static int32_t tok(const char *text) {
    int32_t t = nuage_vocab_find_n(V, text, strlen(text));
    if (t < 0) fail_msg("no token %s", text);
    return t;
}

static nuage_matcher *matcher(nuage_toolfmt fmt, bool want_after) {
    ncg_builder *b = ncg_builder_new();
    ncg_rule root = -1, after = -1;
    nuage_cg_error err = {{0}, {0}};
    nuage_cg_json_opts opts = {.max_ws = 0, .strict = false};
    int rc = nuage_toolfmt_grammar(b, fmt, V, TOOLS, NUAGE_TOOLCHOICE_REQUIRED, NULL, true, &opts, &root, &after,
                                   NULL, &err);
    nuage_grammar *g = NULL;
    if (rc == 0) rc = ncg_builder_finish(b, want_after ? after : root, T, &g, &err);
    ncg_builder_free(b);
    if (rc) fail_msg("%s: %d %s", nuage_toolfmt_name(fmt), rc, err.msg);
    nuage_matcher *m = NULL;
    assert_int_equal(nuage_matcher_new(g, &m), 0);
    nuage_grammar_free(g);
    return m;
}

static bool allowed(nuage_matcher *m, int32_t t) {
    uint32_t mask[64];
    assert_true(nuage_cg_mask_words(T) <= 64);
    assert_int_equal(nuage_matcher_fill_mask(m, mask), 0);
    return mask[t >> 5] >> (t & 31) & 1;
}

#define BYTES(m, s) nuage_matcher_accept_bytes((m), (s), strlen(s))

static void test_mistral_control_tokens(void **st) {
    (void)st;
    nuage_matcher *m = matcher(NUAGE_TOOLFMT_MISTRAL, false);
    assert_true(allowed(m, tok("[TOOL_CALLS]")));
    assert_false(allowed(m, tok("[ARGS]")));
    assert_int_equal(BYTES(m, "["), NUAGE_E_INVAL);   /* the control token's bytes */
    assert_int_equal(nuage_matcher_accept_token(m, tok("[TOOL_CALLS]")), 0);
    /* [ARGS] in the vocabulary: the Small 3.x form, not Nemo's array */
    assert_int_equal(BYTES(m, "["), NUAGE_E_INVAL);
    assert_int_equal(BYTES(m, "get_weather"), 0);
    assert_int_equal(BYTES(m, "[ARGS]"), NUAGE_E_INVAL);
    assert_true(allowed(m, tok("[ARGS]")));
    assert_int_equal(nuage_matcher_accept_token(m, tok("[ARGS]")), 0);
    assert_false(allowed(m, nuage_vocab_eos(V)));
    assert_int_equal(BYTES(m, "{\"city\":\"Paris\"}"), 0);
    assert_true(nuage_matcher_is_accepting(m));
    assert_true(allowed(m, nuage_vocab_eos(V)));
    assert_true(allowed(m, tok("[TOOL_CALLS]")));   /* parallel: another call */
    nuage_matcher_free(m);
}

static void test_hermes_user_defined(void **st) {
    (void)st;
    nuage_matcher *m = matcher(NUAGE_TOOLFMT_HERMES, false);
    assert_true(allowed(m, tok("<tool_call>")));
    assert_int_equal(BYTES(m, "<tool_call>\n{\"name\":\"get_weather\",\"arguments\":{\"city\":\"Oslo\"}}\n"), 0);
    assert_true(allowed(m, tok("</tool_call>")));
    assert_int_equal(nuage_matcher_accept_token(m, tok("</tool_call>")), 0);
    assert_true(nuage_matcher_is_accepting(m));
    nuage_matcher_free(m);
    /* the newlines are optional (templates that write calls on one line) */
    m = matcher(NUAGE_TOOLFMT_HERMES, false);
    assert_int_equal(BYTES(m, "<tool_call>{\"name\":\"get_weather\",\"arguments\":{\"city\":\"Oslo\"}}"), 0);
    assert_int_equal(nuage_matcher_accept_token(m, tok("</tool_call>")), 0);
    assert_true(nuage_matcher_is_accepting(m));
    nuage_matcher_free(m);
    /* but nothing else: two newlines, or a blank, are refused */
    m = matcher(NUAGE_TOOLFMT_HERMES, false);
    assert_int_equal(BYTES(m, "<tool_call>\n"), 0);
    assert_int_not_equal(BYTES(m, "\n"), 0);
    nuage_matcher_free(m);
}

static void test_deepseek_tokens(void **st) {
    (void)st;
    nuage_matcher *m = matcher(NUAGE_TOOLFMT_DEEPSEEK, false);
    assert_int_equal(BYTES(m, "<"), NUAGE_E_INVAL);
    assert_int_equal(nuage_matcher_accept_token(m, tok(DS_CALLS_BEGIN)), 0);
    assert_int_equal(nuage_matcher_accept_token(m, tok(DS_CALL_BEGIN)), 0);
    assert_int_equal(BYTES(m, "get_weather"), 0);
    assert_int_equal(nuage_matcher_accept_token(m, tok(DS_SEP)), 0);
    assert_int_equal(BYTES(m, "{\"city\":\"Rome\"}"), 0);
    assert_false(nuage_matcher_is_accepting(m));
    assert_int_equal(nuage_matcher_accept_token(m, tok(DS_CALL_END)), 0);
    assert_int_equal(nuage_matcher_accept_token(m, tok(DS_CALLS_END)), 0);
    assert_true(nuage_matcher_is_accepting(m));
    nuage_matcher_free(m);
}

static void test_harmony_call_is_eos(void **st) {
    (void)st;
    /* <|call|> is end-of-generation here; <|channel|> and <|message|> are
     * the user-defined tokens the loader makes of them */
    assert_true(nuage_vocab_is_eog(V, tok("<|call|>")));
    nuage_matcher *m = matcher(NUAGE_TOOLFMT_HARMONY, false);
    assert_int_equal(BYTES(m, " to=functions.get_weather<|channel|>commentary json<|message|>"), 0);
    assert_int_equal(BYTES(m, "{\"city\":\"Lima\""), 0);
    assert_false(allowed(m, tok("<|call|>")));
    assert_int_equal(BYTES(m, "}"), 0);
    assert_true(nuage_matcher_is_accepting(m));
    assert_true(allowed(m, tok("<|call|>")));
    nuage_matcher_free(m);
}

/* ---- harmony output as the server sees it ----
 * A gpt-oss answer as token ids (the special tokens as single control
 * tokens, the text as byte tokens), run through what the server does per
 * token: stop at an end-of-generation token, detokenize with special
 * tokens rendered, feed the piece to the harmony parser. */
typedef struct {
    char content[512], reasoning[512], name[64], args[256];
    size_t nc, nr;
    int calls;
    bool leak;   /* a content or reasoning piece carried markup */
} hs_out;

static int hs_cb(const nuage_tp_event *ev, void *ud) {
    hs_out *o = ud;
    if (ev->kind == NUAGE_TP_CONTENT || ev->kind == NUAGE_TP_REASONING) {
        char *dst = ev->kind == NUAGE_TP_CONTENT ? o->content : o->reasoning;
        size_t *n = ev->kind == NUAGE_TP_CONTENT ? &o->nc : &o->nr;
        if (*n + ev->len >= 512) return 1;
        memcpy(dst + *n, ev->text, ev->len);
        *n += ev->len;
        dst[*n] = 0;
        if (memchr(ev->text, '<', ev->len) && ev->len >= 2) {
            for (size_t i = 0; i + 1 < ev->len; i++)
                if (ev->text[i] == '<' && ev->text[i + 1] == '|') o->leak = true;
        }
    }
    if (ev->kind == NUAGE_TP_CALL_END) {
        snprintf(o->name, sizeof o->name, "%s", ev->name);
        snprintf(o->args, sizeof o->args, "%.*s", (int)ev->len, ev->text);
        o->calls++;
    }
    return 0;
}

/* Token ids of harmony text: the SPECIAL entries as their tokens, every
 * other byte as its byte token. */
static size_t hs_tokens(const char *text, int32_t *out, size_t cap) {
    size_t n = 0;
    for (const char *p = text; *p && n < cap;) {
        size_t i = 0;
        for (; i < N_SPECIAL; i++)
            if (!strncmp(p, SPECIAL[i].text, strlen(SPECIAL[i].text))) break;
        if (i < N_SPECIAL) {
            out[n++] = FIRST_SPECIAL + (int32_t)i;
            p += strlen(SPECIAL[i].text);
        } else {
            out[n++] = 3 + (unsigned char)*p++;
        }
    }
    return n;
}

/* Runs the tokens as the server does; *n_reasoning: tokens counted as
 * reasoning (in an analysis body before or after the token). Returns how
 * many tokens were generated before end-of-generation stopped it. */
static size_t hs_run(const int32_t *t, size_t n, bool with_tools, hs_out *o, int *n_reasoning) {
    static const char *const names[] = {"get_weather"};
    memset(o, 0, sizeof *o);
    nuage_toolparse *p = nuage_toolparse_new(NUAGE_TOOLFMT_HARMONY, names, with_tools ? 1 : 0);
    nuage_detok *d = nuage_detok_new(V, true);
    assert_non_null(p);
    assert_non_null(d);
    *n_reasoning = 0;
    size_t i = 0;
    for (; i < n; i++) {
        if (nuage_vocab_is_eog(V, t[i])) break;
        bool before = nuage_toolparse_in_reasoning(p);
        size_t k = 0;
        const char *piece = nuage_detok_push(d, t[i], &k);
        if (piece && k) assert_int_equal(nuage_toolparse_feed(p, piece, k, false, hs_cb, o), 0);
        if (before || nuage_toolparse_in_reasoning(p)) (*n_reasoning)++;
    }
    size_t k = 0;
    const char *rest = nuage_detok_flush(d, &k);
    assert_int_equal(nuage_toolparse_feed(p, rest ? rest : "", rest ? k : 0, true, hs_cb, o), 0);
    nuage_detok_free(d);
    nuage_toolparse_free(p);
    return i;
}

static void test_harmony_stream(void **st) {
    (void)st;
    /* <|return|> and <|call|> end generation though the GGUF's EOS is </s>;
     * <|end|> (between messages) does not, and renders as its text */
    assert_true(nuage_vocab_is_eog(V, tok("<|return|>")));
    assert_true(nuage_vocab_is_eog(V, tok("<|call|>")));
    assert_false(nuage_vocab_is_eog(V, tok("<|end|>")));
    assert_int_equal(nuage_vocab_eos(V), 2);
    int32_t t[1024];
    hs_out o;
    int nr;
    /* analysis, then the final answer, then <|return|>: whatever follows
     * it is never generated */
    const char *a = "<|channel|>analysis<|message|>User greets. Reply briefly.<|end|><|start|>assistant"
                    "<|channel|>final<|message|>Hello! How can I help?<|return|><|start|>assistant junk";
    size_t n = hs_tokens(a, t, 1024);
    size_t used = hs_run(t, n, false, &o, &nr);
    assert_int_equal(t[used], tok("<|return|>"));
    assert_string_equal(o.reasoning, "User greets. Reply briefly.");
    assert_string_equal(o.content, "Hello! How can I help?");
    assert_false(o.leak);
    assert_int_equal(o.calls, 0);
    /* the body's bytes, plus <|message|> and <|end|> around them */
    assert_int_equal(nr, (int)strlen("User greets. Reply briefly.") + 2);
    /* analysis, a preamble, a call ended by <|call|> (finish_reason
     * tool_calls) */
    const char *b = "<|channel|>analysis<|message|>Need weather for Lima.<|end|><|start|>assistant<|channel|>"
                    "commentary<|message|>Let me look that up.<|end|><|start|>assistant<|channel|>commentary "
                    "to=functions.get_weather <|constrain|>json<|message|>{\"city\": \"Lima\"}<|call|>";
    n = hs_tokens(b, t, 1024);
    used = hs_run(t, n, true, &o, &nr);
    assert_int_equal(used, n - 1);
    assert_string_equal(o.reasoning, "Need weather for Lima.");
    assert_string_equal(o.content, "Let me look that up.");
    assert_int_equal(o.calls, 1);
    assert_string_equal(o.name, "get_weather");
    assert_string_equal(o.args, "{\"city\":\"Lima\"}");
    assert_false(o.leak);
    /* the same call with no tools declared (tool_choice none): its body is
     * content, none of its markup */
    used = hs_run(t, n, false, &o, &nr);
    assert_int_equal(o.calls, 0);
    assert_string_equal(o.content, "Let me look that up.{\"city\": \"Lima\"}");
    assert_false(o.leak);
}

/* response_format on a harmony vocabulary: the answer must be the final
 * channel's, <|return|> (an end-of-generation token) is offered exactly
 * when the JSON is complete. */
static void test_harmony_final_tokens(void **st) {
    (void)st;
    ncg_builder *b = ncg_builder_new();
    json_t *schema = json_loads("{\"type\": \"object\", \"properties\": {\"ok\": {\"type\": \"boolean\"}}, "
                                "\"required\": [\"ok\"], \"additionalProperties\": false}", 0, NULL);
    nuage_cg_json_opts opts = {.max_ws = 0, .strict = true};
    nuage_cg_error err = {{0}, {0}};
    ncg_expr ans = -1, out = -1;
    assert_int_equal(ncg_json_schema(b, schema, &opts, &ans, &err), 0);
    assert_int_equal(nuage_toolfmt_harmony_final(b, V, ans, &out), 0);
    ncg_rule root = ncg_rule_new(b, "out");
    assert_int_equal(ncg_rule_set(b, root, out), 0);
    nuage_grammar *g = NULL;
    assert_int_equal(ncg_builder_finish(b, root, T, &g, &err), 0);
    ncg_builder_free(b);
    json_decref(schema);
    nuage_matcher *m = NULL;
    assert_int_equal(nuage_matcher_new(g, &m), 0);
    nuage_grammar_free(g);
    /* no bare JSON: the answer opens with a channel header (<|channel|>
     * is user-defined, as the loader makes it: token or bytes) */
    assert_false(allowed(m, 3 + '{'));
    assert_true(allowed(m, tok("<|channel|>")));
    assert_int_equal(nuage_matcher_accept_token(m, tok("<|channel|>")), 0);
    assert_int_equal(BYTES(m, "final"), 0);
    assert_int_equal(nuage_matcher_accept_token(m, tok("<|message|>")), 0);
    assert_false(allowed(m, tok("<|return|>")));
    assert_int_equal(BYTES(m, "{\"ok\":true}"), 0);
    assert_true(nuage_matcher_is_accepting(m));
    assert_true(allowed(m, tok("<|return|>")));
    nuage_matcher_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mistral_control_tokens),
        cmocka_unit_test(test_hermes_user_defined),
        cmocka_unit_test(test_deepseek_tokens),
        cmocka_unit_test(test_harmony_call_is_eos),
        cmocka_unit_test(test_harmony_stream),
        cmocka_unit_test(test_harmony_final_tokens),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
