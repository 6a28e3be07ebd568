/* Filling scalr_email_error: the one place errors are worded. */
#ifndef SE_ERROR_H
#define SE_ERROR_H

#include "scalr_email.h"

/* Set code, stage and a printf-style message; clears the SMTP fields.
 * Returns code, so callers can `return se_fail(err, ...)`. err may be NULL. */
scalr_email_code se_fail(scalr_email_error *err, scalr_email_code code, const char *stage,
                         const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Reset to SCALR_EMAIL_OK with every field empty. */
void se_error_clear(scalr_email_error *err);

/* Copy src into a fixed buffer, truncating, replacing control bytes with
 * spaces so that messages stay one line. */
void se_copy_line(char *dst, size_t dstlen, const char *src, size_t srclen);

#endif
