/*
 * serve_replica.c - `nuage serve` announces itself in the replica registry
 * (store.h, nuage_store_replica_*) when it has a store: a thread upserts
 * the row every interval (default 2 s) with the deployments it serves and
 * its load (requests running + queued over every deployment), and at a
 * clean stop marks it gone. `nuage admin cluster status` reads the rows;
 * a replica killed without a stop is marked gone there once its last
 * heartbeat is older than the listing's limit (default 10 s, i.e. five
 * missed beats).
 *
 * A failed heartbeat (database down) is reported once on stderr and
 * retried at the next tick; it never affects serving.
 */
#define _GNU_SOURCE
#include "serve_replica.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "nuage/nuage.h"
#include "runtime/sched.h"

struct nuage__replica_beat {
    nuage_store *store;
    nuage_registry *reg;
    nuage_replica r;
    int interval_ms;
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop, failing;
};

static int64_t wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Refresh deployments and load from the registry, then upsert. */
static void beat_once(nuage__replica_beat *b) {
    nuage_deployment **ds = NULL;
    int n = 0;
    b->r.deployments[0] = 0;
    b->r.load = 0;
    if (b->reg && nuage_registry_list(b->reg, &ds, &n) == 0) {
        size_t len = 0;
        for (int i = 0; i < n; i++) {
            int k = snprintf(b->r.deployments + len, sizeof b->r.deployments - len, "%s%s", len ? "," : "",
                             ds[i]->name);
            if (k > 0 && len + (size_t)k < sizeof b->r.deployments) len += (size_t)k;
            nuage_sched_stats st;
            memset(&st, 0, sizeof st);
            if (ds[i]->sched) nuage_sched_get_stats(ds[i]->sched, &st);
            b->r.load += st.running + st.queued;
            nuage_deployment_release(ds[i]);
        }
        free(ds);
    }
    int rc = nuage_store_replica_heartbeat(b->store, &b->r, wall_ms());
    if (rc && !b->failing)
        fprintf(stderr, "nuage serve: replica heartbeat failed (retrying): %s\n", nuage_store_errmsg(b->store));
    else if (!rc && b->failing)
        fprintf(stderr, "nuage serve: replica heartbeat works again\n");
    b->failing = rc != 0;
}

static void *beat_main(void *arg) {
    nuage__replica_beat *b = arg;
    pthread_mutex_lock(&b->mu);
    while (!b->stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += b->interval_ms / 1000;
        ts.tv_nsec += (long)(b->interval_ms % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        while (!b->stop && pthread_cond_timedwait(&b->cv, &b->mu, &ts) != ETIMEDOUT) {}
        if (b->stop) break;
        pthread_mutex_unlock(&b->mu);
        beat_once(b);
        pthread_mutex_lock(&b->mu);
    }
    pthread_mutex_unlock(&b->mu);
    return NULL;
}

int nuage__replica_beat_start(nuage_store *store, nuage_registry *reg, const char *id, const char *address,
                              int port, int interval_ms, nuage__replica_beat **out) {
    *out = NULL;
    if (!store || interval_ms < 100) return NUAGE_E_INVAL;
    nuage__replica_beat *b = calloc(1, sizeof *b);
    if (!b) return NUAGE_E_NOMEM;
    char host[64] = "localhost";
    gethostname(host, sizeof host - 1);
    host[sizeof host - 1] = 0;
    if (id && *id) snprintf(b->r.id, sizeof b->r.id, "%s", id);
    else snprintf(b->r.id, sizeof b->r.id, "%.40s:%d", host, port);
    if (address && *address) snprintf(b->r.address, sizeof b->r.address, "%s", address);
    else snprintf(b->r.address, sizeof b->r.address, "%.100s:%d", host, port);
    snprintf(b->r.version, sizeof b->r.version, "%s", NUAGE_VERSION);
    b->store = store;
    b->reg = reg;
    b->interval_ms = interval_ms;
    pthread_mutex_init(&b->mu, NULL);
    pthread_cond_init(&b->cv, NULL);
    beat_once(b); /* announced before the first request can arrive */
    if (pthread_create(&b->th, NULL, beat_main, b) != 0) {
        pthread_cond_destroy(&b->cv);
        pthread_mutex_destroy(&b->mu);
        free(b);
        return NUAGE_E_NOMEM;
    }
    *out = b;
    return 0;
}

const char *nuage__replica_beat_id(const nuage__replica_beat *b) { return b ? b->r.id : ""; }

void nuage__replica_beat_stop(nuage__replica_beat *b) {
    if (!b) return;
    pthread_mutex_lock(&b->mu);
    b->stop = true;
    pthread_cond_signal(&b->cv);
    pthread_mutex_unlock(&b->mu);
    pthread_join(b->th, NULL);
    nuage_store_replica_leave(b->store, b->r.id, wall_ms());
    pthread_cond_destroy(&b->cv);
    pthread_mutex_destroy(&b->mu);
    free(b);
}
