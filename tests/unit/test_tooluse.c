/*
 * test_tooluse.c - nuage's own models' tool use: the synthetic tool
 * conversations (src/train/synth_tools.c), the reference tools, and the
 * round trip through the trainer's chat template and the server's
 * tool-call parser.
 *
 * The round trip is the contract the training data relies on: the
 * template renders an assistant call as <tool_call>{...}</tool_call>,
 * the server detects the Hermes format from that template's source, and
 * the parser reads exactly the text the model was trained to write back
 * into the call (name, arguments). Expected values are computed by hand
 * (48213 * 9377 = 452093301; 2024 is a leap year), not by the code under
 * test.
 *
 * The tokenizer test checks why a model can copy arguments at all: words
 * are spelled " Australia" in a question but "Australia" (no leading
 * space) inside the JSON arguments, two different pre-tokenizer words. A
 * vocabulary learned from chats rendered with the tools template holds
 * both spellings as single tokens (copying is a one-token mapping), the
 * digits of a number are the same ids in both places, and every chat
 * fits the models' 256-token context with room to spare; with
 * NUAGE_BPE_SPACE_APART the two spellings are the very same token.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "constrain/toolcall.h"
#include "engine/gguf.h"
#include "engine/gguf_write.h"
#include "nuage/nuage.h"
#include "nuage/template.h"
#include "nuage/tokenizer.h"
#include "train/bpe_train.h"
#include "train/synth_tools.h"

static char *exec_text(nuage_tool_kind k, const char *args_json) {
    json_t *a = json_loads(args_json, 0, NULL);
    assert_non_null(a);
    char *r = nuage_tool_exec(k, a);
    json_decref(a);
    assert_non_null(r);
    return r;
}

static void expect_exec(nuage_tool_kind k, const char *args, const char *want) {
    char *r = exec_text(k, args);
    assert_string_equal(r, want);
    free(r);
}

static void test_reference_tools(void **state) {
    (void)state;
    expect_exec(NUAGE_TOOL_CALC, "{\"expression\": \"48213 * 9377\"}", "452093301");
    expect_exec(NUAGE_TOOL_CALC, "{\"expression\": \"48213 * 9377 / 1000\"}", "452093.301");
    expect_exec(NUAGE_TOOL_CALC, "{\"expression\": \"48213 \xc3\x97 9377\"}", "452093301");
    expect_exec(NUAGE_TOOL_CALC, "{\"expression\": \"(12 + 30) * 2 - 4\"}", "80");
    expect_exec(NUAGE_TOOL_CALC, "{\"expression\": \"7 / 2\"}", "3.5");
    expect_exec(NUAGE_TOOL_CALC, "{\"expression\": \"1 / 3\"}", "0.333333");
    expect_exec(NUAGE_TOOL_CALC, "{\"expression\": \"5 / 0\"}", "error: division by zero");
    char *r = exec_text(NUAGE_TOOL_CALC, "{\"expression\": \"5 +\"}");
    assert_int_equal(strncmp(r, "error: ", 7), 0);
    free(r);
    expect_exec(NUAGE_TOOL_CONVERT, "{\"value\": 12, \"from\": \"kilometers\", \"to\": \"meters\"}", "12000");
    expect_exec(NUAGE_TOOL_CONVERT, "{\"value\": 1, \"from\": \"mile\", \"to\": \"meters\"}", "1609.344");
    expect_exec(NUAGE_TOOL_CONVERT, "{\"value\": 3, \"from\": \"feet\", \"to\": \"inches\"}", "36");
    expect_exec(NUAGE_TOOL_CONVERT, "{\"value\": 3, \"from\": \"feet\", \"to\": \"grams\"}",
                "error: cannot convert between these units");
    expect_exec(NUAGE_TOOL_DATE_ADD, "{\"date\": \"2024-02-28\", \"days\": 2}", "2024-03-01");
    expect_exec(NUAGE_TOOL_DATE_ADD, "{\"date\": \"2023-02-28\", \"days\": 1}", "2023-03-01");
    expect_exec(NUAGE_TOOL_DATE_ADD, "{\"date\": \"2024-12-31\", \"days\": 366}", "2026-01-01");
    expect_exec(NUAGE_TOOL_DATE_DIFF, "{\"start\": \"2024-01-01\", \"end\": \"2025-01-01\"}", "366");
    expect_exec(NUAGE_TOOL_DATE_DIFF, "{\"start\": \"1999-12-31\", \"end\": \"2000-03-01\"}", "61");
    expect_exec(NUAGE_TOOL_DATE_ADD, "{\"date\": \"2023-02-29\", \"days\": 1}", "error: date must be YYYY-MM-DD");
    expect_exec(NUAGE_TOOL_LOOKUP, "{\"entity\": \"Japan\", \"field\": \"currency\"}", "Yen");
    expect_exec(NUAGE_TOOL_LOOKUP, "{\"entity\": \"Peru\", \"field\": \"language\"}", "Spanish");
    r = exec_text(NUAGE_TOOL_LOOKUP, "{\"entity\": \"Atlantis\", \"field\": \"currency\"}");
    assert_int_equal(strncmp(r, "error: ", 7), 0);
    free(r);
}

/* Same seed, same lines; every line parses, ends in an assistant turn and
 * carries the tools. */
static void test_deterministic_and_wellformed(void **state) {
    (void)state;
    nuage_rng a, b;
    nuage_rng_seed(&a, 42);
    nuage_rng_seed(&b, 42);
    int seen[NUAGE_TT_N] = {0};
    for (int i = 0; i < 400; i++) {
        nuage_tool_item x, y;
        assert_int_equal(nuage_tool_gen(-1, 0, false, &a, &x), 0);
        assert_int_equal(nuage_tool_gen(-1, 0, false, &b, &y), 0);
        char *lx = nuage_tool_item_jsonl(&x), *ly = nuage_tool_item_jsonl(&y);
        assert_non_null(lx);
        assert_string_equal(lx, ly);
        seen[x.task]++;
        for (char *line = lx, *nl; (nl = strchr(line, '\n')); line = nl + 1) {
            *nl = 0;
            json_t *o = json_loads(line, 0, NULL);
            assert_non_null(o);
            json_t *m = json_object_get(o, "messages");
            json_t *last = json_array_get(m, json_array_size(m) - 1);
            assert_string_equal(json_string_value(json_object_get(last, "role")), "assistant");
            assert_true(json_array_size(json_object_get(o, "tools")) >= 1);
            json_decref(o);
        }
        free(lx);
        free(ly);
        nuage_tool_item_free(&x);
        nuage_tool_item_free(&y);
    }
    for (int t = 0; t < NUAGE_TT_N; t++) assert_true(seen[t] > 0);
}

/* An item's conversation is consistent: every call's result is what the
 * reference tool returns, the first call is the expected one and the
 * final answer (tool tasks) is the last result; the needed tool is
 * offered, or (tool_absent) not. */
static void test_items_consistent(void **state) {
    (void)state;
    nuage_rng r;
    nuage_rng_seed(&r, 7);
    for (int t = 0; t < NUAGE_TT_N; t++) {
        for (int i = 0; i < 60; i++) {
            nuage_tool_item it;
            assert_int_equal(nuage_tool_gen(t, t == NUAGE_TT_MUL ? 6 : 0, i % 2, &r, &it), 0);
            assert_int_equal(nuage_synth_key_heldout(it.key), i % 2);
            json_t *msgs = it.messages;
            const char *last_result = NULL;
            bool first = true;
            for (size_t k = 1; k < json_array_size(msgs); k++) {
                json_t *m = json_array_get(msgs, k);
                json_t *calls = json_object_get(m, "tool_calls");
                if (!calls) continue;
                json_t *fn = json_object_get(json_array_get(calls, 0), "function");
                int kind = nuage_tool_kind_of(it.tools, json_string_value(json_object_get(fn, "name")));
                assert_true(kind >= 0);
                if (first) {
                    assert_int_equal(kind, it.first_tool);
                    assert_true(json_equal(json_object_get(fn, "arguments"), it.first_args));
                    first = false;
                }
                char *res = nuage_tool_exec((nuage_tool_kind)kind, json_object_get(fn, "arguments"));
                json_t *tm = json_array_get(msgs, k + 1);
                assert_string_equal(json_string_value(json_object_get(tm, "role")), "tool");
                assert_string_equal(json_string_value(json_object_get(tm, "content")), res);
                last_result = json_string_value(json_object_get(tm, "content"));
                free(res);
            }
            const char *final = json_string_value(
                json_object_get(json_array_get(msgs, json_array_size(msgs) - 1), "content"));
            if (t == NUAGE_TT_DIRECT || t == NUAGE_TT_ABSENT) {
                assert_int_equal(it.first_tool, -1);
                assert_null(last_result);
            } else if (t == NUAGE_TT_ERROR) {
                assert_non_null(last_result);
                assert_int_equal(strncmp(last_result, "error: ", 7), 0);
            } else {
                assert_non_null(last_result);
                assert_string_equal(final, last_result);
                assert_string_equal(it.answer, last_result);
            }
            if (t == NUAGE_TT_ABSENT) { /* the plain task's tool is not offered */
                bool mul = strncmp(it.key, "mul:", 4) == 0;
                size_t n = json_array_size(it.tools);
                for (size_t k = 0; k < n; k++) {
                    json_t *f = json_object_get(json_array_get(it.tools, k), "function");
                    int kind = nuage_tool_kind_of(it.tools, json_string_value(json_object_get(f, "name")));
                    assert_int_not_equal(kind, mul ? NUAGE_TOOL_CALC : NUAGE_TOOL_CONVERT);
                }
            }
            nuage_tool_item_free(&it);
        }
    }
}

/* The 6-digit multiplication held-out questions: both operands 6 digits,
 * the expression copies them. */
static void test_mul_digits(void **state) {
    (void)state;
    nuage_rng r;
    nuage_rng_seed(&r, 1);
    nuage_tool_item it;
    assert_int_equal(nuage_tool_gen(NUAGE_TT_MUL, 6, true, &r, &it), 0);
    const char *e = json_string_value(json_object_get(it.first_args, "expression"));
    long long a, b;
    assert_int_equal(sscanf(e, "%lld * %lld", &a, &b), 2);
    assert_true(a >= 100000 && a <= 999999 && b >= 100000 && b <= 999999);
    nuage_tool_item_free(&it);
    assert_int_equal(nuage_tool_gen(NUAGE_TT_N, 0, false, &r, &it), NUAGE_E_INVAL);
}

typedef struct {
    char name[64], args[256], content[256];
    int calls;
} collect;

static int collect_cb(const nuage_tp_event *ev, void *ud) {
    collect *c = ud;
    if (ev->kind == NUAGE_TP_CALL_END) {
        snprintf(c->name, sizeof c->name, "%s", ev->name);
        snprintf(c->args, sizeof c->args, "%.*s", (int)ev->len, ev->text);
        c->calls++;
    } else if (ev->kind == NUAGE_TP_CONTENT) {
        size_t l = strlen(c->content);
        snprintf(c->content + l, sizeof c->content - l, "%.*s", (int)ev->len, ev->text);
    }
    return 0;
}

/* Template -> text the model learns -> server parser -> the same call. */
static void test_template_roundtrip(void **state) {
    (void)state;
    const char *src = nuage_bpe_chat_template_tools();
    assert_int_equal(nuage_toolfmt_detect(src), NUAGE_TOOLFMT_HERMES);
    nuage_template *t = NULL;
    char err[256];
    assert_int_equal(nuage_template_parse(src, strlen(src), &t, err, sizeof err), 0);
    json_t *tools = json_loads(
        "[{\"type\":\"function\",\"function\":{\"name\":\"calculator\",\"description\":\"Do math.\","
        "\"parameters\":{\"type\":\"object\",\"properties\":{\"expression\":{\"type\":\"string\"}}}}},"
        "{\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"parameters\":{\"type\":\"object\","
        "\"properties\":{\"city\":{\"type\":\"string\"},\"unit\":{\"type\":\"string\"}}}}}]",
        0, NULL);
    json_t *msgs = json_loads(
        "[{\"role\":\"user\",\"content\":\"What is 48213 * 9377?\"},"
        "{\"role\":\"assistant\",\"content\":\"\",\"tool_calls\":[{\"id\":\"c1\",\"type\":\"function\","
        "\"function\":{\"name\":\"calculator\",\"arguments\":{\"expression\":\"48213 * 9377\"}}}]},"
        "{\"role\":\"tool\",\"tool_call_id\":\"c1\",\"content\":\"452093301\"},"
        "{\"role\":\"assistant\",\"content\":\"452093301\"}]",
        0, NULL);
    assert_non_null(tools);
    assert_non_null(msgs);
    nuage_template_input in = {.add_generation_prompt = false};
    char *out = NULL;
    size_t len = 0;
    assert_int_equal(nuage_template_render_json(t, msgs, tools, NULL, &in, &out, &len, err, sizeof err), 0);
    const char *want =
        "<|im_start|>system\nTools:\ncalculator(expression)\nget_weather(city, unit)\n<|im_end|>\n"
        "<|im_start|>user\nWhat is 48213 * 9377?<|im_end|>\n"
        "<|im_start|>assistant\n<tool_call>{\"name\": \"calculator\", \"arguments\": {\"expression\": "
        "\"48213 * 9377\"}}</tool_call><|im_end|>\n"
        "<|im_start|>tool\n452093301<|im_end|>\n"
        "<|im_start|>assistant\n452093301<|im_end|>\n";
    assert_string_equal(out, want);
    free(out);
    /* without tools: plain ChatML, as the models were first trained */
    assert_int_equal(nuage_toolfmt_detect(nuage_bpe_chat_template()), NUAGE_TOOLFMT_GENERIC);
    json_t *plain = json_loads("[{\"role\":\"user\",\"content\":\"What is 2 + 3?\"}]", 0, NULL);
    in.add_generation_prompt = true;
    assert_int_equal(nuage_template_render_json(t, plain, NULL, NULL, &in, &out, &len, err, sizeof err), 0);
    assert_string_equal(out, "<|im_start|>user\nWhat is 2 + 3?<|im_end|>\n<|im_start|>assistant\n");
    free(out);
    json_decref(plain);

    /* what the model writes after "<|im_start|>assistant\n" */
    const char *gen = "<tool_call>{\"name\": \"calculator\", \"arguments\": {\"expression\": \"48213 * 9377\"}}"
                      "</tool_call>";
    const char *names[] = {"calculator", "get_weather"};
    nuage_toolparse *p = nuage_toolparse_new(NUAGE_TOOLFMT_HERMES, names, 2);
    assert_non_null(p);
    collect c = {0};
    /* fed in small pieces, as tokens arrive */
    for (size_t i = 0, n = strlen(gen); i < n; i += 3)
        assert_int_equal(nuage_toolparse_feed(p, gen + i, n - i < 3 ? n - i : 3, false, collect_cb, &c), 0);
    assert_int_equal(nuage_toolparse_feed(p, "", 0, true, collect_cb, &c), 0);
    assert_int_equal(c.calls, 1);
    assert_string_equal(c.name, "calculator");
    json_t *args = json_loads(c.args, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(args, "expression")), "48213 * 9377");
    json_decref(args);
    assert_string_equal(c.content, "");
    nuage_toolparse_free(p);
    json_decref(tools);
    json_decref(msgs);
    nuage_template_free(t);
}

/* Render chats with the tools template; returns the count of texts. */
static size_t render_tool_chats(const nuage_template *t, int n_items, char ***texts, size_t **lens,
                                json_t *arg_words) {
    nuage_rng r;
    nuage_rng_seed(&r, 11);
    *texts = calloc((size_t)n_items, sizeof **texts);
    *lens = calloc((size_t)n_items, sizeof **lens);
    assert_non_null(*texts);
    assert_non_null(*lens);
    char err[256];
    for (int i = 0; i < n_items; i++) {
        nuage_tool_item it;
        assert_int_equal(nuage_tool_gen(-1, 0, false, &r, &it), 0);
        nuage_template_input in = {.add_generation_prompt = false};
        assert_int_equal(nuage_template_render_json(t, it.messages, it.tools, NULL, &in, &(*texts)[i], &(*lens)[i],
                                                    err, sizeof err),
                         0);
        /* the string arguments made of letters only: units, entities, fields */
        const char *k;
        json_t *v;
        json_object_foreach(it.first_args, k, v) {
            const char *sv = json_string_value(v);
            if (!sv || !*sv) continue;
            bool letters = true;
            for (const char *c = sv; *c; c++)
                if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z'))) letters = false;
            if (letters) json_object_set_new(arg_words, sv, json_true());
        }
        nuage_tool_item_free(&it);
    }
    return (size_t)n_items;
}

static int word_tokens(const nuage_bpe *b, const char *w) {
    for (int i = 0; i < b->n_words; i++)
        if (!strcmp(b->words[i], w)) return b->word_len[i];
    return -1; /* not a training word */
}

static void test_tool_tokenizer(void **state) {
    (void)state;
    const char *src = nuage_bpe_chat_template_tools();
    nuage_template *t = NULL;
    char err[256];
    assert_int_equal(nuage_template_parse(src, strlen(src), &t, err, sizeof err), 0);
    char **texts;
    size_t *lens;
    json_t *words = json_object();
    size_t n = render_tool_chats(t, 3000, &texts, &lens, words);
    assert_true(json_object_size(words) > 20);
    nuage_bpe *b = NULL;
    assert_int_equal(nuage_bpe_train((const char *const *)texts, lens, n, 1536, NULL, &b, err, sizeof err), 0);

    /* both spellings of the letter-only arguments are one token each (a
     * few rare ones, like "meter", may stay in two pieces) */
    const char *w;
    json_t *v;
    int single = 0, total = 0;
    json_object_foreach(words, w, v) {
        char spaced[128];
        snprintf(spaced, sizeof spaced, " %s", w);
        int in_args = word_tokens(b, w), in_text = word_tokens(b, spaced);
        total++;
        if (in_args == 1 && in_text <= 1) single++;
        else printf("# \"%s\": %d tokens, \"%s\": %d\n", w, in_args, spaced, in_text);
    }
    printf("# %d of %d argument words are one token in both spellings\n", single, total);
    assert_true(single * 10 >= total * 9);

    /* through the GGUF tokenizer: digits are the same ids in the question
     * and in the arguments, and every chat fits 256 tokens with room */
    nuage_gguf_writer *gw = nuage_gguf_writer_new();
    assert_int_equal(nuage_bpe_write_gguf(b, gw), 0);
    void *buf;
    size_t blen;
    assert_int_equal(nuage_gguf_writer_to_buffer(gw, &buf, &blen), 0);
    nuage_gguf *g;
    assert_int_equal(nuage_gguf_open_buffer(buf, blen, &g, err, sizeof err), 0);
    nuage_vocab *voc;
    assert_int_equal(nuage_vocab_from_gguf(g, &voc, err, sizeof err), 0);
    int32_t q[64], a[64];
    int nq = nuage_tokenize(voc, "What is 454464 * 98", 19, q, 64, false, false);
    int na = nuage_tokenize(voc, "{\"expression\": \"454464 * 98", 27, a, 64, false, false);
    assert_true(nq >= 9 && na >= 9);
    assert_memory_equal(q + nq - 9, a + na - 9, 9 * sizeof *q); /* 4 5 4 4 6 4 " *" " " 9 8 */
    int32_t *ids = malloc(4096 * sizeof *ids);
    assert_non_null(ids);
    int longest = 0;
    for (size_t i = 0; i < n; i++) {
        int k = nuage_tokenize(voc, texts[i], lens[i], ids, 4096, false, true);
        assert_true(k > 0);
        if (k > longest) longest = k;
    }
    if (longest > 224) fail_msg("longest tool chat: %d tokens (context 256)", longest);
    free(ids);
    nuage_vocab_free(voc);
    nuage_gguf_close(g);
    free(buf);
    nuage_gguf_writer_free(gw);
    nuage_bpe_free(b);

    /* NUAGE_BPE_SPACE_APART: " word" is the space token + the very token
     * of "word", for every argument word (a copy is an identity) */
    assert_int_equal(nuage_bpe_train_ex((const char *const *)texts, lens, n, 1536, NULL, NUAGE_BPE_SPACE_APART, &b,
                                        err, sizeof err),
                     0);
    gw = nuage_gguf_writer_new();
    assert_int_equal(nuage_bpe_write_gguf(b, gw), 0);
    assert_int_equal(nuage_gguf_writer_to_buffer(gw, &buf, &blen), 0);
    assert_int_equal(nuage_gguf_open_buffer(buf, blen, &g, err, sizeof err), 0);
    assert_int_equal(nuage_vocab_from_gguf(g, &voc, err, sizeof err), 0);
    int single_sa = 0;
    json_object_foreach(words, w, v) {
        char spaced[128];
        int sl = snprintf(spaced, sizeof spaced, " %s", w);
        int nw = nuage_tokenize(voc, w, strlen(w), a, 64, false, false);
        int ns = nuage_tokenize(voc, spaced, (size_t)sl, q, 64, false, false);
        assert_true(nw >= 1);
        assert_int_equal(ns, nw + 1);
        assert_int_equal(q[0], ' '); /* the space byte's token */
        assert_memory_equal(q + 1, a, (size_t)nw * sizeof *a);
        single_sa += nw == 1;
    }
    printf("# space apart: %d of %d argument words are one token\n", single_sa, total);
    assert_true(single_sa * 10 >= total * 9);
    nuage_vocab_free(voc);
    nuage_gguf_close(g);
    free(buf);
    nuage_gguf_writer_free(gw);
    nuage_bpe_free(b);
    for (size_t i = 0; i < n; i++) free(texts[i]);
    free(texts);
    free(lens);
    json_decref(words);
    nuage_template_free(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reference_tools),
        cmocka_unit_test(test_deterministic_and_wellformed),
        cmocka_unit_test(test_items_consistent),
        cmocka_unit_test(test_mul_digits),
        cmocka_unit_test(test_template_roundtrip),
        cmocka_unit_test(test_tool_tokenizer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
