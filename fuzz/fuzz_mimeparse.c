/* libFuzzer target: the inbox's message reader (inbox/mimeparse.h) on a
 * raw stored message.
 *
 * Checks, besides memory safety and bounded work:
 *   - decoded header values (ib_decode_header, ib_header_get) are UTF-8
 *     without control bytes, so they are safe to show on one line;
 *   - ib_mime_parts succeeds with at most 1000 parts; every content type
 *     is "type/subtype", two RFC 2045 tokens in lower case; the file name
 *     is UTF-8 without control bytes, charset and content id one line;
 *     every body is NUL-terminated and no part decodes to more than the
 *     input holds;
 *   - the same input gives the same parts twice (no hidden state). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mimeparse.h"

#define FAIL(...)                                                                                  \
    do {                                                                                           \
        fprintf(stderr, "fuzz_mimeparse: " __VA_ARGS__);                                           \
        fputc('\n', stderr);                                                                       \
        abort();                                                                                   \
    } while (0)

/* RFC 3629: well-formed UTF-8, no overlongs, surrogates or > U+10FFFF. */
static int utf8_ok(const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        unsigned char c = s[i];
        size_t len;
        unsigned char lo = 0x80, hi = 0xbf;
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xc2 && c <= 0xdf) {
            len = 2;
        } else if (c >= 0xe0 && c <= 0xef) {
            len = 3;
            lo = c == 0xe0 ? 0xa0 : 0x80;
            hi = c == 0xed ? 0x9f : 0xbf;
        } else if (c >= 0xf0 && c <= 0xf4) {
            len = 4;
            lo = c == 0xf0 ? 0x90 : 0x80;
            hi = c == 0xf4 ? 0x8f : 0xbf;
        } else {
            return 0;
        }
        if (i + len > n || s[i + 1] < lo || s[i + 1] > hi)
            return 0;
        for (size_t k = 2; k < len; k++)
            if (s[i + k] < 0x80 || s[i + k] > 0xbf)
                return 0;
        i += len;
    }
    return 1;
}

static void check_line(const char *s, const char *what)
{
    if (!s)
        return;
    size_t n = strlen(s);
    if (!utf8_ok((const unsigned char *)s, n))
        FAIL("%s is not UTF-8", what);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            FAIL("%s holds control byte 0x%02x", what, (unsigned char)s[i]);
}

static void check_type(const char *t)
{
    if (!t)
        FAIL("part without a content type");
    const char *slash = strchr(t, '/');
    if (!slash || slash == t || !slash[1])
        FAIL("content type '%s' is not type/subtype", t);
    /* RFC 2045 5.1: type and subtype are tokens; ours are in lower case */
    for (const unsigned char *p = (const unsigned char *)t; *p; p++)
        if (*p <= 0x20 || *p >= 0x7f || (*p >= 'A' && *p <= 'Z') ||
            (p != (const unsigned char *)slash && strchr("()<>@,;:\\\"/[]?=", *p)))
            FAIL("content type '%s' holds byte 0x%02x", t, *p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1 << 20)
        return 0;
    const char *raw = (const char *)data;

    char *v = ib_decode_header(raw, size < 4096 ? size : 4096);
    if (!v)
        FAIL("ib_decode_header returned NULL");
    check_line(v, "decoded header");
    free(v);

    static const char *const names[] = {"Subject", "From", "To", "Content-Type"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char *h = ib_header_get(raw, size, names[i]);
        check_line(h, names[i]);
        free(h);
    }

    ib_part *parts = NULL, *again = NULL;
    size_t n = 0, n2 = 0;
    if (ib_mime_parts(raw, size, &parts, &n) != 0)
        FAIL("ib_mime_parts failed");
    if (n > 1000)
        FAIL("%zu parts", n);
    for (size_t i = 0; i < n; i++) {
        const ib_part *p = &parts[i];
        check_type(p->content_type);
        check_line(p->filename, "file name");
        /* raw parameter values: only one line each */
        if ((p->charset && strpbrk(p->charset, "\r\n")) ||
            (p->content_id && strpbrk(p->content_id, "\r\n")))
            FAIL("part %zu: charset or content id with a line break", i);
        if (!p->body || p->body[p->body_len] != '\0')
            FAIL("part %zu body not NUL-terminated", i);
        if (!p->headers)
            FAIL("part %zu without headers", i);
        if (p->body_len > size)
            FAIL("part %zu decodes to %zu octets from %zu", i, p->body_len, size);
    }
    if (ib_mime_parts(raw, size, &again, &n2) != 0 || n2 != n)
        FAIL("a second walk gives %zu parts, not %zu", n2, n);
    for (size_t i = 0; i < n; i++)
        if (again[i].body_len != parts[i].body_len ||
            memcmp(again[i].body, parts[i].body, parts[i].body_len) != 0 ||
            strcmp(again[i].content_type, parts[i].content_type) != 0)
            FAIL("a second walk gives another part %zu", i);
    ib_mime_parts_free(parts, n);
    ib_mime_parts_free(again, n2);
    return 0;
}
