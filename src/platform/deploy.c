/*
 * deploy.c - the deployment registry (see deploy.h): configuration
 * parsing, the memory check, loading, replacing and unloading instances,
 * and the reaper that frees retired instances once their last request
 * has let go of them.
 *
 * Why reference counts and a reaper. A request must run to the end on the
 * instance it started on -- the same weights, the same scheduler -- even if
 * an operator replaces or removes the deployment meanwhile. So the name
 * table only points at the current instance; requests hold references; a
 * swap retires the old instance, which keeps serving its requests and is
 * freed when the last one lets go. That last release often happens in a
 * scheduler callback (a request's job is freed when its final on_complete
 * drops it), i.e. on the very thread nuage_sched_free would have to join,
 * so releases never free anything themselves: they queue the instance for
 * a reaper thread.
 *
 * Why the memory check estimates instead of measuring. Loading maps the
 * weights and allocates the KV pool; running out of memory there means the
 * kernel's OOM killer, which would take every deployment down with the
 * one being added. The weights file size and the KV pool size (from the
 * model's KV bytes per token and the configured pool) are known before
 * anything is committed, so they are compared with what is available
 * first: the file size alone before opening the model (a 70 GB file on a
 * 16 GB machine is refused at once), then weights + KV once the model's
 * header says how large a token's KV entry is. Instances are charged what
 * they were estimated at until they are freed, draining ones included.
 *
 * Lock order: load_mu (serialises loads and the memory check) before mu
 * (name table, live list, charges). mu is held only for table updates and
 * reference increments; never while loading, freeing or calling a
 * scheduler.
 */
#define _GNU_SOURCE
#include "platform/deploy.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "engine/clock.h"
#include "nuage/tokenizer.h"
#include "platform/router.h"
#include "constrain/toolcall.h"
#include "platform/thinking.h"
#include "runtime/grammar_cache.h"
#include "runtime/validate.h"

#define NUAGE__DEFAULT_MARGIN (256ull << 20)

/* ============================ configuration ================================== */

bool nuage_deploy_parse_bytes(const char *s, uint64_t *out) {
    if (!s || !*s) return false;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || errno || !(v >= 0)) return false;
    double mul = 1;
    switch (*end) {
    case 'K': case 'k': mul = 1024.0; end++; break;
    case 'M': case 'm': mul = 1024.0 * 1024; end++; break;
    case 'G': case 'g': mul = 1024.0 * 1024 * 1024; end++; break;
    case 'T': case 't': mul = 1024.0 * 1024 * 1024 * 1024; end++; break;
    default: break;
    }
    if (*end == 'i') end++;
    if (*end == 'B' || *end == 'b') end++;
    if (*end) return false;
    v *= mul;
    if (v > 1.8e19) return false;
    *out = (uint64_t)v;
    return true;
}

void nuage_deploy_config_free(nuage_deploy_config *c) {
    if (!c) return;
    json_decref(c->sampling);
    json_decref(c->router);
    json_decref(c->thinking);
    json_decref(c->source);
    c->sampling = c->router = c->thinking = c->source = NULL;
}

/* Deep-enough copy (JSON members get their own references). */
static void nuage__config_copy(nuage_deploy_config *dst, const nuage_deploy_config *src) {
    *dst = *src;
    dst->sampling = json_incref(src->sampling);
    dst->router = json_incref(src->router);
    dst->thinking = json_incref(src->thinking);
    dst->source = json_incref(src->source);
}

/* A tool_format name the tool-call formats know (constrain/toolcall.h). */
static bool nuage__toolfmt_ok(const char *name) {
    return nuage_toolfmt_from_name(name) != NUAGE_TOOLFMT_NONE;
}

/* The whole file at path, NUL-terminated, in *out (caller frees). 0,
 * NUAGE_E_IO or NUAGE_E_NOMEM. */
static int nuage__read_text(const char *path, char **out) {
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return NUAGE_E_IO;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t k = fread(buf + n, 1, cap - n - 1, f);
        n += k;
        if (k == 0) break;
        if (n + 1 == cap) {
            if (cap > ((size_t)64 << 20)) break;   /* a template is not that big */
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
    }
    bool bad = ferror(f) != 0;
    fclose(f);
    if (!buf) return NUAGE_E_NOMEM;
    if (bad) {
        free(buf);
        return NUAGE_E_IO;
    }
    buf[n] = 0;
    *out = buf;
    return 0;
}

static bool nuage__name_ok(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n > 63) return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!isalnum(c) && c != '.' && c != '_' && c != '-' && c != ':') return false;
    }
    return true;
}

/* obj[key] as an int in [lo, hi]; absent/null leaves *out. */
static bool nuage__cfg_int(json_t *o, const char *key, long lo, long hi, int *out, char *err,
                           size_t errlen, const char *who) {
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) return true;
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) {
        snprintf(err, errlen, "deployment '%s': \"%s\" must be an integer in [%ld, %ld]", who, key, lo, hi);
        return false;
    }
    *out = (int)json_integer_value(v);
    return true;
}

static bool nuage__cfg_bool(json_t *o, const char *key, bool *out, char *err, size_t errlen,
                            const char *who) {
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) return true;
    if (!json_is_boolean(v)) {
        snprintf(err, errlen, "deployment '%s': \"%s\" must be true or false", who, key);
        return false;
    }
    *out = json_is_true(v);
    return true;
}

static bool nuage__cfg_str(json_t *o, const char *key, char *out, size_t cap, char *err,
                           size_t errlen, const char *who) {
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) return true;
    if (!json_is_string(v) || json_string_length(v) >= cap || strlen(json_string_value(v)) != json_string_length(v)) {
        snprintf(err, errlen, "deployment '%s': \"%s\" must be a string shorter than %zu bytes", who, key, cap);
        return false;
    }
    snprintf(out, cap, "%s", json_string_value(v));
    return true;
}

/* Bytes as an integer or a "64M"-style string. */
static bool nuage__cfg_bytes(json_t *o, const char *key, uint64_t *out, char *err, size_t errlen,
                             const char *who) {
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) return true;
    if (json_is_integer(v) && json_integer_value(v) > 0) {
        *out = (uint64_t)json_integer_value(v);
        return true;
    }
    if (json_is_string(v) && nuage_deploy_parse_bytes(json_string_value(v), out) && *out > 0) return true;
    snprintf(err, errlen, "deployment '%s': \"%s\" must be a positive number of bytes (e.g. 268435456 or \"256M\")",
             who, key);
    return false;
}

static const char *const nuage__cfg_keys[] = {
    "chat_template", "tool_format",
    "name", "kind", "model", "version", "aliases", "context", "kv_memory", "kv_blocks",
    "kv_block_size", "kv_type", "threads", "parallel", "max_batch_tokens", "max_queue",
    "max_batch_running", "step_tokens", "prefix_cache", "max_n", "max_tokens_default", "log_prompts",
    "sampling", "router", "thinking", "description", "tpm_per_tenant", "rpm_per_tenant",
};

int nuage_deploy_config_parse(json_t *obj, const char *base_dir, nuage_deploy_config *c,
                              char *err, size_t errlen) {
    memset(c, 0, sizeof *c);
    if (!json_is_object(obj)) {
        snprintf(err, errlen, "a deployment must be a JSON object");
        return NUAGE_E_INVAL;
    }
    const char *key;
    json_t *val;
    json_t *nm = json_object_get(obj, "name");
    const char *who = json_is_string(nm) ? json_string_value(nm) : "?";
    json_object_foreach(obj, key, val) {
        bool known = false;
        for (size_t i = 0; i < sizeof nuage__cfg_keys / sizeof *nuage__cfg_keys; i++)
            if (!strcmp(key, nuage__cfg_keys[i])) known = true;
        if (!known) {
            snprintf(err, errlen, "deployment '%s': unknown field \"%s\"", who, key);
            return NUAGE_E_INVAL;
        }
    }
    if (!json_is_string(nm) || !nuage__name_ok(json_string_value(nm))) {
        snprintf(err, errlen, "deployment '%s': \"name\" must be 1 to 63 characters of letters, digits, '.', '_', '-' or ':'", who);
        return NUAGE_E_INVAL;
    }
    snprintf(c->name, sizeof c->name, "%s", json_string_value(nm));
    c->prefix_cache = true;
    c->kv_type = NUAGE_KV_F16;
    c->kv_block_size = 16;
    c->parallel = 8;
    char kind[16] = "model", kvt[8] = "f16", model[1024] = "", ctpl[1024] = "";
    if (!nuage__cfg_str(obj, "kind", kind, sizeof kind, err, errlen, who)) goto fail;
    if (!strcmp(kind, "model")) c->kind = NUAGE_DEPLOY_MODEL;
    else if (!strcmp(kind, "router")) c->kind = NUAGE_DEPLOY_ROUTER;
    else {
        snprintf(err, errlen, "deployment '%s': \"kind\" must be \"model\" or \"router\"", who);
        goto fail;
    }
    if (!nuage__cfg_str(obj, "model", model, sizeof model, err, errlen, who) ||
        !nuage__cfg_str(obj, "version", c->version, sizeof c->version, err, errlen, who) ||
        !nuage__cfg_str(obj, "chat_template", ctpl, sizeof ctpl, err, errlen, who) ||
        !nuage__cfg_str(obj, "tool_format", c->tool_format, sizeof c->tool_format, err, errlen, who) ||
        !nuage__cfg_str(obj, "kv_type", kvt, sizeof kvt, err, errlen, who) ||
        !nuage__cfg_int(obj, "context", 1, 1 << 24, &c->n_ctx, err, errlen, who) ||
        !nuage__cfg_bytes(obj, "kv_memory", &c->kv_memory, err, errlen, who) ||
        !nuage__cfg_int(obj, "kv_blocks", 1, 1 << 30, &c->kv_blocks, err, errlen, who) ||
        !nuage__cfg_int(obj, "kv_block_size", 1, 4096, &c->kv_block_size, err, errlen, who) ||
        !nuage__cfg_int(obj, "threads", 1, 1024, &c->threads, err, errlen, who) ||
        !nuage__cfg_int(obj, "parallel", 1, 4096, &c->parallel, err, errlen, who) ||
        !nuage__cfg_int(obj, "max_batch_tokens", 1, 1 << 20, &c->max_batch_tokens, err, errlen, who) ||
        !nuage__cfg_int(obj, "max_queue", 1, 1 << 20, &c->max_queue, err, errlen, who) ||
        !nuage__cfg_int(obj, "max_batch_running", 0, 4096, &c->max_batch_running, err, errlen, who) ||
        !nuage__cfg_int(obj, "step_tokens", 1, 1 << 20, &c->step_tokens, err, errlen, who) ||
        !nuage__cfg_int(obj, "max_n", 1, 128, &c->max_n, err, errlen, who) ||
        !nuage__cfg_int(obj, "max_tokens_default", 1, 1 << 24, &c->max_tokens_default, err, errlen, who) ||
        !nuage__cfg_bool(obj, "prefix_cache", &c->prefix_cache, err, errlen, who) ||
        !nuage__cfg_bool(obj, "log_prompts", &c->log_prompts, err, errlen, who) ||
        !nuage__cfg_int(obj, "tpm_per_tenant", 0, 1 << 30, &c->tpm_per_tenant, err, errlen, who) ||
        !nuage__cfg_int(obj, "rpm_per_tenant", 0, 1 << 30, &c->rpm_per_tenant, err, errlen, who))
        goto fail;
    json_t *desc = json_object_get(obj, "description");
    if (desc && !json_is_null(desc) && !json_is_string(desc)) {
        snprintf(err, errlen, "deployment '%s': \"description\" must be a string", who);
        goto fail;
    }
    if (!strcmp(kvt, "f16")) c->kv_type = NUAGE_KV_F16;
    else if (!strcmp(kvt, "f32")) c->kv_type = NUAGE_KV_F32;
    else if (!strcmp(kvt, "q8_0")) c->kv_type = NUAGE_KV_Q8_0;
    else {
        snprintf(err, errlen, "deployment '%s': \"kv_type\" must be \"f16\", \"f32\" or \"q8_0\"", who);
        goto fail;
    }
    if (c->kv_blocks && c->kv_memory) {
        snprintf(err, errlen, "deployment '%s': give \"kv_blocks\" or \"kv_memory\", not both", who);
        goto fail;
    }
    json_t *al = json_object_get(obj, "aliases");
    if (al && !json_is_null(al)) {
        if (!json_is_array(al) || json_array_size(al) > NUAGE_DEPLOY_MAX_ALIASES) {
            snprintf(err, errlen, "deployment '%s': \"aliases\" must be an array of at most %d names", who,
                     NUAGE_DEPLOY_MAX_ALIASES);
            goto fail;
        }
        size_t i;
        json_t *a;
        json_array_foreach(al, i, a) {
            if (!json_is_string(a) || !json_string_length(a) || json_string_length(a) >= sizeof c->aliases[0]) {
                snprintf(err, errlen, "deployment '%s': \"aliases[%zu]\" must be a non-empty string", who, i);
                goto fail;
            }
            snprintf(c->aliases[c->n_aliases++], sizeof c->aliases[0], "%s", json_string_value(a));
        }
    }
    json_t *smp = json_object_get(obj, "sampling");
    if (smp && !json_is_null(smp)) {
        if (!json_is_object(smp)) {
            snprintf(err, errlen, "deployment '%s': \"sampling\" must be an object", who);
            goto fail;
        }
        /* Check the defaults exactly as a request's own fields are checked,
         * so that a bad default is a configuration error, not a 400 on
         * every request. */
        nuage__gen_params gp;
        nuage__apierr ae;
        memset(&gp, 0, sizeof gp);
        memset(&ae, 0, sizeof ae);
        bool ok = nuage__parse_gen_params(smp, true, INT32_MAX, 128, &gp, &ae);
        nuage__gen_params_free(&gp);
        if (!ok) {
            snprintf(err, errlen, "deployment '%s': \"sampling\": %s", who, ae.message);
            goto fail;
        }
        static const char *const banned[] = {"stream", "stream_options", "n", "logprobs", "top_logprobs", "echo", "messages", "prompt", "model"};
        for (size_t i = 0; i < sizeof banned / sizeof *banned; i++)
            if (json_object_get(smp, banned[i])) {
                snprintf(err, errlen, "deployment '%s': \"sampling\" may not set \"%s\"", who, banned[i]);
                goto fail;
            }
        c->sampling = json_deep_copy(smp);
        if (!c->sampling) goto fail_oom;
    }
    json_t *th = json_object_get(obj, "thinking");
    if (th && !json_is_null(th)) {
        nuage_thinking_config tc;
        char terr[200];
        if (!json_is_object(th) || nuage_thinking_config_parse(th, &tc, terr, sizeof terr)) {
            snprintf(err, errlen, "deployment '%s': \"thinking\": %s", who,
                     json_is_object(th) ? terr : "must be an object");
            goto fail;
        }
        c->thinking = json_deep_copy(th);
        if (!c->thinking) goto fail_oom;
    }
    json_t *rt = json_object_get(obj, "router");
    if (c->kind == NUAGE_DEPLOY_ROUTER) {
        if (!json_is_object(rt)) {
            snprintf(err, errlen, "deployment '%s': a router deployment needs a \"router\" object", who);
            goto fail;
        }
        if (model[0]) {
            snprintf(err, errlen, "deployment '%s': a router deployment has no \"model\"", who);
            goto fail;
        }
        nuage_router_config *rc = NULL;
        char rerr[300];
        if (nuage_router_config_parse(rt, &rc, rerr, sizeof rerr)) {
            snprintf(err, errlen, "deployment '%s': \"router\": %s", who, rerr);
            goto fail;
        }
        nuage_router_config_free(rc);
        c->router = json_deep_copy(rt);
        if (!c->router) goto fail_oom;
    } else {
        if (rt && !json_is_null(rt)) {
            snprintf(err, errlen, "deployment '%s': \"router\" is only for kind \"router\"", who);
            goto fail;
        }
        if (!model[0]) {
            snprintf(err, errlen, "deployment '%s': \"model\" (the model file) is required", who);
            goto fail;
        }
        if (model[0] != '/' && base_dir && *base_dir)
            snprintf(c->model, sizeof c->model, "%s/%s", base_dir, model);
        else
            snprintf(c->model, sizeof c->model, "%s", model);
        if (ctpl[0] && ctpl[0] != '/' && base_dir && *base_dir)
            snprintf(c->chat_template, sizeof c->chat_template, "%s/%s", base_dir, ctpl);
        else
            snprintf(c->chat_template, sizeof c->chat_template, "%s", ctpl);
        if (c->tool_format[0] && !nuage__toolfmt_ok(c->tool_format)) {
            snprintf(err, errlen, "deployment '%s': \"tool_format\" must be one of \"hermes\", \"llama3\", "
                     "\"mistral\", \"deepseek\", \"harmony\", \"kimi\" or \"generic\"", who);
            goto fail;
        }
    }
    c->source = json_deep_copy(obj);
    if (!c->source) goto fail_oom;
    return 0;
fail_oom:
    snprintf(err, errlen, "out of memory");
    nuage_deploy_config_free(c);
    return NUAGE_E_NOMEM;
fail:
    nuage_deploy_config_free(c);
    return NUAGE_E_INVAL;
}

int nuage_deploy_config_parse_file(json_t *root, const char *base_dir, nuage_deploy_config **out,
                                   int *n, json_t **server, char *err, size_t errlen) {
    *out = NULL;
    *n = 0;
    if (server) *server = NULL;
    if (!json_is_object(root)) {
        snprintf(err, errlen, "the configuration must be a JSON object with a \"deployments\" array");
        return NUAGE_E_INVAL;
    }
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val) {
        if (strcmp(key, "deployments") && strcmp(key, "server") && strcmp(key, "$schema") &&
            strcmp(key, "description")) {
            snprintf(err, errlen, "unknown top-level field \"%s\" (expected \"deployments\" and \"server\")", key);
            return NUAGE_E_INVAL;
        }
    }
    json_t *deps = json_object_get(root, "deployments");
    if (!json_is_array(deps)) {
        snprintf(err, errlen, "\"deployments\" must be an array of deployment objects");
        return NUAGE_E_INVAL;
    }
    json_t *srv = json_object_get(root, "server");
    if (srv && !json_is_null(srv) && !json_is_object(srv)) {
        snprintf(err, errlen, "\"server\" must be an object");
        return NUAGE_E_INVAL;
    }
    size_t k = json_array_size(deps);
    nuage_deploy_config *cs = calloc(k ? k : 1, sizeof *cs);
    if (!cs) {
        snprintf(err, errlen, "out of memory");
        return NUAGE_E_NOMEM;
    }
    int rc = 0;
    size_t i;
    for (i = 0; i < k; i++) {
        rc = nuage_deploy_config_parse(json_array_get(deps, i), base_dir, &cs[i], err, errlen);
        if (rc) break;
        for (size_t j = 0; j < i; j++)
            if (!strcmp(cs[j].name, cs[i].name)) {
                snprintf(err, errlen, "deployment name '%s' is used twice", cs[i].name);
                rc = NUAGE_E_INVAL;
                i++;
                goto fail;
            }
    }
    if (rc) goto fail;
    *out = cs;
    *n = (int)k;
    if (server && srv && json_is_object(srv)) *server = json_incref(srv);
    return 0;
fail:
    for (size_t j = 0; j < i && j < k; j++) nuage_deploy_config_free(&cs[j]);
    free(cs);
    return rc;
}

int nuage_deploy_config_load(const char *path, nuage_deploy_config **out, int *n, json_t **server,
                             char *err, size_t errlen) {
    *out = NULL;
    *n = 0;
    if (server) *server = NULL;
    json_error_t je;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        if (je.line <= 0) snprintf(err, errlen, "%s: %s", path, je.text);
        else snprintf(err, errlen, "%s:%d:%d: %s", path, je.line, je.column, je.text);
        return NUAGE_E_IO;
    }
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = 0;
    else snprintf(dir, sizeof dir, ".");
    char msg[400];
    int rc = nuage_deploy_config_parse_file(root, dir, out, n, server, msg, sizeof msg);
    if (rc) snprintf(err, errlen, "%s: %s", path, msg);
    json_decref(root);
    return rc;
}

/* ============================ memory ===================================== */

int nuage_meminfo_available(const char *path, uint64_t *out) {
    FILE *f = fopen(path ? path : "/proc/meminfo", "r");
    if (!f) return NUAGE_E_IO;
    char line[256];
    int rc = NUAGE_E_IO;
    while (fgets(line, sizeof line, f)) {
        unsigned long long kb;
        if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1) {
            *out = (uint64_t)kb * 1024;
            rc = 0;
            break;
        }
    }
    fclose(f);
    return rc;
}

/* "1.5 GiB"-style text for messages. */
static void nuage__human(uint64_t b, char *buf, size_t cap) {
    const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    double v = (double)b;
    int i = 0;
    while (v >= 1024 && i < 5) {
        v /= 1024;
        i++;
    }
    if (i == 0) snprintf(buf, cap, "%llu B", (unsigned long long)b);
    else snprintf(buf, cap, "%.1f %s", v, u[i]);
}

/* ============================ registry ==================================== */

struct nuage_registry {
    nuage_registry_params p;
    pthread_mutex_t mu;           /* table, live list, charged */
    pthread_mutex_t load_mu;      /* one load (memory check + load + publish) at a time */
    nuage_deployment **active;    /* publication order */
    int n_active, cap_active;
    nuage_deployment **live;      /* every instance not yet freed */
    int n_live, cap_live;
    uint64_t charged;             /* bytes charged to live instances */
    uint64_t serial;
    nuage_router_hook router;
    /* reaper */
    pthread_t reaper;
    pthread_cond_t cv;
    nuage_deployment **doomed;
    int n_doomed, cap_doomed;
    bool stop;
};

static bool nuage__push(nuage_deployment ***arr, int *n, int *cap, nuage_deployment *d) {
    if (*n == *cap) {
        int nc = *cap ? 2 * *cap : 8;
        nuage_deployment **na = realloc(*arr, (size_t)nc * sizeof *na);
        if (!na) return false;
        *arr = na;
        *cap = nc;
    }
    (*arr)[(*n)++] = d;
    return true;
}

static void nuage__remove(nuage_deployment **arr, int *n, nuage_deployment *d) {
    for (int i = 0; i < *n; i++)
        if (arr[i] == d) {
            memmove(arr + i, arr + i + 1, (size_t)(*n - i - 1) * sizeof *arr);
            (*n)--;
            return;
        }
}

/* Free an instance's resources (no registry lock held). */
static void nuage__instance_destroy(nuage_deployment *d) {
    if (d->owns) {
        nuage_sched_free(d->sched);
        nuage_model_free((nuage_model *)d->model);
    }
    nuage_template_free(d->tmpl);
    free(d->tmpl_src);
    nuage__gcache_free(d->gcache);   /* its grammars point into cg_tokens */
    nuage_cg_tokens_free(d->cg_tokens);
    free(d->bos_own);
    free(d->eos_own);
    nuage_deploy_config_free(&d->cfg);
    free(d);
}

static void *nuage__reaper_main(void *arg) {
    nuage_registry *r = arg;
    pthread_mutex_lock(&r->mu);
    for (;;) {
        while (!r->n_doomed && !r->stop) pthread_cond_wait(&r->cv, &r->mu);
        if (!r->n_doomed && r->stop) break;
        nuage_deployment *d = r->doomed[--r->n_doomed];
        pthread_mutex_unlock(&r->mu);
        char name[64];
        snprintf(name, sizeof name, "%s", d->name);
        uint64_t charge = d->weights_bytes + d->kv_bytes;
        nuage__instance_destroy(d);
        pthread_mutex_lock(&r->mu);
        nuage__remove(r->live, &r->n_live, d);
        r->charged -= charge < r->charged ? charge : r->charged;
        if (r->p.verbose) fprintf(stderr, "nuage serve: deployment '%s': old instance drained and unloaded\n", name);
        pthread_cond_broadcast(&r->cv);
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

nuage_registry_params nuage_registry_default_params(void) {
    nuage_registry_params p;
    memset(&p, 0, sizeof p);
    p.memory_margin = NUAGE__DEFAULT_MARGIN;
    p.meminfo_path = "/proc/meminfo";
    return p;
}

int nuage_registry_new(const nuage_registry_params *p, nuage_registry **out) {
    *out = NULL;
    nuage_registry *r = calloc(1, sizeof *r);
    if (!r) return NUAGE_E_NOMEM;
    r->p = p ? *p : nuage_registry_default_params();
    if (!r->p.meminfo_path) r->p.meminfo_path = "/proc/meminfo";
    if (pthread_mutex_init(&r->mu, NULL)) goto fail_mu;
    if (pthread_mutex_init(&r->load_mu, NULL)) goto fail_load;
    if (pthread_cond_init(&r->cv, NULL)) goto fail_cv;
    if (pthread_create(&r->reaper, NULL, nuage__reaper_main, r)) goto fail_thread;
    *out = r;
    return 0;
fail_thread:
    pthread_cond_destroy(&r->cv);
fail_cv:
    pthread_mutex_destroy(&r->load_mu);
fail_load:
    pthread_mutex_destroy(&r->mu);
fail_mu:
    free(r);
    return NUAGE_E_NOMEM;
}

void nuage_deployment_ref(nuage_deployment *d) {
    if (d) atomic_fetch_add(&d->refs, 1);
}

void nuage_deployment_release(nuage_deployment *d) {
    if (!d) return;
    if (atomic_fetch_sub(&d->refs, 1) != 1) return;
    nuage_registry *r = d->reg;
    pthread_mutex_lock(&r->mu);
    if (!nuage__push(&r->doomed, &r->n_doomed, &r->cap_doomed, d)) {
        /* Cannot queue it (out of memory): leak rather than free on a
         * thread that may be the instance's own scheduler thread. */
        fprintf(stderr, "nuage serve: out of memory: deployment '%s' is not freed\n", d->name);
    }
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

/* Retire an active instance (with r->mu held): unreachable by name; the
 * registry's reference is returned to the caller, who releases it after
 * unlocking. */
static void nuage__retire_locked(nuage_registry *r, nuage_deployment *d) {
    d->retired = true;
    nuage__remove(r->active, &r->n_active, d);
}

void nuage_registry_free(nuage_registry *r) {
    if (!r) return;
    pthread_mutex_lock(&r->mu);
    int n = r->n_active;
    nuage_deployment **act = r->active;
    r->active = NULL;
    r->n_active = r->cap_active = 0;
    for (int i = 0; i < n; i++) act[i]->retired = true;
    pthread_mutex_unlock(&r->mu);
    for (int i = 0; i < n; i++) nuage_deployment_release(act[i]);
    free(act);
    /* Wait for the reaper to free every instance. One still referenced
     * after a few seconds without progress is a caller bug (a request
     * outliving the server): then the registry is leaked on purpose, since
     * that reference's release would touch it. */
    pthread_mutex_lock(&r->mu);
    int last = -1, idle_rounds = 0;
    while (r->n_live > 0 && idle_rounds < 25) {
        struct timespec until = nuage__deadline_in(200);
        pthread_cond_timedwait(&r->cv, &r->mu, &until);
        if (r->n_live == last && r->n_doomed == 0) idle_rounds++;
        else idle_rounds = 0;
        last = r->n_live;
    }
    r->stop = true;
    pthread_cond_broadcast(&r->cv);
    int left = r->n_live;
    pthread_mutex_unlock(&r->mu);
    pthread_join(r->reaper, NULL);
    if (left) {
        fprintf(stderr, "nuage serve: warning: %d deployment instance(s) still referenced at exit\n", left);
        return;
    }
    free(r->live);
    free(r->doomed);
    pthread_cond_destroy(&r->cv);
    pthread_mutex_destroy(&r->load_mu);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

/* Name or alias of d equals s. */
static bool nuage__answers_to(const nuage_deployment *d, const char *s) {
    if (!strcmp(d->name, s)) return true;
    for (int i = 0; i < d->cfg.n_aliases; i++)
        if (!strcmp(d->cfg.aliases[i], s)) return true;
    return false;
}

nuage_deployment *nuage_registry_acquire(nuage_registry *r, const char *name) {
    nuage_deployment *d = NULL;
    pthread_mutex_lock(&r->mu);
    if (!name || !*name) {
        if (r->n_active) d = r->active[0];
    } else {
        for (int i = 0; i < r->n_active && !d; i++)
            if (!strcmp(r->active[i]->name, name)) d = r->active[i];
        for (int i = 0; i < r->n_active && !d; i++)
            if (nuage__answers_to(r->active[i], name)) d = r->active[i];
        /* "ROUTER:hint" (e.g. "nuage:fast") names the router ROUTER; the
         * router reads the hint from the request's model itself. */
        const char *colon = d ? NULL : strrchr(name, ':');
        for (int i = 0; colon && i < r->n_active && !d; i++) {
            nuage_deployment *x = r->active[i];
            size_t n = (size_t)(colon - name);
            if (x->kind == NUAGE_DEPLOY_ROUTER && strlen(x->name) == n && !strncmp(x->name, name, n)) d = x;
        }
    }
    if (d) atomic_fetch_add(&d->refs, 1);
    pthread_mutex_unlock(&r->mu);
    return d;
}

int nuage_registry_list(nuage_registry *r, nuage_deployment ***out, int *n) {
    *out = NULL;
    *n = 0;
    pthread_mutex_lock(&r->mu);
    nuage_deployment **a = malloc((size_t)(r->n_active ? r->n_active : 1) * sizeof *a);
    if (!a) {
        pthread_mutex_unlock(&r->mu);
        return NUAGE_E_NOMEM;
    }
    for (int i = 0; i < r->n_active; i++) {
        a[i] = r->active[i];
        atomic_fetch_add(&a[i]->refs, 1);
    }
    *n = r->n_active;
    pthread_mutex_unlock(&r->mu);
    *out = a;
    return 0;
}

int nuage_registry_n_draining(nuage_registry *r) {
    pthread_mutex_lock(&r->mu);
    int n = r->n_live - r->n_active;
    pthread_mutex_unlock(&r->mu);
    return n > 0 ? n : 0;
}

void nuage_registry_set_router(nuage_registry *r, const nuage_router_hook *h) {
    pthread_mutex_lock(&r->mu);
    if (h) r->router = *h;
    else memset(&r->router, 0, sizeof r->router);
    pthread_mutex_unlock(&r->mu);
}

nuage_router_hook nuage_registry_router(nuage_registry *r) {
    pthread_mutex_lock(&r->mu);
    nuage_router_hook h = r->router;
    pthread_mutex_unlock(&r->mu);
    return h;
}

uint64_t nuage_registry_mem_available(nuage_registry *r, char *how, size_t howlen) {
    pthread_mutex_lock(&r->mu);
    uint64_t charged = r->charged;
    pthread_mutex_unlock(&r->mu);
    char a[32], b[32];
    if (r->p.memory_limit) {
        uint64_t avail = r->p.memory_limit > charged ? r->p.memory_limit - charged : 0;
        nuage__human(r->p.memory_limit, a, sizeof a);
        nuage__human(charged, b, sizeof b);
        if (how) snprintf(how, howlen, "--memory-limit %s minus %s charged to loaded deployments", a, b);
        return avail;
    }
    uint64_t ma = 0;
    if (nuage_meminfo_available(r->p.meminfo_path, &ma)) {
        if (how) snprintf(how, howlen, "MemAvailable unknown (%s unreadable): not checked", r->p.meminfo_path);
        return UINT64_MAX;
    }
    uint64_t avail = ma > r->p.memory_margin ? ma - r->p.memory_margin : 0;
    nuage__human(ma, a, sizeof a);
    nuage__human(r->p.memory_margin, b, sizeof b);
    if (how) snprintf(how, howlen, "MemAvailable %s minus a margin of %s", a, b);
    return avail;
}

/* Refuse when need > available, with the message the client sees. */
static int nuage__mem_check(nuage_registry *r, const char *name, uint64_t weights, uint64_t kv,
                            bool kv_known, char *err, size_t errlen) {
    char how[160];
    uint64_t avail = nuage_registry_mem_available(r, how, sizeof how);
    uint64_t need = weights + kv;
    if (need <= avail) return 0;
    char hw[32], hk[32];
    nuage__human(weights, hw, sizeof hw);
    nuage__human(kv, hk, sizeof hk);
    if (kv_known)
        snprintf(err, errlen,
                 "deployment '%s' does not fit in memory: it needs %llu bytes (weights %s + KV cache %s) "
                 "but only %llu bytes are available (%s)",
                 name, (unsigned long long)need, hw, hk, (unsigned long long)avail, how);
    else
        snprintf(err, errlen,
                 "deployment '%s' does not fit in memory: its weights alone need %llu bytes (%s) "
                 "but only %llu bytes are available (%s)",
                 name, (unsigned long long)need, hw, (unsigned long long)avail, how);
    return NUAGE_E_NOMEM;
}

/* Template, BOS/EOS texts and sizes of a model instance. */
static int nuage__instance_prepare(nuage_deployment *d, char *err, size_t errlen) {
    const nuage_model *m = d->model;
    d->voc = nuage_model_vocab(m);
    d->n_vocab = nuage_model_n_vocab(m);
    d->n_embd = nuage_model_n_embd(m);
    nuage_sched_stats st;
    memset(&st, 0, sizeof st);
    nuage_sched_get_stats(d->sched, &st);
    d->n_ctx = st.n_ctx > 0 ? st.n_ctx : nuage_model_n_ctx_train(m);
    int32_t bos = nuage_vocab_bos(d->voc), eos = nuage_vocab_eos(d->voc);
    const char *bt = bos >= 0 ? nuage_vocab_token_text(d->voc, bos) : NULL;
    const char *et = eos >= 0 ? nuage_vocab_token_text(d->voc, eos) : NULL;
    d->bos_own = bt ? strdup(bt) : NULL;
    d->eos_own = et ? strdup(et) : NULL;
    if ((bt && !d->bos_own) || (et && !d->eos_own)) {
        snprintf(err, errlen, "out of memory");
        return NUAGE_E_NOMEM;
    }
    d->bos_text = d->bos_own;
    d->eos_text = d->eos_own;
    /* The chat template: the configured file (an error when it does not
     * load), else the model's, else ChatML -- with a warning, since ChatML
     * renders no tools. */
    char terr[256];
    if (d->cfg.tool_format[0] && !nuage__toolfmt_ok(d->cfg.tool_format)) {
        snprintf(err, errlen, "deployment '%s': unknown tool_format \"%s\"", d->name, d->cfg.tool_format);
        return NUAGE_E_INVAL;
    }
    if (d->cfg.chat_template[0]) {
        int rc = nuage__read_text(d->cfg.chat_template, &d->tmpl_src);
        if (rc) {
            snprintf(err, errlen, "deployment '%s': cannot read the chat template %s", d->name, d->cfg.chat_template);
            return rc;
        }
        if (nuage_template_parse(d->tmpl_src, strlen(d->tmpl_src), &d->tmpl, terr, sizeof terr)) {
            snprintf(err, errlen, "deployment '%s': the chat template %s does not parse: %s", d->name,
                     d->cfg.chat_template, terr);
            return NUAGE_E_INVAL;
        }
    } else {
        const char *src = nuage_model_chat_template(m);
        if (src && nuage_template_parse(src, strlen(src), &d->tmpl, terr, sizeof terr)) {
            fprintf(stderr, "nuage serve: warning: deployment '%s': the model's chat template does not parse (%s); "
                    "using the built-in ChatML template (no tool syntax; give \"chat_template\" / --chat-template)\n",
                    d->name, terr);
            d->tmpl = NULL;
        } else if (!src) {
            fprintf(stderr, "nuage serve: warning: deployment '%s': the model has no chat template; using the "
                    "built-in ChatML template (no tool syntax; give \"chat_template\" / --chat-template)\n", d->name);
        }
        if (d->tmpl) d->tmpl_src = strdup(src);
    }
    if (!d->tmpl) {
        const char *cml = nuage_template_chatml();
        int rc = nuage_template_parse(cml, strlen(cml), &d->tmpl, terr, sizeof terr);
        if (rc) {
            snprintf(err, errlen, "cannot parse the ChatML template: %s", terr);
            return rc;
        }
        d->tmpl_fallback = true;
        d->tmpl_src = strdup(cml);
    }
    if (!d->tmpl_src) {
        snprintf(err, errlen, "out of memory");
        return NUAGE_E_NOMEM;
    }
    /* The vocabulary for grammar masks (structured outputs, tools). */
    if (nuage_cg_tokens_new(d->voc, &d->cg_tokens)) {
        fprintf(stderr, "nuage serve: warning: deployment '%s': no token table for constrained decoding; "
                "structured outputs and forced tool calls are refused\n", d->name);
        d->cg_tokens = NULL;
    }
    d->gcache = nuage__gcache_new(32); /* NULL (no memory): every request compiles its own */
    int par = d->cfg.parallel > 0 ? d->cfg.parallel : 8;
    d->max_n = d->cfg.max_n > 0 ? d->cfg.max_n : (par < 8 ? par : 8);
    if (d->max_n > par) d->max_n = par;
    d->max_tokens_default = d->cfg.max_tokens_default > 0 ? d->cfg.max_tokens_default : 4096;
    return 0;
}

static nuage_deployment *nuage__instance_alloc(nuage_registry *r, const nuage_deploy_config *c) {
    nuage_deployment *d = calloc(1, sizeof *d);
    if (!d) return NULL;
    nuage__config_copy(&d->cfg, c);
    d->name = d->cfg.name;
    d->version = d->cfg.version;
    d->kind = d->cfg.kind;
    d->reg = r;
    atomic_init(&d->refs, 1); /* the registry's */
    d->loaded_ms = nuage__wall_ms();
    return d;
}

/* Another active deployment (not named `self`) answers to one of d's
 * names? (r->mu held) */
static const char *nuage__name_clash_locked(nuage_registry *r, const nuage_deployment *d) {
    for (int i = 0; i < r->n_active; i++) {
        nuage_deployment *o = r->active[i];
        if (!strcmp(o->name, d->name)) continue;
        if (nuage__answers_to(o, d->name)) return d->name;
        for (int k = 0; k < d->cfg.n_aliases; k++)
            if (nuage__answers_to(o, d->cfg.aliases[k])) return d->cfg.aliases[k];
    }
    return NULL;
}

/* Publish d under its name (load_mu held by the caller): replace an
 * instance of the same name in place, else append. */
static int nuage__publish(nuage_registry *r, nuage_deployment *d, bool *replaced, char *err,
                          size_t errlen) {
    nuage_deployment *old = NULL;
    pthread_mutex_lock(&r->mu);
    const char *clash = nuage__name_clash_locked(r, d);
    if (clash) {
        pthread_mutex_unlock(&r->mu);
        snprintf(err, errlen, "the name '%s' is already used by another deployment", clash);
        return NUAGE_E_STATE;
    }
    if (!nuage__push(&r->live, &r->n_live, &r->cap_live, d)) goto fail_oom;
    int at = -1;
    for (int i = 0; i < r->n_active; i++)
        if (!strcmp(r->active[i]->name, d->name)) at = i;
    if (at >= 0) {
        old = r->active[at];
        old->retired = true;
        r->active[at] = d;
    } else if (!nuage__push(&r->active, &r->n_active, &r->cap_active, d)) {
        r->n_live--;
        goto fail_oom;
    }
    d->serial = ++r->serial;
    r->charged += d->weights_bytes + d->kv_bytes;
    pthread_mutex_unlock(&r->mu);
    if (replaced) *replaced = old != NULL;
    if (r->p.verbose)
        fprintf(stderr, "nuage serve: deployment '%s'%s%s%s %s\n", d->name, d->version[0] ? " (version " : "",
                d->version, d->version[0] ? ")" : "", old ? "replaced: new requests go to the new instance, requests in flight finish on the old one" : "loaded");
    nuage_deployment_release(old);
    return 0;
fail_oom:
    pthread_mutex_unlock(&r->mu);
    snprintf(err, errlen, "out of memory");
    return NUAGE_E_NOMEM;
}

int nuage_registry_load(nuage_registry *r, const nuage_deploy_config *c, int origin,
                        bool *replaced, char *err, size_t errlen) {
    if (replaced) *replaced = false;
    if (!c || !nuage__name_ok(c->name)) {
        snprintf(err, errlen, "invalid deployment configuration");
        return NUAGE_E_INVAL;
    }
    nuage_deployment *d = nuage__instance_alloc(r, c);
    if (!d) {
        snprintf(err, errlen, "out of memory");
        return NUAGE_E_NOMEM;
    }
    d->origin = origin;
    d->owns = true;
    int rc = 0;
    pthread_mutex_lock(&r->load_mu);
    if (d->kind == NUAGE_DEPLOY_ROUTER) {
        rc = nuage__publish(r, d, replaced, err, errlen);
        pthread_mutex_unlock(&r->load_mu);
        if (rc) nuage__instance_destroy(d);
        return rc;
    }
    /* 1. The file alone must fit before it is even opened. */
    struct stat sb;
    if (stat(d->cfg.model, &sb) || !S_ISREG(sb.st_mode)) {
        snprintf(err, errlen, "deployment '%s': cannot open model file '%s': %s", d->name, d->cfg.model,
                 errno ? strerror(errno) : "not a regular file");
        rc = NUAGE_E_IO;
        goto fail;
    }
    d->weights_bytes = (uint64_t)sb.st_size;
    if ((rc = nuage__mem_check(r, d->name, d->weights_bytes, 0, false, err, errlen))) goto fail;
    /* 2. Open it; weights + KV pool must fit. */
    nuage_model *m = NULL;
    char lerr[300];
    rc = nuage_model_load(d->cfg.model, NULL, &m, lerr, sizeof lerr);
    if (rc) {
        snprintf(err, errlen, "deployment '%s': %s: %s", d->name, d->cfg.model, lerr);
        goto fail;
    }
    d->model = m;
    /* 3. Its scheduler's parameters; the KV pool is sized exactly as the
     * scheduler will allocate it (sliding-window layers cost their window
     * pool, not the whole context). */
    int bs = d->cfg.kv_block_size > 0 ? d->cfg.kv_block_size : 16;
    int par = d->cfg.parallel > 0 ? d->cfg.parallel : 8;
    nuage_sched_params sp = nuage_sched_default_params();
    sp.n_threads = d->cfg.threads > 0 ? d->cfg.threads : r->p.default_threads;
    sp.n_ctx = d->cfg.n_ctx;
    sp.max_running = par;
    if (d->cfg.max_batch_tokens) sp.max_batch_tokens = d->cfg.max_batch_tokens;
    if (d->cfg.step_tokens) sp.step_tokens = d->cfg.step_tokens;
    if (d->cfg.max_queue) sp.max_queue = d->cfg.max_queue;
    sp.max_batch_running = d->cfg.max_batch_running;
    sp.kv_blocks = d->cfg.kv_blocks;
    sp.kv_memory = d->cfg.kv_memory;
    sp.kv_block_size = bs;
    sp.kv_type = d->cfg.kv_type;
    sp.prefix_cache = d->cfg.prefix_cache;
    d->kv_bytes = nuage_sched_kv_bytes(m, &sp);
    /* an explicit budget is charged whole (the pool fills it with blocks);
     * 0 = parameters the scheduler refuses below, naming the problem */
    if (d->kv_bytes < d->cfg.kv_memory) d->kv_bytes = d->cfg.kv_memory;
    if ((rc = nuage__mem_check(r, d->name, d->weights_bytes, d->kv_bytes, true, err, errlen))) goto fail;
    char serr[300];
    rc = nuage_sched_new(m, &sp, &d->sched, serr, sizeof serr);
    if (rc) {
        snprintf(err, errlen, "deployment '%s': %s", d->name, serr);
        goto fail;
    }
    if ((rc = nuage__instance_prepare(d, err, errlen))) goto fail;
    if ((rc = nuage__publish(r, d, replaced, err, errlen))) goto fail;
    pthread_mutex_unlock(&r->load_mu);
    return 0;
fail:
    pthread_mutex_unlock(&r->load_mu);
    nuage__instance_destroy(d);
    return rc;
}

int nuage_registry_adopt(nuage_registry *r, const nuage_deploy_config *c, const nuage_model *m,
                         nuage_sched *sched, char *err, size_t errlen) {
    if (!c || !nuage__name_ok(c->name)) {
        snprintf(err, errlen, "invalid deployment name");
        return NUAGE_E_INVAL;
    }
    nuage_deployment *d = nuage__instance_alloc(r, c);
    if (!d) {
        snprintf(err, errlen, "out of memory");
        return NUAGE_E_NOMEM;
    }
    d->kind = d->cfg.kind = NUAGE_DEPLOY_MODEL;
    d->origin = NUAGE_DEPLOY_ORIGIN_CONFIG;
    d->owns = false;
    d->model = m;
    d->sched = sched;
    d->weights_bytes = nuage_model_size_bytes(m);
    int rc = nuage__instance_prepare(d, err, errlen);
    if (!rc) {
        pthread_mutex_lock(&r->load_mu);
        rc = nuage__publish(r, d, NULL, err, errlen);
        pthread_mutex_unlock(&r->load_mu);
    }
    if (rc) nuage__instance_destroy(d);
    return rc;
}

int nuage_registry_unload(nuage_registry *r, const char *name) {
    pthread_mutex_lock(&r->mu);
    nuage_deployment *d = NULL;
    for (int i = 0; i < r->n_active; i++)
        if (!strcmp(r->active[i]->name, name)) d = r->active[i];
    if (d) nuage__retire_locked(r, d);
    pthread_mutex_unlock(&r->mu);
    if (!d) return NUAGE_E_RANGE;
    if (r->p.verbose)
        fprintf(stderr, "nuage serve: deployment '%s' removed: requests in flight finish, then it is unloaded\n", name);
    nuage_deployment_release(d);
    return 0;
}

static void nuage__summary_add(char *s, size_t cap, const char *verb, const char *name, bool *first_of_verb) {
    size_t n = strlen(s);
    if (n >= cap) return;
    if (*first_of_verb) snprintf(s + n, cap - n, "%s%s %s", n ? "; " : "", verb, name);
    else snprintf(s + n, cap - n, ", %s", name);
    *first_of_verb = false;
}

int nuage_registry_apply(nuage_registry *r, const nuage_deploy_config *cs, int n, char *summary,
                         size_t summary_len, char *err, size_t errlen) {
    char tmp[4];
    if (!summary) {
        summary = tmp;
        summary_len = sizeof tmp;
    }
    summary[0] = 0;
    int first_rc = 0;
    bool f_add = true, f_rep = true, f_rm = true, f_keep = true;
    for (int i = 0; i < n; i++) {
        nuage_deployment *cur = nuage_registry_acquire(r, cs[i].name);
        if (cur && strcmp(cur->name, cs[i].name)) { /* matched an alias, not the name */
            nuage_deployment_release(cur);
            cur = NULL;
        }
        bool same = cur && cur->cfg.source && cs[i].source && json_equal(cur->cfg.source, cs[i].source) &&
                    !strcmp(cur->cfg.model, cs[i].model);
        if (same) {
            pthread_mutex_lock(&r->mu);
            cur->origin = NUAGE_DEPLOY_ORIGIN_CONFIG;
            pthread_mutex_unlock(&r->mu);
            nuage__summary_add(summary, summary_len, "unchanged", cs[i].name, &f_keep);
            nuage_deployment_release(cur);
            continue;
        }
        bool had = cur != NULL;
        nuage_deployment_release(cur);
        char e[512];
        bool replaced = false;
        int rc = nuage_registry_load(r, &cs[i], NUAGE_DEPLOY_ORIGIN_CONFIG, &replaced, e, sizeof e);
        if (rc) {
            if (!first_rc) {
                first_rc = rc;
                snprintf(err, errlen, "%s", e);
            }
            fprintf(stderr, "nuage serve: config reload: %s\n", e);
            continue;
        }
        nuage__summary_add(summary, summary_len, had ? "replaced" : "added", cs[i].name, had ? &f_rep : &f_add);
    }
    /* Remove the configuration's deployments that are gone from it. */
    for (;;) {
        nuage_deployment *gone = NULL;
        pthread_mutex_lock(&r->mu);
        for (int i = 0; i < r->n_active && !gone; i++) {
            nuage_deployment *d = r->active[i];
            if (d->origin != NUAGE_DEPLOY_ORIGIN_CONFIG) continue;
            bool listed = false;
            for (int k = 0; k < n; k++)
                if (!strcmp(cs[k].name, d->name)) listed = true;
            if (!listed) gone = d;
        }
        char name[64] = "";
        if (gone) snprintf(name, sizeof name, "%s", gone->name);
        pthread_mutex_unlock(&r->mu);
        if (!gone) break;
        if (nuage_registry_unload(r, name) == 0) nuage__summary_add(summary, summary_len, "removed", name, &f_rm);
    }
    return first_rc;
}

int nuage_registry_drain(nuage_registry *r, int deadline_ms) {
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    /* References on every live instance with a scheduler (skipping ones
     * whose count already reached zero: the reaper has them). */
    pthread_mutex_lock(&r->mu);
    int n = 0;
    nuage_deployment **a = malloc((size_t)(r->n_live ? r->n_live : 1) * sizeof *a);
    for (int i = 0; a && i < r->n_live; i++) {
        nuage_deployment *d = r->live[i];
        int c = atomic_load(&d->refs);
        while (c > 0 && !atomic_compare_exchange_weak(&d->refs, &c, c + 1)) {
        }
        if (c > 0) a[n++] = d;
    }
    pthread_mutex_unlock(&r->mu);
    if (!a) return 0;
    int cancelled = 0;
    for (int i = 0; i < n; i++) {
        if (a[i]->sched) {
            struct timespec now;
            clock_gettime(CLOCK_MONOTONIC, &now);
            long spent = (now.tv_sec - t0.tv_sec) * 1000 + (now.tv_nsec - t0.tv_nsec) / 1000000;
            long left = deadline_ms - spent;
            cancelled += nuage_sched_drain(a[i]->sched, left > 0 ? (int)left : 0);
        }
        nuage_deployment_release(a[i]);
    }
    free(a);
    return cancelled;
}
