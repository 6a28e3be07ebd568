/* The sendmail-mode reader (src/mime/ingest.c): a message in, in pieces of
 * every size, and the exact header and body bytes out. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "mime/ingest.h"

/* Feed in pieces of `step` bytes (0: all at once), finish, and give back
 * the header to send (utf8 as given) and the body. */
static int run(const char *in, size_t len, const se_ingest_opts *o, size_t step, int utf8,
               se_buf *head, se_buf *body, se_ingest *r)
{
    se_ingest_init(r, o);
    size_t at = 0;
    while (at < len) {
        size_t n = step && len - at > step ? step : len - at;
        if (se_ingest_feed(r, in + at, n) < 0)
            return -1;
        at += n;
        if (r->ended)
            break;
    }
    if (se_ingest_finish(r) < 0)
        return -1;
    scalr_email_error err;
    if (head && se_ingest_header(r, utf8, NULL, head, &err) < 0) {
        r->err = err;
        return -1;
    }
    se_ibody b = {0};
    if (se_ingest_rewind(&b, r) < 0)
        return -1;
    for (;;) {
        const char *p;
        size_t n;
        if (se_ingest_body_next(&b, &p, &n, &err) < 0 || !n)
            break;
        se_buf_append(body, p, n);
    }
    se_ibody_free(&b);
    return 0;
}

/* Every piece size gives the same bytes. */
static void expect(const char *in, const se_ingest_opts *o, const char *want_head,
                   const char *want_body)
{
    static const size_t steps[] = {0, 1, 2, 3, 7};
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        se_ingest r;
        se_buf h = {0}, b = {0};
        CHECK_INT(run(in, strlen(in), o, steps[i], 1, &h, &b, &r), 0);
        CHECK_MEM(h.data ? h.data : "", h.len, want_head);
        CHECK_MEM(b.data ? b.data : "", b.len, want_body);
        se_buf_free(&h);
        se_buf_free(&b);
        se_ingest_free(&r);
    }
}

TEST(ingest_line_endings_become_crlf)
{
    expect("Subject: s\nX: y\r\n\nbare lf\nbare cr\rcrlf\r\nno end", NULL,
           "Subject: s\r\nX: y\r\n\r\n", "bare lf\r\nbare cr\r\ncrlf\r\nno end\r\n");
}

TEST(ingest_lone_dot_ends_only_without_i)
{
    const se_ingest_opts dot = {.dot_ends = 1};
    expect("Subject: s\n\na\n.b\n..\n.\nnot read\n", &dot, "Subject: s\r\n\r\n",
           "a\r\n.b\r\n..\r\n");
    expect("Subject: s\n\na\n.\nread\n", NULL, "Subject: s\r\n\r\n", "a\r\n.\r\nread\r\n");
    expect("Subject: s\n.\nx\n", &dot, "Subject: s\r\n\r\n", ""); /* ends inside the header */
    expect("Subject: s\n\nlast\n.", &dot, "Subject: s\r\n\r\n", "last\r\n");
}

TEST(ingest_folds_bcc_and_flags)
{
    se_ingest_opts o = {.header_rcpts = 1};
    se_ingest r;
    se_buf h = {0}, b = {0};
    const char *in = "To: Ann <ann@example.net>,\n \"Doe, Bob\" <bob@example.net>\n"
                     "Cc: team: carol@example.net, ANN@example.net;\n"
                     "BCC: (hidden) h@example.net\nDate: x\nMessage-Id: <m@x>\n\nbody\n";
    CHECK_INT(run(in, strlen(in), &o, 0, 1, &h, &b, &r), 0);
    CHECK_STR(h.data, "To: Ann <ann@example.net>,\r\n \"Doe, Bob\" <bob@example.net>\r\n"
                      "Cc: team: carol@example.net, ANN@example.net;\r\nDate: x\r\n"
                      "Message-Id: <m@x>\r\n\r\n");
    CHECK_INT(r.n_rcpt, 4);
    if (r.n_rcpt == 4) {
        CHECK_STR(r.rcpt[0], "ann@example.net");
        CHECK_STR(r.rcpt[1], "bob@example.net");
        CHECK_STR(r.rcpt[2], "carol@example.net");
        CHECK_STR(r.rcpt[3], "h@example.net");
    }
    CHECK(r.has_date && r.has_msgid && !r.has_from);
    se_buf_free(&h);
    se_buf_free(&b);
    se_ingest_free(&r);
}

TEST(ingest_no_header_and_mbox_line)
{
    /* A first line that is not a field starts the body. */
    expect("just a body\nsecond\n", NULL, "\r\n", "just a body\r\nsecond\r\n");
    expect("From someone Mon Jan 1\nSubject: s\n\nx\n", NULL, "Subject: s\r\n\r\n", "x\r\n");
}

TEST(ingest_rfc2047_without_smtputf8)
{
    se_ingest r;
    se_buf h = {0}, b = {0};
    const char *in = "From: Zo\xc3\xab <z@example.org>\nSubject: Gr\xc3\xbc\xc3\x9f"
                     "e\nContent-Type: text/plain; name=\"\xc3\xa9\"\n\n\xc3\xa9\n";
    CHECK_INT(run(in, strlen(in), NULL, 0, 0, &h, &b, &r), 0);
    CHECK_STR(h.data, "From: =?UTF-8?B?Wm/Dqw==?= <z@example.org>\r\n"
                      "Subject: =?UTF-8?B?R3LDvMOfZQ==?=\r\n"
                      "Content-Type: text/plain; name=\"\xc3\xa9\"\r\n\r\n");
    CHECK(r.head_8bit && r.body_8bit);
    se_buf_free(&h);
    se_buf_free(&b);
    se_ingest_free(&r);
    /* With SMTPUTF8 the bytes go as they are. */
    expect("Subject: Gr\xc3\xbc\xc3\x9f"
           "e\n\nx\n",
           NULL,
           "Subject: Gr\xc3\xbc\xc3\x9f"
           "e\r\n\r\n",
           "x\r\n");
}

TEST(ingest_non_ascii_local_part_refused_without_smtputf8)
{
    se_ingest r;
    se_buf h = {0}, b = {0};
    const char *in = "To: j\xc3\xb6rg@example.net\n\nx\n";
    CHECK_INT(run(in, strlen(in), NULL, 0, 0, &h, &b, &r), -1);
    CHECK_INT(r.err.code, SCALR_EMAIL_EINVAL);
    CHECK(strstr(r.err.message, "non-ASCII local part") != NULL);
    se_buf_free(&h);
    se_buf_free(&b);
    se_ingest_free(&r);
    /* A non-ASCII domain becomes its A-label. */
    in = "To: J\xc3\xb6rg <j@b\xc3\xbc"
         "cher.example>\n\nx\n";
    h = (se_buf){0};
    b = (se_buf){0};
    CHECK_INT(run(in, strlen(in), NULL, 0, 0, &h, &b, &r), 0);
    CHECK_STR(h.data, "To: =?UTF-8?B?SsO2cmc=?= <j@xn--bcher-kva.example>\r\n\r\n");
    se_buf_free(&h);
    se_buf_free(&b);
    se_ingest_free(&r);
}

TEST(ingest_spools_a_big_body)
{
    se_ingest_opts o = {.mem_body = 1000};
    se_ingest r;
    se_buf b = {0};
    size_t n = 300000;
    char *in = malloc(n + 16);
    CHECK(in != NULL);
    if (!in)
        return;
    memcpy(in, "Subject: s\n\n", 12);
    for (size_t i = 12; i < n; i++)
        in[i] = i % 50 == 49 ? '\n' : (char)('a' + i % 26);
    CHECK_INT(run(in, n, &o, 4096, 1, NULL, &b, &r), 0);
    CHECK(r.fd >= 0);
    /* every LF became CRLF: n - 12 bytes plus one per line */
    size_t lines = 0;
    for (size_t i = 12; i < n; i++)
        lines += in[i] == '\n';
    size_t want = n - 12 + lines + (in[n - 1] != '\n' ? 2 : 0);
    CHECK_INT(b.len, want);
    CHECK_INT(r.body_len, want);
    free(in);
    se_buf_free(&b);
    se_ingest_free(&r);
}

TEST(ingest_header_cap)
{
    se_ingest_opts o = {.max_header = 64};
    se_ingest r;
    se_buf b = {0};
    const char *in =
        "Subject: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n\nx\n";
    CHECK_INT(run(in, strlen(in), &o, 0, 1, NULL, &b, &r), -1);
    CHECK_INT(r.err.code, SCALR_EMAIL_EINVAL);
    se_buf_free(&b);
    se_ingest_free(&r);
}

TEST(ingest_address_lists)
{
    se_iaddr *a = NULL;
    const char *v = " \"Last, First\" <a@x.example> (c), b@y.example,\r\n g: c@z.example;, <>, "
                    "Name <@route:d@w.example>";
    long n = se_ingest_addresses(v, strlen(v), &a);
    CHECK_INT(n, 4); /* "<>" names nobody: dropped */
    if (n == 4) {
        CHECK_STR(a[0].display, "Last, First");
        CHECK_STR(a[0].addr, "a@x.example");
        CHECK_STR(a[1].addr, "b@y.example");
        CHECK(a[1].display == NULL);
        CHECK_STR(a[2].addr, "c@z.example");
        CHECK_STR(a[3].addr, "d@w.example");
        CHECK_STR(a[3].display, "Name");
    }
    se_iaddr_free(a, n);
}

TEST(ingest_resent_recipients)
{
    /* A resent message goes to its Resent-* recipients only (RFC 5322 3.6.6). */
    se_ingest_opts o = {.header_rcpts = 1};
    se_ingest r;
    se_buf h = {0}, b = {0};
    const char *in = "To: old@example.net\nResent-To: new@example.net\n"
                     "Resent-Bcc: secret@example.net\nSubject: s\n\nx\n";
    CHECK_INT(run(in, strlen(in), &o, 0, 1, &h, &b, &r), 0);
    CHECK_STR(h.data, "To: old@example.net\r\nResent-To: new@example.net\r\nSubject: s\r\n\r\n");
    CHECK_INT(r.n_rcpt, 2);
    if (r.n_rcpt == 2) {
        CHECK_STR(r.rcpt[0], "new@example.net");
        CHECK_STR(r.rcpt[1], "secret@example.net");
    }
    se_buf_free(&h);
    se_buf_free(&b);
    se_ingest_free(&r);
}
