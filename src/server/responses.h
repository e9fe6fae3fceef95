/*
 * responses.h - what the Responses API files share (api_responses.c: the
 * endpoints, the job and the stored state; responses_items.c: the request
 * translated into a chat request; api_responses_stream.c: the typed
 * server-sent events).
 *
 * The Responses API runs on the chat-completions path: a request is
 * checked and translated into a chat body (messages, tools,
 * response_format, reasoning_effort, max_completion_tokens, ...), then
 * rendered, tokenized and submitted as one generation job (api_gen.c) --
 * the same scheduler, sampler, tool-call parser and constrained decoding.
 * Only the shape of the answer differs: output items instead of choices.
 */
#ifndef NUAGE_SERVER_RESPONSES_H
#define NUAGE_SERVER_RESPONSES_H

#include "server/http.h"

/* One Responses request, parsed. */
typedef struct {
    char id[64];              /* "resp_<hex>" */
    char hex[40];             /* the id's hex part (item ids derive from it) */
    int64_t created_at;       /* seconds */
    int64_t created_ms;       /* wall milliseconds (retention counts from it) */
    json_t *chat;             /* the translated chat body (owned) */
    json_t *input;            /* this turn's input items, normalised with ids (owned) */
    json_t *settings;         /* the request's settings as echoed in the object (owned) */
    char prev[64];            /* previous_response_id, "" when none */
    char model[64];           /* the deployment that runs it */
    bool store;               /* persisted (asked for, and the server has a store) */
    bool background, stream;
    bool logprobs;            /* output_text carries logprobs */
    bool truncate_auto;       /* truncation "auto" */
    int64_t tenant_id;
} nuage__rsp;

void nuage__rsp_free(nuage__rsp *x);

/* responses_items.c -------------------------------------------------------- */

/* Check body (a POST /v1/responses body) and fill x: chat body, settings,
 * this turn's input items. history: the earlier turns' items (stored
 * inputs and outputs of the previous_response_id chain, oldest first), or
 * NULL. false with e filled (400 naming the Responses field). */
bool nuage__rsp_parse(nuage_server *s, json_t *body, json_t *history, nuage__rsp *x, nuage__apierr *e);
/* Turn Responses items (input or output items) into chat messages
 * appended to msgs; call_names maps call_id -> function name across
 * calls. where names the array for error params ("input"). false with e
 * filled. */
bool nuage__rsp_items_to_messages(json_t *items, json_t *msgs, json_t *call_names, const char *where,
                                  nuage__apierr *e);

/* api_responses.c ------------------------------------------------------------ */

/* The store of responses: the server's, else its private temporary one
 * (opened on first use); NULL when none could be opened. */
nuage_store *nuage__rsp_store(nuage_server *s);

/* The response object for x: status from g (NULL: status as given, no
 * output, usage null). force_status: NULL, or a status to report
 * ("queued", "in_progress", "cancelled"). Call with g->mu held or after g
 * completed. New reference. */
json_t *nuage__rsp_object(const nuage__rsp *x, nuage__gen *g, const char *force_status);
/* Persist obj as response x (when x->store). 0 or a store error. */
int nuage__rsp_save(nuage_server *s, const nuage__rsp *x, json_t *obj);
/* Item ids of a response: "rs_<hex>", "msg_<hex>", "fc_<hex>_<k>". */
void nuage__rsp_item_id(const nuage__rsp *x, const char *kind, int k, char *buf, size_t cap);

/* api_responses_stream.c ------------------------------------------------------- */

/* A live event stream over job g for x (x is moved into the stream: zeroed
 * here). Takes one reference on g. ok false on OOM. */
nuage__stream nuage__rsp_stream_new(nuage__gen *g, nuage__rsp *x, int fd, bool *ok);
/* The events of a finished response object, as a replay (GET
 * ?stream=true): created, in_progress, the items' added / delta / done,
 * and the final event; events with sequence_number <= starting_after are
 * left out. Appends to out. */
void nuage__rsp_replay(json_t *obj, int64_t starting_after, nuage__sb *out);

#endif
