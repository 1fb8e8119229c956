/*
 * chat.h - the chat: Socket.IO events send_message / stop_generation, the
 * streamed answer (response_chunk at word boundaries, response_end), the
 * stored discussion, and the data of the chat page.
 *
 * Flow of one message: the realtime thread validates it and reserves the
 * user's single generation slot; the chat worker thread stores it, loads the
 * history and submits it to the engine's scheduler; the engine thread hands
 * text pieces back (flushed to every tab of the user at whitespace, or after
 * 150 ms); at the end the worker stores the answer with its counts and emits
 * response_end. No thread blocks another: the realtime thread never touches
 * the database, the engine thread only appends text and emits.
 *
 * Threads: web_chat_new / web_chat_free on the main thread (free once the
 * HTTP server, and with it the realtime thread, has stopped: no event or
 * page may reach the chat any more); the others from any thread.
 */
#ifndef ECHO_WEB_CHAT_H
#define ECHO_WEB_CHAT_H

#include <jansson.h>

#include "core/core.h"
#include "db/db.h"
#include "llm/llm.h"
#include "realtime/realtime.h"

typedef struct web_chat web_chat;

struct web_chat_deps {
    const config *cfg;
    db_pool *pool;
    sio_server *sio;
    const llm_model *model; /* NULL when no model is installed */
    llm_sched *sched;       /* NULL when no model is installed; owned by the chat */
    const char *model_error; /* why there is no model (shown in the log), may be NULL */
};

/* Registers the Socket.IO events and starts the worker thread. Takes
 * ownership of deps->sched. NULL with err on failure. */
web_chat *web_chat_new(const struct web_chat_deps *deps, struct echo_err *err);
/* Cancels running answers (they are stored, marked cancelled), stops the
 * scheduler and the worker; a message not yet handed to the engine is
 * dropped (its sender never got an ok). Call after the HTTP server has
 * stopped. */
void web_chat_free(web_chat *c);

/* Adds to a page context what chat.html needs: messages (the discussion,
 * oldest first), model {ready, name, install_command}, max_message_chars. */
int web_chat_page_context(web_chat *c, db *d, int64_t user_id, json_t *ctx, struct echo_err *err);

/* Deletes the user's discussion and the engine's cached context of it.
 * Refused (-1, err says why) while an answer is being written. */
int web_chat_clear(web_chat *c, db *d, int64_t user_id, int64_t *deleted, struct echo_err *err);

/* ---- the web area (one chat per process) ---- */

struct web_app;
struct http_request;
struct http_response;

/* Loads the model named by ECHO_MODEL (a missing or broken model is logged
 * and the chat page says how to install one; the site still starts), starts
 * the scheduler and the chat, registers POST /clear_discussion. */
int web_chat_register(struct web_app *app, struct echo_err *err);
/* Stops the chat (after the HTTP server has stopped). */
void web_chat_unregister(struct web_app *app);
/* GET / for a logged-in user: the chat page. */
void web_chat_home(struct web_app *app, struct http_request *req, struct http_response *res);

/* A deleted account (the admin panel): stops its running answer (nothing
 * of it is stored) and drops the engine's cached context of its discussion.
 * Any thread; nothing happens before web_chat_register. */
void web_chat_forget_user(int64_t user_id);

/* Whether a model is loaded (the chat page shows how to install one if not). */
bool web_chat_model_ready(const web_chat *c);

#endif
