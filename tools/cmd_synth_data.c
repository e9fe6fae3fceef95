/* Placeholder until this command is written. */
#include <stdio.h>
#include "cli.h"
int nuage_cmd_synth_data(int argc, char **argv) { (void)argc; fprintf(stderr, "nuage %s: not implemented yet\n", argv[0]); return 1; }
