/* The dev inbox's DKIM check: the key records given with --dkim-record
 * (lines as in DNS) and, for one message, each signature's verdict and why
 * it fails, as JSON.  The verdict is made once, when the message arrives,
 * and kept with it in the store (store.h), so listing never verifies. */
#ifndef IB_DKIMCHECK_H
#define IB_DKIMCHECK_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* Read a --dkim-record file (may be given more than once).  0 ok, -1 with
 * why filled.  Call before any thread starts: the records are then fixed. */
int ib_dkim_records(const char *path, char *why, size_t whylen);
int ib_dkim_configured(void); /* was --dkim-record given */
void ib_dkim_free(void);

/* Identifies the record set and the checker's rules: a stored verdict made
 * under another generation (an inbox restarted on its --db with other
 * records) is stale and made again.  Never 0. */
int64_t ib_dkim_generation(void);

/* The verdict on raw[0..len):
 *   {"status": "pass"|"fail"|"nokey"|"none",
 *    "signatures": [{"domain", "selector", "algorithm", "ok", "why",
 *                    "unsigned": [names], "not_oversigned": [names]}]}
 * pass: every signature verifies; fail: one fails for a reason other than a
 * missing key record; nokey: the only failures are missing key records;
 * none: no DKIM-Signature.  NULL when out of memory. */
json_t *ib_dkim_check(const char *raw, size_t len);

/* The same, as compact JSON text (malloc'd), for the store. */
char *ib_dkim_check_text(const char *raw, size_t len);

#endif
