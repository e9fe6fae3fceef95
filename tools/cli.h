/*
 * cli.h - the `nuage` command-line tool: one function per sub-command, each
 * in its own tools/cmd_*.c file. Each gets argv with argv[0] = the command
 * name and returns the process exit code (0 ok, 1 error, 2 usage).
 */
#ifndef NUAGE_CLI_H
#define NUAGE_CLI_H

int nuage_cmd_inspect(int argc, char **argv);     /* cmd_inspect.c */
int nuage_cmd_run(int argc, char **argv);         /* cmd_run.c */
int nuage_cmd_eval_logits(int argc, char **argv); /* cmd_eval_logits.c */
int nuage_cmd_bench(int argc, char **argv);       /* cmd_bench.c */
int nuage_cmd_tokenize(int argc, char **argv);    /* cmd_tokenize.c */
int nuage_cmd_detokenize(int argc, char **argv);  /* cmd_tokenize.c */
int nuage_cmd_template(int argc, char **argv);    /* cmd_template.c */
int nuage_cmd_serve(int argc, char **argv);       /* cmd_serve.c */
int nuage_cmd_synth_data(int argc, char **argv);  /* cmd_synth_data.c */
int nuage_cmd_train(int argc, char **argv);       /* cmd_train.c */
int nuage_cmd_train_tokenizer(int argc, char **argv); /* cmd_train_tokenizer.c */
int nuage_cmd_eval(int argc, char **argv);        /* cmd_eval.c */
int nuage_cmd_admin(int argc, char **argv);       /* cmd_admin.c */
int nuage_cmd_batch(int argc, char **argv);       /* cmd_batch.c */

#endif
