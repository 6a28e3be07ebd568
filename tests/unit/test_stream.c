/* Streaming: the composer's deferred attachments and reader
 * (src/mime/stream.c) and the engine's message sources (src/smtp/mail.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "mime/compose.h"
#include "smtp/engine.h"

/* Reproducible "random" bytes: each call differs, each run the same. */
static void fixed_random(void *arg, unsigned char *buf, size_t n)
{
    unsigned *calls = arg;
    (*calls)++;
    for (size_t i = 0; i < n; i++)
        buf[i] = (unsigned char)(i * 7 + *calls * 31);
}

static char *write_temp(const char *name, size_t n, int text)
{
    static char path[3][64];
    static int k;
    char *p = path[k++ % 3];
    snprintf(p, sizeof path[0], "/tmp/se-stream-%d-%s", (int)getpid(), name);
    FILE *f = fopen(p, "wb");
    if (!f)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        /* text: UTF-8 "é" sequences that straddle every block boundary */
        int c = text ? (i % 3 == 2 ? '\n' : (i % 3 == 0 ? 0xC3 : 0xA9)) : (int)((i * 131) >> 3);
        fputc(c, f);
    }
    fclose(f);
    return p;
}

TEST(stream_deferred_compose_matches_whole_bytes)
{
    char *bin = write_temp("a.bin", 200000, 0);
    char *txt = write_temp("b.txt", 150001 * 3, 1);
    char *small = write_temp("c.bin", 100, 0);
    CHECK(bin && txt && small);
    if (!bin || !txt || !small)
        return;
    scalr_email_attachment att[] = {{.path = bin}, {.path = small}, {.path = txt}, {0}};
    scalr_email_message m = {.to = SCALR_EMAIL_LIST("a@example.com"),
                             .subject = "s",
                             .body = "body\n",
                             .body_html = "<p>x</p>",
                             .attachments = att};
    unsigned calls_a = 0, calls_b = 0;
    se_compose_opts whole_o = {.now = 1700000000, .random = fixed_random, .random_arg = &calls_a};
    se_compose_opts defer_o = whole_o;
    defer_o.random_arg = &calls_b;
    defer_o.defer_over = 1000;
    se_composed whole, part;
    scalr_email_error err;
    scalr_email_code rc1 = se_compose(&m, "s@example.com", &whole_o, &whole, &err);
    scalr_email_code rc2 = se_compose(&m, "s@example.com", &defer_o, &part, &err);
    CHECK_INT(rc1, SCALR_EMAIL_OK);
    CHECK_INT(rc2, SCALR_EMAIL_OK);
    if (rc1 || rc2) {
        se_composed_free(&whole);
        se_composed_free(&part);
        return;
    }
    CHECK_INT(whole.n_parts, 0);
    CHECK_INT(part.n_parts, 2); /* the 100-byte file is read at once */
    CHECK_INT(part.size, whole.data.len);
    CHECK(part.data.len < 2000);
    /* the deferred text file was checked for UTF-8 block by block */
    CHECK(strstr(part.data.data, "text/plain; charset=utf-8; name=\"se-stream-") != NULL);
    CHECK_INT(se_composed_flatten(&part, &err), SCALR_EMAIL_OK);
    CHECK_MEM(part.data.data, part.data.len, whole.data.data);
    se_composed_free(&whole);
    se_composed_free(&part);
    unlink(bin);
    unlink(txt);
    unlink(small);
}

TEST(stream_reader_pieces_are_bounded)
{
    char *bin = write_temp("d.bin", 57 * 1024 * 3 + 5, 0);
    scalr_email_attachment att[] = {{.path = bin}, {0}};
    scalr_email_message m = {
        .to = SCALR_EMAIL_LIST("a@example.com"), .subject = "s", .body = "b", .attachments = att};
    se_compose_opts o = {.defer_over = 1};
    se_composed c;
    scalr_email_error err;
    CHECK_INT(se_compose(&m, "s@example.com", &o, &c, &err), SCALR_EMAIL_OK);
    se_reader r = {0};
    se_reader_init(&r, &c);
    size_t total = 0, pieces = 0, biggest = 0;
    for (;;) {
        const char *p;
        size_t n;
        CHECK_INT(se_reader_next(&r, &p, &n, &err), 0);
        if (!n)
            break;
        total += n;
        pieces++;
        biggest = n > biggest ? n : biggest;
    }
    CHECK_INT(total, c.size);
    CHECK_INT(pieces, 1 + 4 + 1); /* text, 4 blocks, closing text */
    CHECK_INT(biggest, 1024 * 78);
    se_reader_free(&r);
    se_composed_free(&c);
    unlink(bin);
}

TEST(stream_changed_file_is_efile)
{
    char *bin = write_temp("e.bin", 100000, 0);
    scalr_email_attachment att[] = {{.path = bin}, {0}};
    scalr_email_message m = {
        .to = SCALR_EMAIL_LIST("a@example.com"), .subject = "s", .body = "b", .attachments = att};
    se_compose_opts o = {.defer_over = 1};
    se_composed c;
    scalr_email_error err;
    CHECK_INT(se_compose(&m, "s@example.com", &o, &c, &err), SCALR_EMAIL_OK);
    FILE *f = fopen(bin, "ab");
    CHECK(f != NULL);
    if (f) {
        fputc('x', f);
        fclose(f);
    }
    CHECK_INT(se_composed_flatten(&c, &err), SCALR_EMAIL_EFILE);
    CHECK(strstr(err.message, "changed while the message was being sent") != NULL);
    se_composed_free(&c);
    unlink(bin);
}

/* ---- the engine with a source of pieces ---- */

typedef struct pieces {
    const char *const *v;
    size_t i;
    int fail_at; /* 1-based piece that fails, 0: none */
} pieces;

static int pieces_next(void *arg, const char **p, size_t *n, scalr_email_error *err)
{
    pieces *ps = arg;
    if (ps->fail_at && ps->i + 1 == (size_t)ps->fail_at) {
        err->code = SCALR_EMAIL_EFILE;
        snprintf(err->message, sizeof err->message, "attachment changed");
        return -1;
    }
    *p = ps->v[ps->i] ? ps->v[ps->i] : "";
    *n = strlen(*p);
    if (ps->v[ps->i])
        ps->i++;
    return 0;
}

/* A session at IDLE with the given EHLO keywords. */
static se_smtp *idle_engine(const char *ehlo)
{
    se_smtp_opts o = {.helo_name = "c.example", .tls = SCALR_EMAIL_TLS_NONE};
    se_smtp *s = se_smtp_new(&o);
    size_t n;
    se_smtp_feed(s, "220 hi\r\n", 8);
    se_smtp_step(s);
    se_smtp_out(s, &n);
    se_smtp_sent(s, n);
    se_smtp_feed(s, ehlo, strlen(ehlo));
    se_smtp_step(s);
    return s;
}

/* Collect what the engine writes until it waits; returns the want. */
static se_smtp_want flight(se_smtp *s, char *out, size_t cap)
{
    size_t used = strlen(out);
    for (;;) {
        se_smtp_want w = se_smtp_step(s);
        if (w != SE_SMTP_WRITE)
            return w;
        size_t n;
        const char *p = se_smtp_out(s, &n);
        if (used + n < cap) {
            memcpy(out + used, p, n);
            used += n;
            out[used] = '\0';
        }
        se_smtp_sent(s, n);
    }
}

static const char *const three[] = {"abc\r\n", ".def\r", "\nghi", NULL};
static const char *const rcpt1[] = {"b@example.com"};
static const se_smtp_envelope env1 = {.mail_from = "a@example.com", .rcpt = rcpt1, .n_rcpt = 1};

TEST(stream_bdat_one_chunk_per_piece)
{
    se_smtp *s = idle_engine("250-x\r\n250-PIPELINING\r\n250 CHUNKING\r\n");
    pieces ps = {.v = three};
    se_smtp_source src = {.next = pieces_next, .arg = &ps, .size = 14};
    CHECK_INT(se_smtp_mail_source(s, &env1, &src), 0);
    char out[512] = "";
    CHECK_INT(flight(s, out, sizeof out), SE_SMTP_READ);
    /* one flight; the CR at the end of a piece waits for the next one */
    CHECK_STR(out, "MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\n"
                   "BDAT 5\r\nabc\r\nBDAT 4\r\n.defBDAT 7 LAST\r\n\r\nghi\r\n");
    CHECK(se_smtp_handed_over(s));
    const char *r = "250 a\r\n250 b\r\n250 c\r\n250 d\r\n250 e\r\n";
    se_smtp_feed(s, r, strlen(r));
    CHECK_INT(se_smtp_step(s), SE_SMTP_IDLE);
    CHECK(se_smtp_last_ok(s));
    se_smtp_free(s);
}

TEST(stream_bdat_single_piece_is_one_round_trip)
{
    se_smtp *s = idle_engine("250-x\r\n250-PIPELINING\r\n250 CHUNKING\r\n");
    static const char *const one[] = {"hello\r\n", NULL};
    pieces ps = {.v = one};
    se_smtp_source src = {.next = pieces_next, .arg = &ps, .size = 7};
    CHECK_INT(se_smtp_mail_source(s, &env1, &src), 0);
    char out[512] = "";
    CHECK_INT(flight(s, out, sizeof out), SE_SMTP_READ);
    CHECK_STR(out, "MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\n"
                   "BDAT 7 LAST\r\nhello\r\n");
    se_smtp_feed(s, "250 a\r\n250 b\r\n250 c\r\n", 21);
    CHECK_INT(se_smtp_step(s), SE_SMTP_IDLE);
    CHECK(se_smtp_last_ok(s));
    se_smtp_free(s);
}

TEST(stream_data_dot_stuffing_across_pieces)
{
    se_smtp *s = idle_engine("250-x\r\n250 PIPELINING\r\n");
    pieces ps = {.v = three};
    se_smtp_source src = {.next = pieces_next, .arg = &ps, .size = 14};
    CHECK_INT(se_smtp_mail_source(s, &env1, &src), 0);
    char out[512] = "";
    CHECK_INT(flight(s, out, sizeof out), SE_SMTP_READ);
    CHECK(strstr(out, "DATA\r\n") != NULL);
    CHECK(!se_smtp_handed_over(s)); /* nothing of the message before 354 */
    se_smtp_feed(s, "250 a\r\n250 b\r\n354 go\r\n", 22);
    out[0] = '\0';
    CHECK_INT(flight(s, out, sizeof out), SE_SMTP_READ);
    CHECK_STR(out, "abc\r\n..def\r\nghi\r\n.\r\n");
    se_smtp_feed(s, "250 ok\r\n", 8);
    CHECK_INT(se_smtp_step(s), SE_SMTP_IDLE);
    CHECK(se_smtp_last_ok(s));
    se_smtp_free(s);
}

TEST(stream_source_error_never_ends_the_data)
{
    /* BDAT: the LAST chunk is never sent */
    se_smtp *s = idle_engine("250-x\r\n250-PIPELINING\r\n250 CHUNKING\r\n");
    pieces ps = {.v = three, .fail_at = 2};
    se_smtp_source src = {.next = pieces_next, .arg = &ps, .size = 14};
    CHECK_INT(se_smtp_mail_source(s, &env1, &src), 0);
    char out[512] = "";
    CHECK_INT(flight(s, out, sizeof out), SE_SMTP_FAILED);
    CHECK(strstr(out, "LAST") == NULL);
    CHECK_INT(se_smtp_error(s)->code, SCALR_EMAIL_EFILE);
    CHECK(!se_smtp_reusable(s));
    se_smtp_free(s);

    /* DATA: the final "." is never sent */
    s = idle_engine("250-x\r\n250 PIPELINING\r\n");
    pieces ps2 = {.v = three, .fail_at = 3};
    src.arg = &ps2;
    CHECK_INT(se_smtp_mail_source(s, &env1, &src), 0);
    out[0] = '\0';
    flight(s, out, sizeof out);
    se_smtp_feed(s, "250 a\r\n250 b\r\n354 go\r\n", 22);
    out[0] = '\0';
    CHECK_INT(flight(s, out, sizeof out), SE_SMTP_FAILED);
    CHECK(strstr(out, "\r\n.\r\n") == NULL);
    CHECK_INT(se_smtp_error(s)->code, SCALR_EMAIL_EFILE);
    se_smtp_free(s);
}

TEST(stream_source_shorter_than_announced_fails)
{
    se_smtp *s = idle_engine("250-x\r\n250-PIPELINING\r\n250 CHUNKING\r\n");
    pieces ps = {.v = three};
    se_smtp_source src = {.next = pieces_next, .arg = &ps, .size = 20};
    CHECK_INT(se_smtp_mail_source(s, &env1, &src), 0);
    char out[512] = "";
    CHECK_INT(flight(s, out, sizeof out), SE_SMTP_FAILED);
    CHECK(strstr(out, "LAST") == NULL);
    CHECK_INT(se_smtp_error(s)->code, SCALR_EMAIL_EFILE);
    se_smtp_free(s);
}

/* ---- batches: the next message follows the previous end of data ---- */

TEST(batch_engine_next_message_joins_the_flight)
{
    se_smtp *s = idle_engine("250-x\r\n250 PIPELINING\r\n");
    CHECK_INT(se_smtp_mail(s, &env1, "one\r\n", 5), 0);
    char out[1024] = "";
    CHECK_INT(flight(s, out, sizeof out), SE_SMTP_READ);
    CHECK(!se_smtp_can_queue(s));
    se_smtp_feed(s, "250 a\r\n250 b\r\n354 go\r\n", 22);
    CHECK_INT(se_smtp_step(s), SE_SMTP_WRITE);
    CHECK(se_smtp_can_queue(s));
    static const char *const rcpt2[] = {"c@example.com"};
    const se_smtp_envelope env2 = {.mail_from = "a@example.com", .rcpt = rcpt2, .n_rcpt = 1};
    scalr_email_error why;
    CHECK_INT(se_smtp_mail_next(s, &env2, "two\r\n", 5, &why), 0);
    CHECK(!se_smtp_can_queue(s)); /* one at a time */
    out[0] = '\0';
    CHECK_INT(flight(s, out, sizeof out), SE_SMTP_READ);
    CHECK_STR(out, "one\r\n.\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<c@example.com>\r\nDATA\r\n");
    /* the first's final reply and the second's front replies in one read */
    const char *r = "250 2.0.0 first\r\n250 a\r\n250 b\r\n354 go\r\n";
    se_smtp_feed(s, r, strlen(r));
    out[0] = '\0';
    CHECK_INT(flight(s, out, sizeof out), SE_SMTP_READ);
    CHECK_STR(out, "two\r\n.\r\n");
    int ok = 0;
    scalr_email_error e;
    CHECK_INT(se_smtp_take_done(s, &ok, &e), 1);
    CHECK_INT(ok, 1);
    CHECK_STR(e.server_text, "first");
    CHECK_INT(se_smtp_take_done(s, &ok, &e), 0);
    CHECK(se_smtp_handed_over(s)); /* the second's content was written */
    se_smtp_feed(s, "550 5.7.1 second refused\r\n", 26);
    CHECK_INT(se_smtp_step(s), SE_SMTP_IDLE);
    CHECK(!se_smtp_last_ok(s));
    CHECK_INT(se_smtp_error(s)->smtp_code, 550);
    CHECK(se_smtp_reusable(s));
    se_smtp_free(s);
}

TEST(batch_engine_session_lost_before_queued_content)
{
    se_smtp *s = idle_engine("250-x\r\n250 PIPELINING\r\n");
    CHECK_INT(se_smtp_mail(s, &env1, "one\r\n", 5), 0);
    char out[1024] = "";
    flight(s, out, sizeof out);
    se_smtp_feed(s, "250 a\r\n250 b\r\n354 go\r\n", 22);
    se_smtp_step(s);
    CHECK_INT(se_smtp_mail_next(s, &env1, "two\r\n", 5, NULL), 0);
    out[0] = '\0';
    flight(s, out, sizeof out);
    /* 421 instead of the first's final reply: the whole session ends; the
     * first was handed over, the queued one's content never left */
    se_smtp_feed(s, "421 4.3.2 bye\r\n", 15);
    CHECK_INT(se_smtp_step(s), SE_SMTP_FAILED);
    CHECK(se_smtp_handed_over(s));
    int ok;
    CHECK_INT(se_smtp_take_done(s, &ok, NULL), 0);
    CHECK(strstr(out, "two") == NULL);
    se_smtp_free(s);
}

TEST(batch_engine_next_refused_before_sending)
{
    se_smtp *s = idle_engine("250-x\r\n250 PIPELINING\r\n");
    CHECK_INT(se_smtp_mail(s, &env1, "one\r\n", 5), 0);
    char out[1024] = "";
    flight(s, out, sizeof out);
    se_smtp_feed(s, "250 a\r\n250 b\r\n354 go\r\n", 22);
    se_smtp_step(s);
    static const char *const utf[] = {"z\xc3\xbc@example.com"};
    const se_smtp_envelope env2 = {
        .mail_from = "a@example.com", .rcpt = utf, .n_rcpt = 1, .needs_smtputf8 = 1};
    scalr_email_error why;
    CHECK_INT(se_smtp_mail_next(s, &env2, "two\r\n", 5, &why), 1);
    CHECK_INT(why.code, SCALR_EMAIL_EUNSUPPORTED);
    CHECK(se_smtp_can_queue(s)); /* nothing was queued */
    out[0] = '\0';
    flight(s, out, sizeof out);
    CHECK_STR(out, "one\r\n.\r\n");
    se_smtp_feed(s, "250 ok\r\n", 8);
    CHECK_INT(se_smtp_step(s), SE_SMTP_IDLE);
    CHECK(se_smtp_last_ok(s));
    se_smtp_free(s);
}
