/* Transfer encodings and header encodings (RFC 2045, 2047, 2231). */
#ifndef SE_ENCODE_H
#define SE_ENCODE_H

#include <stddef.h>

#include "util/buf.h"

/* 1 if s[0..n) is well-formed UTF-8 (no overlongs, no surrogates). */
int se_utf8_valid(const char *s, size_t n);

/* Base64 with CRLF after every 76 characters and at the end (RFC 2045 6.8). */
int se_base64_lines(se_buf *out, const void *data, size_t n);

/* Quoted-printable (RFC 2045 6.7) of text whose line breaks are already CRLF:
 * lines <= 76 chars with soft breaks; CRLF kept as hard breaks. */
int se_qp_encode(se_buf *out, const char *text, size_t n);

/* Turn bare CR and bare LF into CRLF (RFC 5321 2.3.8). */
int se_crlf_normalise(se_buf *out, const char *text, size_t n);

/* Append an unstructured header field "Name: value\r\n", folded to <= 78
 * columns, value as RFC 2047 encoded-words when it is not plain printable
 * ASCII (each word <= 75 chars, whole UTF-8 characters only, words separated
 * by folding white space). */
int se_header_unstructured(se_buf *out, const char *name, const char *value);

/* Append an RFC 5322 display-name phrase: as atoms, a quoted-string, or RFC
 * 2047 encoded-words for non-ASCII text. */
int se_header_phrase(se_buf *out, const char *display);

/* Append `; name=value` for a MIME parameter, using RFC 2231 (name*=utf-8''..
 * with continuations name*0*=, name*1*=...) when value is non-ASCII or long. */
int se_mime_param(se_buf *out, const char *name, const char *value);

#endif
