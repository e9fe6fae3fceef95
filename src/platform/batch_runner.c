/*
 * batch_runner.c - the Batch API's executor (batch_runner.h).
 *
 * Shape. One manager thread walks the store's unfinished jobs, oldest
 * first, one job at a time: it reads the input file, validates every line
 * (recording malformed ones as errors at once), builds the list of lines
 * still to run and hands it to the workers, then watches: it wakes on
 * notify / cancel / a finished line, or every poll_ms, to notice a
 * cancellation (also one made by another process through the store) or
 * the job's expiry. Workers take the next line index under the mutex,
 * execute it without any lock, record the answer in the store, and go on.
 * One job at a time keeps a large early job from being starved by later
 * ones and keeps the code simple; lines of that job run max_concurrent at
 * a time, which together with the scheduler's max_batch_running bounds
 * what batch work can take from interactive traffic.
 *
 * Why the whole file is validated on every (re)start: validation is cheap
 * next to generation, and doing it from scratch makes the outcome the
 * same whether or not the job was interrupted -- in particular which of
 * two lines with the same custom_id is the duplicate (always the later
 * one).
 *
 * Leases (batch_runner.h). The manager claims the oldest job it may run
 * instead of listing them all, so with several replicas on one store each
 * job has one runner at a time. The heartbeat is the manager's watch loop
 * (it wakes at least every lease_ms / 3); the lease is also renewed, and
 * so checked, before the job's long steps (after validation) and before
 * it ends the job, so a runner that lost its job never finalizes it. A
 * failed renewal that is only store trouble (not "lost") is tolerated
 * while the last good renewal is younger than the lease.
 *
 * Line numbers are physical lines of the input, 1-based; a final newline
 * does not start a line, a blank line in the middle is a malformed line.
 */
#include "platform/batch_runner.h"
#include "engine/clock.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "nuage/nuage.h"

typedef struct {
    int64_t line;
    json_t *req;          /* the parsed line (owned) */
    const char *custom_id;/* inside req */
} nuage__bline;

struct nuage_batch_runner {
    nuage_store *store;
    nuage_batch_runner_params p;
    char owner[128];             /* lease owner id (p.owner points here) */
    nuage_batch_exec_fn exec;
    void *ud;
    pthread_t manager;
    pthread_t *workers;
    int n_workers;
    bool manager_started;

    pthread_mutex_t mu;          /* leaf: no store or exec call under it */
    pthread_cond_t wake;         /* manager: notify, cancel, line done, stop */
    pthread_cond_t work;         /* workers: lines available, stop, retry timer */
    bool stop, notified;
    char (*cancels)[40];         /* ids cancelled through nuage_batch_runner_cancel */
    int n_cancels, cap_cancels;
    /* the job being run (set by the manager; read by workers while active) */
    nuage_batch_job job;
    bool active, halt;
    nuage__bline *todo;
    int n_todo, next_todo, in_flight;
    nuage_batch_runner_stats st;
};

/* ---- small helpers ------------------------------------------------------------------ */

static uint64_t nuage__br_fnv(const char *s, int64_t line, uint64_t seed) {
    uint64_t h = 1469598103934665603ULL ^ seed;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    for (int i = 0; i < 8; i++) {
        h ^= (uint64_t)(line >> (8 * i)) & 0xff;
        h *= 1099511628211ULL;
    }
    return h ^ (h >> 29);
}

void nuage_batch_line_ids(const char *batch_id, int64_t line, char *id, char *request_id) {
    uint64_t a = nuage__br_fnv(batch_id, line, 1), b = nuage__br_fnv(batch_id, line, 2);
    uint64_t c = nuage__br_fnv(batch_id, line, 3), d = nuage__br_fnv(batch_id, line, 4);
    if (id) snprintf(id, 40, "batch_req_%016llx%08llx", (unsigned long long)a, (unsigned long long)(b >> 32));
    if (request_id)
        snprintf(request_id, 40, "req_%016llx%08llx", (unsigned long long)c, (unsigned long long)(d >> 32));
}

json_t *nuage_batch_output_line(const char *batch_id, int64_t line, const char *custom_id, int status,
                                json_t *body, const char *err_code, const char *err_message) {
    char id[40], rid[40];
    nuage_batch_line_ids(batch_id, line, id, rid);
    json_t *o = json_object();
    if (!o) return NULL;
    json_object_set_new(o, "id", json_string(id));
    json_object_set_new(o, "custom_id", custom_id ? json_string(custom_id) : json_null());
    if (status >= 0) {
        json_t *resp = json_object();
        json_object_set_new(resp, "status_code", json_integer(status));
        json_object_set_new(resp, "request_id", json_string(rid));
        json_object_set(resp, "body", body ? body : json_null());
        json_object_set_new(o, "response", resp);
        json_object_set_new(o, "error", json_null());
    } else {
        json_object_set_new(o, "response", json_null());
        json_object_set_new(o, "error", json_pack("{s:s, s:s, s:I}", "code", err_code ? err_code : "error",
                                                  "message", err_message ? err_message : "",
                                                  "line", (json_int_t)line));
    }
    return o;
}

/* Record o (stolen) as line `line` of job id. */
static int nuage__br_record(nuage_batch_runner *r, const char *id, int64_t line, bool is_error, json_t *o) {
    if (!o) return NUAGE_E_NOMEM;
    char *text = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
    json_decref(o);
    if (!text) return NUAGE_E_NOMEM;
    int rc = nuage_store_batch_line_done(r->store, id, line, is_error, text);
    free(text);
    if (rc == NUAGE_E_STATE) rc = 0; /* already recorded: a resumed job */
    if (rc && r->p.verbose)
        fprintf(stderr, "batch %s: cannot record line %lld: %s\n", id, (long long)line,
                nuage_store_errmsg(r->store));
    return rc;
}

static bool nuage__br_cancelled_locked(nuage_batch_runner *r, const char *id) {
    for (int i = 0; i < r->n_cancels; i++)
        if (!strcmp(r->cancels[i], id)) return true;
    return false;
}

/* ---- validation ---------------------------------------------------------------------- */

/* Does a line's url name the job's endpoint ("/v1/x" also matches "/x")? */
static bool nuage__br_url_ok(const char *url, const char *endpoint) {
    if (!strcmp(url, endpoint)) return true;
    if (!strncmp(endpoint, "/v1/", 4) && !strcmp(url, endpoint + 3)) return true;
    return false;
}

/*
 * Check line text t[0..n) (number `line`). Valid: returns the parsed
 * object. Malformed: NULL with code/message filled (and *cid the custom_id
 * when one could be read, pointing into *parsed which the caller frees).
 */
static json_t *nuage__br_check(const char *t, size_t n, int64_t line, const char *endpoint, json_t *seen,
                               const char **code, char *msg, size_t msglen, json_t **parsed,
                               const char **cid) {
    *parsed = NULL;
    *cid = NULL;
    size_t k = 0;
    while (k < n && (t[k] == ' ' || t[k] == '\t')) k++;
    if (k == n) {
        *code = "invalid_json_line";
        snprintf(msg, msglen, "Line %lld: empty line", (long long)line);
        return NULL;
    }
    json_error_t je;
    json_t *o = json_loadb(t, n, JSON_REJECT_DUPLICATES, &je);
    if (!o) {
        *code = "invalid_json_line";
        snprintf(msg, msglen, "Line %lld: invalid JSON: %s (column %d)", (long long)line, je.text, je.column);
        return NULL;
    }
    *parsed = o;
    if (!json_is_object(o)) {
        *code = "invalid_json_line";
        snprintf(msg, msglen, "Line %lld: a request line must be a JSON object", (long long)line);
        return NULL;
    }
    json_t *c = json_object_get(o, "custom_id");
    if (!json_is_string(c) || json_string_length(c) == 0 || json_string_length(c) > 512 ||
        strlen(json_string_value(c)) != json_string_length(c)) {
        *code = "missing_required_parameter";
        snprintf(msg, msglen, "Line %lld: custom_id must be a non-empty string (at most 512 bytes)",
                 (long long)line);
        return NULL;
    }
    *cid = json_string_value(c);
    if (json_object_get(seen, *cid)) {
        *code = "duplicate_custom_id";
        snprintf(msg, msglen, "Line %lld: custom_id '%.64s' is used by an earlier line", (long long)line, *cid);
        return NULL;
    }
    json_object_set_new(seen, *cid, json_integer(line));
    const char *method = json_string_value(json_object_get(o, "method"));
    if (!method || strcmp(method, "POST")) {
        *code = "invalid_method";
        snprintf(msg, msglen, "Line %lld: method must be \"POST\"", (long long)line);
        return NULL;
    }
    const char *url = json_string_value(json_object_get(o, "url"));
    if (!url || !nuage__br_url_ok(url, endpoint)) {
        *code = "invalid_url";
        snprintf(msg, msglen, "Line %lld: url must be the batch's endpoint \"%s\"", (long long)line, endpoint);
        return NULL;
    }
    if (!json_is_object(json_object_get(o, "body"))) {
        *code = "invalid_body";
        snprintf(msg, msglen, "Line %lld: body must be a JSON object", (long long)line);
        return NULL;
    }
    return o;
}

/* ---- executing one line ------------------------------------------------------------------ */

static void nuage__br_execute(nuage_batch_runner *r, const nuage_batch_job *job, const nuage__bline *bl) {
    char rid[40];
    nuage_batch_line_ids(job->id, bl->line, NULL, rid);
    for (;;) {
        json_t *body = json_deep_copy(json_object_get(bl->req, "body"));
        if (!body) return; /* OOM: left for the next run */
        json_object_del(body, "stream");
        json_object_del(body, "stream_options");
        nuage_batch_exec_req er = {
            .tenant_id = job->tenant_id,
            .batch_id = job->id,
            .line = bl->line,
            .custom_id = bl->custom_id,
            .endpoint = job->endpoint,
            .deployment = job->deployment,
            .body = body,
            .request_id = rid,
            .priority = 1,
        };
        json_t *resp = NULL;
        int status = r->exec(r->ud, &er, &resp);
        json_decref(body);
        if (status < 0 || status == 429 || status == 503) {
            if (status >= 0) json_decref(resp);
            pthread_mutex_lock(&r->mu);
            r->st.retries++;
            bool give_up = r->stop || r->halt;
            if (!give_up) {
                struct timespec ts = nuage__deadline_in(r->p.retry_ms);
                pthread_cond_timedwait(&r->work, &r->mu, &ts);
                give_up = r->stop || r->halt;
            }
            pthread_mutex_unlock(&r->mu);
            if (give_up) return; /* not recorded: run again after a restart */
            continue;
        }
        bool ok = status >= 200 && status < 300;
        json_t *o = nuage_batch_output_line(job->id, bl->line, bl->custom_id, status, resp, NULL, NULL);
        json_decref(resp);
        int rc = nuage__br_record(r, job->id, bl->line, !ok, o);
        pthread_mutex_lock(&r->mu);
        if (!rc) {
            if (ok) r->st.lines_ok++;
            else r->st.lines_failed++;
        }
        pthread_mutex_unlock(&r->mu);
        return;
    }
}

static void *nuage__br_worker(void *arg) {
    nuage_batch_runner *r = arg;
    pthread_mutex_lock(&r->mu);
    for (;;) {
        while (!r->stop && !(r->active && !r->halt && r->next_todo < r->n_todo))
            pthread_cond_wait(&r->work, &r->mu);
        if (r->stop) break;
        const nuage__bline *bl = &r->todo[r->next_todo++];
        r->in_flight++;
        /* job and todo stay valid until in_flight is back to 0 */
        const nuage_batch_job *job = &r->job;
        pthread_mutex_unlock(&r->mu);
        nuage__br_execute(r, job, bl);
        pthread_mutex_lock(&r->mu);
        r->in_flight--;
        pthread_cond_broadcast(&r->wake);
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

/* ---- the manager ---------------------------------------------------------------------------- */

/* Assemble the files and end the job with status `final`. */
static void nuage__br_finish(nuage_batch_runner *r, const nuage_batch_job *job, const char *final) {
    if (!strcmp(final, "completed")) nuage_store_batch_set_status(r->store, job->id, "finalizing", 0);
    int rc = nuage_store_batch_finalize(r->store, job->id);
    if (rc) {
        if (r->p.verbose)
            fprintf(stderr, "batch %s: finalize failed: %s\n", job->id, nuage_store_errmsg(r->store));
        return; /* tried again at the next pass */
    }
    nuage_store_batch_set_status(r->store, job->id, final, 0);
    pthread_mutex_lock(&r->mu);
    r->st.jobs_finished++;
    pthread_mutex_unlock(&r->mu);
    if (r->p.verbose) fprintf(stderr, "batch %s: %s\n", job->id, final);
}

/* Sleep up to ms unless notified or stopped. */
static void nuage__br_nap(nuage_batch_runner *r, int ms) {
    pthread_mutex_lock(&r->mu);
    if (!r->stop && !r->notified) {
        struct timespec ts = nuage__deadline_in(ms);
        pthread_cond_timedwait(&r->wake, &r->mu, &ts);
    }
    r->notified = false;
    pthread_mutex_unlock(&r->mu);
}

/*
 * Heartbeat: renew this runner's lease on id (*last_ok: when the last
 * renewal succeeded, updated). Returns false when the lease is lost --
 * another replica holds it, or the store has been unreachable for a whole
 * lease -- and the caller must leave the job alone.
 */
static bool nuage__br_renew(nuage_batch_runner *r, const char *id, int64_t *last_ok) {
    int64_t now = nuage__wall_ms();
    int rc = nuage_store_batch_renew(r->store, id, r->owner, now, r->p.lease_ms);
    if (rc == 0) {
        *last_ok = now;
        return true;
    }
    if (rc != NUAGE_E_STATE && now - *last_ok < r->p.lease_ms) return true;
    pthread_mutex_lock(&r->mu);
    r->st.leases_lost++;
    pthread_mutex_unlock(&r->mu);
    if (r->p.verbose)
        fprintf(stderr, "batch %s: lease lost by %s (%s); leaving the job\n", id, r->owner,
                nuage_store_errmsg(r->store));
    return false;
}

/* Run (or resume) one job to its end, until stop, or until its lease is
 * lost. claimed_ms: when the lease was taken. */
static void nuage__br_run_job(nuage_batch_runner *r, nuage_batch_job *job, int64_t claimed_ms) {
    int64_t last_ok = claimed_ms;
    if (!strcmp(job->status, "cancelling")) {
        nuage__br_finish(r, job, "cancelled");
        return;
    }
    if (!strcmp(job->status, "finalizing")) {
        nuage__br_finish(r, job, "completed");
        return;
    }
    void *data = NULL;
    size_t len = 0;
    int rc = nuage_store_file_content(r->store, job->tenant_id, job->input_file_id, &data, &len);
    if (rc == NUAGE_E_RANGE) { /* the input file was deleted */
        nuage_store_batch_set_status(r->store, job->id, "failed", 0);
        return;
    }
    if (rc) {
        nuage__br_nap(r, r->p.poll_ms);
        return;
    }
    /* split into lines */
    const char *text = data;
    int64_t n_lines = 0;
    for (size_t i = 0; i < len; i++)
        if (text[i] == '\n') n_lines++;
    if (len > 0 && text[len - 1] != '\n') n_lines++;
    if (n_lines == 0) {
        free(data);
        nuage_store_batch_set_status(r->store, job->id, "failed", 0);
        if (r->p.verbose) fprintf(stderr, "batch %s: failed (empty input file)\n", job->id);
        return;
    }
    if (!strcmp(job->status, "validating") || job->total != n_lines) {
        rc = nuage_store_batch_set_status(r->store, job->id, "in_progress", n_lines);
        if (rc) { /* ended meanwhile (terminal) or I/O error */
            free(data);
            if (rc != NUAGE_E_STATE) nuage__br_nap(r, r->p.poll_ms);
            return;
        }
    }
    int64_t *done = NULL;
    int n_done = 0;
    if (nuage_store_batch_lines_done(r->store, job->id, &done, &n_done)) {
        free(data);
        nuage__br_nap(r, r->p.poll_ms);
        return;
    }
    nuage__bline *todo = calloc((size_t)n_lines, sizeof *todo);
    json_t *seen = json_object();
    int n_todo = 0;
    uint64_t n_invalid = 0;
    if (!todo || !seen) goto out_free;
    {
        size_t pos = 0;
        int di = 0;
        for (int64_t line = 1; line <= n_lines; line++) {
            /* a long file (or many malformed lines, each a durable write)
             * must not outlast the lease */
            if (line % 256 == 0 && nuage__wall_ms() - last_ok >= r->p.lease_ms / 3 &&
                !nuage__br_renew(r, job->id, &last_ok))
                goto out_free;
            const char *nl = memchr(text + pos, '\n', len - pos);
            size_t end = nl ? (size_t)(nl - text) : len;
            size_t ln = end - pos;
            if (ln > 0 && text[pos + ln - 1] == '\r') ln--;
            while (di < n_done && done[di] < line) di++;
            bool is_done = di < n_done && done[di] == line;
            const char *code = NULL, *cid = NULL;
            char msg[256];
            json_t *parsed = NULL;
            json_t *ok = nuage__br_check(text + pos, ln, line, job->endpoint, seen, &code, msg, sizeof msg,
                                         &parsed, &cid);
            if (ok && !is_done) {
                todo[n_todo].line = line;
                todo[n_todo].req = ok;
                todo[n_todo].custom_id = cid;
                n_todo++;
            } else {
                if (!ok && !is_done) {
                    if (!nuage__br_record(r, job->id, line, true,
                                          nuage_batch_output_line(job->id, line, cid, -1, NULL, code, msg)))
                        n_invalid++;
                }
                json_decref(parsed);
            }
            pos = end + 1;
        }
    }
    if (!nuage__br_renew(r, job->id, &last_ok)) goto out_free;
    if (r->p.verbose)
        fprintf(stderr, "batch %s: running %d of %lld lines (%d already done) on %s\n", job->id, n_todo,
                (long long)n_lines, n_done, r->owner);

    /* hand the lines to the workers and watch */
    bool cancelled = false, expired = false, stopped = false, lost = false;
    int beat_ms = r->p.lease_ms / 3 < r->p.poll_ms ? r->p.lease_ms / 3 : r->p.poll_ms;
    pthread_mutex_lock(&r->mu);
    r->st.lines_invalid += n_invalid;
    r->job = *job;
    snprintf(r->st.current, sizeof r->st.current, "%s", job->id);
    r->todo = todo;
    r->n_todo = n_todo;
    r->next_todo = 0;
    r->active = true;
    r->halt = false;
    pthread_cond_broadcast(&r->work);
    int64_t last_check = 0;
    for (;;) {
        if (nuage__br_cancelled_locked(r, job->id)) cancelled = true;
        if (nuage__wall_ms() > job->expires_ms && job->expires_ms > 0) expired = true;
        if (r->stop) stopped = true;
        if (cancelled || expired || stopped || lost) r->halt = true;
        if (r->in_flight == 0 && (r->halt || r->next_todo >= r->n_todo)) break;
        struct timespec ts = nuage__deadline_in(beat_ms);
        pthread_cond_timedwait(&r->wake, &r->mu, &ts);
        /* the heartbeat */
        if (!lost && nuage__wall_ms() - last_ok >= beat_ms) {
            pthread_mutex_unlock(&r->mu);
            lost = !nuage__br_renew(r, job->id, &last_ok);
            pthread_mutex_lock(&r->mu);
        }
        /* a cancel made through the store by another process */
        int64_t now = nuage__wall_ms();
        if (now - last_check >= r->p.poll_ms && !cancelled) {
            last_check = now;
            pthread_mutex_unlock(&r->mu);
            nuage_batch_job cur;
            bool c2 = nuage_store_batch_get(r->store, -1, job->id, &cur) == 0 &&
                      (!strcmp(cur.status, "cancelling") || !strcmp(cur.status, "cancelled"));
            pthread_mutex_lock(&r->mu);
            if (c2) cancelled = true;
        }
    }
    int next = r->next_todo;
    r->active = false;
    r->todo = NULL;
    r->n_todo = r->next_todo = 0;
    r->st.current[0] = 0;
    pthread_mutex_unlock(&r->mu);

    /* end the job only while still holding it */
    if (lost || !nuage__br_renew(r, job->id, &last_ok)) goto out_free;
    if (cancelled) {
        nuage__br_finish(r, job, "cancelled");
    } else if (expired) {
        /* the lines never started are errors "batch_expired" */
        for (int i = next; i < n_todo; i++) {
            char msg[96];
            snprintf(msg, sizeof msg, "Line %lld: the batch expired before this request ran",
                     (long long)todo[i].line);
            nuage__br_record(r, job->id, todo[i].line, true,
                             nuage_batch_output_line(job->id, todo[i].line, todo[i].custom_id, -1, NULL,
                                                     "batch_expired", msg));
        }
        nuage__br_finish(r, job, "expired");
    } else if (!stopped) {
        /* every line recorded? (a failed record leaves a line for the next pass) */
        int64_t *d2 = NULL;
        int n2 = 0;
        if (nuage_store_batch_lines_done(r->store, job->id, &d2, &n2) == 0 && n2 == n_lines)
            nuage__br_finish(r, job, "completed");
        else
            nuage__br_nap(r, r->p.poll_ms);
        free(d2);
    }
out_free:
    for (int i = 0; i < n_todo; i++) json_decref(todo[i].req);
    free(todo);
    json_decref(seen);
    free(done);
    free(data);
}

static void *nuage__br_manager(void *arg) {
    nuage_batch_runner *r = arg;
    for (;;) {
        pthread_mutex_lock(&r->mu);
        bool stop = r->stop;
        r->notified = false;
        pthread_mutex_unlock(&r->mu);
        if (stop) break;
        nuage_batch_job job;
        int64_t now = nuage__wall_ms();
        if (nuage_store_batch_claim(r->store, r->owner, now, r->p.lease_ms, &job) == 0) {
            nuage__br_run_job(r, &job, now);
            nuage_store_batch_release(r->store, job.id, r->owner);
        } else {
            nuage__br_nap(r, r->p.poll_ms);
        }
    }
    return NULL;
}

/* ---- public ---------------------------------------------------------------------------------- */

nuage_batch_runner_params nuage_batch_runner_default_params(void) {
    nuage_batch_runner_params p = {.max_concurrent = 4, .poll_ms = 1000, .retry_ms = 500, .verbose = false,
                                   .owner = NULL, .lease_ms = 30000};
    return p;
}

int nuage_batch_runner_new(nuage_store *store, const nuage_batch_runner_params *params,
                           nuage_batch_exec_fn exec, void *ud, nuage_batch_runner **out) {
    *out = NULL;
    if (!store || !exec) return NUAGE_E_INVAL;
    nuage_batch_runner *r = calloc(1, sizeof *r);
    if (!r) return NUAGE_E_NOMEM;
    r->store = store;
    r->p = params ? *params : nuage_batch_runner_default_params();
    if (r->p.max_concurrent <= 0) r->p.max_concurrent = 4;
    if (r->p.max_concurrent > 256) r->p.max_concurrent = 256;
    if (r->p.poll_ms <= 0) r->p.poll_ms = 1000;
    if (r->p.retry_ms <= 0) r->p.retry_ms = 500;
    if (r->p.lease_ms <= 0) r->p.lease_ms = 30000;
    if (r->p.lease_ms < 300) r->p.lease_ms = 300;
    if (r->p.owner && *r->p.owner) {
        snprintf(r->owner, sizeof r->owner, "%s", r->p.owner);
    } else {
        char hn[64] = "localhost";
        gethostname(hn, sizeof hn - 1);
        hn[sizeof hn - 1] = 0;
        snprintf(r->owner, sizeof r->owner, "%s:%ld", hn, (long)getpid());
    }
    r->p.owner = r->owner;
    r->exec = exec;
    r->ud = ud;
    int rc = NUAGE_E_NOMEM;
    if (pthread_mutex_init(&r->mu, NULL)) goto fail_mu;
    if (pthread_cond_init(&r->wake, NULL)) goto fail_wake;
    if (pthread_cond_init(&r->work, NULL)) goto fail_work;
    r->workers = calloc((size_t)r->p.max_concurrent, sizeof *r->workers);
    if (!r->workers) goto fail_threads;
    for (int i = 0; i < r->p.max_concurrent; i++) {
        if (pthread_create(&r->workers[i], NULL, nuage__br_worker, r)) goto fail_threads;
        r->n_workers++;
    }
    if (pthread_create(&r->manager, NULL, nuage__br_manager, r)) goto fail_threads;
    r->manager_started = true;
    *out = r;
    return 0;

fail_threads:
    pthread_mutex_lock(&r->mu);
    r->stop = true;
    pthread_cond_broadcast(&r->work);
    pthread_mutex_unlock(&r->mu);
    for (int i = 0; i < r->n_workers; i++) pthread_join(r->workers[i], NULL);
    free(r->workers);
    pthread_cond_destroy(&r->work);
fail_work:
    pthread_cond_destroy(&r->wake);
fail_wake:
    pthread_mutex_destroy(&r->mu);
fail_mu:
    free(r);
    return rc;
}

void nuage_batch_runner_notify(nuage_batch_runner *r) {
    if (!r) return;
    pthread_mutex_lock(&r->mu);
    r->notified = true;
    pthread_cond_broadcast(&r->wake);
    pthread_mutex_unlock(&r->mu);
}

void nuage_batch_runner_cancel(nuage_batch_runner *r, const char *batch_id) {
    if (!r || !batch_id) return;
    pthread_mutex_lock(&r->mu);
    if (!nuage__br_cancelled_locked(r, batch_id)) {
        if (r->n_cancels == r->cap_cancels) {
            int cap = r->cap_cancels ? r->cap_cancels * 2 : 8;
            char(*nc)[40] = realloc(r->cancels, (size_t)cap * sizeof *nc);
            if (nc) {
                r->cancels = nc;
                r->cap_cancels = cap;
            }
        }
        if (r->n_cancels < r->cap_cancels) snprintf(r->cancels[r->n_cancels++], 40, "%s", batch_id);
    }
    r->notified = true;
    pthread_cond_broadcast(&r->wake);
    pthread_cond_broadcast(&r->work);
    pthread_mutex_unlock(&r->mu);
}

void nuage_batch_runner_stop(nuage_batch_runner *r) {
    if (!r) return;
    pthread_mutex_lock(&r->mu);
    r->stop = true;
    pthread_cond_broadcast(&r->wake);
    pthread_cond_broadcast(&r->work);
    pthread_mutex_unlock(&r->mu);
}

void nuage_batch_runner_free(nuage_batch_runner *r) {
    if (!r) return;
    nuage_batch_runner_stop(r);
    if (r->manager_started) pthread_join(r->manager, NULL);
    for (int i = 0; i < r->n_workers; i++) pthread_join(r->workers[i], NULL);
    free(r->workers);
    free(r->cancels);
    pthread_cond_destroy(&r->work);
    pthread_cond_destroy(&r->wake);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

void nuage_batch_runner_get_stats(nuage_batch_runner *r, nuage_batch_runner_stats *st) {
    if (!r || !st) return;
    pthread_mutex_lock(&r->mu);
    *st = r->st;
    st->in_flight = r->in_flight;
    pthread_mutex_unlock(&r->mu);
}
