/*
 * test_server_text.c - the server's streaming text filters and JSON
 * writer, checked against independent whole-text computations.
 *
 * Stop sequences and the <think> splitter see generated text a token at a
 * time; whatever the cut points, their output must equal what a plain
 * search over the whole text gives. The reference functions below do that
 * plain search (strstr over the complete string); the filters are fed the
 * same text cut at random places, thousands of times, on random texts
 * built from an alphabet that makes partial markers frequent.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "server/http.h"
#include "test_util.h"

static uint64_t rng_state = 0x1234567;
static uint32_t rnd(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 11);
}

/* Reference: the text before the stop string that completes first when
 * the text is read byte by byte (ties: the one starting first). */
static size_t ref_stop(const char *text, char *const *stops, int n, bool *matched) {
    size_t best = strlen(text), best_end = SIZE_MAX;
    *matched = false;
    for (int i = 0; i < n; i++) {
        const char *f = strstr(text, stops[i]);
        if (!f) continue;
        size_t pos = (size_t)(f - text), end = pos + strlen(stops[i]);
        if (end < best_end || (end == best_end && pos < best)) {
            best = pos;
            best_end = end;
        }
        *matched = true;
    }
    return best;
}

static void random_text(char *buf, size_t n, const char *alpha) {
    size_t a = strlen(alpha);
    for (size_t i = 0; i < n; i++) buf[i] = alpha[rnd() % a];
    buf[n] = 0;
}

static void test_stopper_matches_whole_text_search(void **state) {
    (void)state;
    const char *alpha = "ab c";
    for (int iter = 0; iter < 4000; iter++) {
        char text[80];
        random_text(text, 1 + rnd() % 70, alpha);
        int ns = (int)(rnd() % 4) + 1;
        char sbuf[4][8];
        char *stops[4];
        for (int i = 0; i < ns; i++) {
            random_text(sbuf[i], 1 + rnd() % 5, alpha);
            stops[i] = sbuf[i];
        }
        bool matched;
        size_t want = ref_stop(text, stops, ns, &matched);

        nuage__stopper st;
        nuage__stopper_init(&st, stops, ns);
        nuage__sb out = {0};
        size_t len = strlen(text), pos = 0;
        bool got = false;
        while (pos < len && !got) {
            size_t k = 1 + rnd() % 6;
            if (k > len - pos) k = len - pos;
            got = nuage__stopper_feed(&st, text + pos, k, &out);
            pos += k;
        }
        if (!got) nuage__stopper_flush(&st, &out);
        nuage__stopper_free(&st);
        assert_int_equal(got, matched);
        assert_int_equal(out.n, want);
        if (want) assert_memory_equal(out.p, text, want);
        nuage__sb_free(&out);
    }
}

static void test_stopper_holds_back_partial_match(void **state) {
    (void)state;
    char s0[] = "</end>";
    char *stops[] = {s0};
    nuage__stopper st;
    nuage__stopper_init(&st, stops, 1);
    nuage__sb out = {0};
    assert_false(nuage__stopper_feed(&st, "Hello </", 8, &out));
    assert_int_equal(out.n, 6); /* "Hello " shown, "</" held */
    assert_false(nuage__stopper_feed(&st, "b>", 2, &out));
    assert_string_equal(out.p, "Hello </b>"); /* not a stop: released */
    assert_false(nuage__stopper_feed(&st, " x</e", 5, &out));
    assert_string_equal(out.p, "Hello </b> x");
    assert_true(nuage__stopper_feed(&st, "nd> tail", 8, &out));
    assert_string_equal(out.p, "Hello </b> x");
    nuage__stopper_free(&st);
    nuage__sb_free(&out);
}

/* Reference <think> split over the whole text (same rules as reasoning.c:
 * a block only at the start, after optional whitespace, or opened by the
 * prompt; whitespace right after </think> dropped). */
static void ref_think(const char *text, bool open, nuage__sb *content, nuage__sb *reasoning) {
    const char *p = text;
    if (!open) {
        const char *q = p;
        while (*q == ' ' || *q == '\n') q++;
        if (strncmp(q, "<think>", 7)) {
            nuage__sb_puts(content, text);
            return;
        }
        p = q + 7;
    }
    const char *end = strstr(p, "</think>");
    if (!end) {
        nuage__sb_puts(reasoning, p);
        return;
    }
    nuage__sb_put(reasoning, p, (size_t)(end - p));
    p = end + 8;
    while (*p == ' ' || *p == '\n') p++;
    nuage__sb_puts(content, p);
}

static void test_think_split_matches_whole_text(void **state) {
    (void)state;
    const char *pieces[] = {"<think>", "</think>", "<th", "ink>", "</", "a", "b", " ", "\n", "<", ">", "t"};
    for (int iter = 0; iter < 4000; iter++) {
        char text[160] = "";
        int np = (int)(rnd() % 14);
        for (int i = 0; i < np; i++) strcat(text, pieces[rnd() % (sizeof pieces / sizeof *pieces)]);
        if (rnd() % 2) {
            /* make well-formed blocks common */
            char t2[200];
            snprintf(t2, sizeof t2, "%s<think>%s</think>%s", rnd() % 2 ? " " : "", text, rnd() % 2 ? "\n\nanswer" : "x");
            strcpy(text, t2);
        }
        bool open = rnd() % 4 == 0;
        nuage__sb rc = {0}, rr = {0}, c = {0}, r = {0};
        ref_think(text, open, &rc, &rr);
        nuage__think th;
        nuage__think_init(&th, open);
        size_t len = strlen(text), pos = 0;
        while (pos < len) {
            size_t k = 1 + rnd() % 5;
            if (k > len - pos) k = len - pos;
            nuage__think_feed(&th, text + pos, k, &c, &r);
            pos += k;
        }
        nuage__think_flush(&th, &c, &r);
        nuage__think_free(&th);
        /* The reference keeps whitespace-only starts as content; so does the filter. */
        assert_int_equal(c.n, rc.n);
        if (c.n) assert_memory_equal(c.p, rc.p, c.n);
        assert_int_equal(r.n, rr.n);
        if (r.n) assert_memory_equal(r.p, rr.p, r.n);
        nuage__sb_free(&rc);
        nuage__sb_free(&rr);
        nuage__sb_free(&c);
        nuage__sb_free(&r);
    }
}

static void test_prompt_opens_think(void **state) {
    (void)state;
    assert_true(nuage__prompt_opens_think("<|im_start|>assistant\n<think>\n", 30));
    assert_false(nuage__prompt_opens_think("<|im_start|>assistant\n", 22));
    assert_false(nuage__prompt_opens_think("<think>x</think>", 16));
}

static void test_json_string_writer(void **state) {
    (void)state;
    /* Valid text round-trips through a real JSON parser. */
    for (int iter = 0; iter < 2000; iter++) {
        char text[64];
        size_t n = rnd() % 40;
        const char *alpha[] = {"a", "\"", "\\", "\n", "\t", "\x01", "\x1f", "\x7f", "é", "€", "😀", "/", " "};
        text[0] = 0;
        for (size_t i = 0; i < n && strlen(text) < 50; i++) strcat(text, alpha[rnd() % 13]);
        nuage__sb b = {0};
        nuage__sb_put(&b, "[", 1);
        nuage__sb_json_str(&b, text, strlen(text));
        nuage__sb_put(&b, "]", 1);
        json_error_t je;
        json_t *j = json_loads(b.p, 0, &je);
        assert_non_null(j);
        assert_string_equal(json_string_value(json_array_get(j, 0)), text);
        json_decref(j);
        nuage__sb_free(&b);
    }
    /* Invalid bytes become the text \xNN and the output is still JSON. */
    nuage__sb b = {0};
    nuage__sb_json_str(&b, "a\xff\xe2\x82", 4);
    json_t *j = json_loads(b.p, JSON_DECODE_ANY, NULL);
    assert_non_null(j);
    assert_string_equal(json_string_value(j), "a\\xff\\xe2\\x82");
    json_decref(j);
    nuage__sb_free(&b);
    json_t *t = nuage__json_text("ok\xc3", 3);
    assert_string_equal(json_string_value(t), "ok\\xc3");
    json_decref(t);
}

static void test_utf8_validator(void **state) {
    (void)state;
    assert_true(nuage__utf8_ok("héllo €😀", strlen("héllo €😀")));
    assert_false(nuage__utf8_ok("\xc0\xaf", 2));         /* overlong */
    assert_false(nuage__utf8_ok("\xed\xa0\x80", 3));     /* surrogate */
    assert_false(nuage__utf8_ok("\xf4\x90\x80\x80", 4)); /* > U+10FFFF */
    assert_false(nuage__utf8_ok("\xe2\x82", 2));         /* truncated */
    assert_true(nuage__utf8_ok("", 0));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stopper_matches_whole_text_search),
        cmocka_unit_test(test_stopper_holds_back_partial_match),
        cmocka_unit_test(test_think_split_matches_whole_text),
        cmocka_unit_test(test_prompt_opens_think),
        cmocka_unit_test(test_json_string_writer),
        cmocka_unit_test(test_utf8_validator),
    };
    return nuage_test_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
