/*
 * test_constrain_toolparse.c - the streaming tool-call parser, per family:
 * calls found with the right names and compact arguments, text outside
 * calls kept as content, malformed or undeclared calls given back as
 * content, and every output parsed the same whole, cut in two at every
 * byte offset, and fed byte by byte.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <time.h>

#include "test_toolparse_util.h"

static const char *const NAMES[] = {"get_weather", "search_docs"};
#define NN 2

#include "constrain/toolmarkup.h"

#define ARGS1 "{\"location\": \"Paris, France\", \"unit\": \"celsius\"}"
#define ARGS1C "{\"location\":\"Paris, France\",\"unit\":\"celsius\"}"
#define ARGS2 "{\"query\": \"umbrella sizes\", \"max_results\": 2, \"tags\": [\"rain\", \"gear\"], \"include_archived\": false}"
#define ARGS2C "{\"query\":\"umbrella sizes\",\"max_results\":2,\"tags\":[\"rain\",\"gear\"],\"include_archived\":false}"

typedef struct {
    nuage_toolfmt fmt;
    const char *text;
    const char *content;     /* expected content */
    const char *reasoning;   /* expected reasoning ("" none) */
    int n_calls;
    const char *name[2];
    const char *args[2];
} tp_case;

static const tp_case CASES[] = {
    /* Hermes / Qwen */
    {NUAGE_TOOLFMT_HERMES, "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": " ARGS1 "}\n</tool_call>",
     "", "", 1, {"get_weather"}, {ARGS1C}},
    {NUAGE_TOOLFMT_HERMES,
     "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": " ARGS1 "}\n</tool_call>\n"
     "<tool_call>\n{\"name\": \"search_docs\", \"arguments\": " ARGS2 "}\n</tool_call>",
     "", "", 2, {"get_weather", "search_docs"}, {ARGS1C, ARGS2C}},
    {NUAGE_TOOLFMT_HERMES,
     "<think>\nWeather.\n</think>\n\nLet me check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": "
     "{\"location\": \"Paris <tool_call> \\\"x\\\"\"}}\n</tool_call>\n",
     "<think>\nWeather.\n</think>\n\nLet me check.\n", "", 1, {"get_weather"},
     {"{\"location\":\"Paris <tool_call> \\\"x\\\"\"}"}},
    {NUAGE_TOOLFMT_HERMES, "  Hello, <tool world>! 1 < 2", "  Hello, <tool world>! 1 < 2", "", 0, {0}, {0}},
    {NUAGE_TOOLFMT_HERMES, "   \n", "   \n", "", 0, {0}, {0}},
    /* unfinished call at the end: all content */
    {NUAGE_TOOLFMT_HERMES, "Sure <tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"loc",
     "Sure <tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"loc", "", 0, {0}, {0}},
    /* undeclared name: content; a later good call still found */
    {NUAGE_TOOLFMT_HERMES,
     "<tool_call>\n{\"name\": \"rm_rf\", \"arguments\": {}}\n</tool_call>\n<tool_call>{\"name\":\"get_weather\"}</tool_call>",
     "<tool_call>\n{\"name\": \"rm_rf\", \"arguments\": {}}\n</tool_call>\n", "", 1, {"get_weather"}, {"{}"}},
    /* malformed JSON: content */
    {NUAGE_TOOLFMT_HERMES, "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {x}}\n</tool_call>",
     "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {x}}\n</tool_call>", "", 0, {0}, {0}},
    /* arguments given as a JSON string; missing closing tag at the end */
    {NUAGE_TOOLFMT_HERMES, "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": \"{\\\"a\\\": 1}\"}\n",
     "", "", 1, {"get_weather"}, {"{\"a\":1}"}},
    /* Llama 3 */
    {NUAGE_TOOLFMT_LLAMA3, "{\"name\": \"get_weather\", \"parameters\": " ARGS1 "}", "", "", 1,
     {"get_weather"}, {ARGS1C}},
    {NUAGE_TOOLFMT_LLAMA3, "<|python_tag|>{\"name\": \"search_docs\", \"arguments\": " ARGS2 "}", "", "", 1,
     {"search_docs"}, {ARGS2C}},
    {NUAGE_TOOLFMT_LLAMA3, "\n { \"name\": \"get_weather\", \"parameters\": {}}", "", "", 1,
     {"get_weather"}, {"{}"}},
    {NUAGE_TOOLFMT_LLAMA3, "{\"name\": \"Alice\", \"age\": 3}", "{\"name\": \"Alice\", \"age\": 3}", "", 0,
     {0}, {0}},
    {NUAGE_TOOLFMT_LLAMA3, "{\"answer\": 42}", "{\"answer\": 42}", "", 0, {0}, {0}},
    {NUAGE_TOOLFMT_LLAMA3, "Text {\"name\": \"get_weather\", \"parameters\": {}}",
     "Text {\"name\": \"get_weather\", \"parameters\": {}}", "", 0, {0}, {0}},
    /* Mistral Nemo and Small 3.2 */
    {NUAGE_TOOLFMT_MISTRAL,
     "[TOOL_CALLS][{\"name\": \"get_weather\", \"arguments\": " ARGS1 ", \"id\": \"a1B2c3D4e\"}, "
     "{\"name\": \"search_docs\", \"arguments\": " ARGS2 ", \"id\": \"f6G7h8I9j\"}]",
     "", "", 2, {"get_weather", "search_docs"}, {ARGS1C, ARGS2C}},
    {NUAGE_TOOLFMT_MISTRAL,
     "[TOOL_CALLS]get_weather[CALL_ID]a1B2c3D4e[ARGS]" ARGS1 "[TOOL_CALLS]search_docs[ARGS]" ARGS2, "", "", 2,
     {"get_weather", "search_docs"}, {ARGS1C, ARGS2C}},
    {NUAGE_TOOLFMT_MISTRAL, "I will call [TOOL_CALLS]get weather[ARGS]{}", "I will call [TOOL_CALLS]get weather[ARGS]{}",
     "", 0, {0}, {0}},
    {NUAGE_TOOLFMT_MISTRAL, "[TOOL_CALLS][]", "[TOOL_CALLS][]", "", 0, {0}, {0}},
    /* DeepSeek R1 (single call without the section end, as the template
     * renders it; parallel calls separated by a newline) and V3.1 */
    {NUAGE_TOOLFMT_DEEPSEEK,
     DS_CALLS_BEGIN DS_CALL_BEGIN "function" DS_SEP "get_weather\n```json\n" ARGS1 "\n```" DS_CALL_END, "", "", 1,
     {"get_weather"}, {ARGS1C}},
    {NUAGE_TOOLFMT_DEEPSEEK,
     "OK." DS_CALLS_BEGIN DS_CALL_BEGIN "function" DS_SEP "get_weather\n```json\n" ARGS1 "\n```" DS_CALL_END "\n"
     DS_CALL_BEGIN "function" DS_SEP "search_docs\n```json\n" ARGS2 "\n```" DS_CALL_END DS_CALLS_END,
     "OK.", "", 2, {"get_weather", "search_docs"}, {ARGS1C, ARGS2C}},
    {NUAGE_TOOLFMT_DEEPSEEK,
     DS_CALLS_BEGIN DS_CALL_BEGIN "get_weather" DS_SEP ARGS1 DS_CALL_END DS_CALL_BEGIN "search_docs" DS_SEP ARGS2
     DS_CALL_END DS_CALLS_END, "", "", 2, {"get_weather", "search_docs"}, {ARGS1C, ARGS2C}},
    {NUAGE_TOOLFMT_DEEPSEEK, DS_CALLS_BEGIN DS_CALL_BEGIN "get_weather" DS_SEP "not json" DS_CALL_END,
     DS_CALLS_BEGIN DS_CALL_BEGIN "get_weather" DS_SEP "not json" DS_CALL_END, "", 0, {0}, {0}},
    /* Kimi K2 */
    {NUAGE_TOOLFMT_KIMI,
     "<|tool_calls_section_begin|><|tool_call_begin|>functions.get_weather:0<|tool_call_argument_begin|>" ARGS1
     "<|tool_call_end|><|tool_call_begin|>functions.search_docs:1<|tool_call_argument_begin|>" ARGS2
     "<|tool_call_end|><|tool_calls_section_end|>",
     "", "", 2, {"get_weather", "search_docs"}, {ARGS1C, ARGS2C}},
    /* harmony: reasoning, then a call; a plain final answer */
    {NUAGE_TOOLFMT_HARMONY,
     "<|channel|>analysis<|message|>Need weather.<|end|><|start|>assistant<|channel|>commentary "
     "to=functions.get_weather <|constrain|>json<|message|>" ARGS1 "<|call|>",
     "", "Need weather.", 1, {"get_weather"}, {ARGS1C}},
    {NUAGE_TOOLFMT_HARMONY,
     " to=functions.search_docs<|channel|>commentary json<|message|>" ARGS2 "<|call|>", "", "", 1,
     {"search_docs"}, {ARGS2C}},
    {NUAGE_TOOLFMT_HARMONY,
     "<|channel|>analysis<|message|>Think <|chan.<|end|><|start|>assistant<|channel|>final<|message|>"
     "It is <|sunny|>.<|return|>",
     "It is <|sunny|>.", "Think <|chan.", 0, {0}, {0}},
    {NUAGE_TOOLFMT_HARMONY,
     "<|channel|>commentary to=functions.rm <|constrain|>json<|message|>{}<|call|>",
     "{}", "", 0, {0}, {0}},
    {NUAGE_TOOLFMT_HARMONY, "Plain text, no header.", "Plain text, no header.", "", 0, {0}, {0}},
    /* harmony as gpt-oss writes it after "<|start|>assistant" (the closing
     * <|return|> / <|call|> is an end-of-generation token, so usually not
     * in the text): analysis, final */
    {NUAGE_TOOLFMT_HARMONY,
     "<|channel|>analysis<|message|>User asks: \"What is 2+2?\" Simple arithmetic: 4.<|end|>"
     "<|start|>assistant<|channel|>final<|message|>2 + 2 = **4**.",
     "2 + 2 = **4**.", "User asks: \"What is 2+2?\" Simple arithmetic: 4.", 0, {0}, {0}},
    /* several analysis messages, a preamble (commentary, no recipient:
     * content), then a call with the recipient in the role header */
    {NUAGE_TOOLFMT_HARMONY,
     "<|channel|>analysis<|message|>Need the weather.<|end|><|start|>assistant<|channel|>analysis<|message|>"
     " Use get_weather.<|end|><|start|>assistant<|channel|>commentary<|message|>Checking the weather now.<|end|>"
     "<|start|>assistant to=functions.get_weather<|channel|>commentary json<|message|>" ARGS1,
     "Checking the weather now.", "Need the weather. Use get_weather.", 1, {"get_weather"}, {ARGS1C}},
    /* two calls in a row (a text vocabulary, where <|call|> is no
     * end-of-generation token), channel-first headers */
    {NUAGE_TOOLFMT_HARMONY,
     "<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>" ARGS1 "<|call|>"
     "<|start|>assistant<|channel|>commentary to=functions.search_docs <|constrain|>json<|message|>" ARGS2
     "<|call|>",
     "", "", 2, {"get_weather", "search_docs"}, {ARGS1C, ARGS2C}},
    /* a call to a tool nobody declared (gpt-oss's builtin browser), in the
     * analysis channel: its body is content, the markup is not */
    {NUAGE_TOOLFMT_HARMONY,
     "<|channel|>analysis<|message|>Search.<|end|><|start|>assistant<|channel|>analysis to=browser.search code"
     "<|message|>{\"query\": \"rain\"}<|call|>",
     "{\"query\": \"rain\"}", "Search.", 0, {0}, {0}},
    /* a JSON answer (response_format) in the final channel */
    {NUAGE_TOOLFMT_HARMONY,
     "<|channel|>analysis<|message|>Fill the schema.<|end|><|start|>assistant<|channel|>final "
     "<|constrain|>json<|message|>{\"name\": \"Ada\"}<|return|>",
     "{\"name\": \"Ada\"}", "Fill the schema.", 0, {0}, {0}},
    /* gpt-oss-20b's stray "<|channel|>commentary to=assistant" before the
     * real channel: the last channel counts, to=assistant is no recipient */
    {NUAGE_TOOLFMT_HARMONY,
     "<|channel|>commentary to=assistant<|channel|>analysis<|message|>Hmm.<|end|><|start|>assistant"
     "<|channel|>commentary<|channel|>final<|message|>Done.",
     "Done.", "Hmm.", 0, {0}, {0}},
    /* the model repeats the prompt's <|start|>assistant */
    {NUAGE_TOOLFMT_HARMONY, "<|start|>assistant<|channel|>final<|message|>Hi.", "Hi.", "", 0, {0}, {0}},
    /* cut by max_tokens inside the analysis: reasoning only */
    {NUAGE_TOOLFMT_HARMONY, "<|channel|>analysis<|message|>We need to think about <|end", "",
     "We need to think about <|end", 0, {0}, {0}},
    /* the answer after a tool result: analysis, then final */
    {NUAGE_TOOLFMT_HARMONY,
     "<|channel|>analysis<|message|>The tool says 21 C.<|end|><|start|>assistant<|channel|>final<|message|>"
     "It is 21 \xc2\xb0" "C in Paris.<|return|>",
     "It is 21 \xc2\xb0" "C in Paris.", "The tool says 21 C.", 0, {0}, {0}},
    /* Gemma 4: bare keys, <|"|> strings (raw, escaped into JSON), None */
    {NUAGE_TOOLFMT_GEMMA4,
     "<|tool_call>call:get_weather{location:<|\"|>Paris, \"France\"\n<|\"|>,unit:<|\"|>celsius<|\"|>}<tool_call|>"
     "<|tool_call>call:search_docs{include_archived:false,max_results:2,query:<|\"|>umbrella sizes<|\"|>,"
     "tags:[<|\"|>rain<|\"|>,<|\"|>gear<|\"|>],x:None,y:-1.5e3}<tool_call|>",
     "", "", 2, {"get_weather", "search_docs"},
     {"{\"location\":\"Paris, \\\"France\\\"\\n\",\"unit\":\"celsius\"}",
      "{\"include_archived\":false,\"max_results\":2,\"query\":\"umbrella sizes\",\"tags\":[\"rain\",\"gear\"],"
      "\"x\":null,\"y\":-1.5e3}"}},
    {NUAGE_TOOLFMT_GEMMA4, "<|tool_call>call:get_weather{location Paris}<tool_call|>",
     "<|tool_call>call:get_weather{location Paris}<tool_call|>", "", 0, {0}, {0}},
    {NUAGE_TOOLFMT_GEMMA4, "Hi <|tool_call>call:get_weather{location:<|\"|>Par",
     "Hi <|tool_call>call:get_weather{location:<|\"|>Par", "", 0, {0}, {0}},
    /* generic envelope */
    {NUAGE_TOOLFMT_GENERIC,
     "{\"tool_calls\": [{\"name\": \"get_weather\", \"arguments\": " ARGS1 "}, {\"name\": \"search_docs\", "
     "\"arguments\": " ARGS2 "}]}",
     "", "", 2, {"get_weather", "search_docs"}, {ARGS1C, ARGS2C}},
    {NUAGE_TOOLFMT_GENERIC, " {\"content\": \"Hi \\u00e9\\n\"}", "Hi \xc3\xa9\n", "", 0, {0}, {0}},
    {NUAGE_TOOLFMT_GENERIC, "{\"city\": \"Paris\"}", "{\"city\": \"Paris\"}", "", 0, {0}, {0}},
    {NUAGE_TOOLFMT_GENERIC, "Just text {\"tool_calls\": []}", "Just text {\"tool_calls\": []}", "", 0, {0}, {0}},
};

static void check_case(const tp_case *c, size_t idx) {
    tp_result r;
    tp_parse(c->fmt, NAMES, NN, c->text, &r);
    if (r.bad || strcmp(r.content, c->content) || strcmp(r.reasoning, c->reasoning) || r.n_calls != c->n_calls)
        fail_msg("case %zu (%s): bad=%d (%s) content=[%s] reasoning=[%s] calls=%d", idx,
                 nuage_toolfmt_name(c->fmt), r.bad, r.why, r.content, r.reasoning, r.n_calls);
    for (int i = 0; i < c->n_calls; i++) {
        assert_string_equal(r.name[i], c->name[i]);
        assert_string_equal(r.args[i], c->args[i]);
    }
    long at = tp_split_invariant(c->fmt, NAMES, NN, c->text);
    if (at >= 0) fail_msg("case %zu (%s): split at %ld differs", idx, nuage_toolfmt_name(c->fmt), at);
}

static void test_cases(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++) check_case(&CASES[i], i);
}

/* Any output, cut anywhere: the text of content + markup never loses a
 * byte that is not part of a recognized call. Checked by parsing with no
 * declared tools: then nothing is a call, and the content must be the
 * output itself (except dropped whitespace-only... none: no calls). */
static void test_no_tools_everything_is_content(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++) {
        const tp_case *c = &CASES[i];
        if (c->fmt == NUAGE_TOOLFMT_HARMONY || c->fmt == NUAGE_TOOLFMT_GENERIC) continue;
        tp_result r;
        tp_parse(c->fmt, NULL, 0, c->text, &r);
        assert_false(r.bad);
        assert_int_equal(r.n_calls, 0);
        assert_string_equal(r.content, c->text);
        assert_true(tp_split_invariant(c->fmt, NULL, 0, c->text) < 0);
    }
}

/* Partial markup is held, never emitted: after feeding a prefix that ends
 * inside a trigger, no content event carries the trigger's bytes. */
static void test_holds_partial_trigger(void **state) {
    (void)state;
    static const struct { nuage_toolfmt fmt; const char *pre; } H[] = {
        {NUAGE_TOOLFMT_HERMES, "Hi <tool_ca"},
        {NUAGE_TOOLFMT_MISTRAL, "Hi [TOOL_CA"},
        {NUAGE_TOOLFMT_LLAMA3, "Hi <|python_t"},
        {NUAGE_TOOLFMT_DEEPSEEK, "Hi <\xef\xbd\x9ctool\xe2\x96"},
        {NUAGE_TOOLFMT_KIMI, "Hi <|tool_calls_sec"},
        {NUAGE_TOOLFMT_HARMONY, "<|channel|>final<|message|>Hi <|ret"},
    };
    for (size_t i = 0; i < sizeof H / sizeof H[0]; i++) {
        tp_result r;
        memset(&r, 0, sizeof r);
        nuage_toolparse *p = nuage_toolparse_new(H[i].fmt, NAMES, NN);
        assert_non_null(p);
        assert_int_equal(nuage_toolparse_feed(p, H[i].pre, strlen(H[i].pre), false, tp_collect, &r), 0);
        assert_string_equal(r.content, "Hi ");
        nuage_toolparse_free(p);
    }
}

/* A callback's nonzero answer stops the feed and is returned. */
static int stop_cb(const nuage_tp_event *ev, void *ud) {
    (*(int *)ud)++;
    return ev->kind == NUAGE_TP_CALL_START ? 7 : 0;
}

static void test_callback_stop(void **state) {
    (void)state;
    nuage_toolparse *p = nuage_toolparse_new(NUAGE_TOOLFMT_HERMES, NAMES, NN);
    const char *t = "a<tool_call>{\"name\":\"get_weather\",\"arguments\":{}}</tool_call>";
    int n = 0;
    assert_int_equal(nuage_toolparse_feed(p, t, strlen(t), true, stop_cb, &n), 7);
    assert_int_equal(n, 2);   /* content "a", then CALL_START */
    nuage_toolparse_free(p);
}

/* Many calls in small random pieces (a long stream, the args large). */
typedef struct { int calls, next; size_t content; bool bad; } count_ud;

static int count_cb(const nuage_tp_event *ev, void *ud) {
    count_ud *c = ud;
    if (ev->kind == NUAGE_TP_CONTENT) c->content += ev->len;
    if (ev->kind == NUAGE_TP_CALL_END) {
        if (ev->index != c->next++ || strcmp(ev->name, "search_docs") || ev->len < 300) c->bad = true;
        c->calls++;
    }
    return 0;
}

static void test_long_stream(void **state) {
    (void)state;
    static char text[200000];
    size_t len = 0, content = 0;
    for (int i = 0; i < 200; i++) {
        int l = snprintf(text + len, sizeof text - len, "Step %d.\n", i);
        content += (size_t)l;
        len += (size_t)l;
        len += (size_t)snprintf(text + len, sizeof text - len,
                                "<tool_call>\n{\"name\": \"search_docs\", \"arguments\": "
                                "{\"query\": \"q%d %0300d\"}}\n</tool_call>\n", i, i);
    }
    content += 199;   /* the "\n" after a call is kept when text follows it */
    nuage_toolparse *p = nuage_toolparse_new(NUAGE_TOOLFMT_HERMES, NAMES, NN);
    uint32_t x = 12345;
    size_t at = 0;
    count_ud c = {0, 0, 0, false};
    while (at < len) {
        x = x * 1664525u + 1013904223u;
        size_t k = 1 + (x >> 24) % 9;
        if (k > len - at) k = len - at;
        assert_int_equal(nuage_toolparse_feed(p, text + at, k, at + k == len, count_cb, &c), 0);
        at += k;
    }
    assert_false(c.bad);
    assert_int_equal(c.calls, 200);
    assert_int_equal(c.content, content);
    assert_int_equal(nuage_toolparse_n_calls(p), 200);
    nuage_toolparse_free(p);
}

/* A 300 KB argument fed in 3-byte pieces is read once, not once per
 * piece (the quadratic rescan took tens of seconds here; now milliseconds),
 * for a JSON family, harmony and Gemma 4. */
static void test_long_argument(void **state) {
    (void)state;
    size_t big = 300000;
    char *text = malloc(big + 512);
    assert_non_null(text);
    static const struct { nuage_toolfmt fmt; const char *pre, *post; } F[] = {
        {NUAGE_TOOLFMT_HERMES, "<tool_call>\n{\"name\": \"search_docs\", \"arguments\": {\"query\": \"", "\"}}\n</tool_call>"},
        {NUAGE_TOOLFMT_HARMONY, "<|channel|>commentary to=functions.search_docs <|constrain|>json<|message|>{\"query\": \"",
         "\"}<|call|>"},
        {NUAGE_TOOLFMT_GEMMA4, "<|tool_call>call:search_docs{query:<|\"|>", "<|\"|>}<tool_call|>"},
    };
    for (size_t f = 0; f < sizeof F / sizeof F[0]; f++) {
        size_t n = (size_t)sprintf(text, "%s", F[f].pre);
        for (size_t i = 0; i < big; i++) text[n++] = "ab }{][<>"[i % 9];
        n += (size_t)sprintf(text + n, "%s", F[f].post);
        count_ud c = {0, 0, 0, false};
        nuage_toolparse *p = nuage_toolparse_new(F[f].fmt, NAMES, NN);
        clock_t t0 = clock();
        for (size_t at = 0; at < n; at += 3) {
            size_t k = n - at < 3 ? n - at : 3;
            assert_int_equal(nuage_toolparse_feed(p, text + at, k, at + k == n, count_cb, &c), 0);
        }
        double secs = (double)(clock() - t0) / CLOCKS_PER_SEC;
        print_message("%s: %zu bytes in 3-byte pieces: %.3f s\n", nuage_toolfmt_name(F[f].fmt), n, secs);
        assert_int_equal(c.calls, 1);
        assert_false(c.bad);
        assert_int_equal(c.content, 0);
        assert_true(secs < 5.0);
        nuage_toolparse_free(p);
    }
    free(text);
}

/* Eager mode: fed byte by byte, a call is announced before its markup is
 * complete and its arguments arrive in several fragments, none ending
 * inside a UTF-8 sequence; content and calls add up to exactly what the
 * default mode gives for the whole output. */
typedef struct {
    tp_result r;
    int n_frags[TP_MAX_CALLS];
    bool split_utf8;
    size_t fed;               /* bytes fed when the first CALL_START came */
    size_t at;                /* bytes fed so far */
} eager_obs;

static int eager_collect(const nuage_tp_event *ev, void *ud) {
    eager_obs *o = ud;
    if (ev->kind == NUAGE_TP_CALL_START && o->fed == 0) o->fed = o->at;
    if (ev->kind == NUAGE_TP_CALL_ARGS && ev->index >= 0 && ev->index < TP_MAX_CALLS) {
        o->n_frags[ev->index]++;
        /* a fragment must neither start nor end inside a UTF-8 sequence */
        if (ev->len && ((unsigned char)ev->text[0] & 0xC0) == 0x80) o->split_utf8 = true;
        size_t k = ev->len;
        while (k && ((unsigned char)ev->text[k - 1] & 0xC0) == 0x80) k--;
        if (k) {
            unsigned char lead = (unsigned char)ev->text[k - 1];
            size_t need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
            if (ev->len - (k - 1) != need) o->split_utf8 = true;
        }
    }
    return tp_collect(ev, &o->r);
}

static void test_eager_streaming(void **state) {
    (void)state;
    static const struct {
        nuage_toolfmt fmt;
        const char *text;
    } E[] = {
        {NUAGE_TOOLFMT_HERMES, "Checking.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"location\": "
                               "\"Z\xc3\xbcrich \xe6\x9d\xb1\xe4\xba\xac \xf0\x9f\x8c\xa7\", \"unit\": \"celsius\"}}\n</tool_call>\n"
                               "<tool_call>\n{\"name\": \"search_docs\", \"arguments\": " ARGS2 "}\n</tool_call>"},
        {NUAGE_TOOLFMT_LLAMA3, "{\"name\": \"get_weather\", \"parameters\": " ARGS1 "}"},
        {NUAGE_TOOLFMT_LLAMA3, "<|python_tag|>{\"name\": \"search_docs\", \"parameters\": " ARGS2 "}"},
        {NUAGE_TOOLFMT_MISTRAL, "[TOOL_CALLS][{\"name\": \"get_weather\", \"arguments\": " ARGS1 "}, "
                                "{\"name\": \"search_docs\", \"arguments\": " ARGS2 "}]"},
        {NUAGE_TOOLFMT_MISTRAL, "[TOOL_CALLS]get_weather[ARGS]" ARGS1},
        {NUAGE_TOOLFMT_DEEPSEEK,
         DS_CALLS_BEGIN DS_CALL_BEGIN "function" DS_SEP "get_weather\n```json\n" ARGS1 "\n```" DS_CALL_END},
        {NUAGE_TOOLFMT_DEEPSEEK, DS_CALLS_BEGIN DS_CALL_BEGIN "get_weather" DS_SEP ARGS1 DS_CALL_END DS_CALL_BEGIN
                                 "search_docs" DS_SEP ARGS2 DS_CALL_END DS_CALLS_END},
        {NUAGE_TOOLFMT_KIMI,
         "<|tool_calls_section_begin|><|tool_call_begin|>functions.get_weather:0<|tool_call_argument_begin|>" ARGS1
         "<|tool_call_end|><|tool_call_begin|>functions.search_docs:1<|tool_call_argument_begin|>" ARGS2
         "<|tool_call_end|><|tool_calls_section_end|>"},
        {NUAGE_TOOLFMT_GENERIC, "{\"tool_calls\": [{\"name\": \"get_weather\", \"arguments\": " ARGS1 "}]}"},
        {NUAGE_TOOLFMT_GENERIC, "{\"tool_calls\": [{\"name\": \"search_docs\", \"arguments\": " ARGS2 "}, "
                                "{\"name\": \"get_weather\", \"arguments\": " ARGS1 "}], \"content\": \"Both.\"}"},
    };
    for (size_t i = 0; i < sizeof E / sizeof E[0]; i++) {
        tp_result whole;
        tp_parse(E[i].fmt, NAMES, NN, E[i].text, &whole);
        assert_false(whole.bad);
        assert_true(whole.n_calls >= 1);
        eager_obs o;
        memset(&o, 0, sizeof o);
        nuage_toolparse *p = nuage_toolparse_new(E[i].fmt, NAMES, NN);
        assert_non_null(p);
        nuage_toolparse_set_eager(p, true, false);
        size_t len = strlen(E[i].text);
        for (size_t k = 0; k < len; k++) {
            o.at = k + 1;
            assert_int_equal(nuage_toolparse_feed(p, E[i].text + k, 1, false, eager_collect, &o), 0);
        }
        assert_int_equal(nuage_toolparse_feed(p, "", 0, true, eager_collect, &o), 0);
        nuage_toolparse_free(p);
        if (!tp_same(&whole, &o.r)) fail_msg("eager case %zu: %s; content [%s] calls %d", i, o.r.why, o.r.content, o.r.n_calls);
        assert_false(o.split_utf8);
        /* announced early: well before the (first) call's arguments end */
        const char *a1 = strstr(E[i].text, "\"location\"") ? strstr(E[i].text, "\"location\"") : strstr(E[i].text, "\"query\"");
        assert_true(o.fed > 0 && o.fed <= (size_t)(a1 - E[i].text));
        assert_true(o.n_frags[0] >= 10);
    }
    /* Llama 3 with a blank after '{': no lazy trigger there, so announced
     * early only when the grammar forced calls from the first token */
    for (int from_start = 0; from_start <= 1; from_start++) {
        const char *t = "{\n  \"name\": \"get_weather\",\n  \"parameters\": " ARGS1 "\n}";
        eager_obs o;
        memset(&o, 0, sizeof o);
        nuage_toolparse *p = nuage_toolparse_new(NUAGE_TOOLFMT_LLAMA3, NAMES, NN);
        assert_non_null(p);
        nuage_toolparse_set_eager(p, true, from_start);
        for (size_t k = 0; t[k]; k++) {
            o.at = k + 1;
            assert_int_equal(nuage_toolparse_feed(p, t + k, 1, false, eager_collect, &o), 0);
        }
        assert_int_equal(nuage_toolparse_feed(p, "", 0, true, eager_collect, &o), 0);
        nuage_toolparse_free(p);
        assert_false(o.r.bad);
        assert_int_equal(o.r.n_calls, 1);
        assert_string_equal(o.r.args[0], ARGS1C);
        if (from_start) assert_true(o.n_frags[0] >= 10);
        else assert_int_equal(o.n_frags[0], 1);
    }
    /* cut short after the call was announced: no CALL_END, no markup as content */
    eager_obs o;
    memset(&o, 0, sizeof o);
    nuage_toolparse *p = nuage_toolparse_new(NUAGE_TOOLFMT_HERMES, NAMES, NN);
    assert_non_null(p);
    nuage_toolparse_set_eager(p, true, false);
    const char *cut = "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"location\": \"Par";
    assert_int_equal(nuage_toolparse_feed(p, cut, strlen(cut), false, eager_collect, &o), 0);
    assert_true(o.r.open);
    assert_string_equal(o.r.frag[0], "{\"location\":\"Par");
    assert_int_equal(nuage_toolparse_feed(p, "", 0, true, eager_collect, &o), 0);
    assert_int_equal(nuage_toolparse_n_calls(p), 0);
    assert_int_equal(o.r.content_len, 0);
    nuage_toolparse_free(p);
    /* forced from the start, cut before the head: dropped; lazily, content */
    for (int from_start = 0; from_start <= 1; from_start++) {
        memset(&o, 0, sizeof o);
        p = nuage_toolparse_new(NUAGE_TOOLFMT_HERMES, NAMES, NN);
        nuage_toolparse_set_eager(p, true, from_start);
        const char *head = "<tool_call>\n{\"name\": \"get_wea";
        assert_int_equal(nuage_toolparse_feed(p, head, strlen(head), true, eager_collect, &o), 0);
        assert_false(o.r.bad);
        assert_int_equal(o.r.n_calls, 0);
        assert_string_equal(o.r.content, from_start ? "" : head);
        nuage_toolparse_free(p);
    }
    /* an undeclared name is never announced: the block stays content */
    memset(&o, 0, sizeof o);
    p = nuage_toolparse_new(NUAGE_TOOLFMT_HERMES, NAMES, NN);
    nuage_toolparse_set_eager(p, true, false);
    const char *bad = "<tool_call>\n{\"name\": \"rm_rf\", \"arguments\": {\"path\": \"/\"}}\n</tool_call>";
    assert_int_equal(nuage_toolparse_feed(p, bad, strlen(bad), false, eager_collect, &o), 0);
    assert_int_equal(nuage_toolparse_feed(p, "", 0, true, eager_collect, &o), 0);
    assert_false(o.r.bad);
    assert_int_equal(o.r.n_calls, 0);
    assert_string_equal(o.r.content, bad);
    nuage_toolparse_free(p);
}

static void test_names(void **state) {
    (void)state;
    for (int f = NUAGE_TOOLFMT_HERMES; f <= NUAGE_TOOLFMT_GEMMA4; f++)
        assert_int_equal(nuage_toolfmt_from_name(nuage_toolfmt_name((nuage_toolfmt)f)), f);
    assert_int_equal(nuage_toolfmt_from_name("qwen"), NUAGE_TOOLFMT_NONE);
    assert_int_equal(nuage_toolfmt_from_name(NULL), NUAGE_TOOLFMT_NONE);
}

/* The generic instruction lists every tool with its schema and shows the
 * envelope the generic parser reads. */
static void test_generic_instruction(void **state) {
    (void)state;
    json_t *tools = json_loads("[{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", "
                               "\"description\": \"Current weather\", \"parameters\": {\"type\": \"object\", "
                               "\"properties\": {\"city\": {\"type\": \"string\"}}}}}, {\"type\": \"function\", "
                               "\"function\": {\"name\": \"ping\"}}]", 0, NULL);
    assert_non_null(tools);
    char *ins = nuage_toolfmt_generic_instruction(tools);
    assert_non_null(ins);
    assert_non_null(strstr(ins, "## get_weather\nCurrent weather\n"));
    assert_non_null(strstr(ins, "{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"}}}"));
    assert_non_null(strstr(ins, "## ping\n"));
    assert_non_null(strstr(ins, "{\"tool_calls\": [{\"name\": "));
    free(ins);
    json_t *empty = json_array();
    assert_null(nuage_toolfmt_generic_instruction(empty));
    assert_null(nuage_toolfmt_generic_instruction(NULL));
    json_decref(empty);
    json_decref(tools);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cases),
        cmocka_unit_test(test_no_tools_everything_is_content),
        cmocka_unit_test(test_holds_partial_trigger),
        cmocka_unit_test(test_callback_stop),
        cmocka_unit_test(test_long_stream),
        cmocka_unit_test(test_long_argument),
        cmocka_unit_test(test_eager_streaming),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_generic_instruction),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
