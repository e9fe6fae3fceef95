/*
 * test_toolcall_templates.c - tool-call families against real chat
 * templates: nuage_toolfmt_detect on small inline templates (always) and
 * on every template of ../shared/templates; and, for each shared case with
 * an assistant message carrying tool_calls, the text the template renders
 * for that message (what the model was trained to write) parsed back into
 * the same calls by nuage_toolparse, whole and from every split point.
 * (Links the whole library: it needs both the template engine and
 * nuage_constrain.)
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>

#include "constrain/tooljson.h"
#include "nuage/template.h"
#include "test_toolparse_util.h"
#include "test_util.h"

#define PINNED_NOW 1795910400

static void test_detect_inline(void **state) {
    (void)state;
    static const struct { const char *tmpl; nuage_toolfmt want; } D[] = {
        {"{% for m in messages %}<tool_call>\n{{ m.content }}</tool_call>{% endfor %}", NUAGE_TOOLFMT_HERMES},
        {"{{ '<|start_header_id|>ipython<|end_header_id|>' }}", NUAGE_TOOLFMT_LLAMA3},
        {"{{ '<|python_tag|>' + x }}", NUAGE_TOOLFMT_LLAMA3},
        {"[INST]{{ m }}[/INST][TOOL_CALLS]{{ calls|tojson }}", NUAGE_TOOLFMT_MISTRAL},
        {"{{'<\xef\xbd\x9ctool\xe2\x96\x81" "call\xe2\x96\x81" "begin\xef\xbd\x9c>'}}", NUAGE_TOOLFMT_DEEPSEEK},
        {"<|start|>assistant to=functions.{{ n }}<|channel|>commentary json<|message|>{{ a }}<|call|>",
         NUAGE_TOOLFMT_HARMONY},
        {"<|tool_calls_section_begin|>{{ x }}<|tool_calls_section_end|>", NUAGE_TOOLFMT_KIMI},
        {"{{- '<|tool_call>call:' + function['name'] + '{' -}}", NUAGE_TOOLFMT_GEMMA4},
        {"{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}",
         NUAGE_TOOLFMT_GENERIC},
        {"", NUAGE_TOOLFMT_GENERIC},
        {NULL, NUAGE_TOOLFMT_GENERIC},
    };
    for (size_t i = 0; i < sizeof D / sizeof D[0]; i++)
        assert_int_equal(nuage_toolfmt_detect(D[i].tmpl), D[i].want);
    assert_int_equal(nuage_toolfmt_detect(nuage_template_chatml()), NUAGE_TOOLFMT_GENERIC);
}

static const struct { const char *file; nuage_toolfmt want; } SHARED[] = {
    {"Mistral-Small-3.2-24B-Instruct-2506.jinja", NUAGE_TOOLFMT_MISTRAL},
    {"Qwen-Qwen2.5-7B-Instruct.jinja", NUAGE_TOOLFMT_HERMES},
    {"Qwen-Qwen3-0.6B.jinja", NUAGE_TOOLFMT_HERMES},
    {"deepseek-ai-DeepSeek-R1-Distill-Llama-8B.jinja", NUAGE_TOOLFMT_DEEPSEEK},
    {"deepseek-ai-DeepSeek-V3.1.jinja", NUAGE_TOOLFMT_DEEPSEEK},
    {"google-gemma-2-2b-it.jinja", NUAGE_TOOLFMT_GENERIC},
    {"google-gemma-4-31B-it.jinja", NUAGE_TOOLFMT_GEMMA4},
    {"meta-llama-Llama-3.1-8B-Instruct.jinja", NUAGE_TOOLFMT_LLAMA3},
    {"meta-llama-Llama-3.2-3B-Instruct.jinja", NUAGE_TOOLFMT_LLAMA3},
    {"mistralai-Mistral-Nemo-Instruct-2407.jinja", NUAGE_TOOLFMT_MISTRAL},
    {"moonshotai-Kimi-K2.jinja", NUAGE_TOOLFMT_KIMI},
    {"openai-gpt-oss-120b.jinja", NUAGE_TOOLFMT_HARMONY},
};
#define N_SHARED (sizeof SHARED / sizeof SHARED[0])

static char *read_template(const char *file, size_t *len) {
    char rel[256];
    snprintf(rel, sizeof rel, "templates/%s", file);
    return nuage_test_read_file(nuage_test_shared_path(rel), len);
}

static void test_detect_shared(void **state) {
    (void)state;
    NUAGE_REQUIRE_SHARED();
    for (size_t i = 0; i < N_SHARED; i++) {
        char *src = read_template(SHARED[i].file, NULL);
        assert_non_null(src);
        if (nuage_toolfmt_detect(src) != SHARED[i].want)
            fail_msg("%s: detected %s, want %s", SHARED[i].file, nuage_toolfmt_name(nuage_toolfmt_detect(src)),
                     nuage_toolfmt_name(SHARED[i].want));
        free(src);
    }
}

/* Render messages[0..n) of a case (generation prompt when gen). */
static char *render(const nuage_template *t, json_t *cs, size_t n, bool gen) {
    json_t *msgs = json_array();
    for (size_t i = 0; i < n; i++) json_array_append(msgs, json_array_get(json_object_get(cs, "messages"), i));
    json_t *tools = json_object_get(cs, "tools");
    nuage_template_input in = {
        .add_generation_prompt = gen,
        .bos_token = json_string_value(json_object_get(cs, "bos_token")),
        .eos_token = json_string_value(json_object_get(cs, "eos_token")),
        .now = PINNED_NOW,
    };
    char *out = NULL, err[256];
    size_t olen;
    int rc = nuage_template_render_json(t, msgs, json_is_null(tools) ? NULL : tools, NULL, &in, &out, &olen,
                                        err, sizeof err);
    json_decref(msgs);
    if (rc) fail_msg("render: %s", err);
    return out;
}

/* Content left around the calls may only be end-of-turn markup. */
static bool only_end_of_turn(const char *c) {
    /* Qwen3 renders an (empty) reasoning block that the server splits off */
    if (!strncmp(c, "<think>", 7) && strstr(c, "</think>")) c = strstr(c, "</think>") + 8;
    /* and so does Gemma 4's thought channel (the prompt may open it) */
    if (strstr(c, "<channel|>")) c = strstr(c, "<channel|>") + 10;
    static const char *const eot[] = {"<turn|>", "<|tool_response>", "<|im_end|>", "<|eot_id|>", "</s>", "<|end|>", "<|call|>",
                                      "<\xef\xbd\x9c" "end\xe2\x96\x81" "of\xe2\x96\x81" "sentence\xef\xbd\x9c>",
                                      "<\xef\xbd\x9ctool\xe2\x96\x81" "calls\xe2\x96\x81" "end\xef\xbd\x9c>", NULL};
    while (*c) {
        if (*c == ' ' || *c == '\n') { c++; continue; }
        size_t k;
        for (k = 0; eot[k]; k++)
            if (!strncmp(c, eot[k], strlen(eot[k]))) break;
        if (!eot[k]) return false;
        c += strlen(eot[k]);
    }
    return true;
}

static int check_case(json_t *cs, nuage_toolfmt fmt, const nuage_template *t) {
    json_t *msgs = json_object_get(cs, "messages");
    size_t ai;
    json_t *m = NULL;
    json_array_foreach(msgs, ai, m) if (json_object_get(m, "tool_calls")) break;
    if (ai == json_array_size(msgs)) return 0;
    char *full = render(t, cs, ai + 1, false), *pre = render(t, cs, ai, true);
    size_t k = 0;
    while (pre[k] && pre[k] == full[k]) k++;
    /* where the generation prompt and the turn differ (R1's prompt ends in
     * <think>), cut after the last complete tag or line */
    if (pre[k])
        while (k && full[k - 1] != '>' && full[k - 1] != '\n') k--;
    /* Mistral Nemo moves the tool list next to the last user turn */
    if (fmt == NUAGE_TOOLFMT_MISTRAL) {
        const char *inst = full, *h;
        while ((h = strstr(inst, "[/INST]"))) inst = h + 7;
        k = (size_t)(inst - full);
    }
    const char *out = full + k;
    json_t *calls = json_object_get(m, "tool_calls");
    size_t want = json_array_size(calls);
    if (fmt == NUAGE_TOOLFMT_HARMONY) want = 1;   /* the template renders the first call only */
    const char *names[] = {"get_weather", "search_docs"};
    tp_result r;
    tp_parse(fmt, names, 2, out, &r);
    int bad = 0;
    if (r.bad || (size_t)r.n_calls != want || !only_end_of_turn(r.content)) {
        print_message("FAIL %s/%s: %d calls (want %zu), content [%s] from [%s]\n",
                      json_string_value(json_object_get(cs, "template")),
                      json_string_value(json_object_get(cs, "case")), r.n_calls, want, r.content, out);
        bad = 1;
    }
    for (size_t i = 0; !bad && i < want; i++) {
        json_t *f = json_object_get(json_array_get(calls, i), "function");
        json_t *a = json_object_get(f, "arguments");
        json_t *parsed = json_is_string(a) ? json_loads(json_string_value(a), 0, NULL) : json_incref(a);
        char *wa = json_dumps(parsed, JSON_COMPACT);
        /* same JSON value (Gemma 4 sorts the keys); compact spelling */
        json_t *got = json_loads(r.args[i], 0, NULL);
        char *compact = nuage__tj_compact(r.args[i], strlen(r.args[i]), NULL);
        bool same_args = got && json_equal(got, parsed) && compact && !strcmp(compact, r.args[i]);
        free(compact);
        json_decref(got);
        json_decref(parsed);
        if (strcmp(r.name[i], json_string_value(json_object_get(f, "name"))) || !same_args) {
            print_message("FAIL call %zu: %s %s, want %s\n", i, r.name[i], r.args[i], wa);
            bad = 1;
        }
        free(wa);
    }
    if (!bad && tp_split_invariant(fmt, names, 2, out) >= 0) {
        print_message("FAIL %s: split differs\n", json_string_value(json_object_get(cs, "template")));
        bad = 1;
    }
    free(full);
    free(pre);
    return bad;
}

static void test_rendered_calls_parse(void **state) {
    (void)state;
    NUAGE_REQUIRE_SHARED();
    json_error_t je;
    json_t *cases = json_load_file(nuage_test_shared_path("templates/cases.json"), 0, &je);
    assert_non_null(cases);
    int checked = 0, failures = 0;
    size_t i;
    json_t *cs;
    json_array_foreach(cases, i, cs) {
        if (json_is_true(json_object_get(cs, "expect_error"))) continue;
        const char *file = json_string_value(json_object_get(cs, "template"));
        nuage_toolfmt fmt = NUAGE_TOOLFMT_NONE;
        for (size_t s = 0; s < N_SHARED; s++)
            if (!strcmp(SHARED[s].file, file)) fmt = SHARED[s].want;
        if (fmt == NUAGE_TOOLFMT_GENERIC || fmt == NUAGE_TOOLFMT_NONE) continue;
        size_t len = 0;
        char *src = read_template(file, &len), err[256];
        nuage_template *t = NULL;
        assert_int_equal(nuage_template_parse(src, len, &t, err, sizeof err), 0);
        free(src);
        json_t *msgs = json_object_get(cs, "messages");
        size_t ai;
        json_t *m;
        bool has = false;
        json_array_foreach(msgs, ai, m) if (json_object_get(m, "tool_calls")) has = true;
        if (has) {
            failures += check_case(cs, fmt, t);
            checked++;
        }
        nuage_template_free(t);
    }
    json_decref(cases);
    print_message("%d rendered tool-call turns parsed, %d failures\n", checked, failures);
    assert_true(checked >= 15);
    assert_int_equal(failures, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_detect_inline),
        cmocka_unit_test(test_detect_shared),
        cmocka_unit_test(test_rendered_calls_parse),
    };
    return nuage_test_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
