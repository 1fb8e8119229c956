/*
 * test_config.c - settings: .env syntax (quotes, escapes, export, comments),
 * precedence flag > environment > .env > default, validation errors naming
 * file:line and key, all-or-nothing application of a bad file, and the
 * development secret key kept in the instance folder.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/core.h"

static char tmpdir[256];

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/echo-test-config-XXXXXX");
    if (!mkdtemp(tmpdir))
        return -1;
    unsetenv("ECHO_PORT");
    unsetenv("ECHO_HOST");
    unsetenv("SECRET_KEY");
    unsetenv("ECHO_ENV");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static char *write_env(const char *text)
{
    static char path[300];
    snprintf(path, sizeof(path), "%s/.env", tmpdir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return path;
}

static void test_defaults(void **state)
{
    (void)state;
    config *c = config_new();
    assert_string_equal(config_get(c, "ECHO_HOST"), "127.0.0.1");
    assert_int_equal(config_get_int(c, "ECHO_PORT"), 5000);
    assert_null(config_get(c, "SECRET_KEY"));
    assert_true(config_get_bool(c, "ECHO_AUTO_MIGRATE")); /* development default */
    assert_int_equal(config_source_of(c, "ECHO_PORT"), CONFIG_DEFAULT);
    config_free(c);
}

static void test_dotenv_syntax(void **state)
{
    (void)state;
    const char *path = write_env("# a comment\n"
                                 "\n"
                                 "   \n"
                                 "export ECHO_HOST=0.0.0.0\n"
                                 "ECHO_PORT = 8080   # inline comment\n"
                                 "ECHO_SITE_ORIGIN='https://a.example#not-a-comment'\n"
                                 "ECHO_MODEL=\"models/x \\\"q\\\" \\$HOME\\tend\"\r\n"
                                 "OTHER_TOOL=ignored\n"
                                 "ECHO_LOG_LEVEL=warn");
    config *c = config_new();
    struct echo_err err = {0};
    assert_int_equal(config_load_dotenv(c, path, &err), 0);
    assert_string_equal(config_get(c, "ECHO_HOST"), "0.0.0.0");
    assert_int_equal(config_get_int(c, "ECHO_PORT"), 8080);
    assert_string_equal(config_get(c, "ECHO_SITE_ORIGIN"), "https://a.example#not-a-comment");
    assert_string_equal(config_get(c, "ECHO_MODEL"), "models/x \"q\" $HOME\tend");
    assert_string_equal(config_get(c, "ECHO_LOG_LEVEL"), "warn");
    assert_int_equal(config_source_of(c, "ECHO_PORT"), CONFIG_DOTENV);
    config_free(c);
}

static void expect_bad(const char *text, int line, const char *fragment)
{
    const char *path = write_env(text);
    config *c = config_new();
    struct echo_err err = {0};
    int rc = config_load_dotenv(c, path, &err);
    /* Nothing of a bad file is applied, not even its good lines. */
    bool untouched = !strcmp(config_get(c, "ECHO_HOST"), "127.0.0.1");
    config_free(c);
    assert_int_equal(rc, -1);
    assert_int_equal(err.line, line);
    assert_non_null(strstr(err.file, ".env"));
    if (!strstr(err.msg, fragment))
        fail_msg("error '%s' lacks '%s'", err.msg, fragment);
    assert_true(untouched);
}

static void test_dotenv_errors(void **state)
{
    (void)state;
    expect_bad("ECHO_HOST=1.2.3.4\nECHO_PORT=abc\n", 2, "ECHO_PORT");
    expect_bad("ECHO_HOST=1.2.3.4\nECHO_PORT=70000\n", 2, "between 1 and 65535");
    expect_bad("ECHO_HOST=1.2.3.4\n\nECHO_PROT=1\n", 3, "ECHO_PROT");
    expect_bad("ECHO_HOST=1.2.3.4\nnot a line\n", 2, "KEY=VALUE");
    expect_bad("ECHO_HOST=\"open\n", 1, "unterminated");
    expect_bad("ECHO_HOST='a'b\n", 1, "after the closing quote");
    expect_bad("ECHO_HOST=\"\\q\"\n", 1, "escape");
    expect_bad("ECHO_HOST=1.2.3.4\nECHO_ACCESS_LOG=maybe\n", 2, "ECHO_ACCESS_LOG");
    expect_bad("ECHO_ENV=staging\n", 1, "ECHO_ENV");
    expect_bad("SECRET_KEY=short\n", 1, "32 characters");
    expect_bad("ECHO_HOST\n", 1, "no '=' after ECHO_HOST");
    expect_bad("ECHO_HOST=a\"b\n", 1, "quote");
}

static void test_dotenv_binary_refused(void **state)
{
    (void)state;
    char path[300];
    snprintf(path, sizeof(path), "%s/.env", tmpdir);
    FILE *f = fopen(path, "wb");
    fwrite("ECHO_HOST=\xff\xfe\n", 1, 13, f);
    fclose(f);
    config *c = config_new();
    struct echo_err err = {0};
    assert_int_equal(config_load_dotenv(c, path, &err), -1);
    assert_non_null(strstr(err.msg, "UTF-8"));
    config_free(c);
}

static void test_missing_dotenv_is_fine(void **state)
{
    (void)state;
    config *c = config_new();
    assert_int_equal(config_load_dotenv(c, "/nonexistent/.env", NULL), 0);
    config_free(c);
}

static void test_precedence(void **state)
{
    (void)state;
    const char *path = write_env("ECHO_PORT=1111\nECHO_HOST=10.0.0.1\nECHO_THREADS=3\n");
    config *c = config_new();
    setenv("ECHO_PORT", "2222", 1);
    setenv("ECHO_HOST", "10.0.0.2", 1);
    assert_int_equal(config_load_dotenv(c, path, NULL), 0);
    assert_int_equal(config_load_environ(c, NULL), 0);
    assert_int_equal(config_set(c, "ECHO_PORT", "3333", CONFIG_FLAG, NULL), 0);
    assert_int_equal(config_get_int(c, "ECHO_PORT"), 3333);     /* flag */
    assert_string_equal(config_get(c, "ECHO_HOST"), "10.0.0.2"); /* environment */
    assert_int_equal(config_get_int(c, "ECHO_THREADS"), 3);      /* .env */
    /* A lower source loaded later does not override a higher one. */
    assert_int_equal(config_set(c, "ECHO_PORT", "4444", CONFIG_DOTENV, NULL), 0);
    assert_int_equal(config_get_int(c, "ECHO_PORT"), 3333);
    unsetenv("ECHO_PORT");
    unsetenv("ECHO_HOST");
    config_free(c);
}

static void test_bad_environment(void **state)
{
    (void)state;
    config *c = config_new();
    struct echo_err err = {0};
    setenv("ECHO_PORT", "http", 1);
    assert_int_equal(config_load_environ(c, &err), -1);
    assert_non_null(strstr(err.msg, "ECHO_PORT"));
    unsetenv("ECHO_PORT");
    config_free(c);
}

static void test_unknown_key_set(void **state)
{
    (void)state;
    config *c = config_new();
    struct echo_err err = {0};
    assert_int_equal(config_set(c, "NOPE", "1", CONFIG_FLAG, &err), -1);
    assert_non_null(strstr(err.msg, "NOPE"));
    config_free(c);
}

static void test_secret_generated_once(void **state)
{
    (void)state;
    char inst[300];
    snprintf(inst, sizeof(inst), "%s/inst/nested", tmpdir);
    config *c = config_new();
    assert_int_equal(config_set(c, "ECHO_INSTANCE_DIR", inst, CONFIG_FLAG, NULL), 0);
    struct echo_err err = {0};
    assert_int_equal(config_finish(c, &err), 0);
    char *key1 = xstrdup(config_get(c, "SECRET_KEY"));
    assert_int_equal(strlen(key1), 64);
    char *path = config_instance_path(c, "secret_key");
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    config_free(c);

    c = config_new();
    config_set(c, "ECHO_INSTANCE_DIR", inst, CONFIG_FLAG, NULL);
    assert_int_equal(config_finish(c, &err), 0);
    assert_string_equal(config_get(c, "SECRET_KEY"), key1);
    config_free(c);
    free(key1);
    free(path);
}

static void test_production_needs_secret(void **state)
{
    (void)state;
    char inst[300];
    snprintf(inst, sizeof(inst), "%s/prod", tmpdir);
    config *c = config_new();
    config_set(c, "ECHO_INSTANCE_DIR", inst, CONFIG_FLAG, NULL);
    config_set(c, "ECHO_ENV", "production", CONFIG_FLAG, NULL);
    struct echo_err err = {0};
    assert_int_equal(config_finish(c, &err), -1);
    assert_non_null(strstr(err.msg, "SECRET_KEY"));
    assert_false(config_get_bool(c, "ECHO_AUTO_MIGRATE"));
    config_set(c, "SECRET_KEY", "0123456789abcdef0123456789abcdef", CONFIG_ENVIRON, NULL);
    assert_int_equal(config_finish(c, &err), 0);
    config_free(c);
}

static void test_example_lists_every_setting(void **state)
{
    (void)state;
    struct strbuf sb;
    strbuf_init(&sb);
    config_write_example(&sb);
    static const char *keys[] = {
#define SETTING(name, type, def, help) #name,
#include "core/settings.def"
#undef SETTING
    };
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        char needle[128];
        snprintf(needle, sizeof(needle), "# %s=", keys[i]);
        assert_non_null(strstr(strbuf_cstr(&sb), needle));
    }
    /* The committed .env.example must be exactly what the code generates. */
    size_t len;
    char *committed = file_read_all(".env.example", 1 << 20, &len, NULL);
    assert_non_null(committed);
    if (strcmp(committed, strbuf_cstr(&sb)) != 0)
        fail_msg(".env.example is stale: run `echobot config example > .env.example`");
    free(committed);
    strbuf_deinit(&sb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dotenv_syntax, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dotenv_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dotenv_binary_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_dotenv_is_fine, setup, teardown),
        cmocka_unit_test_setup_teardown(test_precedence, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_environment, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_key_set, setup, teardown),
        cmocka_unit_test_setup_teardown(test_secret_generated_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_production_needs_secret, setup, teardown),
        cmocka_unit_test_setup_teardown(test_example_lists_every_setting, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
