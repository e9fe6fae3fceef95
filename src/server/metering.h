/*
 * metering.h - billing fails closed at the HTTP layer.
 *
 * The store keeps usage records whose write failed (full disk, I/O error)
 * in memory and retries them (platform/store.h). While any wait, no new
 * metered request may start: chat, completions and embeddings (and batch
 * lines, which the runner retries later) are refused with 503
 * `metering_unavailable` and Retry-After, requests already running go on
 * and their records join the queue. The first write that succeeds again
 * reopens the server. /health answers 503 "metering_unavailable" meanwhile
 * (a load balancer sends the work elsewhere) and /metrics shows the state.
 */
#ifndef NUAGE_SERVER_METERING_H
#define NUAGE_SERVER_METERING_H

#include <stdbool.h>

#include "server/http.h"

/* Is `method url` a metered route (its usage is billed)? */
bool nuage__metered_route(const char *method, const char *url);
/* May a metered request start now? true (always without a store), or
 * false with r filled (503 metering_unavailable, Retry-After). */
bool nuage__metering_admit(nuage_server *s, nuage__hresp *r);
/* Without an answer: true when metering works (or there is no store). */
bool nuage__metering_ok(nuage_server *s);
/* The metering part of /health: adds "metering" to obj; false while
 * records wait (the caller answers 503). */
bool nuage__metering_health(nuage_server *s, json_t *obj);
/* The metering gauges of /metrics. */
void nuage__metering_metrics(nuage_server *s, nuage__sb *out);

#endif
