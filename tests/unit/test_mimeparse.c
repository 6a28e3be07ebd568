/* inbox/mimeparse.c: header words (RFC 2047), parameters (RFC 2231), the
 * multipart walk and transfer decodings, and hostile input. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../inbox/mimeparse.h"
#include "harness.h"

static char *dec(const char *s)
{
    return ib_decode_header(s, strlen(s));
}

#define CHECK_DEC(in, want)                                                                        \
    do {                                                                                           \
        char *got_ = dec(in);                                                                      \
        CHECK_STR(got_, want);                                                                     \
        free(got_);                                                                                \
    } while (0)

static size_t parts_of(const char *raw, ib_part **p)
{
    size_t n = 0;
    *p = NULL;
    CHECK_INT(ib_mime_parts(raw, strlen(raw), p, &n), 0);
    return n;
}

TEST(mimeparse_rfc2047_b_word)
{
    CHECK_DEC("=?UTF-8?B?w6lsw6h2ZQ==?=", "\xc3\xa9l\xc3\xa8ve");
    CHECK_DEC("Re: =?utf-8?b?w6k=?= ok", "Re: \xc3\xa9 ok");
    /* RFC 2231 5: a language suffix on the charset */
    CHECK_DEC("=?utf-8*fr?B?w6k=?=", "\xc3\xa9");
}

TEST(mimeparse_rfc2047_q_word)
{
    CHECK_DEC("=?iso-8859-1?Q?caf=E9_cr=E8me?=", "caf\xc3\xa9 cr\xc3\xa8me");
    CHECK_DEC("=?utf-8?q?=c3=a9t=C3=A9?=", "\xc3\xa9t\xc3\xa9");
    CHECK_DEC("=?utf-8?Q?100=25_=ZZ?=", "100% =ZZ");
}

TEST(mimeparse_rfc2047_adjacent_words_joined)
{
    /* RFC 2047 6.2: the space between adjacent encoded-words goes away */
    CHECK_DEC("=?utf-8?q?a?= =?utf-8?q?b?=", "ab");
    CHECK_DEC("=?utf-8?q?a?=\r\n =?utf-8?q?b?=", "ab");
    /* a UTF-8 character split across two words still comes out whole */
    CHECK_DEC("=?utf-8?B?4oI=?= =?utf-8?B?rA==?=", "\xe2\x82\xac");
    CHECK_DEC("=?iso-8859-1?q?=E9?= =?utf-8?q?=C3=A9?=", "\xc3\xa9\xc3\xa9");
    /* but text between words, and space next to text, stays */
    CHECK_DEC("Hello =?utf-8?q?W=C3=B6rld?= !", "Hello W\xc3\xb6rld !");
    CHECK_DEC("=?utf-8?q?a?= x =?utf-8?q?b?=", "a x b");
}

TEST(mimeparse_rfc2047_invalid_and_hostile)
{
    CHECK_DEC("=?utf-8?x?abc?=", "=?utf-8?x?abc?=");
    CHECK_DEC("=?utf-8?q?a b?=", "=?utf-8?q?a b?=");
    CHECK_DEC("=?utf-8?q?unterminated", "=?utf-8?q?unterminated");
    CHECK_DEC("=??q?a?=", "=??q?a?=");
    /* decoded CR LF must not start a new header line */
    CHECK_DEC("=?utf-8?q?a=0D=0ABcc:_x?=", "a  Bcc: x");
    CHECK_DEC("=?utf-8?q?=FF?=", "\xef\xbf\xbd");
    CHECK_DEC("raw \xff latin", "raw \xef\xbf\xbd latin");
    CHECK_DEC("=?no-such-charset?q?ok?=", "ok");
    CHECK_DEC("=?utf-8//TRANSLIT?q?ok?=", "ok");
}

TEST(mimeparse_header_get)
{
    const char *raw = "From: a@example.com\r\n"
                      "subject: Hello\r\n"
                      "  =?utf-8?q?W=C3=B6rld?=  \r\n"
                      "X-Empty:\r\n"
                      "Subject: second\r\n"
                      "\r\n"
                      "To: not-a-header@example.com\r\n";
    char *s = ib_header_get(raw, strlen(raw), "Subject");
    CHECK_STR(s, "Hello  W\xc3\xb6rld");
    free(s);
    s = ib_header_get(raw, strlen(raw), "x-empty");
    CHECK_STR(s, "");
    free(s);
    CHECK(ib_header_get(raw, strlen(raw), "To") == NULL);
    CHECK(ib_header_get(raw, strlen(raw), "Subj") == NULL);
    const char *lf = "Subject: bare LF\nFrom: x\n\nbody\n";
    s = ib_header_get(lf, strlen(lf), "from");
    CHECK_STR(s, "x");
    free(s);
}

TEST(mimeparse_rfc2231_continuations)
{
    const char *raw = "Content-Type: multipart/mixed; boundary=\"b1\"\r\n"
                      "\r\n"
                      "--b1\r\n"
                      "Content-Type: application/pdf\r\n"
                      "Content-Disposition: attachment; filename=\"plain.pdf\";\r\n"
                      " filename*0*=utf-8''%E2%82%AC%20; filename*1*=r%61te;\r\n"
                      " filename*2=\".pdf\"\r\n"
                      "\r\n"
                      "x\r\n"
                      "--b1\r\n"
                      "Content-Type: text/plain; name*=iso-8859-1'fr'caf%E9.txt\r\n"
                      "\r\n"
                      "y\r\n"
                      "--b1\r\n"
                      "Content-Type: image/png; name=\"=?utf-8?B?w6kucG5n?=\"\r\n"
                      "Content-ID: <img1@example.com>\r\n"
                      "\r\n"
                      "z\r\n"
                      "--b1--\r\n";
    ib_part *p;
    size_t n = parts_of(raw, &p);
    CHECK_INT(n, 3);
    if (n == 3) {
        CHECK_STR(p[0].filename, "\xe2\x82\xac rate.pdf");
        CHECK_INT(p[0].is_attachment, 1);
        CHECK_STR(p[1].filename, "caf\xc3\xa9.txt");
        CHECK_INT(p[1].is_attachment, 0); /* named, but text and not "attachment" */
        CHECK_STR(p[2].filename, "\xc3\xa9.png");
        CHECK_INT(p[2].is_attachment, 1);
        CHECK_STR(p[2].content_id, "img1@example.com");
    }
    ib_mime_parts_free(p, n);
}

TEST(mimeparse_nested_multipart)
{
    const char *raw = "From: a@example.com\r\n"
                      "MIME-Version: 1.0\r\n"
                      "Content-Type: multipart/mixed; boundary=outer\r\n"
                      "\r\n"
                      "preamble is ignored\r\n"
                      "--outer\r\n"
                      "Content-Type: multipart/alternative; boundary=\"in ner\"\r\n"
                      "\r\n"
                      "--in ner\r\n"
                      "Content-Type: text/plain; charset=UTF-8\r\n"
                      "Content-Transfer-Encoding: quoted-printable\r\n"
                      "\r\n"
                      "Caf=C3=A9 =\r\n"
                      "ok\r\n"
                      "--in ner\r\n"
                      "Content-Type: text/html; charset=\"utf-8\"\r\n"
                      "Content-Transfer-Encoding: base64\r\n"
                      "\r\n"
                      "PHA+SGk8\r\n"
                      "L3A+\r\n"
                      "--in ner--\r\n"
                      "--outer\r\n"
                      "Content-Type: application/octet-stream\r\n"
                      "Content-Transfer-Encoding: BASE64\r\n"
                      "Content-Disposition: ATTACHMENT; filename=data.bin\r\n"
                      "\r\n"
                      "AQL/\r\nAA==\r\n"
                      "--outer--\r\n"
                      "epilogue\r\n";
    ib_part *p;
    size_t n = parts_of(raw, &p);
    CHECK_INT(n, 3);
    if (n == 3) {
        CHECK_STR(p[0].content_type, "text/plain");
        CHECK_STR(p[0].charset, "utf-8");
        CHECK_MEM(p[0].body, p[0].body_len, "Caf\xc3\xa9 ok");
        CHECK_INT(p[0].is_attachment, 0);
        CHECK(p[0].filename == NULL);
        CHECK_STR(p[0].headers, "Content-Type: text/plain; charset=UTF-8\r\n"
                                "Content-Transfer-Encoding: quoted-printable\r\n");
        CHECK_STR(p[1].content_type, "text/html");
        CHECK_STR(p[1].charset, "utf-8");
        CHECK_MEM(p[1].body, p[1].body_len, "<p>Hi</p>");
        CHECK_STR(p[2].content_type, "application/octet-stream");
        CHECK_INT(p[2].body_len, 4);
        CHECK(p[2].body_len == 4 && memcmp(p[2].body, "\x01\x02\xff\x00", 4) == 0);
        CHECK_STR(p[2].filename, "data.bin");
        CHECK_INT(p[2].is_attachment, 1);
    }
    ib_mime_parts_free(p, n);
}

TEST(mimeparse_base64_decoding)
{
    const char *raw = "Content-Transfer-Encoding: base64\r\n\r\n"
                      "aGVs bG8g\r\nd2 9y*bGQ=\r\nIGlnbm9yZWQ=\r\n";
    ib_part *p;
    size_t n = parts_of(raw, &p);
    CHECK_INT(n, 1);
    if (n == 1) {
        CHECK_STR(p[0].content_type, "text/plain");
        CHECK_MEM(p[0].body, p[0].body_len, "hello world");
    }
    ib_mime_parts_free(p, n);
    /* truncated: whole bytes of the last quantum survive, a lone char does not */
    raw = "Content-Transfer-Encoding: base64\r\n\r\naGVsbG8gd29ybG";
    n = parts_of(raw, &p);
    CHECK_INT(n, 1);
    if (n == 1)
        CHECK_MEM(p[0].body, p[0].body_len, "hello worl");
    ib_mime_parts_free(p, n);
    raw = "Content-Transfer-Encoding: base64\r\n\r\naGVsbG8gd29ybGQhI";
    n = parts_of(raw, &p);
    CHECK_INT(n, 1);
    if (n == 1)
        CHECK_MEM(p[0].body, p[0].body_len, "hello world!");
    ib_mime_parts_free(p, n);
}

TEST(mimeparse_qp_decoding)
{
    const char *raw = "Content-Type: text/plain; charset=utf-8\r\n"
                      "Content-Transfer-Encoding: Quoted-Printable\r\n\r\n"
                      "caf=C3=A9 =\r\n"
                      "long line  \t\r\n"
                      "a=ZZb =3d=\r\n"
                      "end=\n"
                      "lf only\n"
                      "=";
    ib_part *p;
    size_t n = parts_of(raw, &p);
    CHECK_INT(n, 1);
    if (n == 1)
        CHECK_MEM(p[0].body, p[0].body_len, "caf\xc3\xa9 long line\r\na=ZZb =endlf only\n");
    ib_mime_parts_free(p, n);
}

TEST(mimeparse_plain_message_lf_only)
{
    const char *raw = "From: a@example.com\nSubject: hi\n\nline 1\nline 2\n";
    ib_part *p;
    size_t n = parts_of(raw, &p);
    CHECK_INT(n, 1);
    if (n == 1) {
        CHECK_STR(p[0].content_type, "text/plain");
        CHECK(p[0].charset == NULL);
        CHECK_MEM(p[0].body, p[0].body_len, "line 1\nline 2\n");
        CHECK_STR(p[0].headers, "From: a@example.com\nSubject: hi\n");
    }
    ib_mime_parts_free(p, n);
    /* no blank line and a first line that is no header: all of it is body */
    raw = "just some text\r\nmore\r\n";
    n = parts_of(raw, &p);
    CHECK_INT(n, 1);
    if (n == 1)
        CHECK_MEM(p[0].body, p[0].body_len, "just some text\r\nmore\r\n");
    ib_mime_parts_free(p, n);
}

TEST(mimeparse_missing_boundary)
{
    const char *raw = "Content-Type: multipart/mixed\r\n\r\n--x\r\n\r\nhello\r\n--x--\r\n";
    ib_part *p;
    size_t n = parts_of(raw, &p);
    CHECK_INT(n, 1);
    if (n == 1) {
        CHECK_STR(p[0].content_type, "text/plain");
        CHECK_MEM(p[0].body, p[0].body_len, "--x\r\n\r\nhello\r\n--x--\r\n");
    }
    ib_mime_parts_free(p, n);
    /* a boundary that never occurs */
    raw = "Content-Type: multipart/mixed; boundary=zz\r\n\r\n--x\r\nhello\r\n";
    n = parts_of(raw, &p);
    CHECK_INT(n, 1);
    if (n == 1) {
        CHECK_STR(p[0].content_type, "text/plain");
        CHECK_MEM(p[0].body, p[0].body_len, "--x\r\nhello\r\n");
    }
    ib_mime_parts_free(p, n);
}

TEST(mimeparse_missing_close_delimiter)
{
    /* "--bx" must not match boundary "b"; the last part runs to the end */
    const char *raw = "Content-Type: multipart/mixed; boundary=b\r\n\r\n"
                      "--b\r\n\r\none\r\n--bx\r\n"
                      "--b  \r\nContent-Type: text/html\r\n\r\n<b>two";
    ib_part *p;
    size_t n = parts_of(raw, &p);
    CHECK_INT(n, 2);
    if (n == 2) {
        CHECK_MEM(p[0].body, p[0].body_len, "one\r\n--bx");
        CHECK_STR(p[1].content_type, "text/html");
        CHECK_MEM(p[1].body, p[1].body_len, "<b>two");
    }
    ib_mime_parts_free(p, n);
}

TEST(mimeparse_digest_default_type)
{
    const char *raw = "Content-Type: multipart/digest; boundary=d\r\n\r\n"
                      "--d\r\n\r\nSubject: inner\r\n\r\nx\r\n--d--\r\n";
    ib_part *p;
    size_t n = parts_of(raw, &p);
    CHECK_INT(n, 1);
    if (n == 1) {
        /* RFC 2046 5.1.5: the default type inside a digest */
        CHECK_STR(p[0].content_type, "message/rfc822");
        CHECK_MEM(p[0].body, p[0].body_len, "Subject: inner\r\n\r\nx");
    }
    ib_mime_parts_free(p, n);
}

TEST(mimeparse_deep_nesting_limit)
{
    char *raw = malloc(64 * 200 + 100);
    size_t len = 0;
    for (int i = 0; i < 64; i++)
        len += (size_t)sprintf(
            raw + len, "Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n", i, i);
    len += (size_t)sprintf(raw + len, "\r\ndeep\r\n");
    ib_part *p = NULL;
    size_t n = 0;
    CHECK_INT(ib_mime_parts(raw, len, &p, &n), 0);
    /* depth 16 is kept whole instead of being walked further */
    CHECK_INT(n, 1);
    if (n == 1) {
        CHECK_STR(p[0].content_type, "multipart/mixed");
        CHECK(p[0].body_len > 0 && memcmp(p[0].body, "--b16\r\n", 7) == 0);
        CHECK_STR(p[0].headers, "Content-Type: multipart/mixed; boundary=b16\r\n");
    }
    ib_mime_parts_free(p, n);
    free(raw);
}

TEST(mimeparse_many_parts_bounded)
{
    size_t cap = 3000 * 16 + 100, len = 0;
    char *raw = malloc(cap);
    len += (size_t)sprintf(raw, "Content-Type: multipart/mixed; boundary=q\r\n\r\n");
    for (int i = 0; i < 3000; i++)
        len += (size_t)sprintf(raw + len, "--q\r\n\r\n%d\r\n", i % 10);
    ib_part *p = NULL;
    size_t n = 0;
    CHECK_INT(ib_mime_parts(raw, len, &p, &n), 0);
    CHECK_INT(n, 1000);
    if (n == 1000)
        CHECK_MEM(p[999].body, p[999].body_len, "9");
    ib_mime_parts_free(p, n);
    free(raw);
}

/* Mutated messages: whatever the bytes, the walk ends, and every part has a
 * type and a body no larger than the input. */
TEST(mimeparse_hostile_mutations)
{
    const char *seed =
        "Content-Type: multipart/mixed; boundary=\"=_b\"\r\n\r\n"
        "--=_b\r\nContent-Type: text/plain; charset=iso-8859-1\r\n"
        "Content-Transfer-Encoding: quoted-printable\r\n\r\ncaf=E9=\r\n\r\n"
        "--=_b\r\nContent-Type: multipart/related; boundary=r\r\n\r\n--r\r\n"
        "Content-Disposition: attachment; filename*0*=utf-8''%E2; filename*1*=%82\r\n"
        "Content-Transfer-Encoding: base64\r\n\r\nAAE=\r\n--r--\r\n--=_b--\r\n";
    size_t len = strlen(seed);
    char *buf = malloc(len);
    unsigned x = 12345;
    int bad = 0;
    for (int round = 0; round < 3000 && !bad; round++) {
        memcpy(buf, seed, len);
        for (int k = 0; k < 1 + round % 8; k++) {
            x = x * 1103515245u + 12345u;
            size_t at = (x >> 8) % len;
            x = x * 1103515245u + 12345u;
            buf[at] = "\r\n-=?;\"*%\\:\x00\xff b"[(x >> 8) % 15];
        }
        size_t cut = round % 3 ? len : (x >> 4) % len;
        ib_part *p = NULL;
        size_t n = 0;
        if (ib_mime_parts(buf, cut, &p, &n) != 0 || n == 0)
            bad = 1;
        for (size_t i = 0; i < n; i++)
            if (!p[i].content_type || !*p[i].content_type || !p[i].body || p[i].body_len > cut ||
                !p[i].headers)
                bad = 1;
        ib_mime_parts_free(p, n);
        char *h = ib_decode_header(buf, cut);
        if (!h)
            bad = 1;
        free(h);
    }
    CHECK_INT(bad, 0);
    free(buf);
}

/* Found by fuzz_mimeparse: a Content-Type that is not token/token (non-ASCII,
 * tspecials, empty subtype) falls back to the default type. */
TEST(mimeparse_invalid_content_type_gets_default)
{
    const char *msgs[] = {
        "Content-Type: messa\xe9ge/rfc822\r\n\r\nbody\r\n",
        "Content-Type: message/rfc822from:\r\n\r\nbody\r\n",
        "Content-Type: text/\r\n\r\nbody\r\n",
    };
    for (size_t i = 0; i < sizeof msgs / sizeof msgs[0]; i++) {
        ib_part *parts = NULL;
        size_t n = 0;
        CHECK_INT(ib_mime_parts(msgs[i], strlen(msgs[i]), &parts, &n), 0);
        CHECK_INT(n, 1);
        if (n == 1)
            CHECK_STR(parts[0].content_type, "text/plain");
        ib_mime_parts_free(parts, n);
    }
}
