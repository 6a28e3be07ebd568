/* The public queue handle, shared by queue.c and worker.c. */
#ifndef SE_QUEUE_INT_H
#define SE_QUEUE_INT_H

#include <signal.h>

#include "dkim/dkim.h"
#include "queue/store.h"

#define SE_QUEUE_DEFAULT_URL "sqlite:scalr-email-queue.db"

struct scalr_email_queue {
    se_qstore *st;
    char *url;                   /* workers open one store handle per thread */
    volatile sig_atomic_t stop;  /* 0 run, 1 graceful, 2 immediate */
    int wake[2];                 /* self-pipe: scalr_email_queue_stop wakes the worker */
    se_dkim_signer *dkim;        /* messages are signed at enqueue: retries are identical */
};

#endif
