/*
 * test_router.c - the routing policy of router deployments
 * (src/platform/router.h): configuration parsing, explicit reasoning
 * effort, model hints, the score (length, code, math, depth, keywords,
 * threshold), the decision counters and the registry hook.
 *
 * Scores are checked against values computed here from the documented
 * formula (weight * min(bytes / unit, cap) + code + math + depth * (turns
 * - 1) + keyword weights) with each feature isolated by zeroing the other
 * weights, so a wrong feature detector or a wrong formula both fail.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <math.h>
#include <stdint.h>
#include <strings.h>

#include <cmocka.h>

#include "test_util.h"
#include "platform/router.h"
#include "platform/thinking.h"

static nuage_router_config *cfg_from(const char *json) {
    json_error_t je;
    json_t *j = json_loads(json, 0, &je);
    if (!j) fprintf(stderr, "bad test JSON: %s\n", je.text);
    assert_non_null(j);
    nuage_router_config *c = NULL;
    char err[200] = "";
    int rc = nuage_router_config_parse(j, &c, err, sizeof err);
    if (rc) fprintf(stderr, "config: %s\n", err);
    assert_int_equal(rc, 0);
    json_decref(j);
    return c;
}

/* Only the given weights on (others 0), threshold 1. */
#define ISOLATED(extra)                                                                    \
    "{\"targets\": {\"fast\": \"small\", \"reasoning\": \"big\"}, \"threshold\": 1.0,"    \
    " \"weights\": {\"length\": 0, \"code\": 0, \"math\": 0, \"depth\": 0" extra "}, \"keywords\": {}}"

static nuage_router_decision decide_json(const nuage_router_config *c, const char *req, const char *router) {
    json_error_t je;
    json_t *j = json_loads(req, 0, &je);
    if (!j) fprintf(stderr, "bad request JSON: %s\n", je.text);
    assert_non_null(j);
    nuage_router_decision d;
    int rc = nuage_router_decide(c, j, router, &d);
    if (rc) fprintf(stderr, "decide: %s\n", d.reasons);
    assert_int_equal(rc, 0);
    /* pure: a second call decides the same */
    nuage_router_decision d2;
    assert_int_equal(nuage_router_decide(c, j, router, &d2), 0);
    assert_int_equal(d.target, d2.target);
    assert_true(d.score == d2.score);
    assert_string_equal(d.reasons, d2.reasons);
    json_decref(j);
    return d;
}

/* A chat body with one user message (text JSON-escaped by jansson). */
static nuage_router_decision decide_user(const nuage_router_config *c, const char *text) {
    json_t *j = json_pack("{s:s, s:[{s:s, s:s}]}", "model", "auto", "messages", "role", "user", "content", text);
    assert_non_null(j);
    nuage_router_decision d;
    assert_int_equal(nuage_router_decide(c, j, "auto", &d), 0);
    json_decref(j);
    return d;
}

static void test_config_errors(void **state) {
    (void)state;
    static const char *bad[] = {
        "[]",
        "{}",
        "{\"targets\": {\"fast\": \"a\"}}",
        "{\"targets\": {\"fast\": \"a\", \"reasoning\": 3}}",
        "{\"targets\": {\"fast\": \"a\", \"slow\": \"b\"}}",
        "{\"targets\": {\"fast\": \"a\", \"reasoning\": \"b\"}, \"colour\": 1}",
        "{\"targets\": {\"fast\": \"a\", \"reasoning\": \"b\"}, \"threshold\": \"high\"}",
        "{\"targets\": {\"fast\": \"a\", \"reasoning\": \"b\"}, \"weights\": {\"cod\": 1}}",
        "{\"targets\": {\"fast\": \"a\", \"reasoning\": \"b\"}, \"weights\": {\"length_unit\": 0}}",
        "{\"targets\": {\"fast\": \"a\", \"reasoning\": \"b\"}, \"effort\": {\"high\": \"slow\"}}",
        "{\"targets\": {\"fast\": \"a\", \"reasoning\": \"b\"}, \"keywords\": {\"x\": \"1\"}}",
        "{\"targets\": {\"fast\": \"a\", \"reasoning\": \"b\"}, \"hints\": []}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        json_t *j = json_loads(bad[i], 0, NULL);
        assert_non_null(j);
        nuage_router_config *c = (nuage_router_config *)1;
        char err[200] = "";
        assert_int_equal(nuage_router_config_parse(j, &c, err, sizeof err), NUAGE_E_INVAL);
        assert_null(c);
        assert_true(strlen(err) > 0);
        json_decref(j);
    }
    /* the message names the field */
    json_t *j = json_loads(bad[7], 0, NULL);
    nuage_router_config *c;
    char err[200];
    nuage_router_config_parse(j, &c, err, sizeof err);
    assert_non_null(strstr(err, "weights.cod"));
    json_decref(j);
    c = cfg_from("{\"targets\": {\"fast\": \"a\", \"reasoning\": \"b\"}}");
    assert_string_equal(nuage_router_target_name(c, NUAGE_ROUTE_FAST), "a");
    assert_string_equal(nuage_router_target_name(c, NUAGE_ROUTE_REASONING), "b");
    nuage_router_config_free(c);
}

static void test_explicit_effort(void **state) {
    (void)state;
    nuage_router_config *c = cfg_from(ISOLATED(""));
    static const struct { const char *effort; int target; } cases[] = {
        {"minimal", NUAGE_ROUTE_FAST}, {"none", NUAGE_ROUTE_FAST},        {"low", NUAGE_ROUTE_REASONING},
        {"medium", NUAGE_ROUTE_REASONING}, {"high", NUAGE_ROUTE_REASONING}, {"HIGH", NUAGE_ROUTE_REASONING},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char req[200];
        snprintf(req, sizeof req, "{\"model\": \"auto:fast\", \"reasoning_effort\": \"%s\", \"messages\": "
                 "[{\"role\": \"user\", \"content\": \"hi\"}]}", cases[i].effort);
        nuage_router_decision d = decide_json(c, req, "auto");
        assert_int_equal(d.target, cases[i].target);
        assert_int_equal(d.rule, NUAGE_ROUTE_BY_EFFORT);
        assert_string_equal(d.deployment, cases[i].target ? "big" : "small");
        assert_true(!strcasecmp(d.effort, cases[i].effort));
        assert_non_null(strstr(d.reasons, "reasoning_effort="));
    }
    /* Responses-API form */
    nuage_router_decision d = decide_json(c, "{\"reasoning\": {\"effort\": \"low\"}, \"prompt\": \"x\"}", NULL);
    assert_int_equal(d.target, NUAGE_ROUTE_REASONING);
    assert_string_equal(d.effort, "low");
    /* explicit minimal beats a prompt that would score high */
    nuage_router_config *c2 = cfg_from("{\"targets\": {\"fast\": \"small\", \"reasoning\": \"big\"}}");
    d = decide_json(c2, "{\"reasoning_effort\": \"minimal\", \"messages\": [{\"role\": \"user\", \"content\":"
                        " \"Prove step by step that the integral of x^2 is x^3/3. ```python\\nprint(1)\\n```\"}]}",
                    NULL);
    assert_int_equal(d.target, NUAGE_ROUTE_FAST);
    assert_true(d.score >= 1.0); /* the features were still measured */
    /* unknown and wrongly typed efforts are errors */
    static const char *bad[] = {"{\"reasoning_effort\": \"extreme\"}", "{\"reasoning_effort\": 3}",
                                "{\"reasoning\": {\"effort\": true}}"};
    for (size_t i = 0; i < 3; i++) {
        json_t *j = json_loads(bad[i], 0, NULL);
        nuage_router_decision e;
        assert_int_equal(nuage_router_decide(c, j, NULL, &e), NUAGE_E_INVAL);
        assert_non_null(strstr(e.reasons, "reasoning_effort"));
        json_decref(j);
    }
    /* a configured level */
    nuage_router_config *c3 = cfg_from("{\"targets\": {\"fast\": \"small\", \"reasoning\": \"big\"},"
                                       " \"effort\": {\"low\": \"fast\", \"max\": \"reasoning\"}}");
    d = decide_json(c3, "{\"reasoning_effort\": \"low\"}", NULL);
    assert_int_equal(d.target, NUAGE_ROUTE_FAST);
    d = decide_json(c3, "{\"reasoning_effort\": \"max\"}", NULL);
    assert_int_equal(d.target, NUAGE_ROUTE_REASONING);
    d = decide_json(c3, "{\"reasoning_effort\": \"high\"}", NULL); /* defaults kept */
    assert_int_equal(d.target, NUAGE_ROUTE_REASONING);
    nuage_router_config_free(c3);
    nuage_router_config_free(c2);
    nuage_router_config_free(c);
}

static void test_hints(void **state) {
    (void)state;
    /* threshold 1 with a keyword worth 2: the score alone says reasoning */
    nuage_router_config *c = cfg_from("{\"targets\": {\"fast\": \"small\", \"reasoning\": \"big\"},"
                                      " \"hints\": {\"quick\": \"fast\", \"brainy\": \"reasoning\"},"
                                      " \"keywords\": {\"ponder\": 2}}");
    const char *msgs = "\"messages\": [{\"role\": \"user\", \"content\": \"ponder this\"}]";
    static const struct { const char *model, *router; int target, rule; } cases[] = {
        {"auto:fast", "auto", NUAGE_ROUTE_FAST, NUAGE_ROUTE_BY_HINT},
        {"auto:instant", "auto", NUAGE_ROUTE_FAST, NUAGE_ROUTE_BY_HINT},
        {"auto:Quick", "auto", NUAGE_ROUTE_FAST, NUAGE_ROUTE_BY_HINT},
        {"auto:thinking", "auto", NUAGE_ROUTE_REASONING, NUAGE_ROUTE_BY_HINT},
        {"auto:brainy", "auto", NUAGE_ROUTE_REASONING, NUAGE_ROUTE_BY_HINT},
        {"small", "auto", NUAGE_ROUTE_FAST, NUAGE_ROUTE_BY_HINT},        /* a target by name */
        {"big", "auto", NUAGE_ROUTE_REASONING, NUAGE_ROUTE_BY_HINT},
        {"other:fast", "auto", NUAGE_ROUTE_REASONING, NUAGE_ROUTE_BY_SCORE}, /* not our name */
        {"auto:unknown", "auto", NUAGE_ROUTE_REASONING, NUAGE_ROUTE_BY_SCORE},
        {"auto", "auto", NUAGE_ROUTE_REASONING, NUAGE_ROUTE_BY_SCORE},
        {"x:fast", NULL, NUAGE_ROUTE_FAST, NUAGE_ROUTE_BY_HINT},           /* router name unknown */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char req[300];
        snprintf(req, sizeof req, "{\"model\": \"%s\", %s}", cases[i].model, msgs);
        nuage_router_decision d = decide_json(c, req, cases[i].router);
        if ((int)d.target != cases[i].target || (int)d.rule != cases[i].rule)
            fprintf(stderr, "case %zu (%s): %s\n", i, cases[i].model, d.reasons);
        assert_int_equal(d.target, cases[i].target);
        assert_int_equal(d.rule, cases[i].rule);
    }
    nuage_router_config_free(c);
}

static void test_code_detection(void **state) {
    (void)state;
    nuage_router_config *c = cfg_from(ISOLATED(", \"code\": 1.5"));
    static const struct { const char *text; bool code; } cases[] = {
        {"Why does this fail?\n```c\nint main(void) { return 0; }\n```", true},
        {"def f(x):\n    return x + 1\nwhy is f(2) not 4?", true},
        {"#include <stdio.h>\nint main() { printf(\"hi\"); }", true},
        {"const add = (a, b) => a + b;\nconsole.log(add(1, 2));", true},
        {"SELECT name FROM users\nwhere id = 3; -- slow query, from the logs\nfrom users?", true},
        {"I would like to import cars from Germany and class them by colour.", false},
        {"Tell me a story about a dragon who loves tea.", false},
        {"What is the return policy of the shop?", false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        nuage_router_decision d = decide_user(c, cases[i].text);
        if (d.has_code != cases[i].code) fprintf(stderr, "code case %zu: got %d\n", i, d.has_code);
        assert_int_equal(d.has_code, cases[i].code);
        assert_true(fabs(d.score - (cases[i].code ? 1.5 : 0.0)) < 1e-12);
        assert_int_equal(d.target, cases[i].code ? NUAGE_ROUTE_REASONING : NUAGE_ROUTE_FAST);
        assert_int_equal(d.rule, NUAGE_ROUTE_BY_SCORE);
        assert_string_equal(d.effort, cases[i].code ? "medium" : "");
        if (cases[i].code) assert_non_null(strstr(d.reasons, "code +1.50"));
    }
    nuage_router_config_free(c);
}

static void test_math_detection(void **state) {
    (void)state;
    nuage_router_config *c = cfg_from(ISOLATED(", \"math\": 1.25"));
    static const struct { const char *text; bool math; } cases[] = {
        {"Compute \\frac{1}{2} + \\frac{1}{3}.", true},
        {"Solve 3x + 5 = 20 for x.", true},
        {"What is the derivative of x^2 + 3x?", true},
        {"Evaluate \xe2\x88\xab sin(t) dt from 0 to \xcf\x80.", true},
        {"Is 91 a prime number? Check 91 / 7 first.", true},
        {"What is 2 + 2?", false}, /* one weak sign only */
        {"We meet at 3 in room 12-B.", false},
        {"Write a haiku about autumn leaves.", false},
        {"The equation of my life is simple.", false}, /* a word alone */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        nuage_router_decision d = decide_user(c, cases[i].text);
        if (d.has_math != cases[i].math) fprintf(stderr, "math case %zu: got %d\n", i, d.has_math);
        assert_int_equal(d.has_math, cases[i].math);
        assert_true(fabs(d.score - (cases[i].math ? 1.25 : 0.0)) < 1e-12);
        assert_int_equal(d.target, cases[i].math ? NUAGE_ROUTE_REASONING : NUAGE_ROUTE_FAST);
    }
    nuage_router_config_free(c);
}

static void test_depth(void **state) {
    (void)state;
    nuage_router_config *c = cfg_from(ISOLATED(", \"depth\": 0.3"));
    for (int turns = 1; turns <= 6; turns++) {
        json_t *msgs = json_array();
        json_array_append_new(msgs, json_pack("{s:s, s:s}", "role", "system", "content", "Be nice."));
        for (int t = 0; t < turns; t++) {
            json_array_append_new(msgs, json_pack("{s:s, s:s}", "role", "user", "content", "hello"));
            if (t + 1 < turns)
                json_array_append_new(msgs, json_pack("{s:s, s:s}", "role", "assistant", "content", "hi"));
        }
        json_t *req = json_pack("{s:o}", "messages", msgs);
        nuage_router_decision d;
        assert_int_equal(nuage_router_decide(c, req, NULL, &d), 0);
        double want = 0.3 * (turns - 1);
        assert_int_equal(d.depth, turns);
        assert_true(fabs(d.score - want) < 1e-12);
        assert_int_equal(d.target, want >= 1.0 ? NUAGE_ROUTE_REASONING : NUAGE_ROUTE_FAST);
        /* prompt length: 8 + turns*5 + (turns-1)*2 bytes */
        assert_int_equal(d.prompt_chars, (size_t)(8 + turns * 5 + (turns - 1) * 2));
        json_decref(req);
    }
    nuage_router_config_free(c);
}

static void test_keywords(void **state) {
    (void)state;
    nuage_router_config *c = cfg_from("{\"targets\": {\"fast\": \"small\", \"reasoning\": \"big\"},"
                                      " \"threshold\": 1.0, \"weights\": {\"length\": 0, \"code\": 0,"
                                      " \"math\": 0, \"depth\": 0},"
                                      " \"keywords\": {\"prove\": 1.5, \"step by step\": 1.0, \"quick\": -1.0,"
                                      " \"proof\": 1.0}}");
    static const struct { const char *text; double score; } cases[] = {
        {"Please PROVE it.", 1.5},
        {"How can I improve my garden?", 0.0},      /* whole words only */
        {"Explain step by step.", 1.0},
        {"Explain step-by-step.", 0.0},
        {"A quick proof please", 0.0},              /* -1 + 1 */
        {"prove, prove, prove", 1.5},               /* counted once */
        {"Prove it step by step, quick", 1.5},
        {"proofs", 0.0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        nuage_router_decision d = decide_user(c, cases[i].text);
        if (fabs(d.score - cases[i].score) > 1e-12)
            fprintf(stderr, "keyword case %zu: %.3f (%s)\n", i, d.score, d.reasons);
        assert_true(fabs(d.score - cases[i].score) < 1e-12);
        assert_true(fabs(d.keyword_score - cases[i].score) < 1e-12);
        assert_int_equal(d.target, cases[i].score >= 1.0 ? NUAGE_ROUTE_REASONING : NUAGE_ROUTE_FAST);
    }
    nuage_router_decision d = decide_user(c, "Prove it step by step");
    assert_non_null(strstr(d.reasons, "prove"));
    assert_non_null(strstr(d.reasons, "step by step"));
    /* only the last user message counts for keywords */
    nuage_router_decision d2 = decide_json(c, "{\"messages\": [{\"role\": \"user\", \"content\": \"prove it\"},"
                                              "{\"role\": \"assistant\", \"content\": \"ok\"},"
                                              "{\"role\": \"user\", \"content\": \"thanks\"}]}", NULL);
    assert_true(d2.score == 0.0);
    nuage_router_config_free(c);
}

static void test_length_and_threshold(void **state) {
    (void)state;
    nuage_router_config *c = cfg_from(ISOLATED(", \"length\": 0.5, \"length_unit\": 1000, \"length_cap\": 3"));
    static const size_t lens[] = {0, 1, 999, 2000, 2500, 3000, 10000};
    for (size_t i = 0; i < sizeof lens / sizeof *lens; i++) {
        char *text = malloc(lens[i] + 1);
        memset(text, 'a', lens[i]);
        text[lens[i]] = 0;
        nuage_router_decision d = decide_user(c, text);
        double units = lens[i] / 1000.0;
        if (units > 3) units = 3;
        assert_int_equal(d.prompt_chars, lens[i]);
        assert_true(fabs(d.score - 0.5 * units) < 1e-12);
        assert_int_equal(d.target, 0.5 * units >= 1.0 ? NUAGE_ROUTE_REASONING : NUAGE_ROUTE_FAST);
        free(text);
    }
    /* text parts and several messages all count for the length */
    nuage_router_decision d = decide_json(c, "{\"messages\": [{\"role\": \"system\", \"content\": \"abcd\"},"
                                             "{\"role\": \"user\", \"content\": [{\"type\": \"text\", \"text\": \"ab\"},"
                                             "{\"type\": \"text\", \"text\": \"cde\"}]}]}", NULL);
    assert_int_equal(d.prompt_chars, 9);
    /* completions prompts */
    d = decide_json(c, "{\"prompt\": [\"abc\", \"de\"]}", NULL);
    assert_int_equal(d.prompt_chars, 5);
    assert_int_equal(d.depth, 1);
    nuage_router_config_free(c);
    /* a threshold of 0 sends everything to reasoning, with score_effort */
    c = cfg_from("{\"targets\": {\"fast\": \"s\", \"reasoning\": \"b\"}, \"threshold\": 0,"
                 " \"score_effort\": \"high\"}");
    d = decide_user(c, "hi");
    assert_int_equal(d.target, NUAGE_ROUTE_REASONING);
    assert_string_equal(d.effort, "high");
    nuage_router_config_free(c);
    /* defaults: a short greeting goes to the fast model */
    c = cfg_from("{\"targets\": {\"fast\": \"s\", \"reasoning\": \"b\"}}");
    d = decide_user(c, "Hello there!");
    assert_int_equal(d.target, NUAGE_ROUTE_FAST);
    assert_string_equal(d.deployment, "s");
    /* ... and code plus "why" to reasoning: 1 + 0.25 */
    d = decide_user(c, "Why does this crash?\n```\nint *p = 0; *p = 1;\n```");
    assert_int_equal(d.target, NUAGE_ROUTE_REASONING);
    assert_true(d.score >= 1.25 - 1e-9);
    /* no messages at all: score 0 */
    d = decide_json(c, "{}", NULL);
    assert_int_equal(d.target, NUAGE_ROUTE_FAST);
    assert_true(d.score == 0);
    nuage_router_config_free(c);
}

static void test_metrics(void **state) {
    (void)state;
    nuage_router_metrics_reset();
    nuage_router_config *c = cfg_from(ISOLATED(""));
    for (int i = 0; i < 3; i++) {
        nuage_router_decision d = decide_json(c, "{\"reasoning_effort\": \"high\"}", NULL);
        nuage_router_record("auto", &d);
    }
    nuage_router_decision d = decide_user(c, "hi");
    nuage_router_record("auto", &d);
    nuage_router_record("auto2", &d);
    assert_int_equal(nuage_router_count("auto", "big", -1), 3);
    assert_int_equal(nuage_router_count("auto", "big", NUAGE_ROUTE_BY_EFFORT), 3);
    assert_int_equal(nuage_router_count("auto", "big", NUAGE_ROUTE_BY_SCORE), 0);
    assert_int_equal(nuage_router_count("auto", "small", -1), 1);
    assert_int_equal(nuage_router_count("auto2", "small", NUAGE_ROUTE_BY_SCORE), 1);
    size_t need = nuage_router_metrics_text(NULL, 0);
    char *buf = malloc(need + 1);
    assert_int_equal(nuage_router_metrics_text(buf, need + 1), need);
    assert_int_equal(strlen(buf), need);
    assert_non_null(strstr(buf, "# TYPE nuage_router_decisions_total counter\n"));
    assert_non_null(strstr(buf, "nuage_router_decisions_total{router=\"auto\",target=\"reasoning\","
                                "deployment=\"big\",rule=\"effort\"} 3\n"));
    assert_non_null(strstr(buf, "nuage_router_decisions_total{router=\"auto\",target=\"fast\","
                                "deployment=\"small\",rule=\"score\"} 1\n"));
    /* truncated output stays NUL-terminated and reports the full length */
    char small[40];
    assert_int_equal(nuage_router_metrics_text(small, sizeof small), need);
    assert_int_equal(strlen(small), sizeof small - 1);
    free(buf);
    nuage_router_config_free(c);
    nuage_router_metrics_reset();
    assert_int_equal(nuage_router_count("auto", "big", -1), 0);
}

/* The registry hook on a router instance: writes the target, sets the
 * effort chosen by the score, keeps an explicit one, reports errors. */
static void test_hook(void **state) {
    (void)state;
    nuage_router_metrics_reset();
    nuage_deployment dep;
    memset(&dep, 0, sizeof dep);
    snprintf(dep.cfg.name, sizeof dep.cfg.name, "auto");
    dep.name = dep.cfg.name;
    dep.kind = NUAGE_DEPLOY_ROUTER;
    dep.cfg.router = json_loads("{\"targets\": {\"fast\": \"small\", \"reasoning\": \"big\"},"
                                " \"keywords\": {\"prove\": 5}, \"score_effort\": \"low\"}", 0, NULL);
    nuage_router_hook h = nuage_router_default_hook();
    assert_non_null(h.route);
    char out[64], err[200];
    json_t *body = json_loads("{\"model\": \"auto\", \"messages\": [{\"role\": \"user\", \"content\": \"prove it\"}]}",
                              0, NULL);
    assert_int_equal(h.route(h.ud, &dep, body, 7, out, sizeof out, err, sizeof err), 0);
    assert_string_equal(out, "big");
    assert_string_equal(json_string_value(json_object_get(body, "reasoning_effort")), "low");
    json_decref(body);
    body = json_loads("{\"model\": \"auto\", \"reasoning_effort\": \"high\", \"messages\": []}", 0, NULL);
    nuage_router_decision d;
    assert_int_equal(nuage_router_route_ex(&dep, body, &d, out, sizeof out, err, sizeof err), 0);
    assert_string_equal(out, "big");
    assert_string_equal(d.deployment, "big");
    assert_string_equal(json_string_value(json_object_get(body, "reasoning_effort")), "high");
    json_decref(body);
    body = json_loads("{\"model\": \"auto:fast\", \"messages\": []}", 0, NULL);
    assert_int_equal(h.route(h.ud, &dep, body, 7, out, sizeof out, err, sizeof err), 0);
    assert_string_equal(out, "small");
    assert_null(json_object_get(body, "reasoning_effort"));
    json_decref(body);
    body = json_loads("{\"reasoning_effort\": \"ultra\"}", 0, NULL);
    assert_int_equal(h.route(h.ud, &dep, body, 7, out, sizeof out, err, sizeof err), NUAGE_E_INVAL);
    assert_non_null(strstr(err, "ultra"));
    json_decref(body);
    assert_int_equal(nuage_router_count("auto", "big", -1), 2);
    assert_int_equal(nuage_router_count("auto", "small", NUAGE_ROUTE_BY_HINT), 1);
    /* a broken configuration is a 400 with its message */
    json_decref(dep.cfg.router);
    dep.cfg.router = json_loads("{\"targets\": {}}", 0, NULL);
    body = json_object();
    assert_int_equal(h.route(h.ud, &dep, body, 7, out, sizeof out, err, sizeof err), NUAGE_E_INVAL);
    assert_non_null(strstr(err, "targets"));
    json_decref(body);
    json_decref(dep.cfg.router);
    nuage_router_metrics_reset();
}

/* reasoning_effort -> thinking budget (thinking.h) */
static void test_thinking(void **state) {
    (void)state;
    nuage_thinking_config c;
    assert_int_equal(nuage_thinking_config_parse(NULL, &c, NULL, 0), 0);
    static const struct { const char *effort; int budget; } defaults[] = {
        {"none", 0}, {"minimal", 0}, {"low", 64}, {"medium", 256}, {"high", 1024}, {"High", 1024},
        {NULL, -1}, {"", -1}};
    for (size_t i = 0; i < sizeof defaults / sizeof *defaults; i++) {
        int b = 12345;
        assert_int_equal(nuage_thinking_budget(&c, defaults[i].effort, &b), 0);
        assert_int_equal(b, defaults[i].budget);
    }
    int b;
    assert_int_equal(nuage_thinking_budget(&c, "extreme", &b), NUAGE_E_INVAL);
    json_t *j = json_loads("{\"low\": 10, \"high\": 4000, \"default\": \"low\"}", 0, NULL);
    char err[200];
    assert_int_equal(nuage_thinking_config_parse(j, &c, err, sizeof err), 0);
    json_decref(j);
    assert_int_equal(nuage_thinking_budget(&c, "low", &b), 0);
    assert_int_equal(b, 10);
    assert_int_equal(nuage_thinking_budget(&c, "medium", &b), 0);
    assert_int_equal(b, 256);
    assert_int_equal(nuage_thinking_budget(&c, "high", &b), 0);
    assert_int_equal(b, 4000);
    assert_int_equal(nuage_thinking_budget(&c, NULL, &b), 0); /* the default level */
    assert_int_equal(b, 10);
    static const char *bad[] = {"[]", "{\"low\": -1}", "{\"low\": 1.5}", "{\"ultra\": 5}",
                                "{\"default\": \"ultra\"}", "{\"medium\": \"256\"}"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        j = json_loads(bad[i], 0, NULL);
        err[0] = 0;
        assert_int_equal(nuage_thinking_config_parse(j, &c, err, sizeof err), NUAGE_E_INVAL);
        assert_true(err[0] != 0);
        json_decref(j);
    }
    j = json_loads("{\"reasoning\": {\"effort\": \"low\"}}", 0, NULL);
    assert_string_equal(nuage_thinking_effort_of(j), "low");
    json_decref(j);
    j = json_loads("{\"reasoning_effort\": 1}", 0, NULL);
    assert_string_equal(nuage_thinking_effort_of(j), "");
    json_decref(j);
    j = json_loads("{\"reasoning_effort\": null}", 0, NULL);
    assert_null(nuage_thinking_effort_of(j));
    json_decref(j);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_errors),   cmocka_unit_test(test_explicit_effort),
        cmocka_unit_test(test_hints),           cmocka_unit_test(test_code_detection),
        cmocka_unit_test(test_math_detection),  cmocka_unit_test(test_depth),
        cmocka_unit_test(test_keywords),        cmocka_unit_test(test_length_and_threshold),
        cmocka_unit_test(test_metrics),         cmocka_unit_test(test_hook),
        cmocka_unit_test(test_thinking),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
