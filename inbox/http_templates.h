/* The inbox's template preview (`scalr-email inbox --templates DIR`): every
 * template of DIR rendered with its sample.json, fresh on each request, so
 * the UI shows edits as soon as the files change. */
#ifndef IB_HTTP_TEMPLATES_H
#define IB_HTTP_TEMPLATES_H

#include <microhttpd.h>
#include <stddef.h>

/* Remember dir (it must be a readable folder: -1 with why).  Without a call
 * the endpoints answer {"enabled": false}. */
int ib_http_templates_init(const char *dir, char *why, size_t whylen);
void ib_http_templates_free(void);

/* url starts with "/api/scalr/templates": answer it. */
enum MHD_Result ib_http_templates(struct MHD_Connection *c, const char *url, const char *method);

#endif
