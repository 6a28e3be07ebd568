/* Reading stored messages for display: header decoding (RFC 2047) and a
 * MIME walker (multipart, base64, quoted-printable).  Pure functions over
 * bytes; bounded recursion and sizes, hostile input is expected. */
#ifndef IB_MIMEPARSE_H
#define IB_MIMEPARSE_H

#include <stddef.h>

/* Length of the valid UTF-8 sequence at p[0..n) (RFC 3629 4: no overlongs,
 * no surrogates, nothing past U+10FFFF), or 0 when the bytes are invalid.
 * n must be at least 1. */
size_t ib_utf8_seq(const unsigned char *p, size_t n);

/* Decode an RFC 2047 header value (unfolded first) to UTF-8; malloc'd. */
char *ib_decode_header(const char *value, size_t len);

/* The first occurrence of header `name` (case-insensitive) in raw's header
 * block, unfolded and decoded; malloc'd, or NULL when absent. */
char *ib_header_get(const char *raw, size_t len, const char *name);

typedef struct ib_part {
    char *content_type; /* "text/plain" (lower case, no parameters) */
    char *charset;      /* "utf-8" or NULL */
    char *filename;     /* decoded (RFC 2231 / 2047), or NULL */
    char *content_id;   /* without <>, or NULL */
    int is_attachment;  /* Content-Disposition attachment, or a named
                           non-text part */
    char *headers;      /* the part's raw header block */
    char *body;         /* decoded bytes (transfer encoding removed) */
    size_t body_len;
} ib_part;

/* Flatten the leaf parts of a message in order.  0 ok, -1 out of memory. */
int ib_mime_parts(const char *raw, size_t len, ib_part **parts, size_t *n);
void ib_mime_parts_free(ib_part *parts, size_t n);

#endif
