/*
 * cli_util.h - small helpers shared by the sub-commands: strict number
 * parsing (a typo is a usage error, not a silent 0), time, memory.
 */
#ifndef NUAGE_CLI_UTIL_H
#define NUAGE_CLI_UTIL_H

#include <stdbool.h>
#include <stdint.h>

/* Parse the whole string as an integer in [lo, hi] / a finite float. */
bool nuage_cli_int(const char *s, long lo, long hi, long *out);
bool nuage_cli_float(const char *s, double *out);
/* Parse "ID ID ..." (spaces/tabs/newlines/commas) into a malloc'd array. */
int32_t *nuage_cli_ids(const char *s, int *n);
double nuage_cli_now(void);             /* monotonic seconds */
double nuage_cli_peak_rss_mib(void);    /* peak resident memory */
/* Print "nuage CMD: message" to stderr; returns 1 (error) or 2 (usage). */
int nuage_cli_fail(const char *cmd, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
