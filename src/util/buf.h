/* Growable byte buffer.  Out of memory is sticky: after one failed append
 * every later append fails too, so callers may check once at the end. */
#ifndef SE_BUF_H
#define SE_BUF_H

#include <stdarg.h>
#include <stddef.h>

typedef struct se_buf {
    char *data; /* always NUL-terminated when non-NULL (not counted in len) */
    size_t len;
    size_t cap;
    int oom;
} se_buf;

int se_buf_append(se_buf *b, const void *p, size_t n); /* 0 ok, -1 oom */
int se_buf_puts(se_buf *b, const char *s);
int se_buf_printf(se_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int se_buf_reserve(se_buf *b, size_t extra);
void se_buf_consume(se_buf *b, size_t n); /* drop n bytes from the front */
void se_buf_reset(se_buf *b);             /* len = 0, keeps memory */
void se_buf_free(se_buf *b);
char *se_buf_steal(se_buf *b, size_t *len); /* hand data to the caller */

#endif
