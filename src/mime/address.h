/* Strict parsing of one address as the API accepts it:
 *   "user@example.com", "<user@example.com>", "Name <user@example.com>",
 *   "\"Last, First\" <user@example.com>", "Zoë Ünïcode <user@example.com>".
 * One parser serves headers and envelope, so both always agree. */
#ifndef SE_ADDRESS_H
#define SE_ADDRESS_H

#include <stddef.h>

typedef struct se_address {
    char *display; /* decoded display name (UTF-8), or NULL when none */
    char *addr;    /* addr-spec "local@domain", as used in MAIL/RCPT */
} se_address;

/* Parse `in`.  Returns 0, or -1 with a reason in why (one line) for:
 * CR/LF/NUL/control characters anywhere, quoted local parts, comments,
 * groups, more than one address, a local part over 64 octets, a domain over
 * 255, an address over 254, empty labels, a leading '-', bad characters.
 * Non-ASCII is allowed in the display name and in the address (the latter
 * then needs SMTPUTF8, see se_address_needs_utf8). On success free with
 * se_address_free. */
int se_address_parse(const char *in, se_address *out, char *why, size_t whylen);
void se_address_free(se_address *a);

/* 1 if addr-spec contains any non-ASCII byte (needs SMTPUTF8). */
int se_address_needs_utf8(const char *addr);

/* The domain part of an addr-spec (pointer into addr, after the '@'). */
const char *se_address_domain(const char *addr);

#endif
