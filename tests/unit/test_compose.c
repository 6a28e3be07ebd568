/* The composer: exact messages for fixed time and randomness, every
 * refusal, and properties over many generated messages. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "mime/compose.h"

/* Fri, 02 Jan 2026 03:04:05 UTC */
#define FIXED_NOW 1767323045

static unsigned char rnd_next;

/* "Random" bytes 00 01 02 ...: the Message-ID takes 00..0f, the first
 * boundary 10..1b, the second 1c..27. */
static void counter_random(void *arg, unsigned char *buf, size_t n)
{
    (void)arg;
    for (size_t i = 0; i < n; i++)
        buf[i] = rnd_next++;
}

static char saved_tz[128];
static int had_tz;

static void tz_set(const char *tz)
{
    const char *old = getenv("TZ");
    had_tz = old != NULL;
    snprintf(saved_tz, sizeof saved_tz, "%s", old ? old : "");
    setenv("TZ", tz, 1);
    tzset();
}

static void tz_restore(void)
{
    if (had_tz)
        setenv("TZ", saved_tz, 1);
    else
        unsetenv("TZ");
    tzset();
}

static scalr_email_code compose_fixed(const scalr_email_message *m, const char *from,
                                      se_composed *c, scalr_email_error *err)
{
    rnd_next = 0;
    se_compose_opts o = {.now = FIXED_NOW, .random = counter_random};
    tz_set("UTC0");
    scalr_email_code rc = se_compose(m, from, &o, c, err);
    tz_restore();
    return rc;
}

/* No line over 998 octets, CRLF only, ends with CRLF. */
static int well_formed(const se_composed *c)
{
    const char *s = c->data.data;
    size_t n = c->data.len, line = 0;
    if (n < 2 || s[n - 2] != '\r' || s[n - 1] != '\n')
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\r') {
            if (i + 1 >= n || s[i + 1] != '\n')
                return 0;
            i++;
            line = 0;
        } else if (s[i] == '\n' || ++line > 998) {
            return 0;
        }
    }
    return 1;
}

static int all_7bit(const se_composed *c)
{
    for (size_t i = 0; i < c->data.len; i++)
        if ((unsigned char)c->data.data[i] >= 0x80)
            return 0;
    return 1;
}

static size_t max_line(const char *s, size_t n)
{
    size_t line = 0, max = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\r' || s[i] == '\n') {
            line = 0;
            continue;
        }
        if (++line > max)
            max = line;
    }
    return max;
}

static const char *body_of(const se_composed *c)
{
    const char *p = strstr(c->data.data, "\r\n\r\n");
    return p ? p + 4 : "";
}

TEST(mime_text_only)
{
    se_composed c;
    scalr_email_error err = {0};
    scalr_email_message m = {
        .to = SCALR_EMAIL_LIST("user@example.com"),
        .subject = "Your invoice is ready",
        .body = "Hello,\n\nyour invoice is attached.\n",
    };
    CHECK_INT(compose_fixed(&m, "Scalr <noreply@scalr.com>", &c, &err), SCALR_EMAIL_OK);
    CHECK_MEM(c.data.data, c.data.len,
              "Date: Fri, 02 Jan 2026 03:04:05 +0000\r\n"
              "From: Scalr <noreply@scalr.com>\r\n"
              "To: user@example.com\r\n"
              "Subject: Your invoice is ready\r\n"
              "Message-ID: <000102030405060708090a0b0c0d0e0f@scalr.com>\r\n"
              "MIME-Version: 1.0\r\n"
              "Content-Type: text/plain; charset=utf-8\r\n"
              "Content-Transfer-Encoding: 7bit\r\n"
              "\r\n"
              "Hello,\r\n"
              "\r\n"
              "your invoice is attached.\r\n");
    CHECK_STR(c.mail_from, "noreply@scalr.com");
    CHECK_INT(c.n_rcpt, 1);
    CHECK_STR(c.rcpt[0], "user@example.com");
    CHECK_STR(c.message_id, "<000102030405060708090a0b0c0d0e0f@scalr.com>");
    CHECK_INT(c.needs_smtputf8, 0);
    CHECK_INT(c.is_8bit, 0);
    se_composed_free(&c);
}

TEST(mime_text_html)
{
    se_composed c;
    scalr_email_error err = {0};
    scalr_email_message m = {
        .to = SCALR_EMAIL_LIST("user@example.com"),
        .subject = "Welcome",
        .body = "Welcome aboard.",
        .body_html = "<p>Welcome <b>aboard</b>.</p>",
        .reply_to = "support@scalr.com",
        .headers = (const scalr_email_header[]){{"X-Campaign", "welcome-1"}, {0}},
    };
    CHECK_INT(compose_fixed(&m, "noreply@scalr.com", &c, &err), SCALR_EMAIL_OK);
    /* RFC 2046 5.1.4: plain first, the preferred html last. */
    CHECK_MEM(c.data.data, c.data.len,
              "Date: Fri, 02 Jan 2026 03:04:05 +0000\r\n"
              "From: noreply@scalr.com\r\n"
              "Reply-To: support@scalr.com\r\n"
              "To: user@example.com\r\n"
              "Subject: Welcome\r\n"
              "Message-ID: <000102030405060708090a0b0c0d0e0f@scalr.com>\r\n"
              "MIME-Version: 1.0\r\n"
              "X-Campaign: welcome-1\r\n"
              "Content-Type: multipart/alternative;\r\n"
              " boundary=\"=_scalr_101112131415161718191a1b\"\r\n"
              "\r\n"
              "--=_scalr_101112131415161718191a1b\r\n"
              "Content-Type: text/plain; charset=utf-8\r\n"
              "Content-Transfer-Encoding: 7bit\r\n"
              "\r\n"
              "Welcome aboard.\r\n"
              "--=_scalr_101112131415161718191a1b\r\n"
              "Content-Type: text/html; charset=utf-8\r\n"
              "Content-Transfer-Encoding: 7bit\r\n"
              "\r\n"
              "<p>Welcome <b>aboard</b>.</p>\r\n"
              "--=_scalr_101112131415161718191a1b--\r\n");
    se_composed_free(&c);
}

TEST(mime_attachments_in_memory)
{
    static const unsigned char png[] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n',
                                        0,    0,   0,   13,  'I',  'H',  'D',  'R'};
    se_composed c;
    scalr_email_error err = {0};
    scalr_email_message m = {
        .to = SCALR_EMAIL_LIST("user@example.com"),
        .subject = "Report",
        .body = "See attached.",
        .body_html = "<p>See attached.</p>",
        .attachments =
            (const scalr_email_attachment[]){
                {.data = png, .size = sizeof png, .filename = "chart.png"},
                {.data = "a,b\n1,2\n", .size = 8, .filename = "data.csv"},
                {0}},
    };
    CHECK_INT(compose_fixed(&m, "noreply@scalr.com", &c, &err), SCALR_EMAIL_OK);
    CHECK_MEM(c.data.data, c.data.len,
              "Date: Fri, 02 Jan 2026 03:04:05 +0000\r\n"
              "From: noreply@scalr.com\r\n"
              "To: user@example.com\r\n"
              "Subject: Report\r\n"
              "Message-ID: <000102030405060708090a0b0c0d0e0f@scalr.com>\r\n"
              "MIME-Version: 1.0\r\n"
              "Content-Type: multipart/mixed;\r\n"
              " boundary=\"=_scalr_1c1d1e1f2021222324252627\"\r\n"
              "\r\n"
              "This is a multi-part message in MIME format.\r\n"
              "--=_scalr_1c1d1e1f2021222324252627\r\n"
              "Content-Type: multipart/alternative;\r\n"
              " boundary=\"=_scalr_101112131415161718191a1b\"\r\n"
              "\r\n"
              "--=_scalr_101112131415161718191a1b\r\n"
              "Content-Type: text/plain; charset=utf-8\r\n"
              "Content-Transfer-Encoding: 7bit\r\n"
              "\r\n"
              "See attached.\r\n"
              "--=_scalr_101112131415161718191a1b\r\n"
              "Content-Type: text/html; charset=utf-8\r\n"
              "Content-Transfer-Encoding: 7bit\r\n"
              "\r\n"
              "<p>See attached.</p>\r\n"
              "--=_scalr_101112131415161718191a1b--\r\n"
              "--=_scalr_1c1d1e1f2021222324252627\r\n"
              "Content-Type: image/png; name=\"chart.png\"\r\n"
              "Content-Disposition: attachment; filename=\"chart.png\"\r\n"
              "Content-Transfer-Encoding: base64\r\n"
              "\r\n"
              "iVBORw0KGgoAAAANSUhEUg==\r\n"
              "--=_scalr_1c1d1e1f2021222324252627\r\n"
              "Content-Type: text/csv; charset=utf-8; name=\"data.csv\"\r\n"
              "Content-Disposition: attachment; filename=\"data.csv\"\r\n"
              "Content-Transfer-Encoding: base64\r\n"
              "\r\n"
              "YSxiCjEsMgo=\r\n"
              "--=_scalr_1c1d1e1f2021222324252627--\r\n");
    se_composed_free(&c);
}

TEST(mime_attachment_text_only_and_file)
{
    char path[] = "/tmp/mime-unit-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    if (fd < 0)
        return;
    CHECK_INT(write(fd, "%PDF-1.4\n\0\xff", 11), 11);
    close(fd);
    char renamed[64];
    snprintf(renamed, sizeof renamed, "%s.PDF", path);
    CHECK_INT(rename(path, renamed), 0);

    se_composed c;
    scalr_email_error err = {0};
    scalr_email_message m = {
        .to = SCALR_EMAIL_LIST("user@example.com"),
        .subject = "Invoice",
        .body = "Attached.",
        .attachments = (const scalr_email_attachment[]){{.path = renamed}, {0}},
    };
    CHECK_INT(compose_fixed(&m, "noreply@scalr.com", &c, &err), SCALR_EMAIL_OK);
    char want[1024];
    snprintf(want, sizeof want,
             "--=_scalr_101112131415161718191a1b\r\n"
             "Content-Type: text/plain; charset=utf-8\r\n"
             "Content-Transfer-Encoding: 7bit\r\n"
             "\r\n"
             "Attached.\r\n"
             "--=_scalr_101112131415161718191a1b\r\n"
             "Content-Type: application/pdf; name=\"%s\"\r\n"
             "Content-Disposition: attachment; filename=\"%s\"\r\n"
             "Content-Transfer-Encoding: base64\r\n"
             "\r\n"
             "JVBERi0xLjQKAP8=\r\n"
             "--=_scalr_101112131415161718191a1b--\r\n",
             renamed + 5, renamed + 5);
    const char *p = strstr(c.data.data, "\r\n--=_scalr_");
    CHECK(p != NULL);
    if (p)
        CHECK_STR(p + 2, want);
    se_composed_free(&c);
    unlink(renamed);

    /* Gone now: EFILE naming the path and the system's reason. */
    CHECK_INT(compose_fixed(&m, "noreply@scalr.com", &c, &err), SCALR_EMAIL_EFILE);
    snprintf(want, sizeof want, "attachment '%s': No such file or directory", renamed);
    CHECK_STR(err.message, want);
    CHECK_STR(err.stage, "COMPOSE");
    CHECK(c.data.data == NULL && c.rcpt == NULL);

    /* A directory reads as EISDIR. */
    m.attachments = (const scalr_email_attachment[]){{.path = "/tmp/"}, {0}};
    CHECK_INT(compose_fixed(&m, "noreply@scalr.com", &c, &err), SCALR_EMAIL_EINVAL);
    CHECK_STR(err.message, "attachment 1: filename is empty");
    m.attachments = (const scalr_email_attachment[]){{.path = "/tmp", .filename = "t"}, {0}};
    CHECK_INT(compose_fixed(&m, "noreply@scalr.com", &c, &err), SCALR_EMAIL_EFILE);
    CHECK_STR(err.message, "attachment '/tmp': Is a directory");
}

TEST(mime_display_names)
{
    se_composed c;
    scalr_email_error err = {0};
    scalr_email_message m = {
        .to = SCALR_EMAIL_LIST("Jane Doe <jane@example.com>", "\"Doe, John\" <john@example.com>",
                               "Zo\xc3\xab \xc3\x9cn\xc3\xaf"
                               "code <zoe@example.com>"),
        .cc = SCALR_EMAIL_LIST("\xe5\x90\x8d\xe5\x89\x8d <x@example.com>", "<bare@example.com>"),
        .subject = "Names",
        .body = "x",
    };
    CHECK_INT(compose_fixed(&m, "\"Scalr, Inc.\" <noreply@scalr.com>", &c, &err), SCALR_EMAIL_OK);
    CHECK_MEM(c.data.data, c.data.len,
              "Date: Fri, 02 Jan 2026 03:04:05 +0000\r\n"
              "From: \"Scalr, Inc.\" <noreply@scalr.com>\r\n"
              "To: Jane Doe <jane@example.com>, \"Doe, John\" <john@example.com>,\r\n"
              " =?UTF-8?B?Wm/DqyDDnG7Dr2NvZGU=?= <zoe@example.com>\r\n"
              "Cc: =?UTF-8?B?5ZCN5YmN?= <x@example.com>, bare@example.com\r\n"
              "Subject: Names\r\n"
              "Message-ID: <000102030405060708090a0b0c0d0e0f@scalr.com>\r\n"
              "MIME-Version: 1.0\r\n"
              "Content-Type: text/plain; charset=utf-8\r\n"
              "Content-Transfer-Encoding: 7bit\r\n"
              "\r\n"
              "x\r\n");
    CHECK(all_7bit(&c));
    se_composed_free(&c);
}

TEST(mime_emoji_subject)
{
    se_composed c;
    scalr_email_error err = {0};
    scalr_email_message m = {
        .to = SCALR_EMAIL_LIST("user@example.com"),
        .subject = "\xf0\x9f\x8e\x89 Party \xf0\x9f\x8e\x89 time \xe2\x80\x94 "
                   "gr\xc3\xbc\xc3\x9f"
                   "e aus K\xc3\xb6ln, see you there \xf0\x9f\x91\x8b",
        .body = "x",
    };
    CHECK_INT(compose_fixed(&m, "noreply@scalr.com", &c, &err), SCALR_EMAIL_OK);
    const char *want =
        "Subject: =?UTF-8?B?8J+OiSBQYXJ0eSDwn46JIHRpbWUg4oCUIGdyw7zDn2UgYXVzIEvDtmxu?=\r\n"
        " =?UTF-8?B?LCBzZWUgeW91IHRoZXJlIPCfkYs=?=\r\n";
    CHECK(strstr(c.data.data, want) != NULL);
    CHECK(max_line(c.data.data, c.data.len) <= 78);
    CHECK(all_7bit(&c));
    se_composed_free(&c);
}

TEST(mime_long_subject_folded)
{
    se_composed c;
    scalr_email_error err = {0};
    scalr_email_message m = {
        .to = SCALR_EMAIL_LIST("user@example.com"),
        .subject = "Your monthly statement for the account ending in 4242 is now available "
                   "to download from the billing section of the dashboard",
        .body = "x",
    };
    CHECK_INT(compose_fixed(&m, "noreply@scalr.com", &c, &err), SCALR_EMAIL_OK);
    CHECK(strstr(c.data.data,
                 "\r\nSubject: Your monthly statement for the account ending in 4242 is now\r\n"
                 " available to download from the billing section of the dashboard\r\n"
                 "Message-ID: ") != NULL);
    se_composed_free(&c);
}

TEST(mime_rfc2231_filenames)
{
    se_composed c;
    scalr_email_error err = {0};
    scalr_email_message m = {
        .to = SCALR_EMAIL_LIST("user@example.com"),
        .body = "x",
        .attachments =
            (const scalr_email_attachment[]){
                {.data = "1", .size = 1, .filename = "\xe2\x82\xac.pdf"},
                {.data = "2",
                 .size = 1,
                 .filename = "Quarterly report for the board of directors, final version 3.pdf"},
                {.data = "3", .size = 1, .filename = "a\"b.bin", .content_type = "image/x-icon"},
                {0}},
    };
    CHECK_INT(compose_fixed(&m, "noreply@scalr.com", &c, &err), SCALR_EMAIL_OK);
    CHECK(strstr(c.data.data, "Content-Type: application/pdf; name*=utf-8''%E2%82%AC.pdf\r\n"
                              "Content-Disposition: attachment; filename*=utf-8''%E2%82%AC.pdf\r\n"
                              "Content-Transfer-Encoding: base64\r\n\r\nMQ==\r\n") != NULL);
    CHECK(strstr(c.data.data,
                 "Content-Type: application/pdf;\r\n"
                 " name*0*=utf-8''Quarterly%20report%20for%20the%20board%20of%20director;\r\n"
                 " name*1*=s%2C%20final%20version%203.pdf\r\n"
                 "Content-Disposition: attachment;\r\n"
                 " filename*0*=utf-8''Quarterly%20report%20for%20the%20board%20of%20director;\r\n"
                 " filename*1*=s%2C%20final%20version%203.pdf\r\n") != NULL);
    CHECK(strstr(c.data.data,
                 "Content-Type: image/x-icon; name=\"a\\\"b.bin\"\r\n"
                 "Content-Disposition: attachment; filename=\"a\\\"b.bin\"\r\n") != NULL);
    CHECK(max_line(c.data.data, c.data.len) <= 78);
    se_composed_free(&c);
}

TEST(mime_bare_cr_lf_normalised)
{
    se_composed c;
    scalr_email_error err = {0};
    /* RFC 5321 2.3.8, and SMTP smuggling: "\n.\n" must become CRLF . CRLF
     * before the engine dot-stuffs it. */
    scalr_email_message m = {
        .to = SCALR_EMAIL_LIST("user@example.com"),
        .body = "one\ntwo\rthree\r\n\n.\nfour",
    };
    CHECK_INT(compose_fixed(&m, "noreply@scalr.com", &c, &err), SCALR_EMAIL_OK);
    CHECK_STR(body_of(&c), "one\r\ntwo\r\nthree\r\n\r\n.\r\nfour\r\n");
    CHECK(well_formed(&c));
    se_composed_free(&c);
}

TEST(mime_leading_dots_untouched)
{
    se_composed c;
    scalr_email_error err = {0};
    scalr_email_message m = {
        .to = SCALR_EMAIL_LIST("user@example.com"),
        .body = ".hidden\r\n..two\r\n.\r\n",
    };
    CHECK_INT(compose_fixed(&m, "noreply@scalr.com", &c, &err), SCALR_EMAIL_OK);
    /* The composer does not dot-stuff (RFC 5321 4.5.2 is the engine's). */
    CHECK_STR(body_of(&c), ".hidden\r\n..two\r\n.\r\n");
    se_composed_free(&c);
}

TEST(mime_long_line_quoted_printable)
{
    char body[1300];
    memset(body, 'a', 1200);
    strcpy(body + 1200, "\nshort\n");
    se_composed c;
    scalr_email_error err = {0};
    scalr_email_message m = {.to = SCALR_EMAIL_LIST("user@example.com"), .body = body};
    CHECK_INT(compose_fixed(&m, "noreply@scalr.com", &c, &err), SCALR_EMAIL_OK);
    CHECK(strstr(c.data.data, "Content-Transfer-Encoding: quoted-printable\r\n") != NULL);
    const char *b = body_of(&c);
    CHECK(max_line(b, strlen(b)) <= 76);
    CHECK(strstr(b, "=\r\naaaa") != NULL);
    CHECK(strstr(b, "aaaaa\r\nshort\r\n") != NULL);
    CHECK(well_formed(&c));

    /* 998 octets is still 7bit (RFC 5322 2.1.1), 999 is not. */
    se_composed_free(&c);
    memset(body, 'b', 998);
    strcpy(body + 998, "\n");
    CHECK_INT(compose_fixed(&m, "noreply@scalr.com", &c, &err), SCALR_EMAIL_OK);
    CHECK(strstr(c.data.data, "Content-Transfer-Encoding: 7bit\r\n") != NULL);
    se_composed_free(&c);
    memset(body, 'b', 999);
    strcpy(body + 999, "\n");
    CHECK_INT(compose_fixed(&m, "noreply@scalr.com", &c, &err), SCALR_EMAIL_OK);
    CHECK(strstr(c.data.data, "Content-Transfer-Encoding: quoted-printable\r\n") != NULL);
    se_composed_free(&c);
}

TEST(mime_non_ascii_body_qp)
{
    se_composed c;
    scalr_email_error err = {0};
    scalr_email_message m = {
        .to = SCALR_EMAIL_LIST("user@example.com"),
        .body = "Gr\xc3\xbc\xc3\x9f"
                "e = hi \n",
    };
    CHECK_INT(compose_fixed(&m, "noreply@scalr.com", &c, &err), SCALR_EMAIL_OK);
    CHECK_STR(body_of(&c), "Gr=C3=BC=C3=9Fe =3D hi=20\r\n");
    CHECK(all_7bit(&c));
    CHECK_INT(c.is_8bit, 0);
    se_composed_free(&c);
}

TEST(mime_bcc_only_in_envelope)
{
    se_composed c;
    scalr_email_error err = {0};
    scalr_email_message m = {
        .cc = SCALR_EMAIL_LIST("Carol <carol@example.com>"),
        .bcc = SCALR_EMAIL_LIST("Secret Sam <sam@example.com>"),
        .body = "x",
    };
    CHECK_INT(compose_fixed(&m, "noreply@scalr.com", &c, &err), SCALR_EMAIL_OK);
    /* RFC 5322 3.6.3: no Bcc field, and no To field when there is none. */
    CHECK_MEM(c.data.data, strstr(c.data.data, "Message-ID") - c.data.data,
              "Date: Fri, 02 Jan 2026 03:04:05 +0000\r\n"
              "From: noreply@scalr.com\r\n"
              "Cc: Carol <carol@example.com>\r\n"
              "Subject: \r\n");
    CHECK(strstr(c.data.data, "sam@") == NULL);
    CHECK(strstr(c.data.data, "Sam") == NULL);
    CHECK_INT(c.n_rcpt, 2);
    CHECK_STR(c.rcpt[0], "carol@example.com");
    CHECK_STR(c.rcpt[1], "sam@example.com");
    se_composed_free(&c);
}

TEST(mime_rcpt_dedup)
{
    se_composed c;
    scalr_email_error err = {0};
    scalr_email_message m = {
        .to = SCALR_EMAIL_LIST("a@example.com", "Bee <b@example.com>", "A@Example.COM"),
        .cc = SCALR_EMAIL_LIST("B@EXAMPLE.com", "c@example.com"),
        .bcc = SCALR_EMAIL_LIST("C@example.com", "d@example.com", "a@example.com"),
        .body = "x",
    };
    CHECK_INT(compose_fixed(&m, "noreply@scalr.com", &c, &err), SCALR_EMAIL_OK);
    CHECK_INT(c.n_rcpt, 4);
    if (c.n_rcpt == 4) {
        CHECK_STR(c.rcpt[0], "a@example.com");
        CHECK_STR(c.rcpt[1], "b@example.com");
        CHECK_STR(c.rcpt[2], "c@example.com");
        CHECK_STR(c.rcpt[3], "d@example.com");
    }
    /* The headers still show what the caller wrote. */
    CHECK(strstr(c.data.data, "To: a@example.com, Bee <b@example.com>, A@Example.COM\r\n"
                              "Cc: B@EXAMPLE.com, c@example.com\r\n") != NULL);
    se_composed_free(&c);
}

TEST(mime_utf8_address)
{
    se_composed c;
    scalr_email_error err = {0};
    scalr_email_message m = {
        .to = SCALR_EMAIL_LIST("J\xc3\xb6rg <j\xc3\xb6rg@example.com>"),
        .body = "x",
    };
    CHECK_INT(compose_fixed(&m, "noreply@scalr.com", &c, &err), SCALR_EMAIL_OK);
    /* RFC 6532: the addr-spec travels as UTF-8; the name stays encoded. */
    CHECK(strstr(c.data.data, "\r\nTo: =?UTF-8?B?SsO2cmc=?= <j\xc3\xb6rg@example.com>\r\n") !=
          NULL);
    CHECK_INT(c.needs_smtputf8, 1);
    CHECK_INT(c.is_8bit, 1);
    CHECK_STR(c.rcpt[0], "j\xc3\xb6rg@example.com");
    se_composed_free(&c);

    /* Only in the bcc: no header carries it, the envelope still does. */
    m.to = SCALR_EMAIL_LIST("a@example.com");
    m.bcc = SCALR_EMAIL_LIST("\xe7\x94\xa8@\xe4\xbe\x8b.com");
    CHECK_INT(compose_fixed(&m, "noreply@scalr.com", &c, &err), SCALR_EMAIL_OK);
    CHECK_INT(c.needs_smtputf8, 1);
    CHECK_INT(c.is_8bit, 0);
    se_composed_free(&c);

    m.bcc = NULL;
    CHECK_INT(compose_fixed(&m, "S\xc3\xa9verine <s\xc3\xa9verine@example.com>", &c, &err),
              SCALR_EMAIL_OK);
    CHECK_INT(c.needs_smtputf8, 1);
    CHECK_STR(c.mail_from, "s\xc3\xa9verine@example.com");
    CHECK_STR(c.message_id, "<000102030405060708090a0b0c0d0e0f@example.com>");
    se_composed_free(&c);
}

TEST(mime_date_offsets)
{
    se_composed c;
    scalr_email_error err = {0};
    scalr_email_message m = {.to = SCALR_EMAIL_LIST("a@example.com"), .body = "x"};
    se_compose_opts o = {.now = FIXED_NOW, .random = counter_random};
    /* RFC 5322 3.3: local time and its offset from UTC. */
    tz_set("XST-5:30");
    CHECK_INT(se_compose(&m, "n@example.com", &o, &c, &err), SCALR_EMAIL_OK);
    tz_restore();
    CHECK_MEM(c.data.data, 39, "Date: Fri, 02 Jan 2026 08:34:05 +0530\r\n");
    se_composed_free(&c);
    tz_set("XST9");
    CHECK_INT(se_compose(&m, "n@example.com", &o, &c, &err), SCALR_EMAIL_OK);
    tz_restore();
    CHECK_MEM(c.data.data, 39, "Date: Thu, 01 Jan 2026 18:04:05 -0900\r\n");
    se_composed_free(&c);
}

TEST(mime_real_randomness)
{
    se_composed a, b;
    scalr_email_error err = {0};
    scalr_email_message m = {
        .to = SCALR_EMAIL_LIST("a@example.com"), .body = "x", .body_html = "<p>x</p>"};
    CHECK_INT(se_compose(&m, "n@example.com", NULL, &a, &err), SCALR_EMAIL_OK);
    CHECK_INT(se_compose(&m, "n@example.com", NULL, &b, &err), SCALR_EMAIL_OK);
    CHECK_INT(strlen(a.message_id), 1 + 32 + 1 + 11 + 1);
    CHECK(strspn(a.message_id + 1, "0123456789abcdef") == 32);
    CHECK(strcmp(a.message_id, b.message_id) != 0);
    CHECK(strstr(a.data.data, "boundary=\"=_scalr_") != NULL);
    CHECK(strncmp(a.data.data, "Date: ", 6) == 0);
    se_composed_free(&a);
    se_composed_free(&b);
}

TEST(mime_boundary_collision)
{
    se_composed c;
    scalr_email_error err = {0};
    /* The text holds the first boundary we would draw: draw again. */
    scalr_email_message m = {
        .to = SCALR_EMAIL_LIST("a@example.com"),
        .body = "--=_scalr_101112131415161718191a1b",
        .body_html = "<p>x</p>",
    };
    CHECK_INT(compose_fixed(&m, "n@example.com", &c, &err), SCALR_EMAIL_OK);
    CHECK(strstr(c.data.data, "boundary=\"=_scalr_1c1d1e1f2021222324252627\"") != NULL);
    CHECK(strstr(c.data.data, "\r\n--=_scalr_1c1d1e1f2021222324252627--\r\n") != NULL);
    se_composed_free(&c);
}

TEST(mime_no_sender)
{
    se_composed c;
    scalr_email_error err = {0};
    scalr_email_message m = {.to = SCALR_EMAIL_LIST("a@example.com"), .body = "x"};
    CHECK_INT(compose_fixed(&m, NULL, &c, &err), SCALR_EMAIL_ENOTCONFIGURED);
    CHECK_INT(err.code, SCALR_EMAIL_ENOTCONFIGURED);
    CHECK_STR(err.stage, "CONFIG");
    CHECK_STR(err.message, "no sender: set SMTP_FROM or pass a sender");
    CHECK_INT(compose_fixed(&m, "", &c, &err), SCALR_EMAIL_ENOTCONFIGURED);
    /* msg->sender wins over the default. */
    m.sender = "Me <me@example.com>";
    CHECK_INT(compose_fixed(&m, "other@example.com", &c, &err), SCALR_EMAIL_OK);
    CHECK_STR(c.mail_from, "me@example.com");
    se_composed_free(&c);
    CHECK_INT(compose_fixed(&m, NULL, &c, &err), SCALR_EMAIL_OK);
    se_composed_free(&c);
}

/* Each refusal: the message field it names, code EINVAL, stage COMPOSE. */
static void refused(const scalr_email_message *m, const char *want)
{
    se_composed c;
    scalr_email_error err = {0};
    CHECK_INT(compose_fixed(m, "noreply@scalr.com", &c, &err), SCALR_EMAIL_EINVAL);
    CHECK_INT(err.code, SCALR_EMAIL_EINVAL);
    CHECK_STR(err.stage, "COMPOSE");
    CHECK_STR(err.message, want);
    CHECK(c.data.data == NULL && c.mail_from == NULL && c.rcpt == NULL);
}

TEST(mime_refuses_header_injection)
{
    const char *const to[] = {"a@example.com", NULL};
    refused(&(scalr_email_message){.to = to, .subject = "Hi\r\nBcc: x@evil.com"},
            "subject contains CR or LF");
    refused(&(scalr_email_message){.to = to, .subject = "Hi\nthere"}, "subject contains CR or LF");
    refused(&(scalr_email_message){.to = to, .subject = "bell\a"},
            "subject contains a control character");
    refused(&(scalr_email_message){.to = to, .subject = "bad \xff"}, "subject is not valid UTF-8");
    refused(
        &(scalr_email_message){
            .to = to,
            .headers = (const scalr_email_header[]){{"X-Foo", "a\r\nBcc: x@evil.com"}, {0}}},
        "header 'X-Foo': value contains CR or LF");
    refused(
        &(scalr_email_message){.to = to,
                               .headers = (const scalr_email_header[]){{"X-Foo", "a\x01"}, {0}}},
        "header 'X-Foo': value contains a control character");
    refused(&(scalr_email_message){.to = to,
                                   .headers = (const scalr_email_header[]){{"X-Ok", "tab\tis fine"},
                                                                           {"X-Foo", "\xc3("},
                                                                           {0}}},
            "header 'X-Foo': value is not valid UTF-8");
    refused(
        &(scalr_email_message){.to = SCALR_EMAIL_LIST("a@example.com", "Eve\r\n <e@example.com>")},
        "To address 2: contains CR or LF");
    refused(&(scalr_email_message){.to = to, .cc = SCALR_EMAIL_LIST("\"Eve\nBcc: x\" <e@x.com>")},
            "Cc address 1: contains CR or LF");
    refused(&(scalr_email_message){.to = to, .reply_to = "r@example.com\r\n"},
            "Reply-To address: contains CR or LF");
    refused(&(scalr_email_message){.to = to, .sender = "Me\r\n <me@example.com>"},
            "sender: contains CR or LF");
}

TEST(mime_refuses_bad_headers)
{
    const char *const to[] = {"a@example.com", NULL};
    refused(&(scalr_email_message){.to = to,
                                   .headers = (const scalr_email_header[]){{"X Foo", "v"}, {0}}},
            "header name 'X Foo' is invalid: use 1 to 76 printable ASCII characters without ':' "
            "or space");
    refused(&(scalr_email_message){.to = to,
                                   .headers = (const scalr_email_header[]){{"X:Foo", "v"}, {0}}},
            "header name 'X:Foo' is invalid: use 1 to 76 printable ASCII characters without ':' "
            "or space");
    refused(
        &(scalr_email_message){.to = to, .headers = (const scalr_email_header[]){{"", "v"}, {0}}},
        "header name '' is invalid: use 1 to 76 printable ASCII characters without ':' "
        "or space");
    refused(&(scalr_email_message){.to = to,
                                   .headers = (const scalr_email_header[]){{"bcc", "x@y.z"}, {0}}},
            "header 'bcc' cannot be set as an extra header: use the bcc field (never written as "
            "a header)");
    refused(
        &(scalr_email_message){
            .to = to, .headers = (const scalr_email_header[]){{"CONTENT-TYPE", "text/html"}, {0}}},
        "header 'CONTENT-TYPE' cannot be set as an extra header: it follows from body, "
        "body_html and attachments");
    refused(&(scalr_email_message){.to = to,
                                   .headers =
                                       (const scalr_email_header[]){{"Message-Id", "<x@y>"}, {0}}},
            "header 'Message-Id' cannot be set as an extra header: it is generated");
    refused(&(scalr_email_message){.to = to,
                                   .headers = (const scalr_email_header[]){{"From", "x@y.z"}, {0}}},
            "header 'From' cannot be set as an extra header: use the sender field");
    char name[80];
    memset(name, 'X', 77);
    name[77] = '\0';
    scalr_email_header h[] = {{name, "v"}, {0}};
    se_composed c;
    scalr_email_error err = {0};
    CHECK_INT(
        compose_fixed(&(scalr_email_message){.to = to, .headers = h}, "n@example.com", &c, &err),
        SCALR_EMAIL_EINVAL);
    name[76] = '\0';
    CHECK_INT(
        compose_fixed(&(scalr_email_message){.to = to, .headers = h}, "n@example.com", &c, &err),
        SCALR_EMAIL_OK);
    CHECK(max_line(c.data.data, c.data.len) <= 998);
    se_composed_free(&c);
}

TEST(mime_refuses_addresses)
{
    const char *const to[] = {"a@example.com", NULL};
    refused(&(scalr_email_message){.body = "x"},
            "no recipients: give at least one to, cc or bcc address");
    refused(&(scalr_email_message){.to = SCALR_EMAIL_LIST("\"john doe\"@example.com")},
            "To address 1: quoted local parts are not supported");
    refused(&(scalr_email_message){.to = SCALR_EMAIL_LIST("a@example.com (Al)")},
            "To address 1: comments are not supported");
    refused(&(scalr_email_message){.to = SCALR_EMAIL_LIST("a@example.com, b@example.com")},
            "To address 1: only one address is allowed");
    refused(&(scalr_email_message){.to = to,
                                   .bcc = SCALR_EMAIL_LIST("ok@example.com", "-oQ@example.com")},
            "Bcc address 2: address starts with '-'");
    refused(&(scalr_email_message){.to = SCALR_EMAIL_LIST(
                                       "a23456789012345678901234567890123456789012345678901234567"
                                       "89012345@example.com")},
            "To address 1: local part longer than 64 octets");
    refused(&(scalr_email_message){.to = to, .sender = "bad@@example.com"},
            "sender: more than one '@'");
    refused(&(scalr_email_message){.to = to, .reply_to = "a@example.com, b@example.com"},
            "Reply-To address: only one address is allowed");

    /* RFC 5321 4.5.3.1.8 minimum is 100; we cap a message at 1000. */
    const char **many = calloc(1002, sizeof *many);
    CHECK(many != NULL);
    if (!many)
        return;
    for (int i = 0; i < 1001; i++)
        many[i] = "x@example.com";
    refused(&(scalr_email_message){.to = many}, "1001 recipients: at most 1000 per message");
    many[1000] = NULL;
    se_composed c;
    scalr_email_error err = {0};
    CHECK_INT(compose_fixed(&(scalr_email_message){.to = many}, "n@example.com", &c, &err),
              SCALR_EMAIL_OK);
    CHECK_INT(c.n_rcpt, 1);
    CHECK(well_formed(&c));
    se_composed_free(&c);
    free(many);
}

TEST(mime_refuses_bodies_and_attachments)
{
    const char *const to[] = {"a@example.com", NULL};
    refused(&(scalr_email_message){.to = to, .body = "a\0b", .body_len = 3},
            "body contains a NUL byte");
    refused(&(scalr_email_message){.to = to, .body = "caf\xe9"}, "body is not valid UTF-8");
    refused(&(scalr_email_message){.to = to, .body = "overlong \xc0\xaf"},
            "body is not valid UTF-8");
    refused(&(scalr_email_message){.to = to, .body_html = "<p>\xed\xa0\x80</p>"},
            "HTML body is not valid UTF-8");
    refused(&(scalr_email_message){.to = to, .body_html = "<p>\0</p>", .body_html_len = 8},
            "HTML body contains a NUL byte");
    refused(&(scalr_email_message){.to = to,
                                   .attachments =
                                       (const scalr_email_attachment[]){
                                           {.data = "x", .size = 1, .filename = "a/b"}, {0}}},
            "attachment 1: filename contains '/'");
    refused(&(scalr_email_message){.to = to,
                                   .attachments =
                                       (const scalr_email_attachment[]){
                                           {.data = "x", .size = 1, .filename = "a\nb"}, {0}}},
            "attachment 1: filename contains CR or LF");
    refused(&(scalr_email_message){.to = to,
                                   .attachments =
                                       (const scalr_email_attachment[]){
                                           {.data = "x", .size = 1, .filename = "\xff"}, {0}}},
            "attachment 1: filename is not valid UTF-8");
    refused(&(scalr_email_message){.to = to,
                                   .attachments =
                                       (const scalr_email_attachment[]){
                                           {.data = "x", .size = 1, .filename = "ok"},
                                           {.data = "x",
                                            .size = 1,
                                            .filename = "x",
                                            .content_type = "text/plain; charset=x"},
                                           {0}}},
            "attachment 2: content type 'text/plain; charset=x' is not of the form "
            "type/subtype");
    refused(
        &(scalr_email_message){
            .to = to,
            .attachments =
                (const scalr_email_attachment[]){
                    {.data = "x", .size = 1, .filename = "m.eml", .content_type = "message/rfc822"},
                    {0}}},
        "attachment 1: content type 'message/rfc822' cannot be base64-encoded; use "
        "application/octet-stream");
}

TEST(mime_body_len_and_defaults)
{
    se_composed c;
    scalr_email_error err = {0};
    /* body_len lets a caller pass a body that is not NUL-terminated. */
    scalr_email_message m = {
        .to = SCALR_EMAIL_LIST("a@example.com"), .body = "abcdef", .body_len = 3};
    CHECK_INT(compose_fixed(&m, "n@example.com", &c, &err), SCALR_EMAIL_OK);
    CHECK_STR(body_of(&c), "abc\r\n");
    se_composed_free(&c);
    /* NULL body, NULL subject: empty. */
    m.body = NULL;
    m.body_len = 0;
    CHECK_INT(compose_fixed(&m, "n@example.com", &c, &err), SCALR_EMAIL_OK);
    CHECK(strstr(c.data.data, "\r\nSubject: \r\n") != NULL);
    CHECK_STR(body_of(&c), "");
    CHECK(well_formed(&c));
    se_composed_free(&c);
    /* Attachment types from the extension, case-insensitively; unknown and
     * .eml are opaque bytes (RFC 2046 5.2.1 forbids base64 message/rfc822). */
    m.attachments =
        (const scalr_email_attachment[]){{.data = "x", .size = 1, .filename = "photo.JPEG"},
                                         {.data = "x", .size = 1, .filename = "mail.eml"},
                                         {.data = "x", .size = 1, .filename = "noext"},
                                         {.data = "x", .size = 1, .filename = "s.xlsx"},
                                         {.data = "x", .size = 0},
                                         {0}};
    CHECK_INT(compose_fixed(&m, "n@example.com", &c, &err), SCALR_EMAIL_OK);
    CHECK(strstr(c.data.data, "Content-Type: image/jpeg; name=\"photo.JPEG\"\r\n") != NULL);
    CHECK(strstr(c.data.data, "Content-Type: application/octet-stream; name=\"mail.eml\"\r\n"));
    CHECK(strstr(c.data.data, "Content-Type: application/octet-stream; name=\"noext\"\r\n"));
    CHECK(strstr(c.data.data, "Content-Type: application/vnd.openxmlformats-officedocument."
                              "spreadsheetml.sheet;\r\n name=\"s.xlsx\"\r\n"));
    /* Empty attachment, no name given. */
    CHECK(strstr(c.data.data, "Content-Disposition: attachment; filename=\"attachment\"\r\n"
                              "Content-Transfer-Encoding: base64\r\n\r\n\r\n--=_scalr_"));
    CHECK(well_formed(&c));
    se_composed_free(&c);
}

/* --- property: many generated messages ------------------------------- */

static unsigned long long prng_state;

static unsigned prng(void)
{
    prng_state = prng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (unsigned)(prng_state >> 33);
}

static void gen_text(char *dst, size_t cap, int newlines)
{
    static const char *const bits[] = {"a",
                                       "word",
                                       " ",
                                       "  ",
                                       "\t",
                                       ".",
                                       "=",
                                       "=_",
                                       "--",
                                       "\"",
                                       "\\",
                                       ",",
                                       "<",
                                       ">",
                                       "@",
                                       "(",
                                       ")",
                                       ":",
                                       ";",
                                       "\xc3\xa9",
                                       "\xe2\x82\xac",
                                       "\xf0\x9f\x8e\x89",
                                       "\xe5\x90\x8d",
                                       "=?",
                                       "?=",
                                       "From ",
                                       "\n",
                                       "\r",
                                       "\r\n",
                                       "\n.\n",
                                       ".\r\n"};
    size_t nb = sizeof bits / sizeof bits[0], n = 0;
    size_t k = prng() % 12 == 0 ? prng() % 900 : prng() % 40;
    for (size_t i = 0; i < k; i++) {
        const char *b = bits[prng() % (newlines ? nb : nb - 5)];
        if (!newlines && b[0] == '\t')
            continue;
        size_t l = strlen(b);
        if (prng() % 50 == 0) { /* a very long run without spaces */
            for (size_t j = 0; j < 1100 && n + 2 < cap; j++)
                dst[n++] = 'L';
        }
        if (n + l + 1 >= cap)
            break;
        memcpy(dst + n, b, l);
        n += l;
    }
    dst[n] = '\0';
}

TEST(mime_property_generated)
{
    prng_state = 42;
    int composed = 0;
    for (int t = 0; t < 400; t++) {
        char subject[4000], name[1200], body[5000], html[2000], fname[300], hval[2000];
        char to[1400], quoted[2600];
        gen_text(subject, sizeof subject, 0);
        gen_text(name, sizeof name, 0);
        gen_text(body, sizeof body, 1);
        gen_text(html, sizeof html, 1);
        gen_text(fname, sizeof fname, 0);
        gen_text(hval, sizeof hval, 0);
        for (char *p = fname; *p; p++)
            if (*p == '/')
                *p = '_';
        size_t q = 0;
        for (const char *p = name; *p; p++) {
            if (*p == '"' || *p == '\\')
                quoted[q++] = '\\';
            quoted[q++] = *p;
        }
        quoted[q] = '\0';
        snprintf(to, sizeof to, "\"%.1300s\" <to%d@example.com>", quoted, t);
        unsigned char data[700];
        size_t dl = prng() % sizeof data;
        for (size_t i = 0; i < dl; i++)
            data[i] = (unsigned char)prng();
        scalr_email_attachment att[] = {{.data = data, .size = dl, .filename = fname}, {0}};
        scalr_email_header hdr[] = {{"X-Generated", hval}, {0}};
        const char *const tos[] = {to, "plain@example.com", NULL};
        scalr_email_message m = {
            .to = tos,
            .cc = SCALR_EMAIL_LIST("Carbon Copy <cc@example.com>"),
            .subject = subject,
            .body = body,
            .body_html = prng() % 2 ? html : NULL,
            .headers = hdr,
            .attachments = prng() % 2 && fname[0] ? att : NULL,
        };
        se_composed c;
        scalr_email_error err = {0};
        se_compose_opts o = {.now = FIXED_NOW + t * 3600, .random = counter_random};
        scalr_email_code rc = se_compose(&m, "Sender <s@example.com>", &o, &c, &err);
        if (rc != SCALR_EMAIL_OK) {
            th_fail(__FILE__, __LINE__, "case %d: %s", t, err.message);
            continue;
        }
        composed++;
        if (!well_formed(&c))
            th_fail(__FILE__, __LINE__, "case %d: a line is too long or not CRLF", t);
        if (!all_7bit(&c) || c.is_8bit || c.needs_smtputf8)
            th_fail(__FILE__, __LINE__, "case %d: not 7-bit", t);
        if (strstr(c.data.data, "\r\nBcc:") || strncmp(c.data.data, "Date: ", 6) != 0)
            th_fail(__FILE__, __LINE__, "case %d: bad header block", t);
        se_composed_free(&c);
    }
    CHECK_INT(composed, 400);
}

/* ---- issue 17: inline parts, calendar, envelope sender, DSN ---- */

TEST(mime_inline_related_and_calendar_order)
{
    static const char cal[] = "BEGIN:VCALENDAR\nMETHOD:CANCEL\nEND:VCALENDAR\n";
    scalr_email_attachment att[] = {
        {.data = "PDF", .size = 3, .filename = "a.pdf"},
        {.data = "GIF89a", .size = 6, .filename = "logo.gif", .content_id = "logo.gif"},
        {0},
    };
    scalr_email_message m = {.to = SCALR_EMAIL_LIST("a@example.org"),
                             .subject = "s",
                             .body = "t",
                             .body_html = "<img src=\"CID:logo.gif\">",
                             .attachments = att,
                             .calendar = cal};
    se_composed c;
    scalr_email_error e;
    CHECK_INT(compose_fixed(&m, "f@example.com", &c, &e), SCALR_EMAIL_OK);
    const char *d = c.data.data;
    const char *mixed = strstr(d, "multipart/mixed"), *alt = strstr(d, "multipart/alternative"),
               *plain = strstr(d, "text/plain"), *rel = strstr(d, "multipart/related"),
               *html = strstr(d, "text/html"), *img = strstr(d, "Content-ID: <logo.gif>"),
               *ical = strstr(d, "text/calendar; method=CANCEL; charset=utf-8"),
               *pdf = strstr(d, "filename=\"a.pdf\"");
    CHECK(mixed && alt && plain && rel && html && img && ical && pdf);
    if (mixed && alt && plain && rel && html && img && ical && pdf)
        CHECK(mixed < alt && alt < plain && plain < rel && rel < html && html < img &&
              img < ical && ical < pdf);
    CHECK(strstr(d, "Content-ID: <logo.gif>\r\nContent-Disposition: inline") != NULL);
    CHECK(well_formed(&c));
    se_composed_free(&c);
}

TEST(mime_dsn_and_envelope_sender)
{
    scalr_email_message m = {.to = SCALR_EMAIL_LIST("a@example.org"),
                             .body = "t",
                             .envelope_from = "Bounces <b+1@example.com>",
                             .dsn_notify = "Delay,success",
                             .dsn_ret = "Full",
                             .dsn_envid = "a+b=c d"};
    se_composed c;
    scalr_email_error e;
    CHECK_INT(compose_fixed(&m, "f@example.com", &c, &e), SCALR_EMAIL_OK);
    CHECK_STR(c.mail_from, "b+1@example.com");
    CHECK_INT(c.dsn, 1);
    CHECK_STR(c.dsn_notify, "SUCCESS,DELAY");
    CHECK_STR(c.dsn_ret, "FULL");
    CHECK_STR(c.dsn_envid, "a+2Bb+3Dc+20d");
    CHECK(strstr(c.data.data, "From: f@example.com\r\n") != NULL);
    se_composed_free(&c);

    m = (scalr_email_message){.to = SCALR_EMAIL_LIST("a@example.org"), .envelope_from = "<>"};
    CHECK_INT(compose_fixed(&m, "f@example.com", &c, &e), SCALR_EMAIL_OK);
    CHECK_STR(c.mail_from, "");
    CHECK_INT(c.dsn, 0);
    se_composed_free(&c);
}

TEST(mime_issue17_refusals)
{
    static const scalr_email_attachment img[] = {{.data = "x", .size = 1, .content_id = "i"}, {0}};
    static const scalr_email_attachment badcid[] = {{.data = "x", .size = 1, .content_id = "<i>"},
                                                    {0}};
    struct {
        scalr_email_message m;
        const char *why;
    } cases[] = {
        {{.body_html = "<img src=cid:nope>"}, "cid:nope"},
        {{.attachments = img}, "needs an HTML body"},
        {{.body_html = "<img src=cid:i>", .attachments = badcid}, "content ID"},
        {{.calendar = "BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n"}, "no METHOD"},
        {{.calendar = "METHOD:RE QUEST\r\n"}, "METHOD is not"},
        {{.dsn_notify = "never,delay"}, "never"},
        {{.dsn_notify = "success,success"}, "notify"},
        {{.dsn_notify = ""}, "notify"},
        {{.dsn_ret = "body"}, "full or hdrs"},
        {{.dsn_envid = "caf\xc3\xa9"}, "printable ASCII"},
        {{.envelope_from = "x y"}, "envelope sender"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        scalr_email_message m = cases[i].m;
        m.to = SCALR_EMAIL_LIST("a@example.org");
        se_composed c;
        scalr_email_error e;
        CHECK_INT(compose_fixed(&m, "f@example.com", &c, &e), SCALR_EMAIL_EINVAL);
        if (!strstr(e.message, cases[i].why))
            th_fail(__FILE__, __LINE__, "case %zu: '%s' lacks '%s'", i, e.message, cases[i].why);
    }
}
