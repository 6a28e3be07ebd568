/* libFuzzer target: se_dotenv_parse (src/config.h) on a dotenv file.
 *
 * Checks, besides memory safety:
 *   - every key is a variable name ([A-Za-z_][A-Za-z0-9_]*), keys and
 *     values are NUL-terminated and no longer than the text;
 *   - the return is 0, -1 (only when the callback stopped it) or a line
 *     number within the text, with a one-line reason for a line number;
 *   - when the callback asks to stop, parsing stops at once with -1;
 *   - the same text with LF line ends written as CRLF parses to the same
 *     pairs and the same result (when the text holds no CR of its own). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

#define FAIL(...)                                                                                  \
    do {                                                                                           \
        fprintf(stderr, "fuzz_dotenv: " __VA_ARGS__);                                              \
        fputc('\n', stderr);                                                                       \
        abort();                                                                                   \
    } while (0)

typedef struct pairs {
    char *text; /* "key=value\n" for each pair, for comparison */
    size_t len, cap;
    size_t n;
    size_t stop_after; /* 0: never stop */
    size_t max_len;    /* of the input */
} pairs;

static void append(pairs *p, const char *s, size_t n)
{
    if (p->len + n + 1 > p->cap) {
        size_t cap = p->cap ? p->cap : 256;
        while (cap < p->len + n + 1)
            cap *= 2;
        p->text = realloc(p->text, cap);
        if (!p->text)
            abort();
        p->cap = cap;
    }
    memcpy(p->text + p->len, s, n);
    p->len += n;
    p->text[p->len] = '\0';
}

static int on_pair(void *arg, const char *key, const char *value)
{
    pairs *p = arg;
    size_t kl = strlen(key), vl = strlen(value);
    if (kl == 0 || kl > p->max_len || vl > p->max_len)
        FAIL("key of %zu or value of %zu octets from %zu", kl, vl, p->max_len);
    if (!((key[0] >= 'A' && key[0] <= 'Z') || (key[0] >= 'a' && key[0] <= 'z') || key[0] == '_'))
        FAIL("key '%s' does not start with a letter or '_'", key);
    for (size_t i = 0; i < kl; i++) {
        char c = key[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '_'))
            FAIL("key '%s' holds 0x%02x", key, (unsigned char)c);
    }
    append(p, key, kl);
    append(p, "=", 1);
    append(p, value, vl);
    append(p, "\n", 1);
    p->n++;
    if (p->stop_after && p->n > p->stop_after)
        FAIL("callback called again after it asked to stop");
    return p->stop_after && p->n == p->stop_after ? 1 : 0;
}

static size_t count_lines(const char *s, size_t n)
{
    size_t lines = 0;
    for (size_t i = 0; i < n; i++)
        lines += s[i] == '\n';
    return lines + (n && s[n - 1] != '\n');
}

static int parse(const char *text, size_t n, pairs *p, char *why, size_t whylen)
{
    memset(why, 'x', whylen);
    int rc = se_dotenv_parse(text, n, on_pair, p, why, whylen);
    if (rc > 0) {
        size_t wl = strnlen(why, whylen);
        if (wl == 0 || wl == whylen || memchr(why, '\n', wl) || memchr(why, '\r', wl))
            FAIL("line %d refused without a one-line reason", rc);
        if ((size_t)rc > count_lines(text, n))
            FAIL("line %d refused in a text of %zu lines", rc, count_lines(text, n));
    } else if (rc == -1) {
        if (!p->stop_after || p->n != p->stop_after)
            FAIL("-1 although the callback never asked to stop");
    } else if (rc != 0) {
        FAIL("return %d", rc);
    } else if (p->stop_after && p->n == p->stop_after) {
        FAIL("0 although the callback asked to stop");
    }
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 65536)
        return 0;
    /* byte 0: after how many pairs the callback stops (0: never) */
    const char *text = (const char *)data + 1;
    size_t n = size - 1;
    char why[128];
    pairs a = {.stop_after = data[0] % 8, .max_len = n};
    int rc = parse(text, n, &a, why, sizeof why);

    if (!memchr(text, '\r', n)) {
        char *crlf = malloc(2 * n + 1);
        size_t m = 0;
        if (!crlf)
            abort();
        for (size_t i = 0; i < n; i++) {
            if (text[i] == '\n')
                crlf[m++] = '\r';
            crlf[m++] = text[i];
        }
        pairs b = {.stop_after = a.stop_after, .max_len = m};
        int rc2 = parse(crlf, m, &b, why, sizeof why);
        if (rc2 != rc || b.len != a.len || (a.len && memcmp(a.text, b.text, a.len) != 0))
            FAIL("CRLF line ends change the result (%d -> %d)", rc, rc2);
        free(b.text);
        free(crlf);
    }
    free(a.text);
    return 0;
}
