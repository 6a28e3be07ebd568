/* The inbox's web side: libmicrohttpd serving the UI (inbox/web, built into
 * the binary), the MailHog-compatible API, the event stream and the chaos
 * API.  JSON with jansson. */
#ifndef IB_HTTP_H
#define IB_HTTP_H

#include "chaos.h"
#include "store.h"

typedef struct ib_http ib_http;

/* Listen on host:port (port 0: any free port; the bound port is returned by
 * ib_http_port).  0 ok, -1 with a reason in why. */
int ib_http_start(ib_http **out, const char *host, unsigned port, ib_store *st, ib_chaos *chaos,
                  char *why, size_t whylen);
unsigned ib_http_port(const ib_http *h);
/* Also accept this Host name (besides localhost, 127.0.0.1, [::1] and the
 * listening host); before ib_http_start.  name must outlive the server.
 * -1: too many or invalid. */
int ib_http_allow_host(const char *name);
void ib_http_stop(ib_http *h); /* stops, closes event streams, frees */

#endif
