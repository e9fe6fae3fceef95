/*
 * main.c - entry point of the `nuage` command: dispatches to sub-commands.
 */
#include <stdio.h>
#include <string.h>

#include "nuage/nuage.h"

#include "cli.h"

typedef struct {
    const char *name;
    int (*fn)(int, char **);
    const char *help;
} nuage_command;

static const nuage_command commands[] = {
    {"run", nuage_cmd_run, "generate text from a prompt"},
    {"eval-logits", nuage_cmd_eval_logits, "write all-position logits of a token list"},
    {"bench", nuage_cmd_bench, "measure prefill and decode tokens/s"},
    {"inspect", nuage_cmd_inspect, "print a GGUF file's metadata and tensors"},
    {"tokenize", nuage_cmd_tokenize, "print the token ids of a text"},
    {"detokenize", nuage_cmd_detokenize, "print the text of token ids"},
    {"template", nuage_cmd_template, "render a chat template"},
    {"serve", nuage_cmd_serve, "run the OpenAI-compatible HTTP server"},
    {"synth-data", nuage_cmd_synth_data, "generate checked synthetic chat data"},
    {"train-tokenizer", nuage_cmd_train_tokenizer, "train a byte-level BPE tokenizer"},
    {"train", nuage_cmd_train, "train a llama-architecture model from scratch"},
    {"eval", nuage_cmd_eval, "score a served model on held-out questions"},
    {"admin", nuage_cmd_admin, "manage tenants, API keys and usage (the store)"},
    {"batch", nuage_cmd_batch, "submit, follow and download Batch API jobs"},
};

static void usage(FILE *f) {
    fprintf(f, "usage: nuage COMMAND [options]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-12s %s\n", commands[i].name, commands[i].help);
    fprintf(f, "\n'nuage COMMAND --help' describes a command's options.\n");
}

int main(int argc, char **argv) {
    if (argc < 2) { usage(stderr); return 2; }
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
        printf("nuage %s\n", NUAGE_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "nuage: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
