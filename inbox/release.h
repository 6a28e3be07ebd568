/* Release: pass a caught message on to a real mailbox through a relay
 * configured for the inbox (--release-env FILE, the usual SMTP_* names,
 * sent by the library itself), only to recipients on the allow list
 * (--release-allow PATTERN), so the inbox is never an open relay. */
#ifndef IB_RELEASE_H
#define IB_RELEASE_H

#include <stddef.h>

#include "scalr_email.h"

/* Add an allow-list pattern: "*@example.com", "me@example.com", "*"
 * allowed only in the local part ("*" alone: anyone).  -1: malformed or
 * too many (why filled).  Before ib_release_init. */
int ib_release_allow(const char *pattern, char *why, size_t whylen);

/* Make the relay's client from env_file (the environment wins, as for
 * every scalr-email command).  Refuses a relay that is this inbox's own
 * SMTP listener (a loop).  ECONFIG/ENOTCONFIGURED with why filled. */
scalr_email_code ib_release_init(const char *env_file, const char *self_host, unsigned self_port,
                                 char *why, size_t whylen);
int ib_release_enabled(void);
size_t ib_release_patterns(const char *const **out); /* the allow list */
void ib_release_free(void);

/* 1 when the addr-spec matches an allow-list pattern (case-insensitive). */
int ib_release_allowed(const char *addr);

/* Send raw (as caught) with a Received line in front, from the relay's
 * SMTP_FROM or else env_from, to rcpt (addr-specs, all already allowed).
 * err says what the relay answered. */
scalr_email_code ib_release_send(long long id, const char *env_from, const char *const *rcpt,
                                 const char *raw, size_t len, scalr_email_error *err);

#endif
