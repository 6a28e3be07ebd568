/* The public queue handle, shared by queue.c and worker.c. */
#ifndef SE_QUEUE_INT_H
#define SE_QUEUE_INT_H

#include <signal.h>

#include "dkim/dkim.h"
#include "scalr_email.h"
#include "queue/store.h"

#define SE_QUEUE_DEFAULT_URL "sqlite:scalr-email-queue.db"
#define SE_QUEUE_MAX_PROFILES 32 /* enqueue's cache; past it, the oldest is dropped */

struct scalr_email_queue {
    se_qstore *st;
    char *url;                  /* workers open one store handle per thread */
    volatile sig_atomic_t stop; /* 0 run, 1 graceful, 2 immediate */
    int wake[2];                /* self-pipe: scalr_email_queue_stop wakes the worker */
    se_dkim_signer *dkim;       /* messages are signed at enqueue: retries are identical */
    /* Sender profiles' clients used at enqueue (their From, allowed
     * domains, DKIM keys), made once per handle: a file of thousands of
     * lines loads each key once. */
    struct se_qprofile {
        char *name, *env_file;
        scalr_email_client *c;
    } profiles[SE_QUEUE_MAX_PROFILES];
    size_t n_profiles;
};

#endif
