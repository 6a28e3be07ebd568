/* SMTP reply parser (src/smtp/reply.c). */
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "smtp/reply.h"

/* Parse s (whole) and return the result code; out/used are filled. */
static int parse(const char *s, se_reply *r, size_t *used)
{
    char why[128];
    return se_reply_parse(s, strlen(s), r, used, why, sizeof why);
}

TEST(reply_single_line)
{
    se_reply r;
    size_t used;
    CHECK_INT(parse("250 OK\r\n", &r, &used), 1);
    CHECK_INT(r.code, 250);
    CHECK_STR(r.text, "OK");
    CHECK_STR(r.enhanced, "");
    CHECK_INT(r.n_lines, 1);
    CHECK_INT(used, 8);
    se_reply_free(&r);
}

TEST(reply_multi_line_joined)
{
    se_reply r;
    size_t used;
    const char *s =
        "250-mail.example.com Hello\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250 8BITMIME\r\n";
    CHECK_INT(parse(s, &r, &used), 1);
    CHECK_INT(r.code, 250);
    CHECK_STR(r.text, "mail.example.com Hello\nPIPELINING\nSIZE 1000\n8BITMIME");
    CHECK_INT(r.n_lines, 4);
    CHECK_INT(used, strlen(s));
    se_reply_free(&r);
}

TEST(reply_code_only_lines)
{
    se_reply r;
    size_t used;
    CHECK_INT(parse("250-\r\n250\r\n", &r, &used), 1);
    CHECK_INT(r.code, 250);
    CHECK_STR(r.text, "\n");
    CHECK_INT(r.n_lines, 2);
    se_reply_free(&r);
}

TEST(reply_stops_at_reply_end)
{
    se_reply r;
    size_t used;
    CHECK_INT(parse("250 a\r\n550 b\r\n", &r, &used), 1);
    CHECK_INT(used, 7);
    CHECK_STR(r.text, "a");
    se_reply_free(&r);
}

TEST(reply_every_prefix_needs_more)
{
    const char *s = "250-first\r\n250-second\r\n250 last\r\n";
    size_t n = strlen(s);
    for (size_t i = 0; i < n; i++) {
        se_reply r;
        size_t used = 99;
        char why[64];
        int rc = se_reply_parse(s, i, &r, &used, why, sizeof why);
        if (rc != 0)
            th_fail(__FILE__, __LINE__, "prefix %zu: rc %d, want 0", i, rc);
        CHECK_INT(used, 0);
    }
}

TEST(reply_bare_lf_tolerated)
{
    se_reply r;
    size_t used;
    CHECK_INT(parse("250-a\n250 b\n", &r, &used), 1);
    CHECK_STR(r.text, "a\nb");
    CHECK_INT(used, 12);
    se_reply_free(&r);
}

TEST(reply_bare_cr_rejected)
{
    se_reply r;
    size_t used;
    CHECK_INT(parse("250 a\rb\r\n", &r, &used), -1);
    CHECK_INT(parse("250 a\r\r\n", &r, &used), -1);
}

TEST(reply_nul_rejected)
{
    se_reply r;
    size_t used;
    char why[64];
    CHECK_INT(se_reply_parse("250 a\0b\r\n", 9, &r, &used, why, sizeof why), -1);
    CHECK(strstr(why, "NUL") != NULL);
}

TEST(reply_control_char_rejected)
{
    se_reply r;
    size_t used;
    CHECK_INT(parse("250 a\x1b[31m\r\n", &r, &used), -1);
    CHECK_INT(parse("250 a\x7f"
                    "b\r\n",
                    &r, &used),
              -1); /* DEL too */
    CHECK_INT(parse("250 tab\there\r\n", &r, &used), 1);
    CHECK_STR(r.text, "tab\there");
    se_reply_free(&r);
}

TEST(reply_mismatched_codes_rejected)
{
    se_reply r;
    size_t used;
    char why[128];
    const char *s = "250-a\r\n251 b\r\n";
    CHECK_INT(se_reply_parse(s, strlen(s), &r, &used, why, sizeof why), -1);
    CHECK(strstr(why, "different codes") != NULL);
}

TEST(reply_bad_codes_rejected)
{
    se_reply r;
    size_t used;
    CHECK_INT(parse("100 x\r\n", &r, &used), -1);
    CHECK_INT(parse("199 x\r\n", &r, &used), -1);
    CHECK_INT(parse("600 x\r\n", &r, &used), -1);
    CHECK_INT(parse("25 x\r\n", &r, &used), -1);
    CHECK_INT(parse("25x ok\r\n", &r, &used), -1);
    CHECK_INT(parse("250x\r\n", &r, &used), -1);
    CHECK_INT(parse("hello\r\n", &r, &used), -1);
    CHECK_INT(parse("\r\n", &r, &used), -1);
}

TEST(reply_line_length_bound)
{
    /* exactly SE_REPLY_MAX_LINE octets before CRLF: accepted */
    char *s = malloc(SE_REPLY_MAX_LINE + 8);
    memcpy(s, "250 ", 4);
    memset(s + 4, 'x', SE_REPLY_MAX_LINE - 4);
    memcpy(s + SE_REPLY_MAX_LINE, "\r\n", 3);
    se_reply r;
    size_t used;
    CHECK_INT(parse(s, &r, &used), 1);
    CHECK_INT(used, SE_REPLY_MAX_LINE + 2);
    se_reply_free(&r);
    /* one more: refused, also before its line end arrives */
    memset(s + 4, 'x', SE_REPLY_MAX_LINE - 3);
    memcpy(s + SE_REPLY_MAX_LINE + 1, "\r\n", 3);
    CHECK_INT(parse(s, &r, &used), -1);
    s[SE_REPLY_MAX_LINE + 1] = 'x';
    s[SE_REPLY_MAX_LINE + 2] = '\0';
    CHECK_INT(parse(s, &r, &used), -1);
    free(s);
}

TEST(reply_line_count_bound)
{
    size_t n = SE_REPLY_MAX_LINES + 1;
    char *s = malloc(n * 7 + 1), *p = s;
    for (size_t i = 0; i < n; i++, p += 7)
        memcpy(p, i + 1 == n ? "250 x\r\n" : "250-x\r\n", 7);
    *p = '\0';
    se_reply r;
    size_t used;
    CHECK_INT(parse(s, &r, &used), -1);
    /* SE_REPLY_MAX_LINES lines is fine */
    CHECK_INT(parse(s + 7, &r, &used), 1);
    CHECK_INT(r.n_lines, SE_REPLY_MAX_LINES);
    se_reply_free(&r);
    free(s);
}

TEST(reply_enhanced_parsed_and_stripped)
{
    se_reply r;
    size_t used;
    const char *s = "550-5.1.1 The email account that you tried to reach does not exist.\r\n"
                    "550-5.1.1 Please try\r\n"
                    "550 5.1.1 double-checking.\r\n";
    CHECK_INT(parse(s, &r, &used), 1);
    CHECK_INT(r.code, 550);
    CHECK_STR(r.enhanced, "5.1.1");
    CHECK_STR(r.text, "The email account that you tried to reach does not exist.\n"
                      "Please try\ndouble-checking.");
    se_reply_free(&r);

    CHECK_INT(parse("250 2.0.0\r\n", &r, &used), 1);
    CHECK_STR(r.enhanced, "2.0.0");
    CHECK_STR(r.text, "");
    se_reply_free(&r);

    CHECK_INT(parse("452 4.5.3 Too many recipients\r\n", &r, &used), 1);
    CHECK_STR(r.enhanced, "4.5.3");
    CHECK_STR(r.text, "Too many recipients");
    se_reply_free(&r);

    CHECK_INT(parse("250 2.123.999 ok\r\n", &r, &used), 1);
    CHECK_STR(r.enhanced, "2.123.999");
    se_reply_free(&r);
}

TEST(reply_enhanced_class_mismatch_ignored)
{
    se_reply r;
    size_t used;
    CHECK_INT(parse("250 5.1.1 but it worked\r\n", &r, &used), 1);
    CHECK_INT(r.code, 250);
    CHECK_STR(r.enhanced, "");
    CHECK_STR(r.text, "5.1.1 but it worked");
    se_reply_free(&r);

    CHECK_INT(parse("550 4.7.1 odd\r\n", &r, &used), 1);
    CHECK_STR(r.enhanced, "");
    CHECK_STR(r.text, "4.7.1 odd");
    se_reply_free(&r);
}

TEST(reply_enhanced_malformed_ignored)
{
    se_reply r;
    size_t used;
    static const struct {
        const char *in, *text;
    } bad[] = {
        {"550 5.1 x\r\n", "5.1 x"},           {"550 5.1.1234 x\r\n", "5.1.1234 x"},
        {"550 5.1.1x y\r\n", "5.1.1x y"},     {"550 5..1 x\r\n", "5..1 x"},
        {"550 3.1.1 x\r\n", "3.1.1 x"},       {"550 5.1.\r\n", "5.1."},
        {"550 5.1234.1 x\r\n", "5.1234.1 x"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        CHECK_INT(parse(bad[i].in, &r, &used), 1);
        CHECK_STR(r.enhanced, "");
        CHECK_STR(r.text, bad[i].text);
        se_reply_free(&r);
    }
}

TEST(reply_enhanced_only_from_first_line)
{
    se_reply r;
    size_t used;
    /* the first line has none: later lines keep theirs as text */
    CHECK_INT(parse("550-no code here\r\n550 5.1.1 later\r\n", &r, &used), 1);
    CHECK_STR(r.enhanced, "");
    CHECK_STR(r.text, "no code here\n5.1.1 later");
    se_reply_free(&r);
}
