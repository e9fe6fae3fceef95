/*
 * store.h - the platform's persistent state behind one narrow interface:
 * tenants, API keys, usage records, files, batch jobs and stored responses.
 *
 * Two backends behind the same calls, chosen by the address given to
 * nuage_store_open: SQLite (a plain path or "sqlite:PATH": one file, WAL
 * mode, synchronous=FULL for usage and batch progress so a record whose
 * response completed survives a SIGKILL) and PostgreSQL
 * ("postgres://user@host:port/db" or "postgresql://...", libpq; the
 * control plane shared by several replicas, docs/cluster.md). Both have
 * the same versioned schema migrations. Everything above this interface
 * (HTTP handlers, the admin CLI, the batch runner) sees only these calls.
 *
 * Thread safety: every call may be made from any thread; the store
 * serialises access internally (one connection + one mutex, a leaf lock:
 * no store call takes any other lock, and callers must not call back into
 * the store while holding their own locks that the store's callers could
 * hold — in practice: call it with no lock held).
 *
 * Secrets: API keys are random (from getrandom()), shown once at
 * creation, stored only as SHA-256 hashes (salted per key), compared in
 * constant time. Prompt or completion text is never stored here unless a
 * deployment opts in (usage records carry counts only).
 *
 * All functions return 0 or a negative NUAGE_E_* code: NUAGE_E_RANGE
 * "not found", NUAGE_E_STATE "already exists / wrong state", NUAGE_E_INVAL
 * bad argument, NUAGE_E_IO database error (message in the store's last
 * error, nuage_store_errmsg).
 */
#ifndef NUAGE_STORE_H
#define NUAGE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct nuage_store nuage_store;

/* The database path to use when none is given: $NUAGE_DB, else
 * $XDG_DATA_HOME/nuage/nuage.db, else ~/.local/share/nuage/nuage.db; the
 * directory is created (mode 0700). 0, or NUAGE_E_RANGE (buf too small),
 * NUAGE_E_INVAL (no HOME), NUAGE_E_IO (mkdir failed). */
int nuage_store_default_path(char *buf, size_t cap);

/* Open (creating and migrating as needed) the store at path: a SQLite
 * file path, "sqlite:PATH", or a postgres:// / postgresql:// URL (the
 * database must exist; its tables are created under an advisory lock, so
 * several replicas may open it at once). */
int nuage_store_open(const char *path, nuage_store **out, char *err, size_t errlen);
void nuage_store_close(nuage_store *s);
/* The address for logs: a postgres URL's password ("user:secret@") shown
 * as "user:***@"; anything else copied. */
void nuage_store_display(const char *path, char *out, size_t cap);
/* Last error message of this thread's last failed call (static storage). */
const char *nuage_store_errmsg(nuage_store *s);
int nuage_store_schema_version(nuage_store *s);

/* ---- tenants ---------------------------------------------------------------- */
typedef struct {
    int64_t id;
    char name[64];
    int64_t tpm, rpm;     /* tokens / requests per minute; 0 = unlimited */
    double weight;        /* fair-scheduling weight (> 0) */
    int64_t created_ms;
} nuage_tenant;

int nuage_store_tenant_create(nuage_store *s, const char *name, int64_t tpm, int64_t rpm,
                              double weight, nuage_tenant *out);
/* Set a tenant's limits (in effect from its next request); NUAGE_E_RANGE
 * when there is no such tenant. */
int nuage_store_tenant_update(nuage_store *s, const char *name, int64_t tpm, int64_t rpm, double weight,
                              nuage_tenant *out);
int nuage_store_tenant_get(nuage_store *s, const char *name, nuage_tenant *out);
int nuage_store_tenant_get_id(nuage_store *s, int64_t id, nuage_tenant *out);
/* *out malloc'd array of *n tenants (caller frees). */
int nuage_store_tenant_list(nuage_store *s, nuage_tenant **out, int *n);
/* Deletes the tenant and revokes its keys (usage records stay). */
int nuage_store_tenant_delete(nuage_store *s, const char *name);

/* ---- API keys ----------------------------------------------------------------- */
typedef struct {
    int64_t id;
    int64_t tenant_id;
    char prefix[16];          /* first characters of the key, for listings */
    char deployments[256];    /* comma-separated allowed deployments; "" = all */
    int64_t expires_ms;       /* 0 = never */
    int64_t created_ms;
    bool revoked;
    bool admin;               /* may call the admin API */
} nuage_key;

/* Create a key; writes the secret (NUL-terminated, shown once) to key_out
 * (cap >= 64). tenant NULL only for admin keys. */
int nuage_store_key_create(nuage_store *s, const char *tenant, const char *deployments,
                           int64_t expires_ms, bool admin, char *key_out, size_t cap,
                           nuage_key *out);
/* Look up a presented key: 0 and the key (and its tenant, unless admin
 * without tenant) when valid; NUAGE_E_RANGE when unknown, revoked or
 * expired (the caller answers 401 without saying which). */
int nuage_store_key_verify(nuage_store *s, const char *presented, nuage_key *key,
                           nuage_tenant *tenant);
int nuage_store_key_list(nuage_store *s, const char *tenant, nuage_key **out, int *n);
/* Revoke by id or by prefix. */
int nuage_store_key_revoke(nuage_store *s, const char *id_or_prefix);
/* Number of active (unrevoked, unexpired) keys; < 0 on error. */
int nuage_store_key_count(nuage_store *s);
/* Is deployment allowed for this key? */
bool nuage_key_allows(const nuage_key *k, const char *deployment);

/* ---- usage ------------------------------------------------------------------------- */
typedef struct {
    int64_t time_ms;
    int64_t tenant_id, key_id;      /* 0 when auth is off */
    char request_id[48];
    char deployment[64];
    char model_version[64];
    int64_t prompt_tokens, cached_tokens, completion_tokens, reasoning_tokens;
    int status;                     /* HTTP status */
    double latency_ms;
} nuage_usage_record;

/* Durable when it returns 0 (fsync'd WAL commit). Billing fails closed:
 * when the write fails (disk full, I/O error) the record is kept in
 * memory (up to NUAGE_STORE_MAX_PENDING records) and retried before every
 * later write and by nuage_store_metering_check, and the call returns the
 * error (NUAGE_E_IO). Records still pending at nuage_store_close get a
 * last try. */
int nuage_store_usage_add(nuage_store *s, const nuage_usage_record *r);

#define NUAGE_STORE_MAX_PENDING 65536
/* Minimum time between two flush attempts of nuage_store_metering_check. */
#define NUAGE_STORE_RETRY_MS 1000

/*
 * May new metered requests start? 0 when every usage record is written
 * (the pending ones are flushed now if the last attempt is at least
 * NUAGE_STORE_RETRY_MS old); NUAGE_E_IO while records wait in memory
 * (answer 503 metering_unavailable, Retry-After: *retry_after_ms, may be
 * NULL). NUAGE_E_INVAL when s is NULL.
 */
int nuage_store_metering_check(nuage_store *s, int64_t *retry_after_ms);

typedef struct {
    int pending;              /* usage records waiting in memory */
    int64_t pending_since_ms; /* wall-clock time of the first failed write; 0 when none */
    int64_t lost;             /* records dropped beyond NUAGE_STORE_MAX_PENDING */
    char last_error[160];     /* the last write error ("" when none yet) */
    /* The usage journal (nuage_store_journal_open), when there is one. */
    bool journal;
    int64_t journal_queued;           /* records in the journal, not yet in PostgreSQL */
    int64_t journal_shipped;          /* records shipped since it was opened */
    int64_t journal_ship_failures;    /* failed shipments since it was opened */
    int64_t journal_failing_since_ms; /* wall time of the first failure of the current run; 0 when shipping */
    char journal_error[160];          /* the last shipment error ("" after a success) */
} nuage_metering_status;

/* The metering state, for /health and /metrics (no I/O). */
void nuage_store_metering_status(nuage_store *s, nuage_metering_status *out);

/*
 * Usage journal (a cluster replica; store_journal.c). From this call on,
 * nuage_store_usage_add on the PostgreSQL store s writes each record to
 * the local SQLite file `path` (created if needed; fsync'd commit) and a
 * thread ships the journal to the database at `url` (s's own URL) in
 * batches, idempotently (unique request id, ON CONFLICT DO NOTHING),
 * deleting a batch only after PostgreSQL committed it. Records left in
 * the file by an earlier run are shipped too. A record without a request
 * id gets one. The journal failing to write is what a full disk is to a
 * single server (records wait in memory, metering check fails: 503).
 * Returns 0, NUAGE_E_UNSUPPORTED (not a PostgreSQL store), NUAGE_E_STATE
 * (already has one), NUAGE_E_IO (file or database), with err filled.
 * The journal is closed by nuage_store_close (after one last shipment).
 */
int nuage_store_journal_open(nuage_store *s, const char *url, const char *path, char *err, size_t errlen);
/* Wait until the journal is empty (everything in PostgreSQL): 0, or
 * NUAGE_E_BUSY after timeout_ms. 0 at once without a journal. */
int nuage_store_journal_drain(nuage_store *s, int timeout_ms);

typedef struct {
    char group[64];                 /* day (YYYY-MM-DD), deployment, or "total" */
    int64_t requests, prompt_tokens, cached_tokens, completion_tokens, reasoning_tokens;
} nuage_usage_total;

/* Totals for tenant_id (0 = all tenants) since since_ms (0 = all time),
 * grouped by "day", "deployment", "tenant" (group = tenant name) or NULL
 * (one "total" row). */
int nuage_store_usage_totals(nuage_store *s, int64_t tenant_id, int64_t since_ms, const char *by,
                             nuage_usage_total **out, int *n);
/* The same for records before until_ms too (0: no end). */
int nuage_store_usage_totals_range(nuage_store *s, int64_t tenant_id, int64_t since_ms, int64_t until_ms,
                                   const char *by, nuage_usage_total **out, int *n);

/* ---- files (OpenAI Files API, purpose "batch" and "batch_output") ------------------ */
typedef struct {
    char id[40];          /* "file-..." */
    int64_t tenant_id;
    char filename[256];
    char purpose[32];
    int64_t bytes;
    int64_t created_ms;
} nuage_file;

int nuage_store_file_create(nuage_store *s, int64_t tenant_id, const char *filename,
                            const char *purpose, const void *data, size_t len, nuage_file *out);
/* The same with the contents read from fd (len bytes from offset 0, in
 * chunks: memory stays bounded whatever len; store_blob.c). */
int nuage_store_file_create_fd(nuage_store *s, int64_t tenant_id, const char *filename, const char *purpose,
                               int fd, uint64_t len, nuage_file *out);
/* Only the owning tenant sees a file: another tenant's id is NUAGE_E_RANGE. */
int nuage_store_file_get(nuage_store *s, int64_t tenant_id, const char *id, nuage_file *out);
/* Content: malloc'd *data of *len bytes. */
int nuage_store_file_content(nuage_store *s, int64_t tenant_id, const char *id, void **data,
                             size_t *len);
/* Up to cap bytes of the contents from offset off into buf, for reading a
 * file piecewise (downloads: memory stays at one chunk whatever the file's
 * size; store_blob.c). Stateless: each call looks the file up again, so a
 * file deleted meanwhile is NUAGE_E_RANGE. 0 with *got (0 at or past the
 * end) and *size (the file's size, may be NULL), NUAGE_E_RANGE, or an
 * error. Holds the store's lock for one chunk only. */
int nuage_store_file_read(nuage_store *s, int64_t tenant_id, const char *id, uint64_t off, void *buf,
                          size_t cap, size_t *got, uint64_t *size);
int nuage_store_file_list(nuage_store *s, int64_t tenant_id, const char *purpose,
                          nuage_file **out, int *n);
int nuage_store_file_delete(nuage_store *s, int64_t tenant_id, const char *id);

/* ---- batch jobs (OpenAI Batch API) ---------------------------------------------------- */
typedef struct {
    char id[40];                  /* "batch_..." */
    int64_t tenant_id;
    char endpoint[64];            /* "/v1/chat/completions", ... */
    char input_file_id[40], output_file_id[40], error_file_id[40];
    char completion_window[16];   /* "24h" */
    char status[24];              /* validating, in_progress, finalizing, completed, failed,
                                     cancelling, cancelled, expired */
    int64_t created_ms, in_progress_ms, finalizing_ms, completed_ms, cancelled_ms, failed_ms,
        expires_ms;
    int64_t total, completed, failed;  /* request_counts */
    char deployment[64];          /* deployment that runs it */
} nuage_batch_job;

/* metadata: the request's metadata object as JSON text, or NULL / "" for
 * none; kept as given and returned by nuage_store_batch_metadata. */
int nuage_store_batch_create(nuage_store *s, int64_t tenant_id, const char *endpoint,
                             const char *input_file_id, const char *completion_window,
                             const char *deployment, const char *metadata,
                             nuage_batch_job *out);
/* The job's metadata JSON (malloc'd; "" when it has none) into *json.
 * Any tenant's job when tenant_id < 0. NUAGE_E_RANGE: no such job. */
int nuage_store_batch_metadata(nuage_store *s, int64_t tenant_id, const char *id, char **json);
int nuage_store_batch_get(nuage_store *s, int64_t tenant_id, const char *id, nuage_batch_job *out);
/* tenant_id < 0: every tenant's (for the runner). */
int nuage_store_batch_list(nuage_store *s, int64_t tenant_id, nuage_batch_job **out, int *n);
/* Set status (and its timestamp), plus total when > 0. */
int nuage_store_batch_set_status(nuage_store *s, const char *id, const char *status, int64_t total);
/* Record line `line` (1-based) as done, with its output JSONL line (a
 * response or an error). Idempotent: a line already recorded is left as it
 * is (returns NUAGE_E_STATE), so a resumed batch never counts a line twice.
 * Durable when it returns. */
int nuage_store_batch_line_done(nuage_store *s, const char *id, int64_t line, bool is_error,
                                const char *jsonl);
/* Which lines are done: malloc'd sorted array of line numbers. */
int nuage_store_batch_lines_done(nuage_store *s, const char *id, int64_t **lines, int *n);
/* Assemble the output and error files from the recorded lines (in line
 * order), store them as files and set output_file_id / error_file_id. */
int nuage_store_batch_finalize(nuage_store *s, const char *id);

/* ---- batch leases (several replicas on one store; docs/cluster.md) -----------------
 * A replica's batch runner runs a job only while it holds the job's lease:
 * lease_owner (a replica id) and lease_until (wall-clock ms, the caller's
 * now_ms: replicas' clocks must agree to well under the lease length). */

/* Take the oldest unfinished job (validating, in_progress, finalizing,
 * cancelling) whose lease is free (never taken, released, or expired at
 * now_ms) or already owner's, and lease it to owner until now_ms +
 * lease_ms, atomically: two replicas never both get one job. 0 with *out
 * (may be NULL), NUAGE_E_RANGE when no job is available. */
int nuage_store_batch_claim(nuage_store *s, const char *owner, int64_t now_ms, int64_t lease_ms,
                            nuage_batch_job *out);
/* Heartbeat: extend owner's lease on id to now_ms + lease_ms. NUAGE_E_STATE
 * when owner holds it no more (another replica took it over after it
 * expired, or it was released): the caller must stop working on the job. */
int nuage_store_batch_renew(nuage_store *s, const char *id, const char *owner, int64_t now_ms,
                            int64_t lease_ms);
/* Give the lease up (nothing happens when owner does not hold it). */
int nuage_store_batch_release(nuage_store *s, const char *id, const char *owner);
/* Who holds id's lease: owner into buf (cap bytes; "" when never taken or
 * released) and *until_ms (either may be NULL). NUAGE_E_RANGE: no such job. */
int nuage_store_batch_lease_get(nuage_store *s, const char *id, char *owner, size_t cap, int64_t *until_ms);

/* ---- stored responses (OpenAI Responses API; store_responses.c) --------------------- */
typedef struct {
    char id[64];                  /* "resp_..." */
    int64_t tenant_id;
    int64_t created_ms, expires_ms;  /* gone (and purgeable) from expires_ms on */
    char status[16];              /* queued, in_progress, completed, incomplete, failed, cancelled */
    char previous_id[64];         /* previous_response_id, "" for a first turn */
    char *object;                 /* the response object (JSON text), malloc'd when read */
    char *input;                  /* this turn's input items (JSON array text), malloc'd when read */
} nuage_stored_response;

/* Insert r, or update status / object / input of the same tenant's row
 * with r's id (NUAGE_E_STATE when the id is another tenant's). */
int nuage_store_response_put(nuage_store *s, const nuage_stored_response *r);
/* The tenant's response id, unexpired at now_ms (others: NUAGE_E_RANGE).
 * Free out with nuage_stored_response_free. */
int nuage_store_response_get(nuage_store *s, int64_t tenant_id, const char *id, int64_t now_ms,
                             nuage_stored_response *out);
int nuage_store_response_delete(nuage_store *s, int64_t tenant_id, const char *id);
/* The conversation ending at id: id, its previous response, and so on, at
 * most max rows (more: NUAGE_E_RANGE), returned oldest first in a malloc'd
 * array (free with nuage_stored_responses_free). A missing or expired link
 * is NUAGE_E_RANGE. */
int nuage_store_response_chain(nuage_store *s, int64_t tenant_id, const char *id, int64_t now_ms, int max,
                               nuage_stored_response **out, int *n);
/* Delete every response expired at now_ms; how many in *n_deleted. */
int nuage_store_response_purge(nuage_store *s, int64_t now_ms, int64_t *n_deleted);
void nuage_stored_response_free(nuage_stored_response *r);
void nuage_stored_responses_free(nuage_stored_response *a, int n);

/* ---- replica registry (several `nuage serve` on one store; store_replicas.c) ---------- */
typedef struct {
    char id[64];                  /* --replica-id, unique in the cluster */
    char address[128];            /* host:port where the balancer reaches it */
    char deployments[256];        /* comma-separated deployment names it serves */
    double load;                  /* requests in flight (or any load figure it reports) */
    char version[32];             /* nuage version */
    int64_t started_ms;           /* first heartbeat of this run */
    int64_t heartbeat_ms;         /* last heartbeat */
    bool gone;                    /* left cleanly, or no heartbeat for gone_after_ms */
} nuage_replica;

/* Announce / refresh r (upsert by id; heartbeat_ms = now_ms, gone = false;
 * started_ms kept from the row when it was already up, else now_ms). */
int nuage_store_replica_heartbeat(nuage_store *s, const nuage_replica *r, int64_t now_ms);
/* Mark id gone (a clean shutdown). NUAGE_E_RANGE: no such replica. */
int nuage_store_replica_leave(nuage_store *s, const char *id, int64_t now_ms);
/* Every replica, by id; those without a heartbeat for gone_after_ms are
 * marked gone in the store first. *out malloc'd (caller frees). */
int nuage_store_replica_list(nuage_store *s, int64_t now_ms, int64_t gone_after_ms, nuage_replica **out,
                             int *n);

/* ---- shared quota windows (PostgreSQL only; store_pg_quota.c, quota_shared.c) ---------- */
/* The sliding 60-s TPM / RPM windows of quota.h kept in the database, so
 * that a tenant's limits hold for every replica together. A SQLite store
 * answers NUAGE_E_UNSUPPORTED to all of these (one server keeps its
 * windows in memory). Times are the database server's clock. */
typedef struct {
    int64_t requests, tokens;       /* live in the window (after admission when admitted) */
    int64_t reset_requests_ms;      /* until its newest request leaves it */
    int64_t reset_tokens_ms;        /* until its newest request with tokens leaves it */
} nuage_store_window;

/* Create the table, sequence and function the calls below use (once per
 * database; idempotent, safe from several replicas at once). */
int nuage_store_quota_prepare(nuage_store *s);
/* Admit a request of `tokens` tokens of `tenant`: window 0 is the
 * tenant's own (limits tpm[0] / rpm[0]), window 1 the tenant's on
 * `deployment` (tpm[1] / rpm[1]; both 0 = not kept); 0 = unlimited. All
 * or nothing, serialised per tenant across the cluster. Returns 0 with
 * *ticket > 0 (admitted), NUAGE_E_BUSY (*retry_after_ms > 0), NUAGE_E_RANGE
 * (larger than a TPM limit: *retry_after_ms -1), NUAGE_E_IO (database
 * unreachable: the caller must refuse, fail closed). w[] filled on 0 and
 * BUSY / RANGE. */
int nuage_store_quota_admit(nuage_store *s, int64_t tenant, const char *deployment, const int64_t tpm[2],
                            const int64_t rpm[2], int64_t tokens, int64_t *ticket, nuage_store_window w[2],
                            int64_t *retry_after_ms);
/* The admitted request of ticket used `tokens` in the end / never ran. */
int nuage_store_quota_settle(nuage_store *s, int64_t ticket, int64_t tokens);
int nuage_store_quota_cancel(nuage_store *s, int64_t ticket);
/* A leased slice of both windows (quota_slices.c): one row per window
 * holding up to want_requests requests and want_tokens tokens (as much as
 * fits), granted only when at least one request of `need` tokens fits.
 * 0 with out->ticket, requests, tokens (granted) and w (the windows after
 * it); NUAGE_E_BUSY / NUAGE_E_RANGE / NUAGE_E_IO as quota_admit. */
typedef struct {
    int64_t ticket, requests, tokens, retry_after_ms;
    nuage_store_window w[2]; /* requests and tokens only */
} nuage_store_lease;
int nuage_store_quota_lease(nuage_store *s, int64_t tenant, const char *deployment, const int64_t tpm[2],
                            const int64_t rpm[2], int64_t need, int64_t want_requests, int64_t want_tokens,
                            nuage_store_lease *out);
/* Give back part of a lease (unused requests / tokens; tokens may be
 * negative: a request used more than it reserved). */
int nuage_store_quota_return(nuage_store *s, int64_t ticket, int64_t requests, int64_t tokens);
/* Live requests and tokens of (tenant, scope: "" = the tenant's own window). */
int nuage_store_quota_usage(nuage_store *s, int64_t tenant, const char *scope, int64_t *requests,
                            int64_t *tokens);

#endif
