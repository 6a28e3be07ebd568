#include "util/buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int se_buf_reserve(se_buf *b, size_t extra)
{
    if (b->oom)
        return -1;
    if (b->len + extra + 1 <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1) {
        if (cap > (size_t)-1 / 2) {
            b->oom = 1;
            return -1;
        }
        cap *= 2;
    }
    char *p = realloc(b->data, cap);
    if (!p) {
        b->oom = 1;
        return -1;
    }
    b->data = p;
    b->cap = cap;
    return 0;
}

int se_buf_append(se_buf *b, const void *p, size_t n)
{
    if (se_buf_reserve(b, n) < 0)
        return -1;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int se_buf_puts(se_buf *b, const char *s)
{
    return se_buf_append(b, s, strlen(s));
}

int se_buf_printf(se_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || se_buf_reserve(b, (size_t)n) < 0)
        return -1;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

void se_buf_consume(se_buf *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
    } else {
        memmove(b->data, b->data + n, b->len - n);
        b->len -= n;
    }
    if (b->data)
        b->data[b->len] = '\0';
}

void se_buf_reset(se_buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

void se_buf_free(se_buf *b)
{
    free(b->data);
    *b = (se_buf){0};
}

char *se_buf_steal(se_buf *b, size_t *len)
{
    if (b->oom) {
        se_buf_free(b);
        return NULL;
    }
    if (!b->data) {
        if (se_buf_reserve(b, 0) < 0)
            return NULL;
        b->data[0] = '\0';
    }
    char *p = b->data;
    if (len)
        *len = b->len;
    *b = (se_buf){0};
    return p;
}
