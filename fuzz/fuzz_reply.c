/* libFuzzer target: se_reply_parse (src/smtp/reply.h) on server bytes.
 *
 * Checks, besides memory safety:
 *   - 1: 0 < used <= len, the reply ends at a LF, code 200..599, 1..256
 *     lines, text free of CR/NUL/control bytes with n_lines-1 '\n's, and an
 *     enhanced code only of the form class.subject.detail matching the class;
 *     parsing exactly buf[0..used) gives the same reply, and no shorter
 *     prefix is anything but incomplete (0);
 *   - 0: no LF-terminated reply yet, and the parser keeps no state;
 *   - -1: a reason in why. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/reply.h"

#define FAIL(...)                                                                                  \
    do {                                                                                           \
        fprintf(stderr, "fuzz_reply: " __VA_ARGS__);                                               \
        fputc('\n', stderr);                                                                       \
        abort();                                                                                   \
    } while (0)

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* RFC 3463 2: class "." 1*3digit "." 1*3digit. */
static int enhanced_ok(const char *e, int code)
{
    if (e[0] != (char)('0' + code / 100) || e[1] != '.')
        return 0;
    const char *p = e + 2;
    for (int part = 0; part < 2; part++) {
        int k = 0;
        while (is_digit(*p)) {
            p++;
            k++;
        }
        if (k < 1 || k > 3)
            return 0;
        if (part == 0 && *p++ != '.')
            return 0;
    }
    return *p == '\0';
}

static void check_reply(const se_reply *r, const char *buf, size_t len, size_t used)
{
    if (used == 0 || used > len)
        FAIL("used %zu outside 1..%zu", used, len);
    if (buf[used - 1] != '\n')
        FAIL("reply does not end at a line feed (used %zu)", used);
    if (r->code < 200 || r->code > 599)
        FAIL("code %d outside 200..599", r->code);
    if (r->n_lines < 1 || r->n_lines > SE_REPLY_MAX_LINES)
        FAIL("%zu lines", r->n_lines);
    if (!r->text)
        FAIL("text is NULL");
    size_t nl = 0;
    for (const unsigned char *p = (const unsigned char *)r->text; *p; p++) {
        if (*p == '\n')
            nl++;
        else if (*p < 0x20 && *p != '\t') /* DEL passes, as 8-bit text does */
            FAIL("control byte 0x%02x in reply text", *p);
    }
    if (nl != r->n_lines - 1)
        FAIL("text has %zu line breaks for %zu lines", nl, r->n_lines);
    if (memchr(r->enhanced, '\0', sizeof r->enhanced) == NULL)
        FAIL("enhanced code not terminated");
    if (r->enhanced[0] && !enhanced_ok(r->enhanced, r->code))
        FAIL("enhanced code '%s' malformed for %d", r->enhanced, r->code);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    se_reply r;
    size_t used = 12345;
    char why[128];

    int rc = se_reply_parse(buf, size, &r, &used, why, sizeof why);
    if (rc == -1) {
        if (!why[0])
            FAIL("-1 without a reason");
        if (memchr(why, '\n', strlen(why)) || memchr(why, '\r', strlen(why)))
            FAIL("reason is not one line");
        return 0;
    }
    if (rc == 0) {
        if (used != 0)
            FAIL("0 with used %zu", used);
        return 0;
    }
    if (rc != 1)
        FAIL("unexpected return %d", rc);
    check_reply(&r, buf, size, used);

    /* The reply must not depend on bytes behind it. */
    se_reply again;
    size_t used2 = 0;
    if (se_reply_parse(buf, used, &again, &used2, why, sizeof why) != 1)
        FAIL("the reply alone does not parse: %s", why);
    if (used2 != used || again.code != r.code || again.n_lines != r.n_lines ||
        strcmp(again.text, r.text) != 0 || strcmp(again.enhanced, r.enhanced) != 0)
        FAIL("the reply alone parses differently");
    se_reply_free(&again);

    /* A prefix ending before the last line feed is never a complete reply. */
    size_t cut = used - 1 - (size_t)data[0] % used;
    se_reply part;
    size_t pu = 0;
    rc = se_reply_parse(buf, cut, &part, &pu, why, sizeof why);
    if (rc == 1)
        se_reply_free(&part);
    if (rc != 0)
        FAIL("prefix of %zu bytes of a %zu-byte reply gives %d, not 0", cut, used, rc);
    se_reply_free(&r);
    return 0;
}
