/*
 * serve_replica.h - the replica heartbeat of `nuage serve` (serve_replica.c).
 */
#ifndef NUAGE_TOOLS_SERVE_REPLICA_H
#define NUAGE_TOOLS_SERVE_REPLICA_H

#include "platform/deploy.h"
#include "platform/store.h"

typedef struct nuage__replica_beat nuage__replica_beat;

/* Announce this replica in store now and then every interval_ms from a
 * thread (deployments and load read from reg). id NULL: "<hostname>:<port>";
 * address NULL: "<hostname>:<port>". 0, or an error (nothing started). */
int nuage__replica_beat_start(nuage_store *store, nuage_registry *reg, const char *id, const char *address,
                              int port, int interval_ms, nuage__replica_beat **out);
/* Stop the thread and mark the replica gone (NULL is ignored). */
void nuage__replica_beat_stop(nuage__replica_beat *b);
/* The id it announces. */
const char *nuage__replica_beat_id(const nuage__replica_beat *b);

#endif
