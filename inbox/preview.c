/* See preview.h. */
#include "preview.h"

#include <stddef.h>
#include <string.h>
#include <strings.h>

static size_t skip_ws(const char *p, size_t i, size_t n)
{
    while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r' || p[i] == '\n'))
        i++;
    return i;
}

int ib_preview_dark(se_buf *html)
{
    static const char key[] = "prefers-color-scheme";
    const size_t kl = sizeof key - 1;
    const char *p = html->data;
    size_t n = html->len, lit = 0;
    if (!p)
        return 0;
    se_buf out = {0};
    for (size_t i = 0; i + kl <= n; i++) {
        if (strncasecmp(p + i, key, kl) != 0)
            continue;
        size_t j = skip_ws(p, i + kl, n);
        if (j >= n || p[j] != ':')
            continue;
        j = skip_ws(p, j + 1, n);
        /* Media features that are always / never true in a visible frame. */
        const char *with = NULL;
        size_t vl = 0;
        if (n - j >= 4 && strncasecmp(p + j, "dark", 4) == 0)
            with = "min-width: 0px", vl = 4;
        else if (n - j >= 5 && strncasecmp(p + j, "light", 5) == 0)
            with = "max-width: 0px", vl = 5;
        if (!with)
            continue;
        se_buf_append(&out, p + lit, i - lit);
        se_buf_puts(&out, with);
        lit = i = j + vl;
        i--;
    }
    if (lit == 0) {
        se_buf_free(&out);
        return 0;
    }
    se_buf_append(&out, p + lit, n - lit);
    if (out.oom) {
        se_buf_free(&out);
        return -1;
    }
    se_buf_free(html);
    *html = out;
    return 0;
}
