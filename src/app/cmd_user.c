/*
 * cmd_user.c - `echobot user create|list|set-password`: account management
 * from the shell, e.g. to make the first admin.
 *
 * Passwords never appear on the command line (where `ps` and the shell
 * history would show them): they are read from standard input, one line,
 * or, on a terminal, prompted twice with echo switched off (termios). The
 * same rules as the signup form apply (src/db/users.c, src/web/password.c).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include <sodium.h>

#include "core/core.h"
#include "db/db.h"
#include "web/security.h"

const char cmd_user_summary[] = "manage accounts (create, list, set-password)";

#define PASSWORD_LINE_MAX 4096

static void usage(FILE *out)
{
    fprintf(out,
            "usage: echobot user create --username NAME --email EMAIL [--admin] [--inactive]\n"
            "       echobot user list [--json]\n"
            "       echobot user set-password NAME_OR_EMAIL\n"
            "\n"
            "  create        add an account; --admin grants the admin role\n"
            "  list          show every account with its roles\n"
            "  set-password  change a password and log the account out everywhere\n"
            "\n"
            "The password is read from standard input (one line), or asked twice\n"
            "without echo when standard input is a terminal. It must be %d to %d\n"
            "characters. Common option: --database PATH (default: ECHO_DATABASE or\n"
            "INSTANCE_DIR/echo.db).\n",
            SEC_PASSWORD_MIN, SEC_PASSWORD_MAX);
}

/* ---- reading a password ------------------------------------------------- */

static struct termios saved_tty;
static volatile sig_atomic_t tty_changed;

/* Ctrl-C at the prompt must not leave the terminal without echo. */
static void restore_tty_and_die(int sig)
{
    if (tty_changed) tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_tty);
    signal(sig, SIG_DFL);
    raise(sig);
}

/* Reads one line (without its line break) into buf; -1 at EOF, on a read
 * error or when the line does not fit. */
static int read_line(char *buf, size_t size)
{
    if (!fgets(buf, (int)size, stdin)) return -1;
    size_t n = strlen(buf);
    if (n == size - 1 && buf[n - 1] != '\n' && !feof(stdin)) return -1;
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        buf[--n] = 0;
    return 0;
}

static int prompt_hidden(const char *prompt, char *buf, size_t size)
{
    struct termios quiet;
    if (tcgetattr(STDIN_FILENO, &saved_tty) != 0) return -1;
    quiet = saved_tty;
    quiet.c_lflag &= ~(tcflag_t)ECHO;
    quiet.c_lflag |= ECHONL;
    signal(SIGINT, restore_tty_and_die);
    signal(SIGTERM, restore_tty_and_die);
    fputs(prompt, stderr);
    fflush(stderr);
    tty_changed = 1;
    tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
    int rc = read_line(buf, size);
    tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_tty);
    tty_changed = 0;
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    return rc;
}

/* The new password into buf (checked against the rule); 0 or -1 with a
 * message printed. */
static int read_new_password(char *buf, size_t size)
{
    struct echo_err err = {0};
    if (isatty(STDIN_FILENO)) {
        char again[PASSWORD_LINE_MAX];
        if (prompt_hidden("New password: ", buf, size) != 0) {
            fprintf(stderr, "echobot user: no password read\n");
            return -1;
        }
        if (sec_password_check(buf, &err) != SEC_OK) {
            fprintf(stderr, "echobot user: %s\n", err.msg);
            return -1;
        }
        int rc = prompt_hidden("Repeat the password: ", again, sizeof(again));
        bool same = rc == 0 && strcmp(buf, again) == 0;
        sodium_memzero(again, sizeof(again));
        if (!same) {
            fprintf(stderr, "echobot user: the two passwords differ\n");
            return -1;
        }
        return 0;
    }
    if (read_line(buf, size) != 0) {
        fprintf(stderr,
                "echobot user: expected the password as one line on standard input "
                "(at most %d bytes)\n",
                PASSWORD_LINE_MAX - 2);
        return -1;
    }
    if (sec_password_check(buf, &err) != SEC_OK) {
        fprintf(stderr, "echobot user: %s\n", err.msg);
        return -1;
    }
    return 0;
}

/* ---- options and set-up ------------------------------------------------- */

struct user_opts {
    const char *database;
    const char *username;
    const char *email;
    const char *target; /* set-password's positional argument */
    bool admin;
    bool inactive;
    bool json;
};

static int parse_args(int argc, char **argv, struct user_opts *o)
{
    *o = (struct user_opts){0};
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--database") && v) {
            o->database = argv[++i];
        } else if (!strcmp(a, "--username") && v) {
            o->username = argv[++i];
        } else if (!strcmp(a, "--email") && v) {
            o->email = argv[++i];
        } else if (!strcmp(a, "--admin")) {
            o->admin = true;
        } else if (!strcmp(a, "--inactive")) {
            o->inactive = true;
        } else if (!strcmp(a, "--json")) {
            o->json = true;
        } else if (a[0] != '-' && !o->target) {
            o->target = a;
        } else {
            fprintf(stderr, "echobot user: unknown or incomplete option '%s'\n", a);
            return -1;
        }
    }
    return 0;
}

static db *open_db(const struct user_opts *o, config **cfg_out)
{
    struct echo_err err = {0};
    char buf[1024];
    db *d = NULL;
    config *c = config_load_default(&err);
    if (c && o->database && config_set(c, "ECHO_DATABASE", o->database, CONFIG_FLAG, &err) != 0)
        goto fail;
    if (!c || config_finish(c, &err) != 0) goto fail;
    d = db_open_config(c, &err);
    if (!d) goto fail;
    *cfg_out = c;
    return d;
fail:
    fprintf(stderr, "echobot user: %s\n", echo_err_format(&err, buf, sizeof(buf)));
    config_free(c);
    return NULL;
}

/* ---- actions ------------------------------------------------------------ */

static int do_create(db *d, const struct user_opts *o)
{
    struct echo_err err = {0};
    if (!o->username || !o->email) {
        fprintf(stderr, "echobot user create: --username and --email are required\n");
        return 2;
    }
    if (!db_username_valid(o->username)) {
        fprintf(stderr,
                "echobot user create: a username is %d to %d letters, digits, '_', '.' or '-'\n",
                DB_USERNAME_MIN, DB_USERNAME_MAX);
        return 1;
    }
    if (!db_email_valid(o->email)) {
        fprintf(stderr, "echobot user create: '%s' is not a valid email address\n", o->email);
        return 1;
    }
    char password[PASSWORD_LINE_MAX];
    char hash[SEC_PASSWORD_HASH_MAX];
    int rc = 1;
    if (read_new_password(password, sizeof(password)) != 0) goto out;
    if (sec_password_hash(password, hash, &err) != SEC_OK) {
        fprintf(stderr, "echobot user create: %s\n", err.msg);
        goto out;
    }
    int64_t now = (int64_t)time_now_s(), id = 0;
    int s = db_tx_begin(d, &err);
    if (s == DB_OK)
        s = db_user_create(d, o->username, o->email, hash, !o->inactive, now, &id, &err);
    if (s == DB_OK && o->admin) s = db_role_add(d, id, "admin", now, NULL, &err);
    if (s == DB_OK) {
        s = db_tx_commit(d, &err);
    } else if (db_in_tx(d)) {
        db_tx_rollback(d);
    }
    if (s == DB_CONFLICT) {
        const char *field = db_conflict_field(d);
        fprintf(stderr, "echobot user create: the %s '%s' is already taken\n", field,
                !strcmp(field, "email") ? o->email : o->username);
        goto out;
    }
    if (s != DB_OK) {
        fprintf(stderr, "echobot user create: %s\n", err.msg);
        goto out;
    }
    printf("created user %s (id %lld)%s\n", o->username, (long long)id,
           o->admin ? " with the admin role" : "");
    rc = 0;
out:
    sodium_memzero(password, sizeof(password));
    return rc;
}

static int do_list(db *d, const struct user_opts *o)
{
    struct echo_err err = {0};
    json_t *all = json_array();
    int64_t total = 0;
    for (int64_t offset = 0;; offset += DB_LIST_MAX) {
        struct db_user_query q = {.sort = DB_USER_SORT_ID, .limit = DB_LIST_MAX, .offset = offset};
        json_t *rows = NULL;
        if (db_user_list_json(d, &q, &rows, &total, &err) != DB_OK) {
            fprintf(stderr, "echobot user list: %s\n", err.msg);
            json_decref(all);
            return 1;
        }
        json_array_extend(all, rows);
        size_t got = json_array_size(rows);
        json_decref(rows);
        if (got < DB_LIST_MAX) break;
    }
    if (o->json) {
        char *text = json_dumps(all, JSON_INDENT(2));
        puts(text ? text : "[]");
        free(text);
        json_decref(all);
        return 0;
    }
    printf("%-6s %-32s %-32s %-16s %-6s %-20s %s\n", "id", "username", "email", "roles", "active",
           "created", "last login");
    size_t i;
    json_t *u;
    json_array_foreach(all, i, u)
    {
        struct strbuf roles;
        strbuf_init(&roles);
        size_t k;
        json_t *r;
        json_array_foreach(json_object_get(u, "roles"), k, r)
        {
            if (k) strbuf_putc(&roles, ',');
            strbuf_puts(&roles, json_string_value(r));
        }
        const char *last = json_string_value(json_object_get(u, "last_login_at_iso"));
        printf("%-6lld %-32s %-32s %-16s %-6s %-20s %s\n",
               (long long)json_integer_value(json_object_get(u, "id")),
               json_string_value(json_object_get(u, "username")),
               json_string_value(json_object_get(u, "email")),
               roles.len ? strbuf_cstr(&roles) : "-",
               json_is_true(json_object_get(u, "is_active")) ? "yes" : "no",
               json_string_value(json_object_get(u, "created_at_iso")), last ? last : "never");
        strbuf_deinit(&roles);
    }
    printf("%lld user%s\n", (long long)total, total == 1 ? "" : "s");
    json_decref(all);
    return 0;
}

static int do_set_password(db *d, const struct user_opts *o)
{
    struct echo_err err = {0};
    if (!o->target) {
        fprintf(stderr, "echobot user set-password: name the account (username or email)\n");
        return 2;
    }
    struct db_user u;
    int s = db_user_find_by_login(d, o->target, &u, &err);
    if (s == DB_NOT_FOUND) {
        fprintf(stderr, "echobot user set-password: no account '%s'\n", o->target);
        return 1;
    }
    if (s != DB_OK) {
        fprintf(stderr, "echobot user set-password: %s\n", err.msg);
        return 1;
    }
    char password[PASSWORD_LINE_MAX];
    char hash[SEC_PASSWORD_HASH_MAX];
    int rc = 1;
    int64_t revoked = 0;
    if (read_new_password(password, sizeof(password)) != 0) goto out;
    if (sec_password_hash(password, hash, &err) != SEC_OK) {
        fprintf(stderr, "echobot user set-password: %s\n", err.msg);
        goto out;
    }
    /* The new password and the end of every old session go together. */
    s = db_tx_begin(d, &err);
    if (s == DB_OK) s = db_user_set_password_hash(d, u.id, hash, &err);
    if (s == DB_OK) s = sec_session_revoke_user(d, u.id, NULL, &revoked, &err);
    if (s == DB_OK)
        s = db_tx_commit(d, &err);
    else if (db_in_tx(d))
        db_tx_rollback(d);
    if (s != DB_OK) {
        fprintf(stderr, "echobot user set-password: %s\n", err.msg);
        goto out;
    }
    printf("changed the password of %s; %lld session%s logged out\n", u.username,
           (long long)revoked, revoked == 1 ? "" : "s");
    rc = 0;
out:
    sodium_memzero(password, sizeof(password));
    db_user_deinit(&u);
    return rc;
}

int cmd_user(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *action = argv[1];
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        }
    }
    if (strcmp(action, "create") && strcmp(action, "list") && strcmp(action, "set-password")) {
        fprintf(stderr, "echobot user: unknown action '%s'\n\n", action);
        usage(stderr);
        return 2;
    }
    struct user_opts o;
    if (parse_args(argc, argv, &o) != 0) return 2;
    if (o.target && strcmp(action, "set-password")) {
        fprintf(stderr, "echobot user %s: unexpected argument '%s'\n", action, o.target);
        return 2;
    }
    config *c = NULL;
    db *d = open_db(&o, &c);
    if (!d) return 1;
    int rc;
    if (!strcmp(action, "create"))
        rc = do_create(d, &o);
    else if (!strcmp(action, "list"))
        rc = do_list(d, &o);
    else
        rc = do_set_password(d, &o);
    db_close(d);
    config_free(c);
    return rc;
}
