/* The inbox's read-only view of the durable queue (`scalr-email inbox
 * --queue URL`): JSON under /api/scalr/queue built with the public queue
 * API (status, list, show).  Nothing here changes the queue. */
#ifndef IB_HTTP_QUEUE_H
#define IB_HTTP_QUEUE_H

#include <microhttpd.h>
#include <stddef.h>

#include "scalr_email.h"

/* Remember url and open the queue once to fail early (ECONFIG: a bad URL,
 * ESTORE: unusable database); why gets one line.  Without a call the
 * endpoints answer {"enabled": false}. */
scalr_email_code ib_http_queue_init(const char *url, char *why, size_t whylen);
void ib_http_queue_free(void);

/* url starts with "/api/scalr/queue": answer it. */
enum MHD_Result ib_http_queue(struct MHD_Connection *c, const char *url, const char *method);

#endif
