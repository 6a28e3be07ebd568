/* Configuration: SMTP_* variables, dotenv files, every error message. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "harness.h"
#include "util/buf.h"

static const char *const smtp_vars[] = {
    "SMTP_HOST",
    "SMTP_PORT",
    "SMTP_USERNAME",
    "SMTP_PASSWORD",
    "SMTP_FROM",
    "SMTP_USE_TLS",
    "SMTP_USE_SSL",
    "SMTP_TIMEOUT",
    "SMTP_HELO_NAME",
    "SMTP_AUTH",
    "SMTP_OAUTH_TOKEN",
    "SMTP_OAUTH_TOKEN_CMD",
    "SMTP_OAUTH_TOKEN_URL",
    "SMTP_OAUTH_CLIENT_ID",
    "SMTP_OAUTH_CLIENT_SECRET",
    "SMTP_OAUTH_REFRESH_TOKEN",
    "SMTP_OAUTH_REFRESH_TOKEN_FILE",
    "SMTP_OAUTH_SCOPE",
    NULL,
};

static void clear_env(void)
{
    for (int i = 0; smtp_vars[i]; i++)
        unsetenv(smtp_vars[i]);
}

/* Write text to a new temporary file; path must hold 64 bytes. */
static void write_tmp(char *path, const char *text, size_t len)
{
    strcpy(path, "/tmp/se-config-test-XXXXXX");
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    if (fd < 0)
        return;
    CHECK(write(fd, text, len) == (ssize_t)len);
    close(fd);
}

/* Load with only `name=value` set (plus SMTP_HOST unless name is it). */
static scalr_email_code load_one(se_settings *s, const char *name, const char *value,
                                 scalr_email_error *err)
{
    clear_env();
    setenv("SMTP_HOST", "smtp.example.com", 1);
    setenv(name, value, 1);
    scalr_email_code rc = se_settings_from_env(s, NULL, err);
    clear_env();
    return rc;
}

static void expect_config_error(const char *name, const char *value, const char *message)
{
    se_settings s;
    scalr_email_error err;
    CHECK_INT(load_one(&s, name, value, &err), SCALR_EMAIL_ECONFIG);
    CHECK_INT(err.code, SCALR_EMAIL_ECONFIG);
    CHECK_STR(err.stage, "CONFIG");
    CHECK_STR(err.message, message);
    CHECK(s.host == NULL);
    se_settings_free(&s);
}

TEST(config_host_unset_is_not_configured)
{
    se_settings s;
    scalr_email_error err;
    clear_env();
    CHECK_INT(se_settings_from_env(&s, NULL, &err), SCALR_EMAIL_ENOTCONFIGURED);
    CHECK_STR(err.stage, "CONFIG");
    CHECK_STR(err.message, "SMTP is not configured: SMTP_HOST is empty");
    setenv("SMTP_HOST", "", 1);
    setenv("SMTP_PORT", "not checked first", 1);
    CHECK_INT(se_settings_from_env(&s, NULL, &err), SCALR_EMAIL_ENOTCONFIGURED);
    CHECK_STR(err.message, "SMTP is not configured: SMTP_HOST is empty");
    CHECK(s.host == NULL);
    clear_env();
}

TEST(config_oauth)
{
    se_settings s;
    scalr_email_error err;
    expect_config_error("SMTP_AUTH", "cram-md5",
                        "SMTP_AUTH must be auto, plain, login, xoauth2 or oauthbearer, got "
                        "'cram-md5'");
    expect_config_error("SMTP_AUTH", "xoauth2",
                        "SMTP_AUTH=xoauth2 needs an access token: set SMTP_OAUTH_TOKEN, "
                        "SMTP_OAUTH_TOKEN_CMD or SMTP_OAUTH_TOKEN_URL");
    expect_config_error("SMTP_OAUTH_TOKEN", "tok",
                        "OAuth2 sign-in needs SMTP_USERNAME (the mailbox the token is for)");
    expect_config_error("SMTP_OAUTH_TOKEN", "tok\r\nQUIT",
                        "SMTP_OAUTH_TOKEN must not contain CR, LF or NUL");

    /* A token without a password; the token wins over a command. */
    clear_env();
    setenv("SMTP_HOST", "smtp.example.com", 1);
    setenv("SMTP_USERNAME", "me@example.com", 1);
    setenv("SMTP_OAUTH_TOKEN", "tok", 1);
    setenv("SMTP_OAUTH_TOKEN_CMD", "printf x", 1);
    setenv("SMTP_AUTH", "OAuthBearer", 1);
    CHECK_INT(se_settings_from_env(&s, NULL, &err), SCALR_EMAIL_OK);
    CHECK_STR(s.oauth_token, "tok");
    CHECK(s.oauth_token_cmd == NULL);
    CHECK_INT(s.auth, 4);
    se_settings_free(&s);

    /* The grant: the file wins over the variable; https only. */
    unsetenv("SMTP_OAUTH_TOKEN");
    unsetenv("SMTP_OAUTH_TOKEN_CMD");
    unsetenv("SMTP_AUTH");
    setenv("SMTP_OAUTH_TOKEN_URL", "https://login.example/token", 1);
    CHECK_INT(se_settings_from_env(&s, NULL, &err), SCALR_EMAIL_ECONFIG);
    CHECK_STR(err.message, "SMTP_OAUTH_TOKEN_URL is set but SMTP_OAUTH_CLIENT_ID is empty");
    se_settings_free(&s);
    setenv("SMTP_OAUTH_CLIENT_ID", "cid", 1);
    CHECK_INT(se_settings_from_env(&s, NULL, &err), SCALR_EMAIL_ECONFIG);
    CHECK_STR(err.message, "SMTP_OAUTH_TOKEN_URL is set but neither SMTP_OAUTH_REFRESH_TOKEN nor "
                           "SMTP_OAUTH_REFRESH_TOKEN_FILE is");
    se_settings_free(&s);
    setenv("SMTP_OAUTH_REFRESH_TOKEN", "rt", 1);
    setenv("SMTP_OAUTH_REFRESH_TOKEN_FILE", "/var/lib/app/rt", 1);
    CHECK_INT(se_settings_from_env(&s, NULL, &err), SCALR_EMAIL_OK);
    CHECK(s.oauth_refresh_token == NULL);
    CHECK_STR(s.oauth_refresh_token_file, "/var/lib/app/rt");
    CHECK(s.password == NULL);
    se_settings_free(&s);
    setenv("SMTP_AUTH", "plain", 1);
    CHECK_INT(se_settings_from_env(&s, NULL, &err), SCALR_EMAIL_ECONFIG);
    CHECK_STR(err.message, "SMTP_AUTH=plain takes a password, but an OAuth2 token source "
                           "(SMTP_OAUTH_TOKEN_URL) is set");
    se_settings_free(&s);
    unsetenv("SMTP_AUTH");
    setenv("SMTP_OAUTH_TOKEN_URL", "http://login.example/token", 1);
    CHECK_INT(se_settings_from_env(&s, NULL, &err), SCALR_EMAIL_ECONFIG);
    CHECK_STR(err.message, "SMTP_OAUTH_TOKEN_URL must be an https:// URL");
    se_settings_free(&s);
    clear_env();
}

TEST(config_defaults)
{
    se_settings s;
    scalr_email_error err;
    clear_env();
    setenv("SMTP_HOST", "smtp.example.com", 1);
    CHECK_INT(se_settings_from_env(&s, NULL, &err), SCALR_EMAIL_OK);
    CHECK_STR(s.host, "smtp.example.com");
    CHECK_INT(s.port, 587);
    CHECK_INT(s.tls, SCALR_EMAIL_TLS_STARTTLS);
    CHECK_INT(s.timeout_ms, 30000);
    CHECK(s.username == NULL);
    CHECK(s.password == NULL);
    CHECK(s.from == NULL);
    CHECK(s.helo_name == NULL);
    se_settings_free(&s);
    CHECK(s.host == NULL);
    se_settings_free(&s); /* zeroed: a second free is harmless */
    se_settings_free(NULL);
    clear_env();
}

TEST(config_all_values)
{
    se_settings s;
    scalr_email_error err;
    clear_env();
    setenv("SMTP_HOST", "smtp.example.com", 1);
    setenv("SMTP_PORT", "2525", 1);
    setenv("SMTP_USERNAME", "apikey", 1);
    setenv("SMTP_PASSWORD", "p@ss word", 1);
    setenv("SMTP_FROM", "Shop <shop@example.com>", 1);
    setenv("SMTP_USE_TLS", "yes", 1);
    setenv("SMTP_TIMEOUT", "12.5", 1);
    setenv("SMTP_HELO_NAME", "mail.example.org", 1);
    CHECK_INT(se_settings_from_env(&s, NULL, &err), SCALR_EMAIL_OK);
    CHECK_STR(s.host, "smtp.example.com");
    CHECK_INT(s.port, 2525);
    CHECK_STR(s.username, "apikey");
    CHECK_STR(s.password, "p@ss word");
    CHECK_STR(s.from, "Shop <shop@example.com>");
    CHECK_INT(s.tls, SCALR_EMAIL_TLS_STARTTLS);
    CHECK_INT(s.timeout_ms, 12500);
    CHECK_STR(s.helo_name, "mail.example.org");
    se_settings_free(&s);
    clear_env();
}

TEST(config_values_are_verbatim)
{
    se_settings s;
    scalr_email_error err;
    clear_env();
    setenv("SMTP_HOST", " smtp.example.com", 1);
    setenv("SMTP_USERNAME", " user ", 1);
    setenv("SMTP_PASSWORD", "  secret\t", 1);
    setenv("SMTP_FROM", "  \"Shop, Inc.\" <shop@example.com> ", 1);
    CHECK_INT(se_settings_from_env(&s, NULL, &err), SCALR_EMAIL_OK);
    CHECK_STR(s.host, " smtp.example.com");
    CHECK_STR(s.username, " user ");
    CHECK_STR(s.password, "  secret\t");
    CHECK_STR(s.from, "  \"Shop, Inc.\" <shop@example.com> ");
    se_settings_free(&s);
    clear_env();
}

TEST(config_tls_modes)
{
    static const struct {
        const char *use_tls, *use_ssl, *port;
        scalr_email_tls tls;
        unsigned want_port;
    } cases[] = {
        {NULL, NULL, NULL, SCALR_EMAIL_TLS_STARTTLS, 587},
        {"true", NULL, NULL, SCALR_EMAIL_TLS_STARTTLS, 587},
        {"true", "false", NULL, SCALR_EMAIL_TLS_STARTTLS, 587},
        {NULL, "true", NULL, SCALR_EMAIL_TLS_IMPLICIT, 465},
        {"false", "true", NULL, SCALR_EMAIL_TLS_IMPLICIT, 465},
        {"", "1", NULL, SCALR_EMAIL_TLS_IMPLICIT, 465}, /* empty counts as unset */
        {NULL, "yes", "2465", SCALR_EMAIL_TLS_IMPLICIT, 2465},
        {"false", NULL, NULL, SCALR_EMAIL_TLS_NONE, 587},
        {"0", "no", NULL, SCALR_EMAIL_TLS_NONE, 587},
        {"false", "false", "1025", SCALR_EMAIL_TLS_NONE, 1025},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        se_settings s;
        scalr_email_error err;
        clear_env();
        setenv("SMTP_HOST", "h", 1);
        if (cases[i].use_tls)
            setenv("SMTP_USE_TLS", cases[i].use_tls, 1);
        if (cases[i].use_ssl)
            setenv("SMTP_USE_SSL", cases[i].use_ssl, 1);
        if (cases[i].port)
            setenv("SMTP_PORT", cases[i].port, 1);
        CHECK_INT(se_settings_from_env(&s, NULL, &err), SCALR_EMAIL_OK);
        CHECK_INT(s.tls, cases[i].tls);
        CHECK_INT(s.port, cases[i].want_port);
        se_settings_free(&s);
    }
    clear_env();
}

TEST(config_tls_and_ssl_are_exclusive)
{
    se_settings s;
    scalr_email_error err;
    clear_env();
    setenv("SMTP_HOST", "h", 1);
    setenv("SMTP_USE_TLS", "true", 1);
    setenv("SMTP_USE_SSL", "Yes", 1);
    CHECK_INT(se_settings_from_env(&s, NULL, &err), SCALR_EMAIL_ECONFIG);
    CHECK_STR(err.message, "SMTP_USE_TLS=true and SMTP_USE_SSL=true are exclusive: use "
                           "SMTP_USE_SSL=true for implicit TLS (port 465) or SMTP_USE_TLS=true "
                           "for STARTTLS (port 587)");
    clear_env();
}

TEST(config_booleans)
{
    static const struct {
        const char *v;
        scalr_email_tls tls;
    } cases[] = {
        {"TRUE", SCALR_EMAIL_TLS_STARTTLS}, {" Yes ", SCALR_EMAIL_TLS_STARTTLS},
        {"1", SCALR_EMAIL_TLS_STARTTLS},    {"\tno ", SCALR_EMAIL_TLS_NONE},
        {"False", SCALR_EMAIL_TLS_NONE},    {"0", SCALR_EMAIL_TLS_NONE},
        {"NO", SCALR_EMAIL_TLS_NONE},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        se_settings s;
        scalr_email_error err;
        CHECK_INT(load_one(&s, "SMTP_USE_TLS", cases[i].v, &err), SCALR_EMAIL_OK);
        CHECK_INT(s.tls, cases[i].tls);
        se_settings_free(&s);
    }
    expect_config_error("SMTP_USE_TLS", "maybe",
                        "SMTP_USE_TLS must be true/false/1/0/yes/no, got 'maybe'");
    expect_config_error("SMTP_USE_TLS", "y", "SMTP_USE_TLS must be true/false/1/0/yes/no, got 'y'");
    expect_config_error("SMTP_USE_SSL", "on",
                        "SMTP_USE_SSL must be true/false/1/0/yes/no, got 'on'");
    expect_config_error("SMTP_USE_SSL", "truefalse",
                        "SMTP_USE_SSL must be true/false/1/0/yes/no, got 'truefalse'");
    expect_config_error("SMTP_USE_SSL", "tr ue",
                        "SMTP_USE_SSL must be true/false/1/0/yes/no, got 'tr ue'");
}

TEST(config_port)
{
    static const struct {
        const char *v;
        unsigned port;
    } ok[] = {{"25", 25}, {" 2525 ", 2525}, {"1", 1}, {"65535", 65535}, {"00465", 465}};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        se_settings s;
        scalr_email_error err;
        CHECK_INT(load_one(&s, "SMTP_PORT", ok[i].v, &err), SCALR_EMAIL_OK);
        CHECK_INT(s.port, ok[i].port);
        se_settings_free(&s);
    }
    static const char *const bad[] = {"0",   "65536", "abc",         "25x", "-25",
                                      "+25", "2 5",   "99999999999", "0x19"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char want[128];
        snprintf(want, sizeof want, "SMTP_PORT must be a number from 1 to 65535, got '%s'", bad[i]);
        expect_config_error("SMTP_PORT", bad[i], want);
    }
}

TEST(config_timeout)
{
    static const struct {
        const char *v;
        unsigned ms;
    } ok[] = {{"30", 30000}, {"0.5", 500},      {" 10 ", 10000},       {"1.2345", 1234},
              {".25", 250},  {"3600", 3600000}, {"3600.000", 3600000}, {"0.001", 1}};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        se_settings s;
        scalr_email_error err;
        CHECK_INT(load_one(&s, "SMTP_TIMEOUT", ok[i].v, &err), SCALR_EMAIL_OK);
        CHECK_INT(s.timeout_ms, ok[i].ms);
        se_settings_free(&s);
    }
    static const char *const bad[] = {"0",    "0.0", "0.0004", "3600.001",
                                      "3601", "-1",  "abc",    "1e3",
                                      "10s",  ".",   "1..2",   "99999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char want[160];
        snprintf(want, sizeof want,
                 "SMTP_TIMEOUT must be a number of seconds above 0 and at most 3600, got '%s'",
                 bad[i]);
        expect_config_error("SMTP_TIMEOUT", bad[i], want);
    }
}

TEST(config_helo_name)
{
    static const char *const ok[] = {"mail.example.com",     "localhost",          "a-b.c0",
                                     "[192.0.2.1]",          "[IPv6:2001:db8::1]", "[ipv6:::1]",
                                     "xn--bcher-kva.example"};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        se_settings s;
        scalr_email_error err;
        CHECK_INT(load_one(&s, "SMTP_HELO_NAME", ok[i], &err), SCALR_EMAIL_OK);
        CHECK_STR(s.helo_name, ok[i]);
        se_settings_free(&s);
    }
    static const char *const bad[] = {"bad name",
                                      "-a.example",
                                      "a-.example",
                                      "a..b",
                                      ".a",
                                      "a.",
                                      "under_score.example",
                                      "[1.2.3]",
                                      "[IPv6:zz::1]",
                                      "[2001:db8::1]",
                                      "[192.0.2.1",
                                      ("b\xc3\xbc"
                                       "cher.example"),
                                      ("a.bcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz"
                                       "abcdefghijklm")};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char want[300];
        scalr_email_error err;
        se_settings s;
        snprintf(want, sizeof want,
                 "SMTP_HELO_NAME must be a host name (letters, digits, hyphens, dots) or an "
                 "address literal such as [192.0.2.1], got '%s'",
                 bad[i]);
        CHECK_INT(load_one(&s, "SMTP_HELO_NAME", bad[i], &err), SCALR_EMAIL_ECONFIG);
        /* se_copy_line keeps bytes >= 0x80 as they are */
        CHECK_STR(err.message, want);
    }
    /* a 63-octet label is fine, 64 is not (RFC 1035 2.3.4) */
    char name[80];
    memset(name, 'a', 63);
    strcpy(name + 63, ".example");
    se_settings s;
    scalr_email_error err;
    CHECK_INT(load_one(&s, "SMTP_HELO_NAME", name, &err), SCALR_EMAIL_OK);
    se_settings_free(&s);
    memset(name, 'a', 64);
    strcpy(name + 64, ".example");
    CHECK_INT(load_one(&s, "SMTP_HELO_NAME", name, &err), SCALR_EMAIL_ECONFIG);
}

TEST(config_credentials_come_in_pairs)
{
    se_settings s;
    scalr_email_error err;
    expect_config_error("SMTP_USERNAME", "apikey",
                        "SMTP_USERNAME is set but SMTP_PASSWORD is empty");
    CHECK_INT(load_one(&s, "SMTP_PASSWORD", "s3cret-value", &err), SCALR_EMAIL_ECONFIG);
    CHECK_STR(err.message, "SMTP_PASSWORD is set but SMTP_USERNAME is empty");
    CHECK(strstr(err.message, "s3cret") == NULL);
}

TEST(config_rejects_line_breaks)
{
    expect_config_error("SMTP_HOST", "smtp.example.com\r\nRCPT TO:<x@example.com>",
                        "SMTP_HOST must not contain CR, LF or NUL");
    expect_config_error("SMTP_FROM", "a@example.com\nBcc: x@example.com",
                        "SMTP_FROM must not contain CR, LF or NUL");
    expect_config_error("SMTP_HELO_NAME", "a\rb", "SMTP_HELO_NAME must not contain CR, LF or NUL");
    expect_config_error("SMTP_USE_TLS", "true\n", "SMTP_USE_TLS must not contain CR, LF or NUL");

    se_settings s;
    scalr_email_error err;
    clear_env();
    setenv("SMTP_HOST", "h", 1);
    setenv("SMTP_USERNAME", "u", 1);
    setenv("SMTP_PASSWORD", "top\r\nsecret", 1);
    CHECK_INT(se_settings_from_env(&s, NULL, &err), SCALR_EMAIL_ECONFIG);
    CHECK_STR(err.message, "SMTP_PASSWORD must not contain CR, LF or NUL");
    CHECK(strstr(err.message, "secret") == NULL);
    clear_env();
}

TEST(config_file_supplies_values)
{
    char path[64];
    const char *text = "# scalr\n"
                       "SMTP_HOST=smtp.file.example\n"
                       "export SMTP_PORT=2525\n"
                       "SMTP_USERNAME = 'user'\n"
                       "SMTP_PASSWORD=\"pa ss#word\"  # the password\n"
                       "SMTP_FROM=Shop <shop@example.com>\n"
                       "SMTP_TIMEOUT=2.5\n"
                       "UNRELATED=whatever\n";
    write_tmp(path, text, strlen(text));
    se_settings s;
    scalr_email_error err;
    clear_env();
    CHECK_INT(se_settings_from_env(&s, path, &err), SCALR_EMAIL_OK);
    CHECK_STR(s.host, "smtp.file.example");
    CHECK_INT(s.port, 2525);
    CHECK_STR(s.username, "user");
    CHECK_STR(s.password, "pa ss#word");
    CHECK_STR(s.from, "Shop <shop@example.com>");
    CHECK_INT(s.timeout_ms, 2500);
    /* the library never changes the environment */
    CHECK(getenv("SMTP_HOST") == NULL);
    CHECK(getenv("UNRELATED") == NULL);
    se_settings_free(&s);
    unlink(path);
    clear_env();
}

TEST(config_environment_wins_over_file)
{
    char path[64];
    const char *text = "SMTP_HOST=file.example\nSMTP_PORT=25\nSMTP_FROM=file@example.com\n";
    write_tmp(path, text, strlen(text));
    se_settings s;
    scalr_email_error err;
    clear_env();
    setenv("SMTP_PORT", "2525", 1);
    setenv("SMTP_HOST", "", 1); /* empty in the environment: the file's value applies */
    CHECK_INT(se_settings_from_env(&s, path, &err), SCALR_EMAIL_OK);
    CHECK_STR(s.host, "file.example");
    CHECK_INT(s.port, 2525);
    CHECK_STR(s.from, "file@example.com");
    se_settings_free(&s);
    unlink(path);
    clear_env();
}

TEST(config_file_last_assignment_wins)
{
    char path[64];
    const char *text = "SMTP_HOST=first.example\nSMTP_HOST=second.example\n"
                       "SMTP_PORT=25\nSMTP_PORT=\n";
    write_tmp(path, text, strlen(text));
    se_settings s;
    scalr_email_error err;
    clear_env();
    CHECK_INT(se_settings_from_env(&s, path, &err), SCALR_EMAIL_OK);
    CHECK_STR(s.host, "second.example");
    CHECK_INT(s.port, 587); /* the last value is empty: unset */
    se_settings_free(&s);
    unlink(path);
    clear_env();
}

TEST(config_file_values_are_validated)
{
    char path[64], want[160];
    const char *text = "SMTP_HOST=h\nSMTP_USE_TLS=maybe\n";
    write_tmp(path, text, strlen(text));
    se_settings s;
    scalr_email_error err;
    clear_env();
    CHECK_INT(se_settings_from_env(&s, path, &err), SCALR_EMAIL_ECONFIG);
    CHECK_STR(err.message, "SMTP_USE_TLS must be true/false/1/0/yes/no, got 'maybe'");
    unlink(path);

    /* a "\n" escape must not smuggle a line break into a value */
    text = "SMTP_HOST=\"smtp.example.com\\r\\nQUIT\"\n";
    write_tmp(path, text, strlen(text));
    CHECK_INT(se_settings_from_env(&s, path, &err), SCALR_EMAIL_ECONFIG);
    CHECK_STR(err.message, "SMTP_HOST must not contain CR, LF or NUL");
    unlink(path);

    /* nor a bare CR that is not part of a CRLF line end */
    text = "SMTP_HOST=h\nSMTP_FROM=a@example.com\rBcc: b@example.com\n";
    write_tmp(path, text, strlen(text));
    CHECK_INT(se_settings_from_env(&s, path, &err), SCALR_EMAIL_ECONFIG);
    CHECK_STR(err.message, "SMTP_FROM must not contain CR, LF or NUL");
    unlink(path);

    static const char with_nul[] = "SMTP_HOST=h\nSMTP_PORT=1\0\n";
    write_tmp(path, with_nul, sizeof with_nul - 1);
    CHECK_INT(se_settings_from_env(&s, path, &err), SCALR_EMAIL_ECONFIG);
    snprintf(want, sizeof want, "%s:2: NUL byte in line", path);
    CHECK_STR(err.message, want);
    unlink(path);
    clear_env();
}

TEST(config_file_errors)
{
    se_settings s;
    scalr_email_error err;
    clear_env();
    setenv("SMTP_HOST", "h", 1);
    CHECK_INT(se_settings_from_env(&s, "/nonexistent-dir/smtp.env", &err), SCALR_EMAIL_ECONFIG);
    CHECK_STR(err.stage, "CONFIG");
    CHECK_STR(err.message,
              "cannot read env file /nonexistent-dir/smtp.env: No such file or directory");
    CHECK_INT(se_settings_from_env(&s, "/", &err), SCALR_EMAIL_ECONFIG);
    CHECK_STR(err.message, "cannot read env file /: Is a directory");

    char path[64], want[160];
    const char *text = "SMTP_HOST=h\n# fine\n\nSMTP PORT=25\n";
    write_tmp(path, text, strlen(text));
    CHECK_INT(se_settings_from_env(&s, path, &err), SCALR_EMAIL_ECONFIG);
    snprintf(want, sizeof want, "%s:4: invalid variable name", path);
    CHECK_STR(err.message, want);
    CHECK(s.host == NULL);
    unlink(path);

    /* the reason never quotes the line: it may hold the password */
    text = "SMTP_USERNAME=u\r\nSMTP_PASSWORD=\"hunter2\r\n";
    write_tmp(path, text, strlen(text));
    CHECK_INT(se_settings_from_env(&s, path, &err), SCALR_EMAIL_ECONFIG);
    snprintf(want, sizeof want, "%s:2: unterminated double quote", path);
    CHECK_STR(err.message, want);
    CHECK(strstr(err.message, "hunter2") == NULL);
    unlink(path);
    clear_env();
}

/* --- se_dotenv_parse ---------------------------------------------------- */

static int collect(void *arg, const char *key, const char *value)
{
    se_buf_printf(arg, "%s=[%s]\n", key, value);
    return 0;
}

/* Parse text, return the line number; pairs go to out, the reason to why. */
static int parse_len(const char *text, size_t len, se_buf *out, char *why)
{
    se_buf_reset(out);
    int rc = se_dotenv_parse(text, len, collect, out, why, 128);
    if (!out->data)
        se_buf_append(out, "", 0);
    return rc;
}

static int parse(const char *text, se_buf *out, char *why)
{
    return parse_len(text, strlen(text), out, why);
}

TEST(config_dotenv_basic)
{
    se_buf b = {0};
    char why[128];
    CHECK_INT(parse("A=1\nB = two \n  export C=3\nexport\tD =  four five  \nexport=6\n"
                    "exported=7\n_x9=8",
                    &b, why),
              0);
    CHECK_STR(why, "");
    CHECK_STR(b.data, "A=[1]\nB=[two]\nC=[3]\nD=[four five]\nexport=[6]\nexported=[7]\n_x9=[8]\n");
    se_buf_free(&b);
}

TEST(config_dotenv_comments)
{
    se_buf b = {0};
    char why[128];
    CHECK_INT(parse("# comment\n\n   \n\t# indented\nA=x # trailing\nB=x#not-a-comment\n"
                    "C= #only a comment\nD=\nE=a\t# tab comment\nF=#kept\nG=a  b  \n",
                    &b, why),
              0);
    CHECK_STR(b.data, "A=[x]\nB=[x#not-a-comment]\nC=[]\nD=[]\nE=[a]\nF=[#kept]\nG=[a  b]\n");
    se_buf_free(&b);
}

TEST(config_dotenv_single_quotes)
{
    se_buf b = {0};
    char why[128];
    CHECK_INT(
        parse("A='  spaced # not a comment \\n \"x\" '\nB='' # c\nC='x'#c\nD = 'y'  \n", &b, why),
        0);
    CHECK_STR(b.data, "A=[  spaced # not a comment \\n \"x\" ]\nB=[]\nC=[x]\nD=[y]\n");
    se_buf_free(&b);
}

TEST(config_dotenv_double_quotes)
{
    se_buf b = {0};
    char why[128];
    CHECK_INT(parse("A=\"line1\\nline2\"\nB=\"tab\\there\"\nC=\"q\\\"uote\"\nD=\"back\\\\slash\"\n"
                    "E=\"unknown\\x\\$\"\nF=\"# not a comment\"\nG = \"x\" # c\nH=\"\"\n"
                    "I=\"it's\"\n",
                    &b, why),
              0);
    CHECK_STR(b.data, "A=[line1\nline2]\nB=[tab\there]\nC=[q\"uote]\nD=[back\\slash]\n"
                      "E=[unknown\\x\\$]\nF=[# not a comment]\nG=[x]\nH=[]\nI=[it's]\n");
    se_buf_free(&b);
}

TEST(config_dotenv_crlf_and_bom)
{
    se_buf b = {0};
    char why[128];
    CHECK_INT(parse("\xEF\xBB\xBF"
                    "A=1\r\nB='2'\r\nC=\"3\" \r\n# c\r\n\r\nD=4 # c\r\nE=5",
                    &b, why),
              0);
    CHECK_STR(b.data, "A=[1]\nB=[2]\nC=[3]\nD=[4]\nE=[5]\n");
    /* a BOM anywhere else is not whitespace */
    CHECK_INT(parse("A=1\n\xEF\xBB\xBF"
                    "B=2\n",
                    &b, why),
              2);
    CHECK_STR(why, "invalid variable name");
    /* a CR that does not end the line stays in the value */
    CHECK_INT(parse("A=x\ry\n", &b, why), 0);
    CHECK_STR(b.data, "A=[x\ry]\n");
    se_buf_free(&b);
}

TEST(config_dotenv_malformed_lines)
{
    static const struct {
        const char *text;
        int line;
        const char *why, *before;
    } cases[] = {
        {"A=1\nNOEQUALS\n", 2, "missing '=' (expected KEY=value)", "A=[1]\n"},
        {"export\n", 1, "missing '=' (expected KEY=value)", ""},
        {"export A\n", 1, "missing '=' (expected KEY=value)", ""},
        {"1A=x\n", 1, "invalid variable name", ""},
        {"A-B=x\n", 1, "invalid variable name", ""},
        {"=x\n", 1, "invalid variable name", ""},
        {"  = x\n", 1, "invalid variable name", ""},
        {"A B=x\n", 1, "invalid variable name", ""},
        {"export A B=x\n", 1, "invalid variable name", ""},
        {"\xc3\xa9=x\n", 1, "invalid variable name", ""},
        {"A='x\n", 1, "unterminated single quote", ""},
        {"A='x\nB=y'\n", 1, "unterminated single quote", ""},
        {"A=1\n\nB=\"x\n", 3, "unterminated double quote", "A=[1]\n"},
        {"A=\"x\\\"\n", 1, "unterminated double quote", ""},
        {"A=\"x\\", 1, "unterminated double quote", ""},
        {"A='x' y\n", 1, "unexpected text after the closing quote", ""},
        {"A=\"x\"y\n", 1, "unexpected text after the closing quote", ""},
        {"A='x''y'\n", 1, "unexpected text after the closing quote", ""},
    };
    se_buf b = {0};
    char why[128];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        CHECK_INT(parse(cases[i].text, &b, why), cases[i].line);
        CHECK_STR(why, cases[i].why);
        CHECK_STR(b.data, cases[i].before);
    }
    CHECK_INT(parse_len("A=1\nB=x\0y\n", 10, &b, why), 2);
    CHECK_STR(why, "NUL byte in line");
    se_buf_free(&b);
}

static int refuse(void *arg, const char *key, const char *value)
{
    (void)key;
    (void)value;
    ++*(int *)arg;
    return 1;
}

TEST(config_dotenv_callback_abort_and_empty_input)
{
    int calls = 0;
    char why[16];
    CHECK_INT(se_dotenv_parse("A=1\nB=2\n", 8, refuse, &calls, why, sizeof why), -1);
    CHECK_INT(calls, 1);
    calls = 0;
    CHECK_INT(se_dotenv_parse("", 0, refuse, &calls, why, sizeof why), 0);
    CHECK_INT(se_dotenv_parse(NULL, 0, refuse, &calls, NULL, 0), 0);
    CHECK_INT(
        se_dotenv_parse("\xEF\xBB\xBF\n# only a comment\n", 21, refuse, &calls, why, sizeof why),
        0);
    CHECK_INT(calls, 0);
    /* a short why buffer is truncated, not overrun */
    CHECK_INT(se_dotenv_parse("A='x\n", 5, refuse, &calls, why, sizeof why), 1);
    CHECK_STR(why, "unterminated si");
}

/* scalr_email_config_get reads one variable as the client does. */
TEST(config_get_one_variable)
{
    clear_env();
    char path[64];
    const char *text = "SMTP_FROM='File <f@example.com>'\nSMTP_PORT=\n";
    write_tmp(path, text, strlen(text));
    char *v = NULL;
    scalr_email_error err;
    CHECK_INT(scalr_email_config_get(path, "SMTP_FROM", &v, &err), SCALR_EMAIL_OK);
    CHECK_STR(v, "File <f@example.com>");
    free(v);
    setenv("SMTP_FROM", "Env <e@example.com>", 1); /* the environment wins */
    CHECK_INT(scalr_email_config_get(path, "SMTP_FROM", &v, &err), SCALR_EMAIL_OK);
    CHECK_STR(v, "Env <e@example.com>");
    free(v);
    CHECK_INT(scalr_email_config_get(path, "SMTP_PORT", &v, &err), SCALR_EMAIL_OK);
    CHECK(v == NULL); /* empty counts as unset */
    CHECK_INT(scalr_email_config_get(NULL, "SMTP_HOST", &v, &err), SCALR_EMAIL_OK);
    CHECK(v == NULL);
    unlink(path);
    CHECK_INT(scalr_email_config_get(path, "SMTP_FROM", &v, &err), SCALR_EMAIL_ECONFIG);
    CHECK(strstr(err.message, "cannot read env file") != NULL);
    clear_env();
}
