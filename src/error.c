#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *scalr_email_strerror(scalr_email_code code)
{
    switch (code) {
    case SCALR_EMAIL_OK: return "sent";
    case SCALR_EMAIL_ENOTCONFIGURED: return "SMTP is not configured";
    case SCALR_EMAIL_ECONFIG: return "invalid configuration";
    case SCALR_EMAIL_EINVAL: return "invalid message input";
    case SCALR_EMAIL_EFILE: return "input file unreadable";
    case SCALR_EMAIL_EREJECTED: return "permanent rejection";
    case SCALR_EMAIL_ETRANSIENT: return "temporary failure";
    case SCALR_EMAIL_ETOOBIG: return "message too big for the server";
    case SCALR_EMAIL_EUNSUPPORTED: return "server lacks a required extension";
    case SCALR_EMAIL_ECONNECT: return "connection failed";
    case SCALR_EMAIL_ETLS: return "TLS failure";
    case SCALR_EMAIL_EINSECURE: return "refused to send credentials unencrypted";
    case SCALR_EMAIL_EAUTH: return "authentication failed";
    case SCALR_EMAIL_ETIMEOUT: return "timed out";
    case SCALR_EMAIL_EPROTOCOL: return "SMTP protocol error";
    case SCALR_EMAIL_EIO: return "I/O error";
    case SCALR_EMAIL_ENOMEM: return "out of memory";
    case SCALR_EMAIL_ESTORE: return "queue database error";
    case SCALR_EMAIL_ENOTFOUND: return "no such queued message";
    }
    return "unknown error";
}

void se_copy_line(char *dst, size_t dstlen, const char *src, size_t srclen)
{
    if (!dstlen)
        return;
    size_t n = srclen < dstlen - 1 ? srclen : dstlen - 1;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)src[i];
        dst[i] = (c < 0x20 || c == 0x7f) ? ' ' : (char)c;
    }
    dst[n] = '\0';
}

void se_error_clear(scalr_email_error *err)
{
    if (err)
        memset(err, 0, sizeof *err);
}

scalr_email_code se_fail(scalr_email_error *err, scalr_email_code code, const char *stage,
                         const char *fmt, ...)
{
    if (!err)
        return code;
    char msgid[sizeof err->message_id];
    memcpy(msgid, err->message_id, sizeof msgid);
    memset(err, 0, sizeof *err);
    memcpy(err->message_id, msgid, sizeof msgid);
    err->code = code;
    if (stage)
        snprintf(err->stage, sizeof err->stage, "%s", stage);
    char tmp[sizeof err->message];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    se_copy_line(err->message, sizeof err->message, tmp, strlen(tmp));
    return code;
}
