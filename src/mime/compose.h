/* The message composer: scalr_email_message -> RFC 5322 / MIME bytes. */
#ifndef SE_COMPOSE_H
#define SE_COMPOSE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "scalr_email.h"
#include "util/buf.h"

typedef struct se_compose_opts {
    /* For reproducible tests: 0 means "now". */
    time_t now;
    /* For reproducible tests: when non-NULL, fills buf with n "random" bytes
     * instead of OpenSSL's RAND_bytes (boundaries, Message-ID). */
    void (*random)(void *arg, unsigned char *buf, size_t n);
    void *random_arg;
} se_compose_opts;

typedef struct se_composed {
    se_buf data;          /* the message: headers + body, CRLF line
                             endings, not dot-stuffed, ends with CRLF      */
    char *mail_from;      /* envelope sender (addr-spec)                   */
    char **rcpt;          /* envelope recipients: to, cc, bcc (deduplicated,
                             in that order), each an addr-spec             */
    size_t n_rcpt;
    int needs_smtputf8;   /* an envelope address is non-ASCII              */
    int is_8bit;          /* the data contains bytes >= 0x80 (then BODY=8BITMIME) */
    char message_id[256]; /* "<...@domain>"                                */
} se_composed;

/* Validate and compose msg.  default_from is used when msg->sender is NULL
 * (NULL too: ENOTCONFIGURED, stage "CONFIG").  Bad input: EINVAL with a
 * one-line reason naming the field (stage "COMPOSE"); unreadable attachment:
 * EFILE.  On success out must be released with se_composed_free. */
scalr_email_code se_compose(const scalr_email_message *msg, const char *default_from,
                            const se_compose_opts *opts, se_composed *out,
                            scalr_email_error *err);
void se_composed_free(se_composed *c);

#endif
