/* libFuzzer target: the Mustache engine (src/template/) and the derived text.
 *
 * Input: one mode byte (html, text, spec), then the template.  The data is a
 * fixed object whose strings carry markup; partials "p" and "q" (and any
 * layout) are the template itself, so recursion is exercised.
 *
 * Checks, besides memory safety and termination:
 *   - a render either succeeds with out[len] == '\0' or fails with a reason
 *     that starts with the template's label;
 *   - in the HTML part, data-borne markup ("<evil") only appears when the
 *     template can write unescaped output ({{{, {{& or a changed delimiter);
 *   - the text derived from any bytes is NUL-terminated, has no internal
 *     marker byte, and (without <pre>, which keeps its lines) no line over
 *     76 columns that could have been broken. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "template/mustache.h"

#define FAIL(...)                                                                                  \
    do {                                                                                           \
        fprintf(stderr, "fuzz_template: " __VA_ARGS__);                                            \
        fputc('\n', stderr);                                                                       \
        abort();                                                                                   \
    } while (0)

static json_t *data;
static const char *cur;
static size_t cur_len;

static char *load(void *arg, const char *name, int parent, size_t *len, const char **label,
                  char *why, size_t whylen)
{
    (void)arg, (void)parent, (void)why, (void)whylen;
    if (strcmp(name, "p") && strcmp(name, "q") && strcmp(name, "base"))
        return NULL;
    char *s = malloc(cur_len + 1);
    if (!s)
        return NULL;
    memcpy(s, cur, cur_len);
    s[cur_len] = '\0';
    *len = cur_len;
    *label = name;
    return s;
}

static int has(const char *s, size_t n, const char *needle)
{
    size_t k = strlen(needle);
    for (size_t i = 0; i + k <= n; i++)
        if (!memcmp(s + i, needle, k))
            return 1;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *buf, size_t len)
{
    if (!data)
        data = json_loads("{\"a\":\"<evil>&'\\\"\",\"u\":\"javascript:x\",\"h\":\"https://x\","
                          "\"n\":3,\"r\":1.5,\"t\":true,\"z\":null,"
                          "\"l\":[{\"a\":\"<evil>\"},\"<evil>\",[1,2]],\"o\":{\"a\":\"<evil>\"}}",
                          0, NULL);
    if (len < 1 || !data)
        return 0;
    mu_mode mode = buf[0] % 3 == 0 ? MU_HTML : buf[0] % 3 == 1 ? MU_TEXT : MU_SPEC;
    cur = (const char *)buf + 1;
    cur_len = len - 1;
    mu_opts o = {.mode = mode, .allow_missing = buf[0] & 4, .load = load, .label = "fz",
                 .max_output = 1 << 20};
    char *out = NULL, why[400] = "";
    size_t n = 0;
    if (mu_render(cur, cur_len, data, &o, &out, &n, why, sizeof why) == 0) {
        if (!out || out[n] != '\0')
            FAIL("output not NUL-terminated");
        if (mode == MU_HTML && has(out, n, "<evil") && !has(cur, cur_len, "{{{") &&
            !has(cur, cur_len, "{{&") && !has(cur, cur_len, "=") && !has(cur, cur_len, "<evil"))
            FAIL("data-borne markup in the HTML part");
        free(out);
    } else if (strncmp(why, "fz", 2) && strncmp(why, "p", 1) && strncmp(why, "q", 1) &&
               strncmp(why, "base", 4)) {
        FAIL("failure without a labelled reason: %s", why);
    }
    size_t tl = 0;
    char *text = mu_html_to_text(cur, cur_len, &tl);
    int pre = 0;
    for (size_t i = 0; i + 3 <= cur_len && !pre; i++)
        pre = (cur[i] | 0x20) == 'p' && (cur[i + 1] | 0x20) == 'r' && (cur[i + 2] | 0x20) == 'e';
    if (!text || text[tl] != '\0')
        FAIL("derived text not NUL-terminated");
    for (size_t i = 0, col = 0, space = 0; i < tl; i++) {
        if (text[i] == '\x01')
            FAIL("marker byte left in the text");
        if (text[i] == '\n') {
            col = space = 0;
            continue;
        }
        if ((text[i] & 0xC0) != 0x80)
            col++;
        if (text[i] == ' ' && col > 1)
            space = 1;
        if (!pre && col > 76 && space && text[i] == ' ')
            FAIL("line longer than 76 columns with a place to break it");
    }
    free(text);
    return 0;
}
