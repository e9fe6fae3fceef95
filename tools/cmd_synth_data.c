/*
 * cmd_synth_data.c - `nuage synth-data`: write synthetic chat
 * conversations with code-checked answers as JSONL (see src/train/synth.h
 * for the tasks, the split and the reasoning format).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_util.h"
#include "nuage/nuage.h"
#include "train/synth.h"
#include "train/synth_tools.h"

static int usage(void) {
    fprintf(stderr,
            "usage: nuage synth-data --task T --n N --seed S --out FILE.jsonl\n"
            "                        [--digits D] [--split train|heldout] [--reasoning]\n"
            "  --task T     add, sub, mul, convert, date, reverse, sort, count, facts, or mix;\n"
            "               tools (the tool-use mixture) or one tool scenario: tool_mul, tool_arith,\n"
            "               tool_convert, tool_date, tool_lookup, tool_direct, tool_twostep,\n"
            "               tool_error, tool_absent (one line per assistant turn; --n counts chats)\n"
            "  --digits D   operand digits (mix: the most digits for add/sub; default 2, mix 4)\n"
            "  --split      train (default) or heldout: the two never share a question\n"
            "  --reasoning  write the step-by-step work in <think>...</think> before the answer\n"
            "  --out -      writes to stdout\n");
    return 2;
}

int nuage_cmd_synth_data(int argc, char **argv) {
    const char *task = NULL, *out = NULL;
    long n = -1, seed = -1, digits = 0;
    bool heldout = false, reasoning = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(); return 0; }
        if (!strcmp(a, "--reasoning")) { reasoning = true; continue; }
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) return usage();
        bool ok = true;
        if (!strcmp(a, "--task")) task = v;
        else if (!strcmp(a, "--out") || !strcmp(a, "-o")) out = v;
        else if (!strcmp(a, "--n") || !strcmp(a, "-n")) ok = nuage_cli_int(v, 0, 1L << 40, &n);
        else if (!strcmp(a, "--seed")) ok = nuage_cli_int(v, 0, INT64_MAX, &seed);
        else if (!strcmp(a, "--digits")) ok = nuage_cli_int(v, 1, 9, &digits);
        else if (!strcmp(a, "--split")) {
            ok = !strcmp(v, "train") || !strcmp(v, "heldout");
            heldout = !strcmp(v, "heldout");
        } else return usage();
        if (!ok) return nuage_cli_fail("synth-data", 2, "bad value for %s: '%s'", a, v);
        i++;
    }
    if (!task || !out || n < 0 || seed < 0) return usage();
    bool mix = !strcmp(task, "mix");
    bool tools = !strcmp(task, "tools") || nuage_tool_task_from_name(task) >= 0;
    int t = mix ? -1 : tools ? (!strcmp(task, "tools") ? -1 : nuage_tool_task_from_name(task)) : nuage_task_from_name(task);
    if (!mix && !tools && t < 0) return nuage_cli_fail("synth-data", 2, "unknown task '%s'", task);
    if (tools && reasoning) return nuage_cli_fail("synth-data", 2, "tool tasks have no --reasoning form");
    FILE *f = strcmp(out, "-") ? fopen(out, "w") : stdout;
    if (!f) return nuage_cli_fail("synth-data", 1, "cannot create %s", out);
    nuage_rng rng;
    nuage_rng_seed(&rng, (uint64_t)seed);
    nuage_synth_opts o = {.digits = (int)digits, .heldout = heldout};
    int ret = 0;
    for (long i = 0; tools && i < n; i++) {
        nuage_tool_item ti;
        int rc = nuage_tool_gen(t, (int)digits, heldout, &rng, &ti);
        if (rc) {
            ret = nuage_cli_fail("synth-data", 1, "cannot generate %s: %s", task, nuage_strerror(rc));
            break;
        }
        char *lines = nuage_tool_item_jsonl(&ti);
        nuage_tool_item_free(&ti);
        if (!lines) { ret = nuage_cli_fail("synth-data", 1, "out of memory"); break; }
        fputs(lines, f);
        free(lines);
    }
    for (long i = 0; !tools && i < n; i++) {
        nuage_synth_item it;
        int rc = mix ? nuage_synth_gen_mix((int)digits, heldout, &rng, &it)
                     : nuage_synth_gen((nuage_task)t, &o, &rng, &it);
        if (rc) {
            ret = nuage_cli_fail("synth-data", 1, "cannot generate %s (digits %ld): %s", task, digits,
                                 nuage_strerror(rc));
            break;
        }
        char *line = nuage_synth_json(&it, reasoning);
        if (!line) { ret = nuage_cli_fail("synth-data", 1, "out of memory"); break; }
        fputs(line, f);
        fputc('\n', f);
        free(line);
    }
    if (f != stdout && fclose(f) != 0 && !ret) ret = nuage_cli_fail("synth-data", 1, "cannot write %s", out);
    else if (f == stdout) fflush(stdout);
    return ret;
}
