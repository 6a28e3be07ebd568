/* SMTP client engine (src/smtp/engine.c, auth.c, mail.c).
 *
 * Each test is a scripted conversation: what the server says, the exact
 * bytes the client must write, and what the engine must report.  Every
 * script runs several times: server bytes fed whole, one byte at a time,
 * and split in two at every position; all runs must agree. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "smtp/engine.h"

/* ---- the script driver ---- */

enum {
    X_END,
    X_C,    /* the client writes exactly s                         */
    X_S,    /* the server sends s                                  */
    X_TLS,  /* the engine asks for TLS; the handshake "succeeds"   */
    X_READ, /* the engine waits for the server                     */
    X_IDLE, /* IDLE                                                */
    X_FAIL, /* FAILED with error code `code`                       */
    X_DONE, /* DONE                                                */
    X_EOF,  /* the server closes                                   */
    X_MAIL, /* IDLE, then se_smtp_mail with the test's envelope    */
    X_QUIT, /* step, then se_smtp_quit                             */
    X_ISTLS /* se_smtp_tls_started before anything (implicit TLS)  */
};

typedef struct step {
    int op;
    const char *s;
    int code;
} step;

/* clang-format off */
#define C(x) {X_C, x, 0}
#define S(x) {X_S, x, 0}
#define TLS {X_TLS, NULL, 0}
#define READ {X_READ, NULL, 0}
#define IDLE {X_IDLE, NULL, 0}
#define FAIL(c) {X_FAIL, NULL, SCALR_EMAIL_##c}
#define DONE {X_DONE, NULL, 0}
#define SEOF {X_EOF, NULL, 0}
#define MAIL {X_MAIL, NULL, 0}
#define QUIT {X_QUIT, NULL, 0}
#define ISTLS {X_ISTLS, NULL, 0}
#define END {X_END, NULL, 0}
/* clang-format on */

typedef struct tcase {
    se_smtp_opts opts;
    se_smtp_envelope env;
    const char *msg;
    const step *steps;
    int no_split; /* the script depends on how bytes are grouped */
} tcase;

/* The trace, as "C: line\n" / "S: line\n". */
static char trace_buf[65536];
static size_t trace_len;

static void trace_fn(void *arg, char dir, const char *line, size_t len)
{
    (void)arg;
    if (trace_len + len + 4 < sizeof trace_buf) {
        trace_buf[trace_len++] = dir;
        trace_buf[trace_len++] = ':';
        trace_buf[trace_len++] = ' ';
        memcpy(trace_buf + trace_len, line, len);
        trace_len += len;
        trace_buf[trace_len++] = '\n';
        trace_buf[trace_len] = '\0';
    }
}

static const char *want_name(se_smtp_want w)
{
    static const char *n[] = {"WRITE", "READ", "TLS", "IDLE", "DONE", "FAILED"};
    return (unsigned)w < 6 ? n[w] : "?";
}

/* mode 0: whole; mode 1: byte by byte; mode 2: split at `at`. */
static se_smtp *run_mode(const tcase *tc, int mode, size_t at, int *ok)
{
    se_smtp_opts o = tc->opts;
    if (!o.helo_name)
        o.helo_name = "client.example";
    o.trace = trace_fn;
    trace_len = 0;
    trace_buf[0] = '\0';
    se_smtp *s = se_smtp_new(&o);
    *ok = 0;
    if (!s)
        return NULL;
    char where[96];
    for (size_t i = 0; tc->steps[i].op != X_END; i++) {
        const step *st = &tc->steps[i];
        snprintf(where, sizeof where, "step %zu, mode %d, split %zu", i, mode, at);
        se_smtp_want w;
        switch (st->op) {
        case X_C: {
            w = se_smtp_step(s);
            if (w != SE_SMTP_WRITE) {
                th_fail(__FILE__, __LINE__, "%s: want WRITE, got %s (%s)", where, want_name(w),
                        se_smtp_error(s)->message);
                return s;
            }
            size_t len;
            const char *p = se_smtp_out(s, &len);
            if (len != strlen(st->s) || memcmp(p, st->s, len) != 0) {
                th_fail(__FILE__, __LINE__, "%s: client bytes differ", where);
                th_check_mem(__FILE__, __LINE__, "client", p, len, st->s, strlen(st->s));
                return s;
            }
            if (mode == 2 && at < len) { /* a short write */
                se_smtp_sent(s, at);
                if (se_smtp_step(s) != SE_SMTP_WRITE) {
                    th_fail(__FILE__, __LINE__, "%s: partial write lost", where);
                    return s;
                }
                p = se_smtp_out(s, &len);
                if (len != strlen(st->s) - at || memcmp(p, st->s + at, len) != 0) {
                    th_fail(__FILE__, __LINE__, "%s: rest of a short write differs", where);
                    return s;
                }
            }
            se_smtp_sent(s, len);
            break;
        }
        case X_S: {
            size_t n = strlen(st->s);
            if (mode == 0) {
                se_smtp_feed(s, st->s, n);
            } else if (mode == 1) {
                for (size_t j = 0; j < n; j++) {
                    se_smtp_feed(s, st->s + j, 1);
                    if (j + 1 < n)
                        se_smtp_step(s);
                }
            } else {
                size_t cut = at < n ? at : n;
                se_smtp_feed(s, st->s, cut);
                se_smtp_step(s);
                se_smtp_feed(s, st->s + cut, n - cut);
            }
            break;
        }
        case X_TLS:
            w = se_smtp_step(s);
            if (w != SE_SMTP_TLS) {
                th_fail(__FILE__, __LINE__, "%s: want TLS, got %s (%s)", where, want_name(w),
                        se_smtp_error(s)->message);
                return s;
            }
            se_smtp_tls_started(s);
            break;
        case X_ISTLS: se_smtp_tls_started(s); break;
        case X_READ:
        case X_IDLE:
        case X_DONE:
        case X_FAIL: {
            se_smtp_want want = st->op == X_READ   ? SE_SMTP_READ
                                : st->op == X_IDLE ? SE_SMTP_IDLE
                                : st->op == X_DONE ? SE_SMTP_DONE
                                                   : SE_SMTP_FAILED;
            w = se_smtp_step(s);
            if (w != want) {
                th_fail(__FILE__, __LINE__, "%s: want %s, got %s (%s)", where, want_name(want),
                        want_name(w), se_smtp_error(s)->message);
                return s;
            }
            if (st->op == X_FAIL && (int)se_smtp_error(s)->code != st->code) {
                th_fail(__FILE__, __LINE__, "%s: error code %d, want %d (%s)", where,
                        se_smtp_error(s)->code, st->code, se_smtp_error(s)->message);
                return s;
            }
            break;
        }
        case X_EOF: se_smtp_eof(s); break;
        case X_MAIL: {
            w = se_smtp_step(s); /* the driver starts a transaction when IDLE */
            if (w != SE_SMTP_IDLE) {
                th_fail(__FILE__, __LINE__, "%s: want IDLE before MAIL, got %s (%s)", where,
                        want_name(w), se_smtp_error(s)->message);
                return s;
            }
            const char *m = tc->msg ? tc->msg : "Subject: t\r\n\r\nhi\r\n";
            int rc = se_smtp_mail(s, &tc->env, m, strlen(m));
            if (rc != st->code) {
                th_fail(__FILE__, __LINE__, "%s: se_smtp_mail %d, want %d", where, rc, st->code);
                return s;
            }
            break;
        }
        case X_QUIT:
            se_smtp_step(s);
            se_smtp_quit(s);
            break;
        }
    }
    *ok = 1;
    return s;
}

/* Run every grouping of the server bytes; return the whole-feed engine. */
static se_smtp *run(const tcase *tc)
{
    int ok;
    size_t maxlen = 0;
    for (const step *st = tc->steps; st->op != X_END; st++)
        if ((st->op == X_S || st->op == X_C) && strlen(st->s) > maxlen)
            maxlen = strlen(st->s);
    if (!tc->no_split) {
        se_smtp_free(run_mode(tc, 1, 0, &ok));
        for (size_t at = 1; ok && at < maxlen; at++)
            se_smtp_free(run_mode(tc, 2, at, &ok));
    }
    return run_mode(tc, 0, 0, &ok);
}

static const char *const one_rcpt[] = {"rcpt@example.org"};
static const char *const two_rcpt[] = {"a@example.org", "b@example.org"};
static const char *const three_rcpt[] = {"a@example.org", "bad@example.org", "c@example.org"};

/* clang-format off */
#define ENV1 {.mail_from = "from@example.com", .rcpt = one_rcpt, .n_rcpt = 1}
#define ENV2 {.mail_from = "from@example.com", .rcpt = two_rcpt, .n_rcpt = 2}
#define ENV3 {.mail_from = "from@example.com", .rcpt = three_rcpt, .n_rcpt = 3}
#define NOTLS {.tls = SCALR_EMAIL_TLS_NONE}
/* clang-format on */

#define GREET S("220 mx.example ESMTP\r\n"), C("EHLO client.example\r\n")
#define BODY "Subject: t\r\n\r\nhi\r\n"

/* ---- sessions ---- */

TEST(engine_plain_session_no_extensions)
{
    static const step sc[] = {
        GREET,
        S("250 mx.example\r\n"),
        IDLE,
        MAIL,
        C("MAIL FROM:<from@example.com>\r\n"),
        READ,
        S("250 2.1.0 Ok\r\n"),
        C("RCPT TO:<rcpt@example.org>\r\n"),
        S("250 2.1.5 Ok\r\n"),
        C("DATA\r\n"),
        S("354 End data with <CR><LF>.<CR><LF>\r\n"),
        C(BODY ".\r\n"),
        READ,
        S("250 2.0.0 Ok: queued as ABC\r\n"),
        IDLE,
        QUIT,
        C("QUIT\r\n"),
        S("221 2.0.0 Bye\r\n"),
        DONE,
        END,
    };
    tcase tc = {.opts = NOTLS, .env = ENV1, .steps = sc};
    se_smtp *s = run(&tc);
    const scalr_email_error *e = se_smtp_error(s);
    CHECK_INT(se_smtp_last_ok(s), 1);
    CHECK_INT(e->code, SCALR_EMAIL_OK);
    CHECK_INT(e->smtp_code, 250);
    CHECK_STR(e->enhanced, "2.0.0");
    CHECK_STR(e->server_text, "Ok: queued as ABC");
    CHECK_INT(se_smtp_caps(s), 0);
    CHECK_STR(se_smtp_extensions(s), "");
    CHECK_STR(se_smtp_greeting(s), "mx.example ESMTP");
    CHECK_INT(se_smtp_authenticated(s), 0);
    CHECK_STR(se_smtp_auth_used(s), "");
    CHECK_STR(trace_buf, "S: 220 mx.example ESMTP\n"
                         "C: EHLO client.example\n"
                         "S: 250 mx.example\n"
                         "C: MAIL FROM:<from@example.com>\n"
                         "S: 250 2.1.0 Ok\n"
                         "C: RCPT TO:<rcpt@example.org>\n"
                         "S: 250 2.1.5 Ok\n"
                         "C: DATA\n"
                         "S: 354 End data with <CR><LF>.<CR><LF>\n"
                         "C: <message: 18 bytes>\n"
                         "S: 250 2.0.0 Ok: queued as ABC\n"
                         "C: QUIT\n"
                         "S: 221 2.0.0 Bye\n");
    se_smtp_free(s);
}

TEST(engine_capabilities_parsed)
{
    static const step sc[] = {
        GREET,
        S("250-mx.example Hello\r\n250-pipelining\r\n250-SIZE 35882577\r\n250-8BITMIME\r\n"
          "250-Smtputf8\r\n250-CHUNKING\r\n250-ENHANCEDSTATUSCODES\r\n250-DSN\r\n"
          "250-AUTH=PLAIN LOGIN\r\n250-AUTH cram-md5 plain\r\n250-X-BAD_KEYWORD\r\n"
          "250 PIPELINING\r\n"),
        IDLE,
        END,
    };
    tcase tc = {.opts = NOTLS, .steps = sc};
    se_smtp *s = run(&tc);
    CHECK_INT(se_smtp_caps(s), SE_CAP_PIPELINING | SE_CAP_SIZE | SE_CAP_8BITMIME | SE_CAP_SMTPUTF8 |
                                   SE_CAP_CHUNKING | SE_CAP_ENHANCED | SE_CAP_AUTH | SE_CAP_DSN);
    CHECK_INT(se_smtp_auth_mechs(s), SE_AUTH_PLAIN | SE_AUTH_LOGIN);
    CHECK_INT(se_smtp_size_limit(s), 35882577);
    CHECK_STR(se_smtp_extensions(s),
              "PIPELINING SIZE 8BITMIME SMTPUTF8 CHUNKING ENHANCEDSTATUSCODES DSN AUTH");
    se_smtp_free(s);
}

TEST(engine_greeting_garbage)
{
    static const step sc[] = {S("hello\r\n"), FAIL(EPROTOCOL), END};
    tcase tc = {.opts = NOTLS, .steps = sc};
    se_smtp *s = run(&tc);
    CHECK_STR(se_smtp_error(s)->stage, "CONNECT");
    CHECK(strstr(se_smtp_error(s)->message, "invalid reply") != NULL);
    se_smtp_free(s);
}

TEST(engine_greeting_tls_record_hint)
{
    /* a TLS alert where a greeting should be: wrong port/mode */
    static const step sc[] = {S("\x15\x03\x03\x01\x02\x02\x46\n"), FAIL(EPROTOCOL), END};
    tcase tc = {.opts = NOTLS, .steps = sc};
    se_smtp *s = run(&tc);
    CHECK(strstr(se_smtp_error(s)->message, "implicit-TLS") != NULL);
    se_smtp_free(s);
}

TEST(engine_greeting_554_and_421)
{
    static const step rej[] = {S("554 5.7.1 go away\r\n"), FAIL(EREJECTED), QUIT, C("QUIT\r\n"),
                               S("221 bye\r\n"),           FAIL(EREJECTED), END};
    tcase tc = {.opts = NOTLS, .steps = rej};
    se_smtp *s = run(&tc);
    CHECK_INT(se_smtp_error(s)->smtp_code, 554);
    CHECK_STR(se_smtp_error(s)->stage, "CONNECT");
    CHECK_STR(se_smtp_error(s)->message, "server refused the session: 554 5.7.1 go away");
    se_smtp_free(s);

    static const step busy[] = {S("421 4.3.2 too busy\r\n"), FAIL(ETRANSIENT), END};
    tc.steps = busy;
    s = run(&tc);
    CHECK_INT(se_smtp_error(s)->smtp_code, 421);
    se_smtp_quit(s); /* the server is gone: no QUIT */
    CHECK_INT(se_smtp_step(s), SE_SMTP_FAILED);
    se_smtp_free(s);

    static const step odd[] = {S("250 hi\r\n"), FAIL(EPROTOCOL), END};
    tc.steps = odd;
    s = run(&tc);
    se_smtp_free(s);
}

TEST(engine_eof_before_greeting)
{
    static const step sc[] = {READ, SEOF, FAIL(EIO), END};
    tcase tc = {.opts = NOTLS, .steps = sc};
    se_smtp *s = run(&tc);
    CHECK_STR(se_smtp_error(s)->message, "server closed the connection before the greeting");
    se_smtp_free(s);
}

TEST(engine_ehlo_refused)
{
    static const step perm[] = {GREET, S("550 5.7.1 no\r\n"), FAIL(EREJECTED), END};
    tcase tc = {.opts = NOTLS, .steps = perm};
    se_smtp *s = run(&tc);
    CHECK_STR(se_smtp_error(s)->stage, "EHLO");
    se_smtp_free(s);
    /* no HELO fallback on 502 either */
    static const step notimpl[] = {GREET, S("502 5.5.1 what\r\n"), FAIL(EREJECTED), END};
    tc.steps = notimpl;
    se_smtp_free(run(&tc));
    static const step temp[] = {GREET, S("451 4.3.0 later\r\n"), FAIL(ETRANSIENT), END};
    tc.steps = temp;
    se_smtp_free(run(&tc));
}

TEST(engine_overlong_reply_line)
{
    static char big[SE_REPLY_MAX_LINE + 64];
    memcpy(big, "220 ", 4);
    memset(big + 4, 'a', sizeof big - 5);
    big[sizeof big - 1] = '\0';
    step sc[] = {S(big), FAIL(EPROTOCOL), END};
    tcase tc = {.opts = NOTLS, .steps = sc, .no_split = 1};
    se_smtp *s = run(&tc);
    CHECK(strstr(se_smtp_error(s)->message, "too long") != NULL);
    se_smtp_free(s);
}

TEST(engine_multiline_mismatched_codes)
{
    static const step sc[] = {GREET, S("250-mx.example\r\n251 PIPELINING\r\n"), FAIL(EPROTOCOL),
                              END};
    tcase tc = {.opts = NOTLS, .steps = sc};
    se_smtp *s = run(&tc);
    CHECK_STR(se_smtp_error(s)->stage, "EHLO");
    CHECK(strstr(se_smtp_error(s)->message, "different codes") != NULL);
    se_smtp_free(s);
}

TEST(engine_invalid_helo_name)
{
    se_smtp_opts o = {.helo_name = "client\r\nMAIL FROM:<x@y>", .tls = SCALR_EMAIL_TLS_NONE};
    se_smtp *s = se_smtp_new(&o);
    CHECK_INT(se_smtp_step(s), SE_SMTP_FAILED);
    CHECK_INT(se_smtp_error(s)->code, SCALR_EMAIL_EINVAL);
    size_t n;
    se_smtp_out(s, &n);
    CHECK_INT(n, 0);
    se_smtp_free(s);
    o.helo_name = "";
    s = se_smtp_new(&o);
    CHECK_INT(se_smtp_step(s), SE_SMTP_FAILED);
    se_smtp_free(s);
}

/* ---- STARTTLS (RFC 3207) ---- */

TEST(engine_starttls_happy_path)
{
    static const step sc[] = {
        GREET,
        /* before TLS: pipelining and LOGIN only */
        S("250-mx.example\r\n250-PIPELINING\r\n250-AUTH LOGIN\r\n250 STARTTLS\r\n"),
        C("STARTTLS\r\n"),
        S("220 2.0.0 Ready to start TLS\r\n"),
        TLS,
        C("EHLO client.example\r\n"),
        /* after TLS: no pipelining, PLAIN offered, SIZE */
        S("250-mx.example\r\n250-AUTH PLAIN LOGIN\r\n250 SIZE 1000\r\n"),
        C("AUTH PLAIN AHVzZXIAcGFzcw==\r\n"),
        S("235 2.7.0 Authentication successful\r\n"),
        IDLE,
        MAIL,
        C("MAIL FROM:<from@example.com> SIZE=18\r\n"), /* one at a time */
        S("250 ok\r\n"),
        C("RCPT TO:<rcpt@example.org>\r\n"),
        S("250 ok\r\n"),
        C("DATA\r\n"),
        S("354 go\r\n"),
        C(BODY ".\r\n"),
        S("250 queued\r\n"),
        IDLE,
        END,
    };
    tcase tc = {.opts = {.username = "user", .password = "pass"}, .env = ENV1, .steps = sc};
    se_smtp *s = run(&tc);
    CHECK_INT(se_smtp_caps(s), SE_CAP_AUTH | SE_CAP_SIZE);
    CHECK_STR(se_smtp_extensions(s), "AUTH SIZE");
    CHECK_INT(se_smtp_size_limit(s), 1000);
    CHECK_INT(se_smtp_authenticated(s), 1);
    CHECK_STR(se_smtp_auth_used(s), "PLAIN");
    CHECK_INT(se_smtp_last_ok(s), 1);
    CHECK(strstr(trace_buf, "AHVzZXIAcGFzcw") == NULL);
    CHECK(strstr(trace_buf, "C: AUTH PLAIN <redacted>\n") != NULL);
    se_smtp_free(s);
}

TEST(engine_starttls_not_offered)
{
    static const step sc[] = {
        GREET,         S("250-mx.example\r\n250-AUTH PLAIN\r\n250 PIPELINING\r\n"),
        FAIL(ETLS),    QUIT, /* a clean failure: QUIT is allowed, the error stays */
        C("QUIT\r\n"), S("221 bye\r\n"),
        FAIL(ETLS),    END,
    };
    tcase tc = {.opts = {.username = "user", .password = "pass"}, .env = ENV1, .steps = sc};
    se_smtp *s = run(&tc);
    CHECK_STR(se_smtp_error(s)->stage, "TLS");
    CHECK_STR(se_smtp_error(s)->message,
              "server does not offer STARTTLS; refusing to continue unencrypted");
    CHECK(strstr(trace_buf, "C: AUTH") == NULL);
    CHECK(strstr(trace_buf, "C: MAIL") == NULL);
    CHECK_INT(se_smtp_mail(s, &tc.env, "x\r\n", 3), -1);
    se_smtp_free(s);
}

TEST(engine_starttls_injection_after_220)
{
    static const step sc[] = {
        GREET,
        S("250-mx.example\r\n250 STARTTLS\r\n"),
        C("STARTTLS\r\n"),
        S("220 go ahead\r\n250-evil\r\n250 AUTH PLAIN\r\n"),
        FAIL(ETLS),
        END,
    };
    tcase tc = {.opts = {0}, .steps = sc};
    se_smtp *s = run(&tc);
    CHECK_STR(se_smtp_error(s)->stage, "TLS");
    CHECK_STR(se_smtp_error(s)->message,
              "server sent data after the STARTTLS reply (possible injection, CVE-2021-22947 "
              "class)");
    /* nothing more may be written, not even QUIT */
    se_smtp_quit(s);
    CHECK_INT(se_smtp_step(s), SE_SMTP_FAILED);
    se_smtp_free(s);

    /* the extra bytes arrive in the next read, while the handshake is due */
    static const step late[] = {
        GREET,
        S("250-mx.example\r\n250 STARTTLS\r\n"),
        C("STARTTLS\r\n"),
        S("220 go\r\n"),
        S("x"),
        FAIL(ETLS),
        END,
    };
    tc.steps = late;
    se_smtp_free(run(&tc));
}

TEST(engine_starttls_refused)
{
    static const step sc[] = {
        GREET,
        S("250-mx.example\r\n250 STARTTLS\r\n"),
        C("STARTTLS\r\n"),
        S("454 4.7.0 TLS not available due to temporary reason\r\n"),
        FAIL(ETLS),
        END,
    };
    tcase tc = {.opts = {0}, .steps = sc};
    se_smtp *s = run(&tc);
    const scalr_email_error *e = se_smtp_error(s);
    CHECK_INT(e->smtp_code, 454);
    CHECK_STR(e->enhanced, "4.7.0");
    CHECK_STR(e->message,
              "server refused STARTTLS: 454 4.7.0 TLS not available due to temporary reason");
    se_smtp_free(s);
}

TEST(engine_implicit_tls)
{
    static const step sc[] = {
        ISTLS,
        GREET,
        S("250-mx.example\r\n250-STARTTLS\r\n250 AUTH PLAIN\r\n"),
        C("AUTH PLAIN AHVzZXIAcGFzcw==\r\n"), /* no STARTTLS inside TLS */
        S("235 ok\r\n"),
        IDLE,
        END,
    };
    tcase tc = {.opts = {.tls = SCALR_EMAIL_TLS_IMPLICIT, .username = "user", .password = "pass"},
                .steps = sc};
    se_smtp_free(run(&tc));

    /* the driver forgot the handshake: refuse */
    static const step forgot[] = {S("220 mx\r\n"), FAIL(ETLS), END};
    tc.steps = forgot;
    se_smtp_free(run(&tc));
}

TEST(engine_tls_none_ignores_starttls)
{
    static const step sc[] = {GREET, S("250-mx.example\r\n250 STARTTLS\r\n"), IDLE, END};
    tcase tc = {.opts = NOTLS, .steps = sc};
    se_smtp_free(run(&tc));
}

/* ---- AUTH (RFC 4954) ---- */

TEST(engine_auth_plain_over_loopback)
{
    static const step sc[] = {
        GREET,
        S("250-mx.example\r\n250 AUTH PLAIN LOGIN\r\n"),
        C("AUTH PLAIN AGFsaWNlQGV4YW1wbGUuY29tAHMzY3JldCE=\r\n"),
        S("235 2.7.0 ok\r\n"),
        IDLE,
        END,
    };
    tcase tc = {.opts = {.tls = SCALR_EMAIL_TLS_NONE,
                         .username = "alice@example.com",
                         .password = "s3cret!",
                         .peer_is_loopback = 1},
                .steps = sc};
    se_smtp *s = run(&tc);
    CHECK_INT(se_smtp_authenticated(s), 1);
    CHECK(strstr(trace_buf, "s3cret") == NULL);
    CHECK(strstr(trace_buf, "AGFsaWNl") == NULL);
    se_smtp_free(s);
}

TEST(engine_auth_login)
{
    static const step sc[] = {
        GREET,
        S("250-mx.example\r\n250 AUTH LOGIN CRAM-MD5\r\n"),
        C("AUTH LOGIN\r\n"),
        S("334 VXNlcm5hbWU6\r\n"),
        C("dXNlcg==\r\n"),
        S("334 UGFzc3dvcmQ6\r\n"),
        C("cGFzcw==\r\n"),
        S("235 2.7.0 Authentication successful\r\n"),
        IDLE,
        END,
    };
    tcase tc = {.opts = {.tls = SCALR_EMAIL_TLS_NONE,
                         .username = "user",
                         .password = "pass",
                         .peer_is_loopback = 1},
                .steps = sc};
    se_smtp *s = run(&tc);
    CHECK_STR(se_smtp_auth_used(s), "LOGIN");
    CHECK_INT(se_smtp_authenticated(s), 1);
    CHECK_STR(trace_buf, "S: 220 mx.example ESMTP\n"
                         "C: EHLO client.example\n"
                         "S: 250-mx.example\n"
                         "S: 250 AUTH LOGIN CRAM-MD5\n"
                         "C: AUTH LOGIN\n"
                         "S: 334 VXNlcm5hbWU6\n"
                         "C: <redacted>\n"
                         "S: 334 UGFzc3dvcmQ6\n"
                         "C: <redacted>\n"
                         "S: 235 2.7.0 Authentication successful\n");
    se_smtp_free(s);
}

TEST(engine_auth_535)
{
    static const step sc[] = {
        ISTLS,
        GREET,
        S("250-mx.example\r\n250 AUTH PLAIN\r\n"),
        C("AUTH PLAIN AHVzZXIAcGFzcw==\r\n"),
        S("535 5.7.8 Authentication credentials invalid\r\n"),
        FAIL(EAUTH),
        QUIT,
        C("QUIT\r\n"),
        SEOF, /* the server just closes: fine, the error stays */
        FAIL(EAUTH),
        END,
    };
    tcase tc = {.opts = {.tls = SCALR_EMAIL_TLS_IMPLICIT, .username = "user", .password = "pass"},
                .steps = sc};
    se_smtp *s = run(&tc);
    const scalr_email_error *e = se_smtp_error(s);
    CHECK_INT(e->smtp_code, 535);
    CHECK_STR(e->enhanced, "5.7.8");
    CHECK_STR(e->stage, "AUTH");
    CHECK_STR(e->message, "authentication failed: 535 5.7.8 Authentication credentials invalid");
    CHECK(strstr(e->message, "pass") == NULL);
    CHECK_INT(se_smtp_authenticated(s), 0);
    se_smtp_free(s);
}

TEST(engine_auth_454_transient)
{
    static const step sc[] = {
        ISTLS,
        GREET,
        S("250-mx.example\r\n250 AUTH PLAIN\r\n"),
        C("AUTH PLAIN AHVzZXIAcGFzcw==\r\n"),
        S("454 4.7.0 Temporary authentication failure\r\n"),
        FAIL(ETRANSIENT),
        END,
    };
    tcase tc = {.opts = {.tls = SCALR_EMAIL_TLS_IMPLICIT, .username = "user", .password = "pass"},
                .steps = sc};
    se_smtp *s = run(&tc);
    CHECK_STR(se_smtp_error(s)->stage, "AUTH");
    CHECK_INT(se_smtp_error(s)->smtp_code, 454);
    se_smtp_free(s);
}

TEST(engine_auth_plaintext_refused)
{
    static const step sc[] = {
        GREET,
        S("250-mx.example\r\n250 AUTH PLAIN LOGIN\r\n"),
        FAIL(EINSECURE),
        END,
    };
    tcase tc = {.opts = {.tls = SCALR_EMAIL_TLS_NONE, .username = "user", .password = "pass"},
                .steps = sc};
    se_smtp *s = run(&tc);
    size_t n;
    se_smtp_out(s, &n);
    CHECK_INT(n, 0);
    CHECK_STR(se_smtp_error(s)->stage, "AUTH");
    CHECK_STR(se_smtp_error(s)->message, "refusing to send credentials over an unencrypted "
                                         "connection to a non-loopback host");
    CHECK(strstr(trace_buf, "AUTH") == strstr(trace_buf, "AUTH PLAIN LOGIN"));
    CHECK(strstr(trace_buf, "C: AUTH") == NULL);
    se_smtp_free(s);
}

TEST(engine_auth_not_offered)
{
    static const step none[] = {ISTLS, GREET, S("250 mx.example\r\n"), FAIL(EAUTH), END};
    tcase tc = {.opts = {.tls = SCALR_EMAIL_TLS_IMPLICIT, .username = "u", .password = "p"},
                .steps = none};
    se_smtp *s = run(&tc);
    CHECK_STR(se_smtp_error(s)->message, "server does not offer AUTH");
    se_smtp_free(s);

    static const step other[] = {ISTLS, GREET, S("250-mx.example\r\n250 AUTH CRAM-MD5 XOAUTH2\r\n"),
                                 FAIL(EAUTH), END};
    tc.steps = other;
    s = run(&tc);
    CHECK_STR(se_smtp_error(s)->message, "server offers no supported AUTH mechanism (offered: "
                                         "CRAM-MD5 XOAUTH2; supported: PLAIN LOGIN)");
    se_smtp_free(s);
}

TEST(engine_auth_old_form)
{
    static const step sc[] = {ISTLS, GREET, S("250-mx.example\r\n250 AUTH=LOGIN\r\n"),
                              C("AUTH LOGIN\r\n"), END};
    tcase tc = {.opts = {.tls = SCALR_EMAIL_TLS_IMPLICIT, .username = "u", .password = "p"},
                .steps = sc};
    se_smtp *s = run(&tc);
    CHECK_INT(se_smtp_auth_mechs(s), SE_AUTH_LOGIN);
    se_smtp_free(s);
}

TEST(engine_auth_plain_unexpected_challenge)
{
    static const step sc[] = {
        ISTLS,
        GREET,
        S("250-mx.example\r\n250 AUTH PLAIN\r\n"),
        C("AUTH PLAIN AHVzZXIAcGFzcw==\r\n"),
        S("334 \r\n"),
        C("*\r\n"),
        S("501 5.7.0 cancelled\r\n"),
        FAIL(EAUTH),
        END,
    };
    tcase tc = {.opts = {.tls = SCALR_EMAIL_TLS_IMPLICIT, .username = "user", .password = "pass"},
                .steps = sc};
    se_smtp_free(run(&tc));
}

TEST(engine_auth_long_credentials_redacted)
{
    /* secrets that base64 to many distinct substrings */
    static char pass[200];
    memset(pass, 'Z', sizeof pass - 1);
    static const step sc[] = {
        ISTLS, GREET, S("250-mx.example\r\n250 AUTH LOGIN\r\n"), C("AUTH LOGIN\r\n"), END,
    };
    tcase tc = {.opts = {.tls = SCALR_EMAIL_TLS_IMPLICIT, .username = "user", .password = pass},
                .steps = sc};
    se_smtp *s = run(&tc);
    /* the rest by hand: the password line is too long to spell out */
    size_t n;
    se_smtp_feed(s, "334 VXNlcm5hbWU6\r\n", 18);
    CHECK_INT(se_smtp_step(s), SE_SMTP_WRITE);
    se_smtp_out(s, &n);
    se_smtp_sent(s, n);
    se_smtp_feed(s, "334 UGFzc3dvcmQ6\r\n", 18);
    CHECK_INT(se_smtp_step(s), SE_SMTP_WRITE);
    const char *p = se_smtp_out(s, &n);
    CHECK(n > 200 && memcmp(p, "WlpaWlpa", 8) == 0);
    se_smtp_sent(s, n);
    CHECK(strstr(trace_buf, "WlpaWlpa") == NULL);
    CHECK(strstr(trace_buf, "ZZZZ") == NULL);
    CHECK(strstr(trace_buf, "dXNlcg") == NULL);
    se_smtp_free(s);
}

/* ---- OAuth2: XOAUTH2 and OAUTHBEARER (RFC 7628) ---- */

#define OAUTH_OPTS(m)                                                                              \
    {                                                                                              \
        .tls = SCALR_EMAIL_TLS_IMPLICIT, .username = "alice@example.com",                          \
        .oauth_token = "ya29.tok", .mech = (m)                                                     \
    }

static const step xoauth2_cold[] = {
    ISTLS,
    GREET,
    S("250-mx.example\r\n250 AUTH PLAIN LOGIN XOAUTH2\r\n"),
    /* the initial response goes with the AUTH command: one round trip */
    C("AUTH XOAUTH2 dXNlcj1hbGljZUBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciB5YTI5LnRvawEB\r\n"),
    S("235 2.7.0 Accepted\r\n"),
    IDLE,
    END,
};
static const step plain_cold[] = {
    ISTLS,
    GREET,
    S("250-mx.example\r\n250 AUTH PLAIN LOGIN XOAUTH2\r\n"),
    C("AUTH PLAIN AGFsaWNlQGV4YW1wbGUuY29tAHMzY3JldCE=\r\n"),
    S("235 2.7.0 Accepted\r\n"),
    IDLE,
    END,
};

/* Flights the client writes before the session is IDLE: each C step is one
 * whole write followed by a wait for the server. */
static int flights(const step *sc)
{
    int n = 0;
    for (; sc->op != X_END; sc++)
        n += sc->op == X_C;
    return n;
}

TEST(engine_xoauth2_initial_response)
{
    tcase tc = {.opts = OAUTH_OPTS(SE_MECH_AUTO), .steps = xoauth2_cold};
    se_smtp *s = run(&tc);
    CHECK_STR(se_smtp_auth_used(s), "XOAUTH2");
    CHECK_INT(se_smtp_authenticated(s), 1);
    CHECK(strstr(trace_buf, "C: AUTH XOAUTH2 <redacted>\n") != NULL);
    CHECK(strstr(trace_buf, "ya29") == NULL);
    CHECK(strstr(trace_buf, "dXNlcj1") == NULL);
    se_smtp_free(s);
}

TEST(engine_xoauth2_round_trips_equal_plain)
{
    /* Target: a cold XOAUTH2 sign-in costs what PLAIN costs (EHLO + AUTH). */
    tcase p = {.opts = {.tls = SCALR_EMAIL_TLS_IMPLICIT,
                        .username = "alice@example.com",
                        .password = "s3cret!"},
               .steps = plain_cold};
    se_smtp_free(run(&p));
    tcase x = {.opts = OAUTH_OPTS(SE_MECH_XOAUTH2), .steps = xoauth2_cold};
    se_smtp_free(run(&x));
    CHECK_INT(flights(xoauth2_cold), flights(plain_cold));
    CHECK_INT(flights(xoauth2_cold), 2);
}

TEST(engine_oauthbearer_preferred_in_auto)
{
    static const step sc[] = {
        ISTLS,
        GREET,
        S("250-mx.example\r\n250 AUTH XOAUTH2 OAUTHBEARER PLAIN\r\n"),
        C("AUTH OAUTHBEARER bixhPWFsaWNlQGV4YW1wbGUuY29tLAFhdXRoPUJlYXJlciB5YTI5LnRvawEB\r\n"),
        S("235 2.7.0 Accepted\r\n"),
        IDLE,
        END,
    };
    tcase tc = {.opts = OAUTH_OPTS(SE_MECH_AUTO), .steps = sc};
    se_smtp *s = run(&tc);
    CHECK_STR(se_smtp_auth_used(s), "OAUTHBEARER");
    CHECK(strstr(trace_buf, "ya29") == NULL);
    se_smtp_free(s);
}

TEST(engine_oauth_forced_mechanism_missing)
{
    static const step sc[] = {
        ISTLS, GREET, S("250-mx.example\r\n250 AUTH PLAIN XOAUTH2\r\n"), FAIL(EAUTH), END,
    };
    tcase tc = {.opts = OAUTH_OPTS(SE_MECH_OAUTHBEARER), .steps = sc};
    se_smtp *s = run(&tc);
    CHECK_STR(se_smtp_error(s)->message,
              "server does not offer the AUTH mechanism needed (offered: PLAIN XOAUTH2; needed: "
              "OAUTHBEARER)");
    se_smtp_free(s);
}

TEST(engine_oauthbearer_expired_challenge)
{
    /* RFC 7628 3.2.2: error challenge, dummy ^A ("AQ=="), then 535. */
    static const step sc[] = {
        ISTLS,
        GREET,
        S("250-mx.example\r\n250 AUTH OAUTHBEARER\r\n"),
        C("AUTH OAUTHBEARER bixhPWFsaWNlQGV4YW1wbGUuY29tLAFhdXRoPUJlYXJlciB5YTI5LnRvawEB\r\n"),
        S("334 eyJzdGF0dXMiOiI0MDEiLCJzY2hlbWVzIjoiYmVhcmVyIn0=\r\n"),
        C("AQ==\r\n"),
        S("535 5.7.8 Username and Password not accepted\r\n"),
        FAIL(EAUTH),
        END,
    };
    tcase tc = {.opts = OAUTH_OPTS(SE_MECH_AUTO), .steps = sc};
    se_smtp *s = run(&tc);
    CHECK_INT(se_smtp_oauth_expired(s), 1);
    CHECK_INT(se_smtp_error(s)->smtp_code, 535);
    CHECK(strstr(se_smtp_error(s)->message, "ya29") == NULL);
    se_smtp_free(s);
}

TEST(engine_xoauth2_expired_answers_empty_line)
{
    static const step sc[] = {
        ISTLS,
        GREET,
        S("250-mx.example\r\n250 AUTH XOAUTH2\r\n"),
        C("AUTH XOAUTH2 dXNlcj1hbGljZUBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciB5YTI5LnRvawEB\r\n"),
        S("334 eyJzdGF0dXMiOiI0MDEiLCJzY2hlbWVzIjoiYmVhcmVyIn0=\r\n"),
        C("\r\n"),
        S("535 5.7.8 expired\r\n"),
        FAIL(EAUTH),
        END,
    };
    tcase tc = {.opts = OAUTH_OPTS(SE_MECH_XOAUTH2), .steps = sc};
    se_smtp *s = run(&tc);
    CHECK_INT(se_smtp_oauth_expired(s), 1);
    se_smtp_free(s);
}

TEST(engine_oauth_plain_535_is_not_expired)
{
    static const step sc[] = {
        ISTLS,
        GREET,
        S("250-mx.example\r\n250 AUTH XOAUTH2\r\n"),
        C("AUTH XOAUTH2 dXNlcj1hbGljZUBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciB5YTI5LnRvawEB\r\n"),
        S("535 5.7.3 Authentication unsuccessful\r\n"),
        FAIL(EAUTH),
        END,
    };
    tcase tc = {.opts = OAUTH_OPTS(SE_MECH_AUTO), .steps = sc};
    se_smtp *s = run(&tc);
    CHECK_INT(se_smtp_oauth_expired(s), 0);
    se_smtp_free(s);
}

TEST(engine_smtp_auth_login_forced_over_plain)
{
    /* SMTP_AUTH=login: LOGIN although PLAIN is offered too. */
    static const step sc[] = {
        ISTLS,
        GREET,
        S("250-mx.example\r\n250 AUTH PLAIN LOGIN\r\n"),
        C("AUTH LOGIN\r\n"),
        S("334 VXNlcm5hbWU6\r\n"),
        C("dXNlcg==\r\n"),
        S("334 UGFzc3dvcmQ6\r\n"),
        C("cGFzcw==\r\n"),
        S("235 2.7.0 ok\r\n"),
        IDLE,
        END,
    };
    tcase tc = {.opts = {.tls = SCALR_EMAIL_TLS_IMPLICIT,
                         .username = "user",
                         .password = "pass",
                         .mech = SE_MECH_LOGIN},
                .steps = sc};
    se_smtp *s = run(&tc);
    CHECK_STR(se_smtp_auth_used(s), "LOGIN");
    se_smtp_free(s);
}

TEST(engine_smtp_auth_plain_forced_not_offered)
{
    static const step sc[] = {
        ISTLS, GREET, S("250-mx.example\r\n250 AUTH LOGIN\r\n"), FAIL(EAUTH), END,
    };
    tcase tc = {.opts = {.tls = SCALR_EMAIL_TLS_IMPLICIT,
                         .username = "user",
                         .password = "pass",
                         .mech = SE_MECH_PLAIN},
                .steps = sc};
    se_smtp *s = run(&tc);
    CHECK_STR(se_smtp_error(s)->message,
              "server does not offer the AUTH mechanism needed (offered: LOGIN; needed: PLAIN)");
    se_smtp_free(s);
}

TEST(engine_oauth_refused_in_cleartext)
{
    static const step sc[] = {
        GREET,
        S("250-mx.example\r\n250 AUTH XOAUTH2\r\n"),
        FAIL(EINSECURE),
        END,
    };
    tcase tc = {.opts = {.tls = SCALR_EMAIL_TLS_NONE,
                         .username = "alice@example.com",
                         .oauth_token = "ya29.tok"},
                .steps = sc};
    se_smtp *s = run(&tc);
    CHECK(strstr(trace_buf, "AUTH") == NULL || strstr(trace_buf, "C: AUTH") == NULL);
    se_smtp_free(s);
}

/* ---- transactions ---- */

#define PIPE_EHLO S("250-mx.example\r\n250-PIPELINING\r\n250 8BITMIME\r\n")

TEST(engine_pipelined_flight)
{
    static const step sc[] = {
        GREET,
        PIPE_EHLO,
        IDLE,
        MAIL,
        C("MAIL FROM:<from@example.com>\r\nRCPT TO:<a@example.org>\r\n"
          "RCPT TO:<b@example.org>\r\nDATA\r\n"),
        S("250 2.1.0 ok\r\n250 2.1.5 ok\r\n"),
        READ,
        S("250 2.1.5 ok\r\n354 go\r\n"),
        C(BODY ".\r\n"),
        S("250 2.0.0 queued as 1\r\n"),
        IDLE,
        /* the session is reusable: a second message */
        MAIL,
        C("MAIL FROM:<from@example.com>\r\nRCPT TO:<a@example.org>\r\n"
          "RCPT TO:<b@example.org>\r\nDATA\r\n"),
        S("250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n"),
        C(BODY ".\r\n"),
        S("250 2.0.0 queued as 2\r\n"),
        IDLE,
        END,
    };
    tcase tc = {.opts = NOTLS, .env = ENV2, .steps = sc};
    se_smtp *s = run(&tc);
    CHECK_INT(se_smtp_last_ok(s), 1);
    CHECK_INT(se_smtp_reusable(s), 1);
    CHECK_STR(se_smtp_error(s)->server_text, "queued as 2");
    se_smtp_free(s);
}

TEST(engine_pipelined_rcpt_refused_data_354)
{
    static const step sc[] = {
        GREET,
        PIPE_EHLO,
        MAIL,
        C("MAIL FROM:<from@example.com>\r\nRCPT TO:<a@example.org>\r\n"
          "RCPT TO:<bad@example.org>\r\nRCPT TO:<c@example.org>\r\nDATA\r\n"),
        S("250 ok\r\n250 ok\r\n550 5.1.1 <bad@example.org>: no such user\r\n250 ok\r\n"
          "354 go ahead\r\n"),
        FAIL(EREJECTED), /* no body, no "." */
        END,
    };
    tcase tc = {.opts = NOTLS, .env = ENV3, .steps = sc};
    se_smtp *s = run(&tc);
    const scalr_email_error *e = se_smtp_error(s);
    CHECK_STR(e->stage, "RCPT");
    CHECK_STR(e->recipient, "bad@example.org");
    CHECK_INT(e->smtp_code, 550);
    CHECK_STR(e->enhanced, "5.1.1");
    CHECK_STR(e->message,
              "recipient <bad@example.org> refused: 550 5.1.1 <bad@example.org>: no such user");
    CHECK_INT(se_smtp_reusable(s), 0);
    CHECK_INT(se_smtp_last_ok(s), 0);
    size_t n;
    se_smtp_out(s, &n);
    CHECK_INT(n, 0);
    CHECK(strstr(trace_buf, "<message") == NULL);
    se_smtp_quit(s); /* out of step: nothing is written */
    CHECK_INT(se_smtp_step(s), SE_SMTP_FAILED);
    se_smtp_free(s);
}

TEST(engine_pipelined_rcpt_refused_data_554)
{
    static const step sc[] = {
        GREET,
        PIPE_EHLO,
        MAIL,
        C("MAIL FROM:<from@example.com>\r\nRCPT TO:<a@example.org>\r\n"
          "RCPT TO:<bad@example.org>\r\nRCPT TO:<c@example.org>\r\nDATA\r\n"),
        S("250 ok\r\n250 ok\r\n450 4.2.1 mailbox busy\r\n250 ok\r\n"
          "554 5.5.1 no valid recipients\r\n"),
        C("RSET\r\n"),
        S("250 2.0.0 ok\r\n"),
        IDLE,
        END,
    };
    tcase tc = {.opts = NOTLS, .env = ENV3, .steps = sc};
    se_smtp *s = run(&tc);
    const scalr_email_error *e = se_smtp_error(s);
    CHECK_INT(e->code, SCALR_EMAIL_ETRANSIENT);
    CHECK_STR(e->recipient, "bad@example.org");
    CHECK_INT(e->smtp_code, 450);
    CHECK_INT(se_smtp_last_ok(s), 0);
    CHECK_INT(se_smtp_reusable(s), 1);
    se_smtp_free(s);
}

TEST(engine_pipelined_mail_refused)
{
    static const step sc[] = {
        GREET,
        PIPE_EHLO,
        MAIL,
        C("MAIL FROM:<from@example.com>\r\nRCPT TO:<rcpt@example.org>\r\nDATA\r\n"),
        S("553 5.7.1 sender not owned\r\n503 5.5.1 need MAIL\r\n503 5.5.1 need RCPT\r\n"),
        C("RSET\r\n"),
        S("250 ok\r\n"),
        IDLE,
        END,
    };
    tcase tc = {.opts = NOTLS, .env = ENV1, .steps = sc};
    se_smtp *s = run(&tc);
    const scalr_email_error *e = se_smtp_error(s);
    CHECK_INT(e->code, SCALR_EMAIL_EREJECTED);
    CHECK_STR(e->stage, "MAIL");
    CHECK_STR(e->recipient, "");
    CHECK_STR(e->message, "sender <from@example.com> refused: 553 5.7.1 sender not owned");
    se_smtp_free(s);
}

TEST(engine_no_pipelining_rcpt_refused)
{
    static const step sc[] = {
        GREET,
        S("250 mx.example\r\n"),
        MAIL,
        C("MAIL FROM:<from@example.com>\r\n"),
        S("250 ok\r\n"),
        C("RCPT TO:<a@example.org>\r\n"),
        S("250 ok\r\n"),
        C("RCPT TO:<bad@example.org>\r\n"),
        S("550 5.1.1 unknown\r\n"),
        C("RSET\r\n"), /* c@ is never tried */
        S("250 ok\r\n"),
        IDLE,
        END,
    };
    tcase tc = {.opts = NOTLS, .env = ENV3, .steps = sc};
    se_smtp *s = run(&tc);
    CHECK_INT(se_smtp_error(s)->code, SCALR_EMAIL_EREJECTED);
    CHECK_STR(se_smtp_error(s)->recipient, "bad@example.org");
    CHECK_INT(se_smtp_reusable(s), 1);
    se_smtp_free(s);
}

TEST(engine_rset_refused_not_reusable)
{
    static const step sc[] = {
        GREET,
        S("250 mx.example\r\n"),
        MAIL,
        C("MAIL FROM:<from@example.com>\r\n"),
        S("451 4.3.0 try later\r\n"),
        C("RSET\r\n"),
        S("500 what\r\n"),
        FAIL(ETRANSIENT), /* the transaction's error, not RSET's */
        END,
    };
    tcase tc = {.opts = NOTLS, .env = ENV1, .steps = sc};
    se_smtp *s = run(&tc);
    CHECK_INT(se_smtp_error(s)->smtp_code, 451);
    CHECK_INT(se_smtp_reusable(s), 0);
    se_smtp_free(s);
}

#define CHUNK_EHLO S("250-mx.example\r\n250-PIPELINING\r\n250-CHUNKING\r\n250 SIZE 0\r\n")

TEST(engine_bdat_one_recipient_one_flight)
{
    static const step sc[] = {
        GREET,
        CHUNK_EHLO,
        MAIL,
        C("MAIL FROM:<from@example.com> SIZE=15\r\nRCPT TO:<rcpt@example.org>\r\n"
          "BDAT 15 LAST\r\n"
          ".first\r\n\r\n..x\r\n"),
        S("250 ok\r\n250 ok\r\n250 2.0.0 queued\r\n"),
        IDLE,
        END,
    };
    tcase tc = {.opts = NOTLS, .env = ENV1, .msg = ".first\r\n\r\n..x\r\n", .steps = sc};
    se_smtp *s = run(&tc);
    CHECK_INT(se_smtp_last_ok(s), 1);
    CHECK(strstr(trace_buf, "C: BDAT 15 LAST\nC: <message: 15 bytes>\n") != NULL);
    se_smtp_free(s);
}

TEST(engine_bdat_line_endings)
{
    /* no dot-stuffing with BDAT, but bare LF/CR still become CRLF and the
     * count is of the bytes actually sent */
    static const step sc[] = {
        GREET,
        CHUNK_EHLO,
        MAIL,
        C("MAIL FROM:<from@example.com> SIZE=10\r\nRCPT TO:<rcpt@example.org>\r\n"
          "BDAT 10 LAST\r\n"
          ".a\r\n.\r\nb\r\n"),
        S("250 ok\r\n250 ok\r\n250 ok\r\n"),
        IDLE,
        END,
    };
    tcase tc = {.opts = NOTLS, .env = ENV1, .msg = ".a\n.\rb", .steps = sc};
    se_smtp_free(run(&tc));
}

TEST(engine_bdat_two_recipients)
{
    static const step sc[] = {
        GREET,
        CHUNK_EHLO,
        MAIL,
        C("MAIL FROM:<from@example.com> SIZE=18\r\nRCPT TO:<a@example.org>\r\n"
          "RCPT TO:<b@example.org>\r\nBDAT 18\r\n" BODY),
        S("250 ok\r\n250 ok\r\n250 ok\r\n250 2.0.0 18 octets received\r\n"),
        C("BDAT 0 LAST\r\n"),
        S("250 2.0.0 queued as X\r\n"),
        IDLE,
        END,
    };
    tcase tc = {.opts = NOTLS, .env = ENV2, .steps = sc};
    se_smtp *s = run(&tc);
    CHECK_INT(se_smtp_last_ok(s), 1);
    CHECK_STR(se_smtp_error(s)->server_text, "queued as X");
    se_smtp_free(s);
}

TEST(engine_bdat_rcpt_refused)
{
    static const step sc[] = {
        GREET,
        CHUNK_EHLO,
        MAIL,
        C("MAIL FROM:<from@example.com> SIZE=18\r\nRCPT TO:<a@example.org>\r\n"
          "RCPT TO:<b@example.org>\r\nBDAT 18\r\n" BODY),
        S("250 ok\r\n250 ok\r\n550 5.1.1 nope\r\n250 ok\r\n"),
        C("RSET\r\n"), /* never BDAT 0 LAST */
        S("250 ok\r\n"),
        IDLE,
        END,
    };
    tcase tc = {.opts = NOTLS, .env = ENV2, .steps = sc};
    se_smtp *s = run(&tc);
    CHECK_STR(se_smtp_error(s)->recipient, "b@example.org");
    CHECK_INT(se_smtp_reusable(s), 1);
    se_smtp_free(s);
}

TEST(engine_bdat_without_pipelining)
{
    static const step sc[] = {
        GREET,
        S("250-mx.example\r\n250 CHUNKING\r\n"),
        MAIL,
        C("MAIL FROM:<from@example.com>\r\n"),
        S("250 ok\r\n"),
        C("RCPT TO:<a@example.org>\r\n"),
        S("250 ok\r\n"),
        C("RCPT TO:<b@example.org>\r\n"),
        S("250 ok\r\n"),
        C("BDAT 18 LAST\r\n" BODY),
        S("552 5.3.4 too big\r\n"),
        C("RSET\r\n"),
        S("250 ok\r\n"),
        IDLE,
        END,
    };
    tcase tc = {.opts = NOTLS, .env = ENV2, .steps = sc};
    se_smtp *s = run(&tc);
    CHECK_INT(se_smtp_error(s)->code, SCALR_EMAIL_ETOOBIG);
    CHECK_STR(se_smtp_error(s)->stage, "DATA");
    se_smtp_free(s);
}

/* Run a plain session that sends msg with DATA; check the body bytes. */
static void check_data(const char *msg, const char *want_body, const char *trace_want)
{
    char want[512];
    snprintf(want, sizeof want, "%s.\r\n", want_body);
    step sc[] = {
        GREET,
        S("250 mx.example\r\n"),
        MAIL,
        C("MAIL FROM:<from@example.com>\r\n"),
        S("250 ok\r\n"),
        C("RCPT TO:<rcpt@example.org>\r\n"),
        S("250 ok\r\n"),
        C("DATA\r\n"),
        S("354 go\r\n"),
        C(want),
        S("250 ok\r\n"),
        IDLE,
        END,
    };
    tcase tc = {.opts = NOTLS, .env = ENV1, .msg = msg, .steps = sc};
    se_smtp *s = run(&tc);
    if (trace_want)
        CHECK(strstr(trace_buf, trace_want) != NULL);
    se_smtp_free(s);
}

TEST(engine_dot_stuffing)
{
    /* RFC 5321 4.5.2: every line start, the first included */
    check_data(".\r\n", "..\r\n", "C: <message: 4 bytes>\nS: 250 ok\n");
    check_data("a\r\n.\r\nb\r\n", "a\r\n..\r\nb\r\n", NULL);
    check_data("..x\r\n", "...x\r\n", NULL);
    check_data(".x\r\nline\r\n", "..x\r\nline\r\n", NULL);
    check_data("a.b\r\n x.\r\n", "a.b\r\n x.\r\n", NULL);
    check_data("", "", "C: <message: 0 bytes>\n");
}

TEST(engine_data_line_endings)
{
    check_data("no final crlf", "no final crlf\r\n", NULL);
    check_data("a\r\n.", "a\r\n..\r\n", NULL);
    /* SMTP smuggling: a bare LF or CR is a line end, then stuffed */
    check_data("a\n.\nMAIL FROM:<x@y>\n", "a\r\n..\r\nMAIL FROM:<x@y>\r\n", NULL);
    check_data("a\r.\rb", "a\r\n..\r\nb\r\n", NULL);
    check_data("a\n.\r\nb\r\n", "a\r\n..\r\nb\r\n", NULL);
    check_data("a\r\r\nb\r\n", "a\r\n\r\nb\r\n", NULL);
}

TEST(engine_end_of_data_552)
{
    static const step sc[] = {
        GREET,
        PIPE_EHLO,
        MAIL,
        C("MAIL FROM:<from@example.com>\r\nRCPT TO:<rcpt@example.org>\r\nDATA\r\n"),
        S("250 ok\r\n250 ok\r\n354 go\r\n"),
        C(BODY ".\r\n"),
        S("552 5.3.4 Message size exceeds fixed limit\r\n"),
        IDLE,
        END,
    };
    tcase tc = {.opts = NOTLS, .env = ENV1, .steps = sc};
    se_smtp *s = run(&tc);
    const scalr_email_error *e = se_smtp_error(s);
    CHECK_INT(e->code, SCALR_EMAIL_ETOOBIG);
    CHECK_STR(e->stage, "DATA");
    CHECK_STR(e->message,
              "message too big for the server: 552 5.3.4 Message size exceeds fixed limit");
    CHECK_INT(se_smtp_last_ok(s), 0);
    CHECK_INT(se_smtp_reusable(s), 1);
    se_smtp_free(s);
}

TEST(engine_end_of_data_codes)
{
    static const struct {
        const char *reply;
        scalr_email_code code;
        const char *msg;
    } cases[] = {
        {"554 5.7.1 spam\r\n", SCALR_EMAIL_EREJECTED,
         "server rejected the message: 554 5.7.1 spam"},
        {"451 4.7.1 greylisted\r\n", SCALR_EMAIL_ETRANSIENT,
         "server deferred the message: 451 4.7.1 greylisted"},
        {"550 5.3.4 too big\r\n", SCALR_EMAIL_ETOOBIG,
         "message too big for the server: 550 5.3.4 too big"},
        /* an enhanced code of another class is ignored: the basic code rules */
        {"550 2.0.0 weird\r\n", SCALR_EMAIL_EREJECTED,
         "server rejected the message: 550 2.0.0 weird"},
        {"452 5.3.4 odd\r\n", SCALR_EMAIL_ETRANSIENT, "server deferred the message: 452 5.3.4 odd"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        step sc[] = {
            GREET,
            PIPE_EHLO,
            MAIL,
            C("MAIL FROM:<from@example.com>\r\nRCPT TO:<rcpt@example.org>\r\nDATA\r\n"),
            S("250 ok\r\n250 ok\r\n354 go\r\n"),
            C(BODY ".\r\n"),
            S(cases[i].reply),
            IDLE,
            END,
        };
        tcase tc = {.opts = NOTLS, .env = ENV1, .steps = sc};
        se_smtp *s = run(&tc);
        CHECK_INT(se_smtp_error(s)->code, cases[i].code);
        CHECK_STR(se_smtp_error(s)->message, cases[i].msg);
        se_smtp_free(s);
    }
}

TEST(engine_size_exceeded_nothing_sent)
{
    static const step sc[] = {
        GREET,
        S("250-mx.example\r\n250-PIPELINING\r\n250 SIZE 10\r\n"),
        IDLE,
        MAIL,
        IDLE, /* nothing written; the session stays usable */
        QUIT,
        C("QUIT\r\n"),
        S("221 bye\r\n"),
        DONE,
        END,
    };
    tcase tc = {.opts = NOTLS, .env = ENV1, .steps = sc};
    se_smtp *s = run(&tc);
    const scalr_email_error *e = se_smtp_error(s);
    CHECK_INT(e->code, SCALR_EMAIL_ETOOBIG);
    CHECK_STR(e->stage, "MAIL");
    CHECK_STR(e->message, "message of 18 bytes exceeds the server's SIZE limit of 10 bytes");
    CHECK(strstr(trace_buf, "MAIL FROM") == NULL);
    se_smtp_free(s);

    /* exactly the limit, after dot-stuffing (".x" -> "..x"): accepted */
    static const step fits[] = {
        GREET, S("250-mx.example\r\n250 SIZE 5\r\n"),
        MAIL,  C("MAIL FROM:<from@example.com> SIZE=5\r\n"),
        END,
    };
    tcase tc2 = {.opts = NOTLS, .env = ENV1, .msg = ".x\r\n", .steps = fits};
    se_smtp_free(run(&tc2));
    static const step over[] = {GREET, S("250-mx.example\r\n250 SIZE 4\r\n"), MAIL, IDLE, END};
    tc2.steps = over;
    s = run(&tc2);
    CHECK_INT(se_smtp_error(s)->code, SCALR_EMAIL_ETOOBIG);
    se_smtp_free(s);
}

TEST(engine_mail_parameters)
{
    static const step sc[] = {
        GREET,
        S("250-mx.example\r\n250-SIZE 100000\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n"),
        MAIL,
        C("MAIL FROM:<j\xc3\xb6rg@example.com> SIZE=18 BODY=8BITMIME SMTPUTF8\r\n"),
        S("250 ok\r\n"),
        C("RCPT TO:<rcpt@example.org>\r\n"),
        END,
    };
    tcase tc = {.opts = NOTLS,
                .env = {.mail_from = "j\xc3\xb6rg@example.com",
                        .rcpt = one_rcpt,
                        .n_rcpt = 1,
                        .needs_smtputf8 = 1,
                        .is_8bit = 1},
                .steps = sc};
    se_smtp_free(run(&tc));
}

TEST(engine_smtputf8_not_offered)
{
    static const step sc[] = {GREET, S("250-mx.example\r\n250 8BITMIME\r\n"), MAIL, IDLE, END};
    tcase tc = {.opts = NOTLS,
                .env = {.mail_from = "j\xc3\xb6rg@example.com",
                        .rcpt = one_rcpt,
                        .n_rcpt = 1,
                        .needs_smtputf8 = 1},
                .steps = sc};
    se_smtp *s = run(&tc);
    CHECK_INT(se_smtp_error(s)->code, SCALR_EMAIL_EUNSUPPORTED);
    CHECK(strstr(se_smtp_error(s)->message, "SMTPUTF8") != NULL);
    CHECK(strstr(trace_buf, "C: MAIL") == NULL);
    CHECK_INT(se_smtp_reusable(s), 1);
    se_smtp_free(s);
}

TEST(engine_8bitmime_not_offered)
{
    static const step sc[] = {GREET, S("250 mx.example\r\n"), MAIL, IDLE, END};
    tcase tc = {.opts = NOTLS,
                .env = {.mail_from = "a@b.example", .rcpt = one_rcpt, .n_rcpt = 1, .is_8bit = 1},
                .steps = sc};
    se_smtp *s = run(&tc);
    CHECK_INT(se_smtp_error(s)->code, SCALR_EMAIL_EUNSUPPORTED);
    CHECK(strstr(se_smtp_error(s)->message, "8BITMIME") != NULL);
    se_smtp_free(s);
}

TEST(engine_bad_addresses_refused)
{
    static const char *const inj[] = {"rcpt@example.org>\r\nRCPT TO:<other@example.org"};
    static const char *const angle[] = {"a@b.example> NOTIFY=NEVER"};
    static const char *const utf[] = {"r\xc3\xa9@example.org"};
    static const char *const empty[] = {""};
    const se_smtp_envelope envs[] = {
        {.mail_from = "from@example.com", .rcpt = inj, .n_rcpt = 1},
        {.mail_from = "from@example.com", .rcpt = angle, .n_rcpt = 1},
        {.mail_from = "from@example.com", .rcpt = utf, .n_rcpt = 1},
        {.mail_from = "from@example.com", .rcpt = empty, .n_rcpt = 1},
        {.mail_from = "x@y\n", .rcpt = one_rcpt, .n_rcpt = 1},
        {.mail_from = "from@example.com", .rcpt = one_rcpt, .n_rcpt = 0},
    };
    for (size_t i = 0; i < sizeof envs / sizeof *envs; i++) {
        static const step sc[] = {GREET, S("250 mx.example\r\n"), MAIL, IDLE, END};
        tcase tc = {.opts = NOTLS, .env = envs[i], .steps = sc};
        se_smtp *s = run(&tc);
        CHECK_INT(se_smtp_error(s)->code, SCALR_EMAIL_EINVAL);
        CHECK(strstr(trace_buf, "C: MAIL") == NULL);
        CHECK_INT(se_smtp_reusable(s), 1);
        se_smtp_free(s);
    }
}

TEST(engine_null_sender)
{
    static const step sc[] = {GREET, S("250 mx.example\r\n"), MAIL, C("MAIL FROM:<>\r\n"), END};
    tcase tc = {
        .opts = NOTLS, .env = {.mail_from = "", .rcpt = one_rcpt, .n_rcpt = 1}, .steps = sc};
    se_smtp_free(run(&tc));
}

TEST(engine_421_mid_session)
{
    static const step sc[] = {
        GREET,
        PIPE_EHLO,
        MAIL,
        C("MAIL FROM:<from@example.com>\r\nRCPT TO:<a@example.org>\r\n"
          "RCPT TO:<b@example.org>\r\nDATA\r\n"),
        S("250 ok\r\n421 4.4.2 mx.example Error: timeout exceeded\r\n"),
        FAIL(ETRANSIENT),
        END,
    };
    tcase tc = {.opts = NOTLS, .env = ENV2, .steps = sc};
    se_smtp *s = run(&tc);
    const scalr_email_error *e = se_smtp_error(s);
    CHECK_INT(e->smtp_code, 421);
    CHECK_STR(e->stage, "RCPT");
    CHECK_INT(se_smtp_reusable(s), 0);
    se_smtp_quit(s);
    CHECK_INT(se_smtp_step(s), SE_SMTP_FAILED);
    se_smtp_free(s);
}

TEST(engine_eof_during_data)
{
    static const step sc[] = {
        GREET,
        PIPE_EHLO,
        MAIL,
        C("MAIL FROM:<from@example.com>\r\nRCPT TO:<rcpt@example.org>\r\nDATA\r\n"),
        S("250 ok\r\n250 ok\r\n354 go\r\n"),
        C(BODY ".\r\n"),
        S("250 partial"),
        SEOF,
        FAIL(EIO),
        END,
    };
    tcase tc = {.opts = NOTLS, .env = ENV1, .steps = sc};
    se_smtp *s = run(&tc);
    CHECK_STR(se_smtp_error(s)->stage, "DATA");
    CHECK_STR(se_smtp_error(s)->message, "server closed the connection during DATA");
    CHECK_INT(se_smtp_last_ok(s), 0);
    se_smtp_free(s);
}

TEST(engine_quit_server_closes)
{
    static const step sc[] = {GREET, S("250 mx.example\r\n"), QUIT, C("QUIT\r\n"), SEOF, DONE, END};
    tcase tc = {.opts = NOTLS, .steps = sc};
    se_smtp_free(run(&tc));
}

TEST(engine_unsolicited_data_while_idle)
{
    static const step sc[] = {
        GREET, S("250 mx.example\r\n"), IDLE, S("250 surprise\r\n"), FAIL(EPROTOCOL), END};
    tcase tc = {.opts = NOTLS, .steps = sc};
    se_smtp *s = run(&tc);
    CHECK_INT(se_smtp_reusable(s), 0);
    se_smtp_free(s);

    /* a complete 421 while idle is the server saying goodbye (a partial
     * one is just unsolicited data: not split) */
    static const step bye[] = {
        GREET, S("250 mx.example\r\n"), IDLE, S("421 4.4.2 idle timeout\r\n"), FAIL(ETRANSIENT),
        END};
    tc.steps = bye;
    tc.no_split = 1;
    s = run(&tc);
    CHECK_INT(se_smtp_error(s)->smtp_code, 421);
    se_smtp_free(s);

    /* the reply to end of data came with extra bytes: the message was
     * accepted, but the session cannot be reused */
    static const step tail[] = {
        GREET,
        PIPE_EHLO,
        MAIL,
        C("MAIL FROM:<from@example.com>\r\nRCPT TO:<rcpt@example.org>\r\nDATA\r\n"),
        S("250 ok\r\n250 ok\r\n354 go\r\n"),
        C(BODY ".\r\n"),
        S("250 queued\r\n250 extra\r\n"),
        IDLE,
        END,
    };
    tcase tc2 = {.opts = NOTLS, .env = ENV1, .steps = tail, .no_split = 1};
    s = run(&tc2);
    CHECK_INT(se_smtp_last_ok(s), 1);
    CHECK_INT(se_smtp_reusable(s), 0);
    CHECK_INT(se_smtp_mail(s, &tc2.env, "x\r\n", 3), 0);
    CHECK_INT(se_smtp_step(s), SE_SMTP_FAILED);
    CHECK_INT(se_smtp_error(s)->code, SCALR_EMAIL_EPROTOCOL);
    se_smtp_free(s);
}

TEST(engine_data_before_asked)
{
    /* a reply arrives together with 354, before the body was sent */
    static const step sc[] = {
        GREET,
        PIPE_EHLO,
        MAIL,
        C("MAIL FROM:<from@example.com>\r\nRCPT TO:<rcpt@example.org>\r\nDATA\r\n"),
        S("250 ok\r\n250 ok\r\n354 go\r\n250 fake queued\r\n"),
        FAIL(EPROTOCOL),
        END,
    };
    tcase tc = {.opts = NOTLS, .env = ENV1, .steps = sc, .no_split = 1};
    se_smtp *s = run(&tc);
    size_t n;
    se_smtp_out(s, &n);
    CHECK_INT(n, 0); /* the body was not sent */
    se_smtp_free(s);

    /* a second reply behind the greeting */
    static const step early[] = {S("220 mx\r\n250 early\r\n"), FAIL(EPROTOCOL), END};
    tc.steps = early;
    se_smtp_free(run(&tc));
}

TEST(engine_unexpected_codes)
{
    static const step sc[] = {
        GREET,
        S("250 mx.example\r\n"),
        MAIL,
        C("MAIL FROM:<from@example.com>\r\n"),
        S("354 what\r\n"),
        FAIL(EPROTOCOL),
        END,
    };
    tcase tc = {.opts = NOTLS, .env = ENV1, .steps = sc};
    se_smtp *s = run(&tc);
    CHECK_STR(se_smtp_error(s)->stage, "MAIL");
    se_smtp_free(s);

    static const step data250[] = {
        GREET,
        S("250 mx.example\r\n"),
        MAIL,
        C("MAIL FROM:<from@example.com>\r\n"),
        S("250 ok\r\n"),
        C("RCPT TO:<rcpt@example.org>\r\n"),
        S("250 ok\r\n"),
        C("DATA\r\n"),
        S("250 no\r\n"),
        FAIL(EPROTOCOL),
        END,
    };
    tc.steps = data250;
    se_smtp_free(run(&tc));
}

TEST(engine_mail_when_not_idle)
{
    se_smtp_opts o = {.helo_name = "c.example", .tls = SCALR_EMAIL_TLS_NONE};
    se_smtp *s = se_smtp_new(&o);
    se_smtp_envelope env = ENV1;
    CHECK_INT(se_smtp_mail(s, &env, "x\r\n", 3), -1);
    CHECK_INT(se_smtp_step(s), SE_SMTP_READ);
    se_smtp_free(s);
}

TEST(engine_abort)
{
    se_smtp_opts o = {.helo_name = "c.example", .tls = SCALR_EMAIL_TLS_NONE};
    se_smtp *s = se_smtp_new(&o);
    CHECK_INT(se_smtp_step(s), SE_SMTP_READ);
    se_smtp_abort(s, SCALR_EMAIL_ETIMEOUT, "timed out waiting for the greeting");
    CHECK_INT(se_smtp_step(s), SE_SMTP_FAILED);
    CHECK_INT(se_smtp_error(s)->code, SCALR_EMAIL_ETIMEOUT);
    CHECK_STR(se_smtp_error(s)->stage, "CONNECT");
    CHECK_STR(se_smtp_error(s)->message, "timed out waiting for the greeting");
    se_smtp_free(s);
}

TEST(engine_input_bounded)
{
    /* a never-ending multi-line reply is refused, not buffered forever */
    se_smtp_opts o = {.helo_name = "c.example", .tls = SCALR_EMAIL_TLS_NONE};
    se_smtp *s = se_smtp_new(&o);
    int steps = 0;
    while (se_smtp_step(s) == SE_SMTP_READ && steps < 100000) {
        se_smtp_feed(s, "220-more\r\n", 10);
        steps++;
    }
    CHECK_INT(se_smtp_step(s), SE_SMTP_FAILED);
    CHECK_INT(se_smtp_error(s)->code, SCALR_EMAIL_EPROTOCOL);
    CHECK(steps <= SE_REPLY_MAX_LINES + 1);
    se_smtp_free(s);
}

/* NOOP probes an idle session; replies are counted, partial bytes shown. */
TEST(engine_noop_probe_and_reply_count)
{
    se_smtp_opts o = {.helo_name = "client.example", .tls = SCALR_EMAIL_TLS_NONE};
    se_smtp *s = se_smtp_new(&o);
    size_t n;
    CHECK(s != NULL);
    if (!s)
        return;
    CHECK_INT(se_smtp_noop(s), -1); /* not idle yet */
    se_smtp_feed(s, "220 hi\r\n", 8);
    CHECK_INT(se_smtp_step(s), SE_SMTP_WRITE);
    se_smtp_out(s, &n);
    se_smtp_sent(s, n);
    se_smtp_feed(s, "250 ok\r\n", 8);
    CHECK_INT(se_smtp_step(s), SE_SMTP_IDLE);
    CHECK_INT(se_smtp_replies(s), 2);
    CHECK_INT(se_smtp_noop(s), 0);
    CHECK_INT(se_smtp_step(s), SE_SMTP_WRITE);
    const char *out = se_smtp_out(s, &n);
    CHECK_MEM(out, n, "NOOP\r\n");
    se_smtp_sent(s, n);
    CHECK_INT(se_smtp_step(s), SE_SMTP_READ);
    CHECK_STR(se_smtp_stage(s), "NOOP");
    se_smtp_feed(s, "25", 2);
    CHECK_INT(se_smtp_step(s), SE_SMTP_READ);
    const char *p = se_smtp_partial(s, &n);
    CHECK_MEM(p, n, "25");
    CHECK_INT(se_smtp_replies(s), 2);
    se_smtp_feed(s, "0 2.0.0 Ok\r\n", 12);
    CHECK_INT(se_smtp_step(s), SE_SMTP_IDLE);
    CHECK_INT(se_smtp_replies(s), 3);
    CHECK(se_smtp_reusable(s));
    /* a server closing instead: the session is done */
    CHECK_INT(se_smtp_noop(s), 0);
    se_smtp_out(s, &n);
    se_smtp_sent(s, n);
    se_smtp_feed(s, "421 4.4.2 idle too long\r\n", 25);
    CHECK_INT(se_smtp_step(s), SE_SMTP_FAILED);
    CHECK_INT(se_smtp_error(s)->code, SCALR_EMAIL_ETRANSIENT);
    se_smtp_free(s);
}

/* ---- RFC 3461 DSN ---- */

static const char *const dsn_rcpt[] = {"a@example.org", "j\xc3\xb6rg+x@example.org"};
#define DSN_ENV                                                                                    \
    {                                                                                              \
        .mail_from = "bounce@example.com", .rcpt = dsn_rcpt, .n_rcpt = 2, .needs_smtputf8 = 1,     \
        .dsn = 1, .dsn_notify = "FAILURE,DELAY", .dsn_ret = "HDRS", .dsn_envid = "id+2B1"          \
    }

TEST(engine_dsn_parameters_when_offered)
{
    static const step sc[] = {
        GREET,
        S("250-mx.example\r\n250-PIPELINING\r\n250-SMTPUTF8\r\n250 DSN\r\n"),
        MAIL,
        C("MAIL FROM:<bounce@example.com> SMTPUTF8 RET=HDRS ENVID=id+2B1\r\n"
          "RCPT TO:<a@example.org> NOTIFY=FAILURE,DELAY ORCPT=rfc822;a@example.org\r\n"
          "RCPT TO:<j\xc3\xb6rg+x@example.org> NOTIFY=FAILURE,DELAY "
          "ORCPT=utf-8;j\xc3\xb6rg\\x{2B}x@example.org\r\nDATA\r\n"),
        S("250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n"),
        C(BODY ".\r\n"),
        S("250 queued\r\n"),
        IDLE,
        END,
    };
    tcase tc = {.opts = NOTLS, .env = DSN_ENV, .steps = sc};
    se_smtp *s = run(&tc);
    CHECK_INT(se_smtp_last_ok(s), 1);
    se_smtp_free(s);
}

TEST(engine_dsn_left_out_without_the_extension)
{
    static const step sc[] = {
        GREET,
        S("250-mx.example\r\n250-PIPELINING\r\n250 SMTPUTF8\r\n"),
        MAIL,
        C("MAIL FROM:<bounce@example.com> SMTPUTF8\r\nRCPT TO:<a@example.org>\r\n"
          "RCPT TO:<j\xc3\xb6rg+x@example.org>\r\nDATA\r\n"),
        S("250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n"),
        C(BODY ".\r\n"),
        S("250 queued\r\n"),
        IDLE,
        END,
    };
    tcase tc = {.opts = NOTLS, .env = DSN_ENV, .steps = sc};
    se_smtp *s = run(&tc);
    CHECK_INT(se_smtp_last_ok(s), 1);
    CHECK(strstr(trace_buf, "does not advertise DSN") != NULL);
    se_smtp_free(s);
}
