/* See tags.h. */
#include "tags.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/buf.h"

int ib_tag_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > IB_TAG_MAX_LEN || s[0] == ' ' || s[n - 1] == ' ')
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f || s[i] == ',')
            return 0;
    return 1;
}

/* Is ",tag," (tl octets) already in b? */
static int has_tag(const se_buf *b, const char *tag, size_t tl)
{
    for (size_t i = 0; b->data && i + tl + 1 < b->len; i++)
        if (b->data[i] == ',' && strncasecmp(b->data + i + 1, tag, tl) == 0 &&
            b->data[i + 1 + tl] == ',')
            return 1;
    return 0;
}

char *ib_tags_normalize(const char *csv)
{
    se_buf b = {0};
    size_t count = 0;
    se_buf_puts(&b, ",");
    for (const char *p = csv ? csv : ""; *p && count < IB_TAGS_MAX;) {
        const char *e = strchr(p, ',');
        if (!e)
            e = p + strlen(p);
        char tag[IB_TAG_MAX_LEN + 1];
        size_t tl = 0;
        for (const char *q = p; q < e && tl < IB_TAG_MAX_LEN; q++)
            if ((unsigned char)*q >= 0x20 && *q != 0x7f && !(tl == 0 && (*q == ' ' || *q == '\t')))
                tag[tl++] = *q;
        while (tl && (tag[tl - 1] == ' ' || tag[tl - 1] == '\t'))
            tl--;
        tag[tl] = '\0';
        if (tl && !has_tag(&b, tag, tl)) {
            se_buf_append(&b, tag, tl);
            se_buf_puts(&b, ",");
            count++;
        }
        p = *e ? e + 1 : e;
    }
    if (b.len == 1)
        b.len = 0, b.data[0] = '\0';
    if (b.oom) {
        se_buf_free(&b);
        return NULL;
    }
    return se_buf_steal(&b, NULL);
}
