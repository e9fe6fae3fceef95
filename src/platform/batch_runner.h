/*
 * batch_runner.h - runs OpenAI Batch API jobs (store.h: files, batch jobs,
 * durable per-line records) in the server's idle capacity.
 *
 * A job's input file is JSONL, one request per line:
 *   {"custom_id": "r1", "method": "POST", "url": "/v1/chat/completions",
 *    "body": {...}}
 * The runner takes the oldest unfinished job (status validating,
 * in_progress, finalizing or cancelling, any tenant), checks every line
 * (a malformed one -- bad JSON, missing or duplicate custom_id, another
 * method or url than the job's endpoint, a body that is not an object --
 * is recorded at once as an error naming its line number), then executes
 * the valid lines not yet recorded, up to max_concurrent at a time, by
 * calling `exec`: the same internal code path as the HTTP endpoint, which
 * submits at scheduler priority 1 (batch work runs only while no
 * interactive request waits, and gives way to interactive requests; see
 * sched.h). Each answer is recorded durably (nuage_store_batch_line_done)
 * as one output line:
 *   {"id": "batch_req_...", "custom_id": "r1",
 *    "response": {"status_code": 200, "request_id": "req_...", "body": {...}},
 *    "error": null}
 * 2xx answers go to the output file, other statuses and malformed lines
 * to the error file (OpenAI's split). When every line is recorded the job
 * is finalized: status finalizing, output and error files assembled in
 * line order, status completed.
 *
 * Crash safety: a line is recorded in one durable transaction after its
 * answer is complete, and recording is idempotent. After a kill and a
 * restart the runner resumes the job, skips every recorded line and runs
 * only the others: no recorded line is computed again, none is lost (a
 * line in flight at the kill is computed again, its first answer having
 * never been recorded). Output ids are derived from (batch id, line), so
 * a recomputed line gets the same ids.
 *
 * Busy answers (exec returning a negative code, or HTTP 429 / 503) are
 * not recorded: the line is retried after retry_ms, so a batch waits out
 * a full queue or a tenant's rate limit instead of failing its lines.
 *
 * Cancellation: POST /v1/batches/{id}/cancel sets the status to
 * cancelling and calls nuage_batch_runner_cancel(); lines already running
 * finish (and are recorded), no new line starts, the job is finalized
 * with what it has and ends cancelled. Expiry: once a job passes its
 * expires_ms, its unfinished lines are recorded as errors with code
 * "batch_expired" and the job ends expired.
 *
 * Several replicas on one store (docs/cluster.md): a job runs only under
 * its lease (nuage_store_batch_claim), taken by this runner's owner id and
 * renewed every lease_ms / 3 while the job runs, released when it ends or
 * the runner stops. A runner whose renewal fails (another replica took the
 * job over after the lease expired) stops starting lines of that job at
 * once; what its lines in flight record later is harmless, since a line is
 * recorded once. A replica that dies stops renewing, and lease_ms later
 * another replica claims the job and resumes it from its recorded lines.
 *
 * Threads: one manager thread plus max_concurrent workers. exec is called
 * from the workers, concurrently; it must be thread-safe and must return
 * promptly once the server shuts down (a cancelled generation returns a
 * negative code, which leaves the line for the next run). Lock order: the
 * runner's mutex is a leaf: exec and store calls are made without it.
 */
#ifndef NUAGE_PLATFORM_BATCH_RUNNER_H
#define NUAGE_PLATFORM_BATCH_RUNNER_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "platform/store.h"

/* One line to execute. Everything is borrowed for the duration of the
 * call. */
typedef struct {
    int64_t tenant_id;
    const char *batch_id;
    int64_t line;            /* 1-based line of the input file */
    const char *custom_id;
    const char *endpoint;    /* the job's endpoint, e.g. "/v1/chat/completions" */
    const char *deployment;  /* the job's deployment ("": the body's "model") */
    json_t *body;            /* the request body (exec may modify it) */
    const char *request_id;  /* "req_..." for the response (stable per line) */
    int priority;            /* scheduler priority to use: 1 */
} nuage_batch_exec_req;

/*
 * Execute one request as the HTTP endpoint would. Returns the HTTP status
 * (100..599) and sets *body to a new reference to the response body (the
 * JSON the endpoint would have answered, an {"error": ...} object for
 * errors), or returns a negative code (*body ignored) when the request
 * could not run now (shutting down, queue full): the line is retried
 * later. Streaming is never requested (the runner removes "stream").
 */
typedef int (*nuage_batch_exec_fn)(void *ud, const nuage_batch_exec_req *req, json_t **body);

typedef struct {
    int max_concurrent;      /* lines executing at once (default 4) */
    int poll_ms;             /* look for new / cancelled jobs at least this often (default 1000) */
    int retry_ms;            /* wait after a busy answer (default 500) */
    bool verbose;            /* one line on stderr per job start / end */
    const char *owner;       /* lease owner: this replica's id (copied; NULL/"": "HOSTNAME:pid") */
    int lease_ms;            /* batch lease length (default 30000) */
} nuage_batch_runner_params;

nuage_batch_runner_params nuage_batch_runner_default_params(void);

typedef struct nuage_batch_runner nuage_batch_runner;

/* Start the runner over store (not owned; must outlive the runner). It
 * resumes unfinished jobs at once. 0 or NUAGE_E_NOMEM / NUAGE_E_INVAL. */
int nuage_batch_runner_new(nuage_store *store, const nuage_batch_runner_params *p,
                           nuage_batch_exec_fn exec, void *ud, nuage_batch_runner **out);
/* A job was created: look now instead of at the next poll. */
void nuage_batch_runner_notify(nuage_batch_runner *r);
/* Job id is being cancelled (its status already set to cancelling by
 * the caller): start no new line of it. */
void nuage_batch_runner_cancel(nuage_batch_runner *r, const char *batch_id);
/* Stop starting lines (returns at once; in-flight exec calls go on). */
void nuage_batch_runner_stop(nuage_batch_runner *r);
/* Stop, wait for in-flight lines and the threads, free. */
void nuage_batch_runner_free(nuage_batch_runner *r);

typedef struct {
    uint64_t lines_ok, lines_failed, lines_invalid; /* recorded by this process */
    uint64_t retries;                                /* busy answers */
    uint64_t jobs_finished;
    uint64_t leases_lost;                            /* jobs given up: another replica took them over */
    int in_flight;
    char current[40];                                /* job being run ("" when idle) */
} nuage_batch_runner_stats;

void nuage_batch_runner_get_stats(nuage_batch_runner *r, nuage_batch_runner_stats *st);

/*
 * The output line for a request of a job (exposed for tests and tools):
 * builds the JSON object described above. status < 0: an error line
 * with error {code, message, line} and response null. custom_id may be
 * NULL. Returns a new reference or NULL on OOM.
 */
json_t *nuage_batch_output_line(const char *batch_id, int64_t line, const char *custom_id, int status,
                                json_t *body, const char *err_code, const char *err_message);
/* The stable ids of a line: "batch_req_<24 hex>" and "req_<24 hex>"
 * (buffers of at least 40 bytes). */
void nuage_batch_line_ids(const char *batch_id, int64_t line, char *id, char *request_id);

#endif
