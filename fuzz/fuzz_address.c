/* libFuzzer target: se_address_parse (src/mime/address.h).
 *
 * The input (up to its first NUL) is one address as a caller would pass it.
 * Checks, besides memory safety:
 *   - success: addr is one "local@domain" without CR, LF, space, '<', '>',
 *     other specials or any control byte, within the RFC 5321 4.5.3.1
 *     limits, not starting with '-'; the display name is UTF-8 without
 *     control bytes; parsing the addr alone, or "<addr>", gives the same
 *     addr and no display name;
 *   - failure: a one-line reason and nothing allocated. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mime/address.h"
#include "mime/encode.h"

#define FAIL(...)                                                                                  \
    do {                                                                                           \
        fprintf(stderr, "fuzz_address: " __VA_ARGS__);                                             \
        fputc('\n', stderr);                                                                       \
        abort();                                                                                   \
    } while (0)

static void check_addr(const char *in, const char *a)
{
    size_t n = strlen(a);
    const char *at = strchr(a, '@');
    if (!at || strchr(at + 1, '@'))
        FAIL("addr '%s' from '%s' has not exactly one '@'", a, in);
    if (at == a || !at[1])
        FAIL("addr '%s' has an empty part", a);
    if ((size_t)(at - a) > 64 || n > 254)
        FAIL("addr '%s' over the RFC 5321 limits", a);
    if (a[0] == '-')
        FAIL("addr '%s' starts with '-'", a);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)a[i];
        /* RFC 5322 3.2.3: no specials in a dot-atom (nor space, controls) */
        if (c <= 0x20 || c == 0x7f || strchr("()<>[]:;,\\\"", c))
            FAIL("addr '%s' from '%s' holds byte 0x%02x", a, in, c);
    }
    int high = 0;
    for (size_t i = 0; i < n; i++)
        high |= (unsigned char)a[i] >= 0x80;
    if (se_address_needs_utf8(a) != high)
        FAIL("se_address_needs_utf8('%s') is wrong", a);
    if (strcmp(se_address_domain(a), at + 1) != 0)
        FAIL("se_address_domain('%s') is wrong", a);
}

static void check_display(const char *d)
{
    size_t n = strlen(d);
    if (!se_utf8_valid(d, n))
        FAIL("display name is not UTF-8");
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)d[i];
        if (c < 0x20 || c == 0x7f)
            FAIL("display name holds control byte 0x%02x", c);
    }
}

/* Parsing `text` must give exactly addr and no display name. */
static void reparse(const char *text, const char *addr)
{
    se_address again;
    char why[160];
    if (se_address_parse(text, &again, why, sizeof why) != 0)
        FAIL("'%s' no longer parses: %s", text, why);
    if (strcmp(again.addr, addr) != 0)
        FAIL("'%s' parses to '%s', not itself", text, again.addr);
    if (again.display)
        FAIL("'%s' has a display name '%s'", text, again.display);
    se_address_free(&again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096)
        return 0;
    char *in = malloc(size + 1);
    if (!in)
        abort();
    memcpy(in, data, size);
    in[size] = '\0';

    se_address a;
    char why[160];
    memset(why, 'x', sizeof why);
    if (se_address_parse(in, &a, why, sizeof why) != 0) {
        size_t wl = strnlen(why, sizeof why);
        if (wl == sizeof why || wl == 0)
            FAIL("failure without a terminated reason");
        if (memchr(why, '\n', wl) || memchr(why, '\r', wl))
            FAIL("reason is not one line");
        if (a.addr || a.display)
            FAIL("failure left allocations behind");
        free(in);
        return 0;
    }
    if (!a.addr)
        FAIL("success without an addr");
    check_addr(in, a.addr);
    if (a.display)
        check_display(a.display);
    reparse(a.addr, a.addr);
    char *bracketed = malloc(strlen(a.addr) + 3);
    if (!bracketed)
        abort();
    sprintf(bracketed, "<%s>", a.addr);
    reparse(bracketed, a.addr);
    free(bracketed);
    se_address_free(&a);
    if (a.addr || a.display)
        FAIL("se_address_free left pointers");
    free(in);
    return 0;
}
