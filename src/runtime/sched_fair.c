/*
 * sched_fair.c - who gets the next free running slot: weighted fair
 * queuing between tenants (issue 6), plus the queue of preempted requests.
 *
 * Each tenant with work has a virtual clock vt. Every token the scheduler
 * computes for one of its requests (prompt chunk, recomputation or decode)
 * advances it by 1 / weight. A free slot goes to the waiting tenant with
 * the smallest vt, so tenants get tokens in proportion to their weights
 * however many requests each one queues: a tenant flooding the queue only
 * competes with itself. A tenant that was idle (nothing waiting or
 * running) re-enters at the system virtual time -- the smallest vt among
 * active tenants -- so idleness is not saved up as credit, and past heavy
 * use is not held against it once it went idle. Ties go to the tenant with
 * fewer running requests, then to the one that became active first.
 *
 * Priorities: batch requests (priority 1) are only admitted while no
 * interactive request waits, i.e. they use idle capacity. Preempted
 * requests of a priority class go before every new request of that class
 * (they already hold the user's attention and their samplers' state).
 *
 * Tenants live in a small array scanned linearly: it only holds tenants
 * with waiting or running requests, which the queue limit and max_running
 * bound; an idle tenant is freed.
 */
#include "runtime/sched_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void nuage__squeue_push_back(nuage__squeue *q, nuage__sreq *r) {
    r->qnext = NULL;
    r->qprev = q->tail;
    if (q->tail) q->tail->qnext = r;
    else q->head = r;
    q->tail = r;
    q->n++;
}

void nuage__squeue_push_front(nuage__squeue *q, nuage__sreq *r) {
    r->qprev = NULL;
    r->qnext = q->head;
    if (q->head) q->head->qprev = r;
    else q->tail = r;
    q->head = r;
    q->n++;
}

void nuage__squeue_remove(nuage__squeue *q, nuage__sreq *r) {
    if (r->qprev) r->qprev->qnext = r->qnext;
    else q->head = r->qnext;
    if (r->qnext) r->qnext->qprev = r->qprev;
    else q->tail = r->qprev;
    r->qprev = r->qnext = NULL;
    q->n--;
}

static int nuage__tenant_prio(const nuage__sreq *r) { return r->r.priority == 1 ? 1 : 0; }

/* Smallest virtual time among active tenants (the system clock); it never
 * moves backwards. */
static void nuage__fair_update_vnow(nuage__sfair *f) {
    if (f->n == 0) return;
    double m = f->t[0]->vt;
    for (int i = 1; i < f->n; i++)
        if (f->t[i]->vt < m) m = f->t[i]->vt;
    if (m > f->vnow) f->vnow = m;
}

int nuage__fair_enqueue(nuage__sfair *f, nuage__sreq *r) {
    nuage__stenant *t = NULL;
    for (int i = 0; i < f->n; i++)
        if (f->t[i]->id == r->r.tenant) { t = f->t[i]; break; }
    if (!t) {
        if (f->n == f->cap) {
            int cap = f->cap ? f->cap * 2 : 16;
            nuage__stenant **nt = realloc(f->t, (size_t)cap * sizeof *nt);
            if (!nt) return NUAGE_E_NOMEM;
            f->t = nt;
            f->cap = cap;
        }
        t = calloc(1, sizeof *t);
        if (!t) return NUAGE_E_NOMEM;
        t->id = r->r.tenant;
        nuage__fair_update_vnow(f);
        t->vt = f->vnow;
        f->t[f->n++] = t;
    }
    t->weight = r->r.weight;
    t->n_refs++;
    r->tenant = t;
    nuage__squeue_push_back(&t->q[nuage__tenant_prio(r)], r);
    f->n_waiting++;
    return 0;
}

void nuage__fair_requeue_front(nuage__sfair *f, nuage__sreq *r) {
    nuage__squeue_push_front(&f->resume[nuage__tenant_prio(r)], r);
    f->n_waiting++;
}

static nuage__sreq *nuage__fair_pick(nuage__sfair *f, int prio) {
    if (f->resume[prio].head) return f->resume[prio].head;
    nuage__stenant *best = NULL;
    for (int i = 0; i < f->n; i++) {
        nuage__stenant *t = f->t[i];
        if (!t->q[prio].head) continue;
        /* Ties: the tenant with fewer running requests. */
        if (!best || t->vt < best->vt || (t->vt == best->vt && t->n_running < best->n_running))
            best = t;
    }
    return best ? best->q[prio].head : NULL;
}

nuage__sreq *nuage__fair_peek(nuage__sfair *f) {
    nuage__sreq *r = nuage__fair_pick(f, 0);
    if (r) return r;
    return nuage__fair_pick(f, 1);
}

void nuage__fair_remove(nuage__sfair *f, nuage__sreq *r) {
    int prio = nuage__tenant_prio(r);
    nuage__squeue *q = &f->resume[prio];
    /* A request is in its tenant queue until it first runs; afterwards it
     * can only wait in a resume queue. */
    if (!r->admitted_once) q = &r->tenant->q[prio];
    nuage__squeue_remove(q, r);
    f->n_waiting--;
}

void nuage__fair_started(nuage__sfair *f, nuage__sreq *r) { r->tenant->n_running++; }

void nuage__fair_stopped(nuage__sfair *f, nuage__sreq *r) { r->tenant->n_running--; }

void nuage__fair_charge(nuage__sfair *f, nuage__sreq *r, int tokens) {
    float w = r->tenant->weight;
    r->tenant->vt += (double)tokens / (double)(w > 0 && isfinite(w) ? w : 1.0f);
}

void nuage__fair_release(nuage__sfair *f, nuage__sreq *r) {
    nuage__stenant *t = r->tenant;
    r->tenant = NULL;
    if (!t || --t->n_refs > 0) return;
    for (int i = 0; i < f->n; i++)
        if (f->t[i] == t) {
            memmove(f->t + i, f->t + i + 1, (size_t)(f->n - i - 1) * sizeof *f->t);
            f->n--;
            break;
        }
    nuage__fair_update_vnow(f);
    free(t);
}

void nuage__fair_free(nuage__sfair *f) {
    for (int i = 0; i < f->n; i++) free(f->t[i]);
    free(f->t);
    f->t = NULL;
    f->n = f->cap = 0;
}
