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

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mistral_control_tokens),
        cmocka_unit_test(test_hermes_user_defined),
        cmocka_unit_test(test_deepseek_tokens),
        cmocka_unit_test(test_harmony_call_is_eos),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
