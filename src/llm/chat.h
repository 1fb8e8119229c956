/*
 * chat.h - the ChatML conversation format of Qwen2.5-Instruct.
 *
 *   <|im_start|>system\nYou are Qwen, ...<|im_end|>\n
 *   <|im_start|>user\nHello<|im_end|>\n
 *   <|im_start|>assistant\n            <- the generation prompt
 *
 * This is what Qwen2.5's chat template renders (messages in order; a
 * default system prompt first when the conversation has none). chat_encode
 * produces the ids directly: the <|im_start|>/<|im_end|> markers are special
 * tokens, while roles and contents are encoded with special tokens NOT
 * allowed, so a message that contains "<|im_start|>" cannot forge a turn.
 * Each stretch between markers is encoded as one text, exactly as Hugging
 * Face tokenizes the rendered template.
 *
 * chat_fit fits a conversation into a token budget: the oldest turns are
 * dropped whole; the system prompt and the last user turn are kept, and when
 * even they do not fit, the last user message is cut (from its start or its
 * middle) and the result says so.
 *
 * Threads: all functions are reentrant; the tokenizer is only read.
 */
#ifndef ECHO_CHAT_H
#define ECHO_CHAT_H

#include "core/core.h"
#include "llm/tokenizer.h"

#define CHAT_DEFAULT_SYSTEM "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."

enum chat_role {
    CHAT_ROLE_SYSTEM = 0,
    CHAT_ROLE_USER = 1,
    CHAT_ROLE_ASSISTANT = 2,
};

struct chat_message {
    enum chat_role role;
    const char *content; /* UTF-8; invalid bytes are encoded as U+FFFD */
    size_t len;          /* bytes of content; 0 means content is NUL-terminated */
};

/* "system", "user", "assistant"; NULL for another value. */
const char *chat_role_name(enum chat_role role);
/* The reverse; -1 for an unknown name. */
int chat_role_parse(const char *name, enum chat_role *out);

enum chat_truncate {
    CHAT_TRUNCATE_START = 0,  /* keep the end of the message (where the question usually is) */
    CHAT_TRUNCATE_MIDDLE = 1, /* keep its beginning and its end */
};

struct chat_opts {
    /* System prompt used when the first message is not a system message:
     * NULL means CHAT_DEFAULT_SYSTEM, "" means none at all. */
    const char *default_system;
    /* Leave out the final "<|im_start|>assistant\n". */
    bool no_generation_prompt;
    enum chat_truncate truncate; /* for chat_fit */
};

/* Appends the ChatML text of the conversation to out (opts may be NULL). */
void chat_render(const struct chat_message *msgs, size_t n, const struct chat_opts *opts,
                 struct strbuf *out);

/*
 * Appends the ids of the conversation to out. -1 with err filled when the
 * tokenizer has no <|im_start|> / <|im_end|> tokens, a role is invalid, or
 * encoding fails.
 */
int chat_encode(const tokenizer *t, const struct chat_message *msgs, size_t n,
                const struct chat_opts *opts, struct tok_ids *out, struct echo_err *err);

struct chat_fit_result {
    size_t n_tokens;        /* ids appended to out */
    size_t first_kept;      /* index in msgs of the first message kept after the system prompt */
    size_t n_dropped;       /* messages dropped (whole turns, oldest first) */
    bool truncated;         /* the last user message was cut */
    size_t truncated_bytes; /* bytes of it removed */
};

/*
 * Encodes the conversation into at most `budget` ids (the generation prompt
 * included) and appends them to out; res describes what was kept. A turn is
 * a user message and what follows it up to the next user message (messages
 * before the first user message form one turn too); the system prompt (the
 * first message when it is a system message, else the default) and the last
 * user turn are never dropped. -1 with err filled when even the system
 * prompt and the frame of the last user message exceed the budget.
 */
int chat_fit(const tokenizer *t, const struct chat_message *msgs, size_t n, size_t budget,
             const struct chat_opts *opts, struct tok_ids *out, struct chat_fit_result *res,
             struct echo_err *err);

#endif
