/* SMTP reply parsing (RFC 5321 4.2, enhanced codes RFC 2034 / RFC 3463). */
#ifndef SE_SMTP_REPLY_H
#define SE_SMTP_REPLY_H

#include <stddef.h>

#define SE_REPLY_MAX_LINE 2048 /* longer reply lines are a protocol error */
#define SE_REPLY_MAX_LINES 256 /* so is a reply with more lines than this */

typedef struct se_reply {
    int code;          /* 3 digits */
    char enhanced[16]; /* "2.1.0" when the first line carries one, else "" */
    char *text;        /* malloc'd: the lines' texts joined by '\n',
                          enhanced code removed from each line */
    size_t n_lines;
} se_reply;

/* Try to parse one complete reply at buf[0..len).
 * Returns 1 and sets *used to the bytes it spans; 0 when more bytes are
 * needed; -1 when the bytes are not a valid reply (bad code, lines with
 * different codes, a line over SE_REPLY_MAX_LINE, too many lines, a NUL, a
 * bare LF is tolerated but a bare CR is not), with a reason in why;
 * -2 out of memory.  Release with se_reply_free. */
int se_reply_parse(const char *buf, size_t len, se_reply *out, size_t *used, char *why,
                   size_t whylen);
void se_reply_free(se_reply *r);

#endif
