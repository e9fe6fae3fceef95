/*
 * deploy.h - the deployment registry: which models a `nuage serve` process
 * serves, under which names, and how they are loaded, replaced and
 * unloaded while the server keeps running.
 *
 * A deployment is a named, versioned configuration (config below): a model
 * file with its context, KV-cache memory, compute threads, default
 * sampling parameters and version label -- or, for kind "router", an
 * opaque routing configuration interpreted by the router module. The
 * request's "model" field names a deployment.
 *
 * Instances and references. What the registry hands out is an *instance*
 * (nuage_deployment): one loaded model with its own scheduler. Instances
 * are reference counted. The registry holds one reference on each active
 * instance; every request takes one for as long as it runs
 * (nuage_registry_acquire ... nuage_deployment_release). Replacing a
 * deployment (same name, new configuration: typically a new model version)
 * loads the new instance first, then swaps it into the name atomically:
 * requests that started on the old instance finish there, on the old
 * weights, while new requests get the new one. Unloading removes the name
 * the same way. An instance whose last reference goes is freed by the
 * registry's reaper thread (never by the thread that dropped the
 * reference, which may be a scheduler thread that cannot free itself).
 * Nothing that happens to one deployment touches another one's instance.
 *
 * Memory check. Before loading, the registry estimates what the new
 * instance needs -- the weights file's size plus its KV-cache pool -- and
 * compares it with what is available: --memory-limit minus what the loaded
 * instances (draining ones included) were charged, or, without a limit,
 * MemAvailable from /proc/meminfo minus a safety margin. A deployment that
 * does not fit is refused with a message naming both numbers, before
 * anything else changes.
 *
 * Threads and locks. Every function may be called from any thread. The
 * registry has one mutex (the name table, leaf lock except that it is held
 * while taking a reference) and one load mutex that serialises loads
 * (so two concurrent loads are checked against memory one after the
 * other); a load runs with the load mutex only, so requests to other
 * deployments go on while a model loads.
 */
#ifndef NUAGE_PLATFORM_DEPLOY_H
#define NUAGE_PLATFORM_DEPLOY_H

#include <jansson.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nuage/constrain.h"
#include "nuage/nuage.h"
#include "nuage/template.h"
#include "runtime/sched.h"

struct nuage_vocab;

/* ---- configuration ------------------------------------------------------------ */

typedef enum { NUAGE_DEPLOY_MODEL = 0, NUAGE_DEPLOY_ROUTER = 1 } nuage_deploy_kind;

#define NUAGE_DEPLOY_MAX_ALIASES 4

/*
 * One deployment's configuration (the JSON schema is documented in
 * docs/platform.md). Zero / empty fields mean "the default".
 */
typedef struct {
    char name[64];              /* [A-Za-z0-9._:-], 1..63 characters */
    nuage_deploy_kind kind;
    char model[1024];           /* model file (kind model); resolved against the config's dir */
    char version[64];           /* version label ("" -> none) */
    char aliases[NUAGE_DEPLOY_MAX_ALIASES][256]; /* other accepted names */
    int n_aliases;
    int n_ctx;                  /* "context" */
    uint64_t kv_memory;         /* "kv_memory" bytes */
    int kv_blocks, kv_block_size;
    nuage_kv_type kv_type;
    int threads;                /* compute threads (0: the registry's default) */
    int parallel;               /* sequences decoding at once (default 8) */
    int max_batch_tokens, max_queue, max_batch_running;
    int step_tokens;            /* tokens per step while streams decode (0: scheduler default) */
    bool prefix_cache;          /* default true */
    int max_n;                  /* largest request `n` (default min(parallel, 8)) */
    int max_tokens_default;     /* output cap without max_tokens (default 4096) */
    bool log_prompts;           /* prompts / completions may be logged (default false) */
    int tpm_per_tenant;         /* optional extra limit of each tenant on this deployment, */
    int rpm_per_tenant;         /* on top of the tenant's own (all deployments); 0 = none */
    json_t *sampling;           /* default request parameters (object) or NULL; owned */
    json_t *router;             /* kind router: its configuration, opaque here; owned */
    json_t *thinking;           /* reasoning_effort budgets (platform/thinking.h) or NULL; owned */
    json_t *source;             /* the object as given (for diffs and listings); owned */
    char chat_template[1024];   /* "chat_template": a Jinja file replacing the model's ("" -> none) */
    char tool_format[16];       /* "tool_format": tool-call family override ("" -> detected) */
} nuage_deploy_config;

/*
 * Parse one deployment object. base_dir (may be NULL) resolves a relative
 * model path. 0, or NUAGE_E_INVAL with a message naming the field. Unknown
 * fields are errors (a typo must not silently fall back to a default). On
 * success the caller owns c (nuage_deploy_config_free).
 */
int nuage_deploy_config_parse(json_t *obj, const char *base_dir, nuage_deploy_config *c,
                              char *err, size_t errlen);
void nuage_deploy_config_free(nuage_deploy_config *c);

/*
 * Parse a whole configuration file's root object: {"deployments": [...],
 * "server": {...}}. *out is a malloc'd array of *n configs (free each, then
 * the array); *server (may be NULL) gets a new reference to the "server"
 * object or NULL. Deployment names must be unique. 0 or NUAGE_E_INVAL.
 */
int nuage_deploy_config_parse_file(json_t *root, const char *base_dir, nuage_deploy_config **out,
                                   int *n, json_t **server, char *err, size_t errlen);
/* Read and parse a configuration file (JSON). Same contract; NUAGE_E_IO
 * when it cannot be read or is not valid JSON. */
int nuage_deploy_config_load(const char *path, nuage_deploy_config **out, int *n, json_t **server,
                             char *err, size_t errlen);

/* "123", "64K", "512M", "2G" (binary units) -> bytes. */
bool nuage_deploy_parse_bytes(const char *s, uint64_t *out);

/* ---- instances ------------------------------------------------------------------- */

/*
 * One loaded instance. Every field is read-only once the instance is
 * visible (acquired); readers need no lock. Model-kind instances have
 * model, sched, voc and tmpl; router instances have none of them (their
 * cfg.router is for the router module).
 */
typedef struct nuage_deployment {
    nuage_deploy_config cfg;
    const char *name;           /* = cfg.name */
    const char *version;        /* = cfg.version ("" when none) */
    nuage_deploy_kind kind;
    const nuage_model *model;
    nuage_sched *sched;         /* submit requests here (see runtime/sched.h) */
    const struct nuage_vocab *voc;
    nuage_template *tmpl;       /* cfg.chat_template, the model's chat template, or ChatML */
    char *tmpl_src;             /* its source text (owned) */
    bool tmpl_fallback;         /* ChatML because the model has no usable template */
    nuage_cg_tokens *cg_tokens; /* the vocabulary for grammar masks (NULL if it could not be built) */
    struct nuage__gcache *gcache; /* compiled grammars shared by requests (server/grammar_cache.h) */
    const char *bos_text, *eos_text; /* NULL when the vocabulary has none */
    int n_ctx, n_vocab, n_embd;
    int max_n, max_tokens_default;
    uint64_t weights_bytes, kv_bytes; /* what the memory check charged */
    int64_t loaded_ms;          /* wall clock, ms since the epoch */
    uint64_t serial;            /* unique per instance in this process */
    /* private to deploy.c */
    _Atomic int refs;
    struct nuage_registry *reg;
    bool owns;                  /* model and sched are freed with the instance */
    bool retired;               /* no longer reachable by name */
    int origin;
    char *bos_own, *eos_own;
} nuage_deployment;

/* ---- registry ----------------------------------------------------------------------- */

typedef struct nuage_registry nuage_registry;

typedef struct {
    uint64_t memory_limit;      /* bytes for all instances; 0: MemAvailable - margin */
    uint64_t memory_margin;     /* kept free of MemAvailable (default 256 MiB) */
    const char *meminfo_path;   /* default "/proc/meminfo" (tests point it elsewhere) */
    int default_threads;        /* compute threads of a deployment without "threads" (0: all) */
    bool verbose;               /* one line on stderr per load / unload / drain */
} nuage_registry_params;

nuage_registry_params nuage_registry_default_params(void);

int nuage_registry_new(const nuage_registry_params *p, nuage_registry **out);
/* Free every instance (cancelling what still runs) and the registry. Call
 * after the HTTP server stopped. */
void nuage_registry_free(nuage_registry *r);

enum { NUAGE_DEPLOY_ORIGIN_CONFIG = 0, NUAGE_DEPLOY_ORIGIN_API = 1 };

/*
 * Load c (copied) and publish it under c->name, replacing (and draining)
 * any instance of that name. Returns 0, or: NUAGE_E_NOMEM with "deployment
 * 'x' needs N bytes (...) but only M bytes are available (...)" when it
 * does not fit in memory; NUAGE_E_IO / NUAGE_E_FORMAT / NUAGE_E_UNSUPPORTED
 * from the model loader; NUAGE_E_INVAL for a bad configuration. On error
 * nothing changed. *replaced (may be NULL) tells whether a previous
 * instance was swapped out.
 */
int nuage_registry_load(nuage_registry *r, const nuage_deploy_config *c, int origin,
                        bool *replaced, char *err, size_t errlen);

/*
 * Publish an already loaded model and running scheduler (not owned: the
 * caller frees them after nuage_registry_free / after the instance was
 * unloaded and released). Used by `nuage serve -m` through
 * nuage_server_set_ready. c gives the name, aliases, version and request
 * limits (parallel, max_n, max_tokens_default); its model field and the
 * sizes are ignored.
 */
int nuage_registry_adopt(nuage_registry *r, const nuage_deploy_config *c, const nuage_model *m,
                         nuage_sched *sched, char *err, size_t errlen);

/* Remove the name (its instance drains and is freed when released).
 * 0 or NUAGE_E_RANGE when no such deployment. */
int nuage_registry_unload(nuage_registry *r, const char *name);

/*
 * Apply a configuration file's deployments (SIGHUP / POST /admin/reload):
 * load the new names, replace the ones whose object changed, unload the
 * ones that came from the configuration and are no longer in it
 * (deployments added through the admin API stay). Keeps going after a
 * failure; returns 0 when every change applied, else the first error with
 * its message. summary (may be NULL) gets "added a, b; replaced c;
 * removed d" style text.
 */
int nuage_registry_apply(nuage_registry *r, const nuage_deploy_config *cs, int n, char *summary,
                         size_t summary_len, char *err, size_t errlen);

/*
 * Take a reference on the instance serving `name` (a deployment name or
 * alias); name NULL or "" is the default deployment (the first one
 * published and still present); "ROUTER:hint" (e.g. "nuage:fast") is the
 * router deployment ROUTER when no deployment has that exact name (the
 * router reads the hint from the request). NULL when there is none.
 */
nuage_deployment *nuage_registry_acquire(nuage_registry *r, const char *name);
void nuage_deployment_ref(nuage_deployment *d);
/* Drop a reference (NULL is ignored). The last one hands a retired
 * instance to the reaper. Safe on a scheduler thread. */
void nuage_deployment_release(nuage_deployment *d);

/* References on every active instance, in publication order: malloc'd
 * array (release each, free the array). 0 or NUAGE_E_NOMEM. */
int nuage_registry_list(nuage_registry *r, nuage_deployment ***out, int *n);
/* Instances retired but still running requests. */
int nuage_registry_n_draining(nuage_registry *r);

/*
 * Shutdown: stop every scheduler from accepting work and let what runs
 * finish for up to deadline_ms in all, then cancel the rest. Returns the
 * number of requests cancelled.
 */
int nuage_registry_drain(nuage_registry *r, int deadline_ms);

/* Bytes the memory check considers available now (limit or MemAvailable
 * minus margin, less what loaded instances were charged), with a short
 * description of the rule in how (may be NULL). */
uint64_t nuage_registry_mem_available(nuage_registry *r, char *how, size_t howlen);
/* MemAvailable of a meminfo file in bytes; 0 or NUAGE_E_IO. */
int nuage_meminfo_available(const char *path, uint64_t *out);

/* ---- router hook --------------------------------------------------------------------- */

/*
 * Router deployments: the router module decides, per request, which model
 * deployment serves it. The server calls route() with the router instance
 * (its cfg.router holds the module's configuration), the request body (may
 * be read and modified, e.g. to set parameters) and the tenant; it writes
 * the chosen deployment's name to out and returns 0, or a negative code
 * with a message for the client (400). Without a hook, a request to a
 * router deployment is answered 501.
 */
typedef struct {
    int (*route)(void *ud, const nuage_deployment *router, json_t *body, int64_t tenant_id,
                 char *out, size_t cap, char *err, size_t errlen);
    void *ud;
} nuage_router_hook;

void nuage_registry_set_router(nuage_registry *r, const nuage_router_hook *h);
/* Copy of the hook (route NULL when none). */
nuage_router_hook nuage_registry_router(nuage_registry *r);

#endif
