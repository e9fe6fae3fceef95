/* clock.h - the clocks every layer reads (base component).
 *
 * Wall-clock milliseconds for what is stored or shown (created_at,
 * loaded_ms, usage windows) and monotonic milliseconds for what is
 * measured (deadlines, latencies). They live in the base component so
 * that the runtime, the platform and the HTTP layer share one definition
 * without any of them importing a layer above it. */
#ifndef NUAGE_ENGINE_CLOCK_H
#define NUAGE_ENGINE_CLOCK_H

#include <stdint.h>
#include <time.h>

/* Seconds of CLOCK_MONOTONIC, with nanosecond resolution. */
double nuage__now(void);
/* Milliseconds since the Unix epoch (CLOCK_REALTIME). Never fails. */
int64_t nuage__wall_ms(void);
/* Milliseconds of CLOCK_MONOTONIC: only differences mean anything. */
int64_t nuage__mono_ms(void);

/* The CLOCK_REALTIME instant ms milliseconds from now (ms < 0 counts as
 * 0), as pthread_cond_timedwait wants its deadline. */
struct timespec nuage__deadline_in(int64_t ms);

#endif
