/* Internals of caller-composed messages, shared by raw.c (sending) and
 * queue/queue.c (enqueueing). */
#ifndef SE_RAW_INT_H
#define SE_RAW_INT_H

#include "mime/ingest.h"
#include "scalr_email.h"
#include "util/buf.h"

struct scalr_email_raw {
    se_ingest in;
    char *full_name; /* -F, or NULL */
};

/* The envelope and the fields to add, checked before anything is sent. */
typedef struct se_raw_env {
    char *mail_from; /* addr-spec, "" for <> */
    char **rcpt;     /* addr-specs, de-duplicated */
    size_t n_rcpt;
    int addr_utf8; /* an envelope address is non-ASCII */
    se_buf add;    /* Date, Message-ID, From when missing */
    char message_id[256];
} se_raw_env;

/* Finish reading r, check the envelope (EINVAL, ENOTCONFIGURED) and make
 * the fields to add.  default_from: the configured sender, or NULL. */
scalr_email_code se_raw_prepare(scalr_email_raw *r, const char *mail_from, const char *const *rcpt,
                                const char *default_from, se_raw_env *e, scalr_email_error *err);
void se_raw_env_free(se_raw_env *e);

/* DKIM for a caller-composed message.  The body hash (RFC 6376 3.4.4) is
 * taken in a first pass over the body as it will be sent, read back from
 * the spool when it is big, so memory stays flat. */
struct se_dkim_signer;
scalr_email_code se_raw_body_hash(const scalr_email_raw *r, unsigned char bh[32],
                                  scalr_email_error *err);
/* Put the signature fields in front of head (the header block as
 * se_ingest_header made it: the fields, then the empty line); the From
 * domain must match as for every signed send (ECONFIG). */
scalr_email_code se_raw_dkim_sign(const struct se_dkim_signer *s, const unsigned char bh[32],
                                  se_buf *head, scalr_email_error *err);

#endif
