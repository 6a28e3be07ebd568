/* Fault injection for the inbox's SMTP side: rules per stage that answer a
 * chosen reply, with a probability or for matching addresses, after a
 * delay, or drop the connection.  Thread-safe; changed at run time. */
#ifndef IB_CHAOS_H
#define IB_CHAOS_H

#include <stddef.h>

typedef enum ib_stage {
    IB_STAGE_CONNECT,
    IB_STAGE_EHLO,
    IB_STAGE_AUTH,
    IB_STAGE_MAIL,
    IB_STAGE_RCPT,
    IB_STAGE_DATA, /* end of DATA or BDAT LAST: the verdict on the message */
    IB_STAGE_COUNT
} ib_stage;

typedef struct ib_chaos ib_chaos;

typedef struct ib_verdict {
    int act;           /* 0: proceed normally; 1: reply; 2: disconnect */
    int code;          /* with act 1: e.g. 451 */
    char text[256];    /* with act 1: "4.3.0 try later" */
    unsigned delay_ms; /* wait this long first (any act) */
} ib_verdict;

ib_chaos *ib_chaos_new(void);
void ib_chaos_free(ib_chaos *c);

/* Parse and add one rule in the command-line syntax (documented in the
 * README):  STAGE:ACTION[:opt=value...]
 *   STAGE   connect | ehlo | auth | mail | rcpt | data
 *   ACTION  CODE[ TEXT] (e.g. "451 4.3.0 try later") | disconnect | delay=MS
 *   options p=0.25 (probability), match=SUBSTRING (address for mail/rcpt),
 *           delay=MS
 * Examples: "rcpt:550 5.1.1 no such user:match=bad@",
 *           "data:451 4.3.0 try later:p=0.5", "mail:disconnect",
 *           "ehlo:delay=2000".
 * 0 ok, -1 with a reason in why. */
int ib_chaos_add(ib_chaos *c, const char *rule, char *why, size_t whylen);
void ib_chaos_clear(ib_chaos *c);

/* Rules as a JSON array string (malloc'd), for the API. */
char *ib_chaos_json(ib_chaos *c);

/* What to do at `stage`; arg is the address for MAIL/RCPT, else NULL. */
ib_verdict ib_chaos_check(ib_chaos *c, ib_stage stage, const char *arg);

#endif
