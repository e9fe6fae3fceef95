/*
 * fuzz_jinja.c - libFuzzer harness for the chat-template engine with
 * hostile templates.
 *
 * Input: a template, optionally followed by a NUL byte and a JSON array
 * of messages (a fixed two-message conversation otherwise). The template
 * is parsed and, when it parses, rendered twice (with and without the
 * generation prompt) with bos/eos tokens, a tool list and a fixed time.
 * The engine promises that parsing and rendering never crash and are
 * bounded in work and memory (include/nuage/template.h): recursion,
 * loops and string blow-up end in an ordinary error. The harness adds
 * what libFuzzer's -timeout / -rss_limit_mb do not see per render: a
 * render taking over 3 s of CPU, or an output over the engine's output
 * cap, aborts.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nuage/nuage.h"
#include "nuage/template.h"

static const char default_msgs[] =
    "[{\"role\":\"system\",\"content\":\"Be brief.\"},{\"role\":\"user\",\"content\":\"Hi <b>there</b>\"},"
    "{\"role\":\"assistant\",\"content\":\"Hello\",\"tool_calls\":[{\"type\":\"function\",\"function\":"
    "{\"name\":\"f\",\"arguments\":{\"x\":1}}}]},{\"role\":\"tool\",\"content\":\"42\"}]";
static const char tools[] =
    "[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"description\":\"d\",\"parameters\":"
    "{\"type\":\"object\",\"properties\":{\"x\":{\"type\":\"integer\"}}}}}]";

static double cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *src = (const char *)data;
    const uint8_t *nul = memchr(data, 0, size);
    size_t tl = nul ? (size_t)(nul - data) : size;
    char *msgs = NULL;
    if (nul) {
        size_t ml = size - tl - 1;
        msgs = malloc(ml + 1);
        if (!msgs) return 0;
        memcpy(msgs, nul + 1, ml);
        msgs[ml] = 0;
    }
    nuage_template *t = NULL;
    char err[256];
    if (nuage_template_parse(src, tl, &t, err, sizeof err) == 0) {
        for (int gen = 0; gen < 2; gen++) {
            nuage_template_input in = {
                .messages_json = msgs ? msgs : default_msgs,
                .tools_json = gen ? tools : NULL,
                .vars_json = "{\"enable_thinking\":true}",
                .add_generation_prompt = gen,
                .bos_token = "<s>",
                .eos_token = "</s>",
                .now = 1700000000,
            };
            char *out = NULL;
            size_t n = 0;
            double t0 = cpu_s();
            int rc = nuage_template_render(t, &in, &out, &n, err, sizeof err);
            double dt = cpu_s() - t0;
            if (dt > 5.0) {
                fprintf(stderr, "fuzz_jinja: one render took %.1f s of CPU\n", dt);
                abort();
            }
            if (rc == 0 && (!out || n > (64u << 20) || strlen(out) > n)) abort();
            free(out);
            if (msgs && rc == NUAGE_E_INVAL) break; /* messages not usable: once is enough */
            if (dt > 0.5) break;                    /* a costly one (a bound hit): once is enough */
        }
        nuage_template_free(t);
    }
    free(msgs);
    return 0;
}
