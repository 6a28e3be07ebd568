/* Transfer and header encodings: exact bytes, and decoding them back. */
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "mime/encode.h"

#define STR_N(s) (s), sizeof(s) - 1

/* --- small decoders, to check what a reader gets back ------------------ */

static int b64_val(char c)
{
    const char *t = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const char *p = c ? strchr(t, c) : NULL;
    return p ? (int)(p - t) : -1;
}

/* Decodes base64 (ignoring CRLF) into out; returns the length or -1. */
static long b64_decode(const char *s, size_t n, unsigned char *out)
{
    long o = 0;
    unsigned acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\r' || s[i] == '\n')
            continue;
        if (s[i] == '=')
            break;
        int v = b64_val(s[i]);
        if (v < 0)
            return -1;
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
        }
    }
    return o;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Quoted-printable decoder (RFC 2045 6.7); -1 on malformed input. */
static long qp_decode(const char *s, size_t n, char *out)
{
    long o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '=') {
            out[o++] = s[i];
            continue;
        }
        if (i + 2 < n && s[i + 1] == '\r' && s[i + 2] == '\n') {
            i += 2;
            continue;
        }
        if (i + 2 >= n || hexval(s[i + 1]) < 0 || hexval(s[i + 2]) < 0)
            return -1;
        out[o++] = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
        i += 2;
    }
    return o;
}

/* Every CRLF-separated line of s is at most max octets, and no bare CR/LF. */
static int lines_ok(const char *s, size_t n, size_t max)
{
    size_t line = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\r') {
            if (i + 1 >= n || s[i + 1] != '\n')
                return 0;
            i++;
            line = 0;
        } else if (s[i] == '\n' || ++line > max) {
            return 0;
        }
    }
    return 1;
}

/* Decode a header value made of "=?UTF-8?B?...?=" words separated by
 * folding white space; checks every word is <= 75 chars and decodes to
 * well-formed UTF-8 on its own (no character split across words). */
static int decode_encoded_words(const char *v, char *out, size_t *outlen)
{
    size_t o = 0;
    const char *p = v;
    while (*p) {
        while (*p == ' ' || *p == '\r' || *p == '\n')
            p++;
        if (!*p)
            break;
        if (strncmp(p, "=?UTF-8?B?", 10) != 0)
            return 0;
        const char *end = strstr(p + 10, "?=");
        if (!end || end - p + 2 > 75)
            return 0;
        unsigned char tmp[128];
        long k = b64_decode(p + 10, (size_t)(end - p - 10), tmp);
        if (k < 0 || !se_utf8_valid((const char *)tmp, (size_t)k))
            return 0;
        memcpy(out + o, tmp, (size_t)k);
        o += (size_t)k;
        p = end + 2;
        if (*p && *p != '\r' && *p != ' ')
            return 0; /* RFC 2047 5 (1): words separated by white space */
    }
    out[o] = '\0';
    *outlen = o;
    return 1;
}

/* --- tests -------------------------------------------------------------- */

TEST(enc_utf8_valid)
{
    CHECK(se_utf8_valid("", 0));
    CHECK(se_utf8_valid("plain", 5));
    CHECK(se_utf8_valid("Z\xc3\xab \xe2\x82\xac \xf0\x9f\x91\x8b", 12));
    CHECK(!se_utf8_valid("Z\xc3\xab \xe2\x82\xac \xf0\x9f\x91\x8b", 11));
    CHECK(!se_utf8_valid("\xc0\x80", 2));         /* overlong NUL */
    CHECK(!se_utf8_valid("\xe0\x80\xaf", 3));     /* overlong '/' */
    CHECK(!se_utf8_valid("\xed\xa0\x80", 3));     /* surrogate */
    CHECK(!se_utf8_valid("\xf4\x90\x80\x80", 4)); /* > U+10FFFF */
    CHECK(!se_utf8_valid("\xe2\x82", 2));         /* truncated */
    CHECK(!se_utf8_valid("\x80", 1));             /* lone continuation */
    CHECK(!se_utf8_valid("\xff", 1));
    CHECK(se_utf8_valid("\xf4\x8f\xbf\xbf", 4)); /* U+10FFFF */
}

TEST(enc_base64_lines)
{
    se_buf b = {0};
    CHECK_INT(se_base64_lines(&b, "", 0), 0);
    CHECK_INT(b.len, 0);
    se_base64_lines(&b, "abc", 3);
    CHECK_MEM(b.data, b.len, "YWJj\r\n");
    se_buf_reset(&b);
    se_base64_lines(&b, "ab", 2);
    CHECK_MEM(b.data, b.len, "YWI=\r\n");
    se_buf_reset(&b);
    /* RFC 2045 6.8: 57 octets make exactly one 76-character line. */
    unsigned char data[200];
    for (int i = 0; i < 200; i++)
        data[i] = (unsigned char)(i * 7);
    se_base64_lines(&b, data, 57);
    CHECK_INT(b.len, 78);
    CHECK(lines_ok(b.data, b.len, 76));
    se_buf_reset(&b);
    se_base64_lines(&b, data, 200);
    CHECK_INT(b.len, 3 * 78 + 40 + 2); /* 3 full lines, then 29 octets */
    CHECK(lines_ok(b.data, b.len, 76));
    unsigned char back[200];
    CHECK_INT(b64_decode(b.data, b.len, back), 200);
    CHECK(memcmp(back, data, 200) == 0);
    se_buf_free(&b);
}

TEST(enc_qp_basic)
{
    se_buf b = {0};
    se_qp_encode(&b, STR_N("a=b caf\xc3\xa9\r\nend"));
    CHECK_MEM(b.data, b.len, "a=3Db caf=C3=A9\r\nend");
    se_buf_reset(&b);
    /* RFC 2045 6.7 (3): white space before a line break is encoded. */
    se_qp_encode(&b, STR_N("tab\t\r\nspace \r\nlast "));
    CHECK_MEM(b.data, b.len, "tab=09\r\nspace=20\r\nlast=20");
    se_buf_reset(&b);
    /* Leading dots are the SMTP engine's business, not QP's. */
    se_qp_encode(&b, STR_N(".\r\n..x"));
    CHECK_MEM(b.data, b.len, ".\r\n..x");
    se_buf_free(&b);
}

TEST(enc_qp_long_lines)
{
    se_buf b = {0};
    char text[1300];
    memset(text, 'x', 1200);
    se_qp_encode(&b, text, 1200);
    /* 15 lines of 75 + "=", then the remaining 75 characters. */
    CHECK_INT(b.len, 15 * 78 + 75);
    CHECK(lines_ok(b.data, b.len, 76));
    CHECK(memcmp(b.data + 70, "xxxxx=\r\nxx", 10) == 0);

    /* A run of "é": never split inside an =XX, decodes back exactly. */
    se_buf_reset(&b);
    size_t n = 0;
    for (int i = 0; i < 300; i++) {
        text[n++] = '\xc3';
        text[n++] = '\xa9';
    }
    text[n++] = ' ';
    se_qp_encode(&b, text, n);
    CHECK(lines_ok(b.data, b.len, 76));
    /* 12 "=C3=A9" and one "=C3" make 75 characters, then the soft break;
     * the octets of a character may straddle it, an =XX never does. */
    CHECK_MEM(b.data, 8, "=C3=A9=C");
    CHECK(memcmp(b.data + 72, "=C3=\r\n=A9=C3", 12) == 0);
    CHECK(memcmp(b.data + b.len - 3, "=20", 3) == 0);
    char back[1300];
    CHECK_INT(qp_decode(b.data, b.len, back), (long)n);
    CHECK(memcmp(back, text, n) == 0);
    se_buf_free(&b);
}

TEST(enc_qp_exact_76)
{
    se_buf b = {0};
    char text[100];
    /* A line of exactly 76 characters needs no soft break ... */
    memset(text, 'a', 76);
    se_qp_encode(&b, text, 76);
    CHECK_INT(b.len, 76);
    /* ... one of 77 does, and the soft break keeps the line at 76. */
    se_buf_reset(&b);
    memset(text, 'a', 77);
    se_qp_encode(&b, text, 77);
    CHECK_INT(b.len, 75 + 3 + 2);
    CHECK(lines_ok(b.data, b.len, 76));
    se_buf_free(&b);
}

TEST(enc_crlf_normalise)
{
    se_buf b = {0};
    /* RFC 5321 2.3.8: bare LF, bare CR, LF CR all become CRLF line ends. */
    se_crlf_normalise(&b, STR_N("a\nb\rc\r\nd\n\re\r"));
    CHECK_MEM(b.data, b.len, "a\r\nb\r\nc\r\nd\r\n\r\ne\r\n");
    se_buf_reset(&b);
    se_crlf_normalise(&b, STR_N("\n.\n"));
    CHECK_MEM(b.data, b.len, "\r\n.\r\n");
    se_buf_reset(&b);
    se_crlf_normalise(&b, STR_N("\r\r\n\n"));
    CHECK_MEM(b.data, b.len, "\r\n\r\n\r\n");
    se_buf_free(&b);
}

TEST(enc_unstructured_ascii)
{
    se_buf b = {0};
    se_header_unstructured(&b, "Subject", "Your invoice is ready");
    CHECK_MEM(b.data, b.len, "Subject: Your invoice is ready\r\n");
    se_buf_reset(&b);
    se_header_unstructured(&b, "Subject", "");
    CHECK_MEM(b.data, b.len, "Subject: \r\n");
    se_buf_reset(&b);
    /* RFC 5322 2.2.3: folded before existing white space only. */
    se_header_unstructured(&b, "Subject",
                           "The quick brown fox jumps over the lazy dog and keeps running "
                           "through the whole field until the evening falls");
    CHECK_MEM(b.data, b.len,
              "Subject: The quick brown fox jumps over the lazy dog and keeps running through\r\n"
              " the whole field until the evening falls\r\n");
    se_buf_free(&b);
}

TEST(enc_unstructured_long_word)
{
    se_buf b = {0};
    char v[1201];
    memset(v, 'w', 1200);
    v[1200] = '\0';
    /* No white space to fold at: encoded-words can be split instead. */
    se_header_unstructured(&b, "X-Long", v);
    CHECK(lines_ok(b.data, b.len, 78));
    CHECK(strncmp(b.data, "X-Long: =?UTF-8?B?", 18) == 0);
    char back[1300];
    size_t n = 0;
    CHECK(decode_encoded_words(b.data + 8, back, &n));
    CHECK_INT(n, 1200);
    CHECK(memcmp(back, v, 1200) == 0);
    se_buf_free(&b);
}

TEST(enc_unstructured_literal_lookalikes)
{
    se_buf b = {0};
    /* Text that a reader would decode as RFC 2047 is itself encoded. */
    se_header_unstructured(&b, "Subject", "=?UTF-8?B?SGk=?=");
    CHECK_MEM(b.data, b.len, "Subject: =?UTF-8?B?PT9VVEYtOD9CP1NHaz0/PQ==?=\r\n");
    se_buf_reset(&b);
    /* Leading white space would be eaten by readers. */
    se_header_unstructured(&b, "Subject", " x");
    CHECK_MEM(b.data, b.len, "Subject: =?UTF-8?B?IHg=?=\r\n");
    se_buf_free(&b);
}

TEST(enc_unstructured_emoji)
{
    se_buf b = {0};
    const char *subject = "Gr\xc3\xbc\xc3\x9f"
                          "e \xf0\x9f\x91\x8b aus Z\xc3\xbcrich "
                          "\xe2\x80\x94 Ihre Rechnung \xf0\x9f\x8e\x89\xf0\x9f\x8e\x89"
                          "\xf0\x9f\x8e\x89 ist fertig und wartet auf Sie";
    se_header_unstructured(&b, "Subject", subject);
    CHECK_MEM(b.data, b.len,
              "Subject: =?UTF-8?B?R3LDvMOfZSDwn5GLIGF1cyBaw7xyaWNoIOKAlCBJaHJlIFJlY2hudW5n?=\r\n"
              " =?UTF-8?B?IPCfjonwn46J8J+OiSBpc3QgZmVydGlnIHVuZCB3YXJ0ZXQgYXVmIFNpZQ==?=\r\n");
    CHECK(lines_ok(b.data, b.len, 78));
    char back[300];
    size_t n = 0;
    CHECK(decode_encoded_words(b.data + 9, back, &n));
    CHECK_STR(back, subject);

    /* Four-octet characters only: words break between emoji, never inside. */
    se_buf_reset(&b);
    char emoji[4 * 40 + 1];
    for (int i = 0; i < 40; i++)
        memcpy(emoji + 4 * i, "\xf0\x9f\x8e\x89", 4);
    emoji[160] = '\0';
    se_header_unstructured(&b, "Subject", emoji);
    CHECK(lines_ok(b.data, b.len, 78));
    CHECK(decode_encoded_words(b.data + 9, back, &n));
    CHECK_INT(n, 160);
    CHECK(memcmp(back, emoji, 160) == 0);
    se_buf_free(&b);
}

TEST(enc_unstructured_long_name)
{
    /* The first line leaves room for the header name. */
    se_buf b = {0};
    se_header_unstructured(&b, "X-A-Rather-Long-Header-Name-For-Testing",
                           "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
                           "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9");
    CHECK_MEM(b.data, b.len,
              "X-A-Rather-Long-Header-Name-For-Testing: =?UTF-8?B?w6nDqcOpw6nDqcOpw6nDqcOp?=\r\n"
              " =?UTF-8?B?w6nDqcOp?=\r\n");
    CHECK(lines_ok(b.data, b.len, 78));
    se_buf_free(&b);
}

TEST(enc_phrase)
{
    se_buf b = {0};
    se_header_phrase(&b, "Jane Doe");
    CHECK_MEM(b.data, b.len, "Jane Doe");
    se_buf_reset(&b);
    /* RFC 5322 3.2.4: specials need a quoted-string, with quoted-pairs. */
    se_header_phrase(&b, "Doe, Jane");
    CHECK_MEM(b.data, b.len, "\"Doe, Jane\"");
    se_buf_reset(&b);
    se_header_phrase(&b, "say \"hi\" \\o/");
    CHECK_MEM(b.data, b.len, "\"say \\\"hi\\\" \\\\o/\"");
    se_buf_reset(&b);
    se_header_phrase(&b, "J. R. Smith");
    CHECK_MEM(b.data, b.len, "\"J. R. Smith\"");
    se_buf_reset(&b);
    se_header_phrase(&b, "two  spaces");
    CHECK_MEM(b.data, b.len, "\"two  spaces\"");
    se_buf_reset(&b);
    /* RFC 2047 5 (3): non-ASCII as a whole encoded-word, not quoted. */
    se_header_phrase(&b, "Zo\xc3\xab \xc3\x9cn\xc3\xaf"
                         "code");
    CHECK_MEM(b.data, b.len, "=?UTF-8?B?Wm/DqyDDnG7Dr2NvZGU=?=");
    se_buf_reset(&b);
    se_header_phrase(&b, "M\xc3\xbcller, Hans");
    CHECK_MEM(b.data, b.len, "=?UTF-8?B?TcO8bGxlciwgSGFucw==?=");
    se_buf_reset(&b);
    se_header_phrase(&b, "");
    CHECK_INT(b.len, 0);
    se_buf_free(&b);
}

TEST(enc_phrase_long)
{
    se_buf b = {0};
    char name[901];
    memset(name, 'a', 900);
    name[900] = '\0';
    /* Too long for one line even quoted: encoded-words, folded. */
    se_buf_puts(&b, "To: ");
    se_header_phrase(&b, name);
    CHECK(lines_ok(b.data, b.len, 78));
    char back[1000];
    size_t n = 0;
    CHECK(decode_encoded_words(b.data + 4, back, &n));
    CHECK_INT(n, 900);
    se_buf_free(&b);
}

TEST(enc_mime_param)
{
    se_buf b = {0};
    se_buf_puts(&b, "Content-Disposition: attachment");
    se_mime_param(&b, "filename", "invoice.pdf");
    CHECK_MEM(b.data, b.len, "Content-Disposition: attachment; filename=\"invoice.pdf\"");
    se_buf_reset(&b);
    se_buf_puts(&b, "Content-Disposition: attachment");
    se_mime_param(&b, "filename", "a \"b\" \\c.txt");
    CHECK_MEM(b.data, b.len, "Content-Disposition: attachment; filename=\"a \\\"b\\\" \\\\c.txt\"");
    se_buf_reset(&b);
    /* RFC 2231 4: charset, empty language, percent-encoded octets. */
    se_buf_puts(&b, "Content-Disposition: attachment");
    se_mime_param(&b, "filename", "\xe2\x82\xac.pdf");
    CHECK_MEM(b.data, b.len, "Content-Disposition: attachment; filename*=utf-8''%E2%82%AC.pdf");
    se_buf_free(&b);
}

TEST(enc_mime_param_continuations)
{
    se_buf b = {0};
    se_buf_puts(&b, "Content-Disposition: attachment");
    /* RFC 2231 3 + 4.1: every encoded section keeps its '*'. */
    se_mime_param(&b, "filename",
                  "\xe2\x82\xac report \xe2\x80\x94 with a name long enough to "
                  "need continuations.pdf");
    CHECK_MEM(b.data, b.len,
              "Content-Disposition: attachment;\r\n"
              " filename*0*=utf-8''%E2%82%AC%20report%20%E2%80%94%20with%20a%20name%20lon;\r\n"
              " filename*1*=g%20enough%20to%20need%20continuations.pdf");
    CHECK(lines_ok(b.data, b.len, 78));
    se_buf_reset(&b);

    /* Long ASCII too; sections never split an %XX nor a UTF-8 character. */
    se_buf_puts(&b, "Content-Type: application/pdf");
    se_mime_param(&b, "name",
                  "\xe5\x90\x8d\xe5\x89\x8d\xe5\x90\x8d\xe5\x89\x8d\xe5\x90\x8d"
                  "\xe5\x89\x8d\xe5\x90\x8d\xe5\x89\x8d.pdf");
    CHECK_MEM(b.data, b.len,
              "Content-Type: application/pdf;\r\n"
              " name*0*=utf-8''%E5%90%8D%E5%89%8D%E5%90%8D%E5%89%8D%E5%90%8D%E5%89%8D;\r\n"
              " name*1*=%E5%90%8D%E5%89%8D.pdf");
    se_buf_free(&b);
}

/* An empty buffer handed over is still a valid, empty C string. */
TEST(buf_steal_empty_is_terminated)
{
    se_buf b = {0};
    size_t len = 99;
    char *p = se_buf_steal(&b, &len);
    CHECK(p != NULL);
    CHECK_INT(len, 0);
    if (p)
        CHECK_STR(p, "");
    free(p);
}
