/* The inbox's SMTP server session (inbox/smtpd.c): scripted conversations,
 * the client's bytes in, the server's exact bytes out. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../inbox/smtpd.h"
#include "harness.h"
#include "util/buf.h"

typedef struct conv {
    se_buf out; /* every byte the session wrote, since the last take() */
    int writes; /* WRITE events */
    int closed, tls, delays;
    unsigned delay_ms;
    int nmsg, fail_store;
    se_buf raw; /* the last message stored */
    size_t bare_lf, bare_cr;
    char from[300], rcpts[600], helo[300];
} conv;

static void conv_free(conv *c)
{
    se_buf_free(&c->out);
    se_buf_free(&c->raw);
}

/* Feed bytes and run the session until it wants input or closes. */
static void run(ib_smtpd *s, conv *c, const char *in, size_t n)
{
    if (n)
        CHECK_INT(ib_smtpd_feed(s, in, n), 0);
    for (int guard = 0; guard < 1000000; guard++) {
        size_t len;
        const char *out;
        ib_envelope env;
        const char *raw;
        switch (ib_smtpd_step(s)) {
        case IB_SMTPD_WRITE:
            out = ib_smtpd_out(s, &len);
            CHECK(len > 0);
            se_buf_append(&c->out, out, len);
            c->writes++;
            ib_smtpd_sent(s, len);
            break;
        case IB_SMTPD_READ: return;
        case IB_SMTPD_MESSAGE:
            ib_smtpd_message(s, &env, &raw, &len);
            se_buf_reset(&c->raw);
            se_buf_append(&c->raw, raw, len);
            snprintf(c->from, sizeof c->from, "%s", env.mail_from);
            c->rcpts[0] = '\0';
            for (size_t i = 0; i < env.n_rcpt; i++) {
                size_t l = strlen(c->rcpts);
                snprintf(c->rcpts + l, sizeof c->rcpts - l, "%s%s", i ? "," : "", env.rcpt[i]);
            }
            snprintf(c->helo, sizeof c->helo, "%s", env.helo);
            c->bare_lf = env.bare_lf;
            c->bare_cr = env.bare_cr;
            c->nmsg++;
            ib_smtpd_stored(s, c->fail_store ? -1 : c->nmsg);
            break;
        case IB_SMTPD_DELAY:
            c->delays++;
            c->delay_ms += ib_smtpd_delay_ms(s);
            break;
        case IB_SMTPD_TLS:
            c->tls++;
            ib_smtpd_tls_started(s); /* as if the handshake succeeded */
            break;
        case IB_SMTPD_CLOSE: c->closed = 1; return;
        }
    }
    CHECK(!"session loops");
}

static void say(ib_smtpd *s, conv *c, const char *in)
{
    run(s, c, in, strlen(in));
}

/* The output so far, as a string owned by c; clears it for the next take(). */
static const char *take(conv *c)
{
    static char copy[1 << 16];
    snprintf(copy, sizeof copy, "%s", c->out.data ? c->out.data : "");
    se_buf_reset(&c->out);
    c->writes = 0;
    return copy;
}

static const ib_smtpd_conf plain_conf = {.hostname = "mx.test", .max_size = 1000};

/* A session past the greeting and EHLO. */
static ib_smtpd *ready(const ib_smtpd_conf *conf, conv *c)
{
    ib_smtpd *s = ib_smtpd_new(conf, "127.0.0.1:4242", 0);
    CHECK(s != NULL);
    run(s, c, NULL, 0);
    say(s, c, "EHLO client.test\r\n");
    take(c);
    return s;
}

TEST(smtpd_greeting_and_ehlo)
{
    conv c = {0};
    ib_smtpd *s = ib_smtpd_new(&plain_conf, "127.0.0.1:4242", 0);
    run(s, &c, NULL, 0);
    CHECK_STR(take(&c), "220 mx.test ESMTP scalr-email inbox\r\n");
    say(s, &c, "EHLO client.test\r\n");
    CHECK_STR(take(&c), "250-mx.test\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250-8BITMIME\r\n"
                        "250-SMTPUTF8\r\n250-CHUNKING\r\n250-ENHANCEDSTATUSCODES\r\n250 HELP\r\n");
    say(s, &c, "HELO client.test\r\n");
    CHECK_STR(take(&c), "250 mx.test\r\n");
    ib_smtpd_free(s);
    conv_free(&c);
}

TEST(smtpd_ehlo_offers_starttls_and_auth)
{
    ib_smtpd_conf conf = {.hostname = "mx.test", .max_size = 5, .starttls = 1, .auth = "any"};
    conv c = {0};
    ib_smtpd *s = ib_smtpd_new(&conf, "p", 0);
    run(s, &c, NULL, 0);
    take(&c);
    say(s, &c, "ehlo x\r\n");
    CHECK_STR(take(&c), "250-mx.test\r\n250-PIPELINING\r\n250-SIZE 5\r\n250-8BITMIME\r\n"
                        "250-SMTPUTF8\r\n250-CHUNKING\r\n250-ENHANCEDSTATUSCODES\r\n"
                        "250-STARTTLS\r\n250-AUTH PLAIN LOGIN XOAUTH2 OAUTHBEARER\r\n250 HELP\r\n");
    ib_smtpd_free(s);
    /* Already in TLS (implicit): no STARTTLS. */
    s = ib_smtpd_new(&conf, "p", 1);
    run(s, &c, NULL, 0);
    take(&c);
    say(s, &c, "EHLO x\r\n");
    CHECK(strstr(take(&c), "STARTTLS") == NULL);
    say(s, &c, "STARTTLS\r\n");
    CHECK_STR(take(&c), "503 5.5.1 Error: TLS already active\r\n");
    ib_smtpd_free(s);
    conv_free(&c);
}

TEST(smtpd_pipelined_transaction_in_one_write)
{
    conv c = {0};
    ib_smtpd *s = ib_smtpd_new(&plain_conf, "127.0.0.1:4242", 0);
    run(s, &c, NULL, 0);
    take(&c);
    say(s, &c,
        "EHLO a\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nRCPT TO:<c@y.test>\r\n"
        "DATA\r\n");
    CHECK_INT(c.writes, 1);
    CHECK(strstr(c.out.data, "250 HELP\r\n250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n"
                             "354 End data with <CR><LF>.<CR><LF>\r\n") != NULL);
    take(&c);
    say(s, &c, "Subject: x\r\n\r\nbody\r\n.\r\nMAIL FROM:<>\r\nRCPT TO:<d@y.test>\r\n");
    CHECK_INT(c.writes, 1);
    CHECK_STR(take(&c), "250 2.0.0 Ok: queued as 1\r\n250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n");
    CHECK_MEM(c.raw.data, c.raw.len, "Subject: x\r\n\r\nbody\r\n");
    CHECK_STR(c.from, "a@x.test");
    CHECK_STR(c.rcpts, "b@y.test,c@y.test");
    CHECK_STR(c.helo, "a");
    ib_smtpd_free(s);
    conv_free(&c);
}

static const char dotted[] = "..a\r\n.b\r\n...\r\nx.\r\n. \r\n";
static const char undotted[] = ".a\r\nb\r\n..\r\nx.\r\n \r\n";

TEST(smtpd_data_dot_unstuffing)
{
    conv c = {0};
    ib_smtpd *s = ready(&plain_conf, &c);
    say(s, &c, "MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\n");
    take(&c);
    say(s, &c, dotted);
    say(s, &c, ".\r\n");
    CHECK_STR(take(&c), "250 2.0.0 Ok: queued as 1\r\n");
    CHECK_MEM(c.raw.data, c.raw.len, undotted); /* RFC 5321 4.5.2 */
    ib_smtpd_free(s);
    conv_free(&c);
}

TEST(smtpd_data_split_byte_by_byte)
{
    conv c = {0};
    ib_smtpd *s = ready(&plain_conf, &c);
    say(s, &c, "MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\n");
    take(&c);
    const char *all = "..a\r\n.b\r\n...\r\nx.\r\n. \r\n.\r\nNOOP\r\n";
    for (const char *p = all; *p; p++)
        run(s, &c, p, 1);
    CHECK_STR(take(&c), "250 2.0.0 Ok: queued as 1\r\n250 2.0.0 Ok\r\n");
    CHECK_MEM(c.raw.data, c.raw.len, undotted);
    ib_smtpd_free(s);
    conv_free(&c);
}

TEST(smtpd_data_only_crlf_dot_crlf_ends_the_data)
{
    conv c = {0};
    ib_smtpd *s = ready(&plain_conf, &c);
    say(s, &c, "MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\n");
    take(&c);
    /* SMTP smuggling (CVE-2023-51764): "\n.\n", "\n.\r\n" and "\r.\r" are content;
     * what follows them is not a second transaction. */
    say(s, &c,
        "a\n.\nMAIL FROM:<x@x.test>\r\nb\n.\r\nRCPT TO:<c@y.test>\r\nc\r.\r\n"
        "..d\r\n.\r\nNOOP\r\n");
    CHECK_STR(take(&c), "250 2.0.0 Ok: queued as 1\r\n250 2.0.0 Ok\r\n");
    CHECK_INT(c.nmsg, 1);
    CHECK_MEM(c.raw.data, c.raw.len,
              "a\n.\nMAIL FROM:<x@x.test>\r\nb\n.\r\nRCPT TO:<c@y.test>\r\nc\r.\r\n.d\r\n");
    CHECK_INT(c.bare_lf, 3); /* counted, stored with the message, shown as a warning */
    CHECK_INT(c.bare_cr, 1);
    /* A clean message carries no count. */
    say(s, &c, "MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\nclean\r\n.\r\n");
    CHECK_MEM(c.raw.data, c.raw.len, "clean\r\n");
    CHECK_INT(c.bare_lf, 0);
    CHECK_INT(c.bare_cr, 0);
    ib_smtpd_free(s);
    conv_free(&c);
}

TEST(smtpd_data_smuggling_split_byte_by_byte)
{
    conv c = {0};
    ib_smtpd *s = ready(&plain_conf, &c);
    say(s, &c, "MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\n");
    take(&c);
    const char *all = "x\r\n.\nMAIL FROM:<e@x.test>\r\n\r.\r\n.\r\n";
    for (const char *p = all; *p; p++)
        run(s, &c, p, 1);
    CHECK_STR(take(&c), "250 2.0.0 Ok: queued as 1\r\n");
    CHECK_MEM(c.raw.data, c.raw.len, "x\r\n\nMAIL FROM:<e@x.test>\r\n\r.\r\n"); /* dot undone */
    CHECK_INT(c.bare_lf, 1);
    CHECK_INT(c.bare_cr, 1);
    ib_smtpd_free(s);
    conv_free(&c);
}

TEST(smtpd_bdat_chunks)
{
    conv c = {0};
    ib_smtpd *s = ready(&plain_conf, &c);
    say(s, &c,
        "MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nBDAT 7\r\nhi\r\n.\r\nBDAT 0\r\n"
        "BDAT 6 LAST\r\nRSET\r\nNOOP\r\n");
    CHECK_STR(take(&c),
              "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.0.0 7 octets received\r\n"
              "250 2.0.0 7 octets received\r\n250 2.0.0 Ok: queued as 1\r\n250 2.0.0 Ok\r\n");
    /* RFC 3030: no dot-stuffing, exact octets ("RSET\r\n" was payload). */
    CHECK_MEM(c.raw.data, c.raw.len, "hi\r\n.\r\nRSET\r\n");
    /* Never DATA after BDAT in one transaction. */
    say(s, &c, "MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nBDAT 1\r\nxDATA\r\n");
    CHECK_STR(take(&c), "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.0.0 1 octets received\r\n"
                        "503 5.5.1 Error: DATA after BDAT\r\n");
    ib_smtpd_free(s);
    conv_free(&c);
}

TEST(smtpd_bdat_bare_line_endings_counted)
{
    conv c = {0};
    ib_smtpd *s = ready(&plain_conf, &c);
    /* A CRLF split over two chunks is one line end; "\n.\n" is content as
     * always with BDAT; a chunk that ends the message on a CR is a bare CR. */
    say(s, &c,
        "MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nBDAT 3\r\nab\rBDAT 6\r\n\n.\nx\ry"
        "BDAT 1 LAST\r\n\r");
    CHECK_STR(take(&c), "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.0.0 3 octets received\r\n"
                        "250 2.0.0 9 octets received\r\n250 2.0.0 Ok: queued as 1\r\n");
    CHECK_MEM(c.raw.data, c.raw.len, "ab\r\n.\nx\ry\r");
    CHECK_INT(c.bare_lf, 1);
    CHECK_INT(c.bare_cr, 2);
    /* Clean chunks: nothing counted, and nothing carried over. */
    say(s, &c, "MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nBDAT 4 LAST\r\nok\r\n");
    CHECK_MEM(c.raw.data, c.raw.len, "ok\r\n");
    CHECK_INT(c.bare_lf, 0);
    CHECK_INT(c.bare_cr, 0);
    ib_smtpd_free(s);
    conv_free(&c);
}

TEST(smtpd_bdat_refused_still_reads_the_chunk)
{
    conv c = {0};
    ib_smtpd *s = ready(&plain_conf, &c);
    say(s, &c, "BDAT 12 LAST\r\nQUIT\r\nQUIT\r\nNOOP\r\n");
    CHECK_STR(take(&c), "503 5.5.1 Error: need MAIL command\r\n250 2.0.0 Ok\r\n");
    CHECK(!c.closed);
    say(s, &c, "MAIL FROM:<a@x.test>\r\nRCPT TO:<bad>\r\nBDAT 4 LAST\r\nNOOPNOOP\r\n");
    CHECK_STR(take(&c), "250 2.1.0 Ok\r\n501 5.1.3 Error: bad recipient address syntax\r\n"
                        "554 5.5.1 Error: no valid recipients\r\n250 2.0.0 Ok\r\n");
    CHECK_INT(c.nmsg, 0);
    /* A size that is not a number: no way to resync, so the server hangs up. */
    say(s, &c, "BDAT x\r\n");
    CHECK_STR(take(&c), "501 5.5.4 Syntax: BDAT size [LAST]\r\n");
    CHECK(c.closed);
    ib_smtpd_free(s);
    conv_free(&c);
}

TEST(smtpd_size_limit)
{
    ib_smtpd_conf conf = {.hostname = "mx.test", .max_size = 10};
    conv c = {0};
    ib_smtpd *s = ready(&conf, &c);
    say(s, &c,
        "MAIL FROM:<a@x.test> SIZE=11\r\nMAIL FROM:<a@x.test> SIZE=10 BODY=8BITMIME\r\n"
        "RCPT TO:<b@y.test>\r\nDATA\r\n");
    CHECK_STR(take(&c), "552 5.3.4 Error: message size exceeds fixed maximum message size\r\n"
                        "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n");
    say(s, &c, "0123456789\r\n0123456789\r\n.\r\nNOOP\r\n");
    CHECK_STR(take(&c), "552 5.3.4 Error: message size exceeds fixed maximum message size\r\n"
                        "250 2.0.0 Ok\r\n");
    CHECK_INT(c.nmsg, 0);
    /* Exactly at the limit is fine. */
    say(s, &c, "MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\n01234567\r\n.\r\n");
    CHECK_INT(c.nmsg, 1);
    take(&c);
    /* BDAT: the chunk that crosses the limit gets 552; so does LAST. */
    say(s, &c,
        "MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nBDAT 6\r\n012345BDAT 6\r\n012345"
        "BDAT 1 LAST\r\nxNOOP\r\n");
    CHECK_STR(take(&c), "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.0.0 6 octets received\r\n"
                        "552 5.3.4 Error: message size exceeds fixed maximum message size\r\n"
                        "552 5.3.4 Error: message size exceeds fixed maximum message size\r\n"
                        "250 2.0.0 Ok\r\n");
    CHECK_INT(c.nmsg, 1);
    ib_smtpd_free(s);
    conv_free(&c);
}

TEST(smtpd_command_sequence_errors)
{
    conv c = {0};
    ib_smtpd *s = ib_smtpd_new(&plain_conf, "p", 0);
    run(s, &c, NULL, 0);
    take(&c);
    say(s, &c, "MAIL FROM:<a@x.test>\r\nBDAT 0 LAST\r\n");
    CHECK_STR(take(&c), "503 5.5.1 Error: send HELO/EHLO first\r\n"
                        "503 5.5.1 Error: send HELO/EHLO first\r\n");
    say(s, &c, "EHLO x\r\n");
    take(&c);
    say(s, &c,
        "RCPT TO:<b@y.test>\r\nDATA\r\nMAIL FROM:<a@x.test>\r\nDATA\r\n"
        "MAIL FROM:<a@x.test>\r\nRCPT TO:<b b@y>\r\nDATA\r\nDATA x\r\n");
    CHECK_STR(take(&c), "503 5.5.1 Error: need MAIL command\r\n"
                        "503 5.5.1 Error: need MAIL command\r\n"
                        "250 2.1.0 Ok\r\n"
                        "503 5.5.1 Error: need RCPT command\r\n"
                        "503 5.5.1 Error: nested MAIL command\r\n"
                        "501 5.1.3 Error: bad recipient address syntax\r\n"
                        "554 5.5.1 Error: no valid recipients\r\n" /* RFC 2920 3.1 */
                        "501 5.5.4 Syntax: DATA\r\n");
    ib_smtpd_free(s);
    conv_free(&c);
}

TEST(smtpd_syntax_errors)
{
    conv c = {0};
    ib_smtpd *s = ready(&plain_conf, &c);
    say(s, &c,
        "MAIL FROM a@x\r\nMAIL FROM:a@x\r\nMAIL FROM:<a@x> FOO=1\r\nMAIL FROM:<a@>\r\n"
        "\r\nXYZZY\r\n");
    run(s, &c, "NO\0OP\r\n", 7);
    say(s, &c,
        "MAIL FROM:<\"a b\"@x.test>\r\nRCPT TO:<Postmaster>\r\n"
        "RCPT TO:<@relay.test:c@y.test>\r\nRCPT TO:<c@y.test> NOTIFY=NEVER\r\n");
    CHECK_STR(take(&c), "501 5.5.4 Syntax: MAIL FROM:<address>\r\n"
                        "501 5.5.4 Syntax: MAIL FROM:<address>\r\n"
                        "555 5.5.4 Error: unsupported MAIL parameter\r\n"
                        "501 5.1.7 Error: bad sender address syntax\r\n"
                        "500 5.5.2 Error: command not recognized\r\n"
                        "500 5.5.2 Error: command not recognized\r\n"
                        "500 5.5.2 Error: invalid character in command\r\n"
                        "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n"
                        "555 5.5.4 Error: unsupported RCPT parameter\r\n");
    say(s, &c, "DATA\r\nx\r\n.\r\n");
    CHECK_STR(c.from, "\"a b\"@x.test");
    CHECK_STR(c.rcpts, "Postmaster,c@y.test"); /* the source route is dropped */
    /* RFC 5321 4.5.3.1.1: a local part of 65 octets is too long. */
    char line[200];
    snprintf(line, sizeof line, "MAIL FROM:<%065d@x.test>\r\n", 0);
    take(&c);
    say(s, &c, line);
    CHECK_STR(take(&c), "501 5.1.7 Error: bad sender address syntax\r\n");
    ib_smtpd_free(s);
    conv_free(&c);
}

TEST(smtpd_long_lines)
{
    conv c = {0};
    ib_smtpd *s = ready(&plain_conf, &c);
    char line[600];
    memset(line, 'x', sizeof line);
    memcpy(line, "NOOP ", 5);
    memcpy(line + sizeof line - 2, "\r\n", 2);
    run(s, &c, line, sizeof line); /* 600 > 512: RFC 5321 4.5.3.1.4 */
    CHECK_STR(take(&c), "500 5.5.2 Error: line too long\r\n");
    /* 100 KB without a line end: dropped as it arrives, one reply. */
    char *big = malloc(100000);
    memset(big, 'A', 100000);
    for (int i = 0; i < 10; i++)
        run(s, &c, big, 10000);
    CHECK_STR(take(&c), "");
    say(s, &c, "still the same line\r\nNOOP\r\n");
    CHECK_STR(take(&c), "500 5.5.2 Error: line too long\r\n250 2.0.0 Ok\r\n");
    free(big);
    ib_smtpd_free(s);
    conv_free(&c);
}

TEST(smtpd_auth_plain_any)
{
    ib_smtpd_conf conf = {.hostname = "mx.test", .max_size = 100, .auth = "any"};
    conv c = {0};
    ib_smtpd *s = ready(&conf, &c);
    say(s, &c, "MAIL FROM:<a@x.test>\r\n");
    CHECK_STR(take(&c), "530 5.7.0 Error: authentication required\r\n");
    /* "\0user\0secret" */
    say(s, &c,
        "AUTH PLAIN AHVzZXIAc2VjcmV0\r\nAUTH PLAIN AHVzZXIAc2VjcmV0\r\nMAIL FROM:<a@x.test>\r\n");
    CHECK_STR(take(&c), "235 2.7.0 Authentication successful\r\n"
                        "503 5.5.1 Error: already authenticated\r\n250 2.1.0 Ok\r\n");
    ib_smtpd_free(s);
    conv_free(&c);
}

TEST(smtpd_auth_checks_given_credentials)
{
    ib_smtpd_conf conf = {.hostname = "mx.test", .max_size = 100, .auth = "user:secret"};
    conv c = {0};
    ib_smtpd *s = ready(&conf, &c);
    /* "\0user\0wrong", then "\0user\0secret" in a second step */
    say(s, &c, "AUTH PLAIN AHVzZXIAd3Jvbmc=\r\nAUTH PLAIN\r\nAHVzZXIAc2VjcmV0\r\n");
    CHECK_STR(take(&c), "535 5.7.8 Error: authentication failed\r\n334 \r\n"
                        "235 2.7.0 Authentication successful\r\n");
    ib_smtpd_free(s);
    s = ready(&conf, &c);
    /* authzid "other" is not granted; "user" as its own authzid is. */
    say(s, &c, "AUTH PLAIN b3RoZXIAdXNlcgBzZWNyZXQ=\r\nAUTH PLAIN dXNlcgB1c2VyAHNlY3JldA==\r\n");
    CHECK_STR(take(&c), "535 5.7.8 Error: authentication failed\r\n"
                        "235 2.7.0 Authentication successful\r\n");
    ib_smtpd_free(s);
    conv_free(&c);
}

TEST(smtpd_auth_login)
{
    ib_smtpd_conf conf = {.hostname = "mx.test", .max_size = 100, .auth = "user:secret"};
    conv c = {0};
    ib_smtpd *s = ready(&conf, &c);
    say(s, &c, "AUTH LOGIN\r\ndXNlcg==\r\nc2VjcmV0\r\n");
    CHECK_STR(take(&c), "334 VXNlcm5hbWU6\r\n334 UGFzc3dvcmQ6\r\n"
                        "235 2.7.0 Authentication successful\r\n");
    ib_smtpd_free(s);
    s = ready(&conf, &c);
    say(s, &c, "AUTH LOGIN dXNlcg==\r\nd3Jvbmc=\r\n");
    CHECK_STR(take(&c), "334 UGFzc3dvcmQ6\r\n535 5.7.8 Error: authentication failed\r\n");
    ib_smtpd_free(s);
    /* "user\0junk" is not "user" (found by reading the fuzz target's notes) */
    s = ready(&conf, &c);
    say(s, &c, "AUTH LOGIN dXNlcgBqdW5r\r\nAUTH LOGIN\r\ndXNlcgBqdW5r\r\n");
    CHECK_STR(take(&c), "501 5.5.2 Error: cannot decode response\r\n334 VXNlcm5hbWU6\r\n"
                        "501 5.5.2 Error: cannot decode response\r\n");
    ib_smtpd_free(s);
    conv_free(&c);
}

TEST(smtpd_auth_oauth_token_and_expired)
{
    ib_smtpd_conf conf = {
        .hostname = "mx.test", .max_size = 100, .auth = "token:good", .auth_expired = "old"};
    conv c = {0};
    ib_smtpd *s = ready(&conf, &c);
    /* "user=u@x\1auth=Bearer good\1\1" */
    say(s, &c, "AUTH XOAUTH2 dXNlcj11QHgBYXV0aD1CZWFyZXIgZ29vZAEB\r\n");
    CHECK_STR(take(&c), "235 2.7.0 Authentication successful\r\n");
    ib_smtpd_free(s);
    s = ready(&conf, &c);
    /* "n,a=u@x,\1auth=Bearer old\1\1": the error challenge, ^A, 535 */
    say(s, &c, "AUTH OAUTHBEARER bixhPXVAeCwBYXV0aD1CZWFyZXIgb2xkAQE=\r\nAQ==\r\n");
    CHECK_STR(take(&c), "334 eyJzdGF0dXMiOiJpbnZhbGlkX3Rva2VuIiwic2NvcGUiOiJpbmJveCJ9\r\n"
                        "535 5.7.8 Error: access token expired\r\n");
    /* a wrong token, a malformed response; no password accepted */
    say(s, &c,
        "AUTH XOAUTH2 dXNlcj11QHgBYXV0aD1CZWFyZXIgYmFkAQE=\r\nAUTH XOAUTH2 Zm9v\r\n"
        "AUTH PLAIN AHRva2VuAGdvb2Q=\r\n");
    CHECK_STR(take(&c), "535 5.7.8 Error: authentication failed\r\n"
                        "501 5.5.2 Error: malformed XOAUTH2 response\r\n"
                        "535 5.7.8 Error: authentication failed\r\n");
    ib_smtpd_free(s);
    conv_free(&c);
}

TEST(smtpd_auth_errors)
{
    ib_smtpd_conf conf = {.hostname = "mx.test", .max_size = 100, .auth = "any"};
    conv c = {0};
    ib_smtpd *s = ready(&conf, &c);
    say(s, &c,
        "AUTH PLAIN\r\n*\r\nAUTH PLAIN !!!!\r\nAUTH CRAM-MD5\r\nAUTH PLAIN AHVzZXI=\r\n"
        "AUTH PLAIN =\r\n");
    CHECK_STR(take(&c), "334 \r\n501 5.7.0 Error: authentication cancelled\r\n"
                        "501 5.5.2 Error: cannot decode response\r\n"
                        "504 5.5.4 Error: unsupported authentication mechanism\r\n"
                        "501 5.5.2 Error: malformed PLAIN response\r\n"
                        "501 5.5.2 Error: malformed PLAIN response\r\n");
    ib_smtpd_free(s);
    s = ready(&plain_conf, &c);
    say(s, &c, "AUTH PLAIN AHVzZXIAc2VjcmV0\r\n");
    CHECK_STR(take(&c), "503 5.5.1 Error: authentication not enabled\r\n");
    ib_smtpd_free(s);
    conv_free(&c);
}

TEST(smtpd_starttls_discards_pipelined_plaintext)
{
    ib_smtpd_conf conf = {.hostname = "mx.test", .max_size = 100, .starttls = 1};
    conv c = {0};
    ib_smtpd *s = ready(&conf, &c);
    /* CVE-2011-0411: what follows STARTTLS in the same packet must not run. */
    say(s, &c, "STARTTLS\r\nMAIL FROM:<evil@x.test>\r\n");
    CHECK_STR(take(&c), "220 2.0.0 Ready to start TLS\r\n");
    CHECK_INT(c.tls, 1);
    /* RFC 3207 4.2: everything is forgotten, EHLO again. */
    say(s, &c, "MAIL FROM:<a@x.test>\r\nEHLO again\r\nSTARTTLS\r\n");
    const char *got = take(&c);
    CHECK(!strncmp(got, "503 5.5.1 Error: send HELO/EHLO first\r\n250-mx.test\r\n", 52));
    CHECK(strstr(got, "STARTTLS\r\n") == NULL);
    CHECK(strstr(got, "503 5.5.1 Error: TLS already active\r\n") != NULL);
    ib_smtpd_free(s);
    s = ready(&plain_conf, &c);
    say(s, &c, "STARTTLS\r\n");
    CHECK_STR(take(&c), "502 5.5.1 Error: STARTTLS not available\r\n");
    ib_smtpd_free(s);
    conv_free(&c);
}

TEST(smtpd_recipient_limit)
{
    conv c = {0};
    ib_smtpd *s = ready(&plain_conf, &c);
    say(s, &c, "MAIL FROM:<a@x.test>\r\n");
    for (int i = 0; i < 1001; i++) {
        char line[64];
        snprintf(line, sizeof line, "RCPT TO:<r%d@y.test>\r\n", i);
        say(s, &c, line);
    }
    const char *got = take(&c);
    const char *tail = "250 2.1.5 Ok\r\n452 4.5.3 Error: too many recipients\r\n";
    size_t n = strlen(got);
    CHECK_INT(n, 14 + 1000 * 14 + 38); /* 250 to MAIL, 1000 times 250, one 452 */
    CHECK_STR(got + n - strlen(tail), tail);
    say(s, &c, "DATA\r\nx\r\n.\r\n");
    CHECK_INT(c.nmsg, 1);
    CHECK(strlen(c.rcpts) > 500);
    ib_smtpd_free(s);
    conv_free(&c);
}

TEST(smtpd_smtputf8_addresses)
{
    conv c = {0};
    ib_smtpd *s = ready(&plain_conf, &c);
    say(s, &c,
        "MAIL FROM:<j\xc3\xb6rg@x.test>\r\nMAIL FROM:<j\xc3\xb6rg@x.test> SMTPUTF8\r\n"
        "RCPT TO:<\xe5\x90\x8d@y.test>\r\nRSET\r\nMAIL FROM:<a@x.test>\r\n"
        "RCPT TO:<\xe5\x90\x8d@y.test>\r\nRCPT TO:<\xff@y.test>\r\n");
    CHECK_STR(take(&c), "553 5.6.7 Error: non-ASCII address without SMTPUTF8\r\n"
                        "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.0.0 Ok\r\n250 2.1.0 Ok\r\n"
                        "553 5.6.7 Error: non-ASCII address without SMTPUTF8\r\n"
                        "501 5.1.3 Error: bad recipient address syntax\r\n");
    ib_smtpd_free(s);
    conv_free(&c);
}

TEST(smtpd_small_commands)
{
    conv c = {0};
    ib_smtpd *s = ready(&plain_conf, &c);
    say(s, &c,
        "NOOP\r\nnoop hello\r\nRSET\r\nRSET x\r\nVRFY bob\r\nVRFY\r\nHELP\r\nEXPN x\r\n"
        "QUIT\r\nNOOP\r\n");
    CHECK_STR(take(&c),
              "250 2.0.0 Ok\r\n250 2.0.0 Ok\r\n250 2.0.0 Ok\r\n501 5.5.4 Syntax: RSET\r\n"
              "252 2.1.5 Cannot VRFY user, but will accept message\r\n"
              "501 5.5.4 Syntax: VRFY address\r\n"
              "214 2.0.0 Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP\r\n"
              "500 5.5.2 Error: command not recognized\r\n221 2.0.0 Bye\r\n");
    CHECK(c.closed);
    ib_smtpd_free(s);
    conv_free(&c);
}

TEST(smtpd_http_request_hangs_up)
{
    conv c = {0};
    ib_smtpd *s = ready(&plain_conf, &c);
    say(s, &c, "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\nMAIL FROM:<a@x.test>\r\n");
    CHECK_STR(take(&c), "500 5.5.2 Error: this is an SMTP server, not HTTP\r\n");
    CHECK(c.closed);
    ib_smtpd_free(s);
    conv_free(&c);
}

TEST(smtpd_timeout_shutdown_eof)
{
    conv c = {0};
    ib_smtpd *s = ready(&plain_conf, &c);
    ib_smtpd_timeout(s);
    run(s, &c, NULL, 0);
    CHECK_STR(take(&c), "421 4.4.2 mx.test Error: timeout exceeded\r\n");
    CHECK(c.closed);
    ib_smtpd_free(s);
    c.closed = 0;
    s = ready(&plain_conf, &c);
    ib_smtpd_shutdown(s);
    run(s, &c, NULL, 0);
    CHECK_STR(take(&c), "421 4.3.2 mx.test Service shutting down\r\n");
    ib_smtpd_free(s);
    c.closed = 0;
    /* EOF in the middle of DATA: nothing is stored, nothing said. */
    s = ready(&plain_conf, &c);
    say(s, &c, "MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\npartial\r\n");
    take(&c);
    ib_smtpd_eof(s);
    run(s, &c, NULL, 0);
    CHECK_STR(take(&c), "");
    CHECK(c.closed);
    CHECK_INT(c.nmsg, 0);
    ib_smtpd_free(s);
    conv_free(&c);
}

TEST(smtpd_error_limit_hangs_up)
{
    conv c = {0};
    ib_smtpd *s = ready(&plain_conf, &c);
    for (int i = 0; i < 99; i++)
        say(s, &c, "garbage\r\n");
    CHECK(!c.closed);
    take(&c);
    say(s, &c, "garbage\r\nNOOP\r\n");
    CHECK_STR(take(&c), "500 5.5.2 Error: command not recognized\r\n"
                        "421 4.7.0 mx.test Error: too many errors\r\n");
    CHECK(c.closed);
    ib_smtpd_free(s);
    conv_free(&c);
}

TEST(smtpd_output_flushes_at_high_water)
{
    conv c = {0};
    ib_smtpd *s = ready(&plain_conf, &c);
    se_buf in = {0};
    for (int i = 0; i < 20000; i++)
        se_buf_puts(&in, "NOOP\r\n");
    run(s, &c, in.data, in.len);
    CHECK(c.writes >= 4); /* 280000 bytes of replies, not in one piece */
    CHECK_INT(c.out.len, 20000 * 14);
    se_buf_free(&in);
    ib_smtpd_free(s);
    conv_free(&c);
}

TEST(smtpd_store_failure_is_451)
{
    conv c = {0};
    c.fail_store = 1;
    ib_smtpd *s = ready(&plain_conf, &c);
    say(s, &c,
        "MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\nx\r\n.\r\nRCPT TO:<b@y.test>\r\n");
    CHECK_STR(take(&c), "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n"
                        "451 4.3.0 Error: could not store the message\r\n"
                        "503 5.5.1 Error: need MAIL command\r\n");
    ib_smtpd_free(s);
    conv_free(&c);
}

static ib_smtpd *with_chaos(ib_chaos *ch, ib_smtpd_conf *conf, const char *rule, conv *c)
{
    CHECK_INT(ib_chaos_add(ch, rule, NULL, 0), 0);
    *conf = (ib_smtpd_conf){.hostname = "mx.test", .max_size = 100, .chaos = ch};
    ib_smtpd *s = ib_smtpd_new(conf, "p", 0);
    run(s, c, NULL, 0);
    return s;
}

TEST(smtpd_chaos_connect)
{
    ib_chaos *ch = ib_chaos_new();
    ib_smtpd_conf conf;
    conv c = {0};
    ib_smtpd *s = with_chaos(ch, &conf, "connect:421 4.3.2 go away", &c);
    CHECK_STR(take(&c), "421 4.3.2 go away\r\n");
    CHECK(c.closed);
    ib_smtpd_free(s);
    ib_chaos_clear(ch);
    c.closed = 0;
    /* RFC 5321 3.1: after a 554 greeting, 503 to everything but QUIT. */
    s = with_chaos(ch, &conf, "connect:554 5.3.2 not today", &c);
    say(s, &c, "EHLO x\r\nQUIT\r\n");
    CHECK_STR(take(&c), "554 5.3.2 not today\r\n503 5.5.1 Error: service refused, only QUIT\r\n"
                        "221 2.0.0 Bye\r\n");
    ib_smtpd_free(s);
    ib_chaos_clear(ch);
    c.closed = 0;
    s = with_chaos(ch, &conf, "connect:disconnect", &c);
    CHECK_STR(take(&c), "");
    CHECK(c.closed);
    ib_smtpd_free(s);
    ib_chaos_free(ch);
    conv_free(&c);
}

TEST(smtpd_chaos_stages)
{
    ib_chaos *ch = ib_chaos_new();
    ib_smtpd_conf conf;
    conv c = {0};
    ib_smtpd *s = with_chaos(ch, &conf, "rcpt:550 5.1.1 no such user:match=bad@", &c);
    CHECK_INT(ib_chaos_add(ch, "data:451 4.3.0 try later", NULL, 0), 0);
    take(&c);
    say(s, &c,
        "EHLO x\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<bad@y.test>\r\nRCPT TO:<good@y.test>\r\n"
        "DATA\r\nx\r\n.\r\nRCPT TO:<c@y.test>\r\n");
    const char *got = take(&c);
    CHECK(strstr(got, "250 HELP\r\n250 2.1.0 Ok\r\n550 5.1.1 no such user\r\n250 2.1.5 Ok\r\n"
                      "354 End data with <CR><LF>.<CR><LF>\r\n451 4.3.0 try later\r\n"
                      "503 5.5.1 Error: need MAIL command\r\n") != NULL);
    CHECK_INT(c.nmsg, 0);
    ib_smtpd_free(s);
    ib_chaos_clear(ch);
    s = with_chaos(ch, &conf, "mail:disconnect", &c);
    take(&c);
    say(s, &c, "EHLO x\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\n");
    got = take(&c);
    CHECK(strstr(got, "250 HELP\r\n") != NULL && strstr(got, "2.1.0") == NULL);
    CHECK(c.closed);
    ib_smtpd_free(s);
    ib_chaos_free(ch);
    conv_free(&c);
}

TEST(smtpd_chaos_delay_comes_before_the_reply)
{
    ib_chaos *ch = ib_chaos_new();
    ib_smtpd_conf conf;
    conv c = {0};
    ib_smtpd *s = with_chaos(ch, &conf, "ehlo:delay=1500", &c);
    CHECK_INT(ib_chaos_add(ch, "mail:452 4.3.1 full:delay=20", NULL, 0), 0);
    take(&c);
    say(s, &c, "NOOP\r\nEHLO x\r\nMAIL FROM:<a@x.test>\r\n");
    /* The NOOP's reply is written, then the wait, then the held EHLO runs. */
    CHECK_INT(c.delays, 2);
    CHECK_INT(c.delay_ms, 1520);
    CHECK_INT(c.writes, 3);
    const char *got = take(&c);
    CHECK(!strncmp(got, "250 2.0.0 Ok\r\n250-mx.test\r\n", 27));
    CHECK(strstr(got, "250 HELP\r\n452 4.3.1 full\r\n") != NULL);
    ib_smtpd_free(s);
    ib_chaos_free(ch);
    conv_free(&c);
}

TEST(smtpd_linger_only_after_a_last_reply)
{
    conv c = {0};
    ib_smtpd *s = ready(&plain_conf, &c);
    say(s, &c, "QUIT\r\n");
    CHECK(c.closed);
    CHECK_INT(ib_smtpd_linger(s), 1); /* the client should read the 221 */
    ib_smtpd_free(s);
    c.closed = 0;
    s = ready(&plain_conf, &c);
    ib_smtpd_eof(s);
    run(s, &c, NULL, 0);
    CHECK_INT(ib_smtpd_linger(s), 0); /* the peer is gone */
    ib_smtpd_free(s);
    ib_chaos *ch = ib_chaos_new();
    ib_smtpd_conf conf;
    c.closed = 0;
    s = with_chaos(ch, &conf, "mail:disconnect", &c);
    say(s, &c, "EHLO x\r\nMAIL FROM:<a@x.test>\r\n");
    CHECK(c.closed);
    CHECK_INT(ib_smtpd_linger(s), 0); /* a chaos drop is abrupt */
    ib_smtpd_free(s);
    ib_chaos_free(ch);
    conv_free(&c);
}
