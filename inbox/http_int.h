/* What the inbox's HTTP files share: the server handle, response helpers
 * (every response gets the security headers in ib_http_respond), JSON
 * strings from arbitrary bytes and reading messages from the store.
 * http.c serves, guards and routes; http_mailhog.c builds the
 * MailHog-compatible JSON; http_ui.c answers the UI's /api/scalr/ calls,
 * the event stream and the chaos rules.  Private to those files. */
#ifndef IB_HTTP_INT_H
#define IB_HTTP_INT_H

#include <jansson.h>
#include <microhttpd.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "http.h"
#include "util/buf.h"

struct ib_http {
    struct MHD_Daemon *d;
    ib_store *st;
    ib_chaos *chaos;
    unsigned port;
    char host[256];
    atomic_int stopping;
    atomic_int streams;
};

typedef struct ib_http_req {
    se_buf body;
    int too_big;
} ib_http_req;

typedef enum { K_API, K_PAGE, K_FRAME, K_FILE } ib_http_policy; /* which headers a response gets */

extern const char ib_http_csp_api[]; /* for responses not built by ib_http_respond */

/* ---- strings (http.c) ---- */

/* A JSON string from arbitrary bytes, invalid UTF-8 as U+FFFD; NULL -> null. */
json_t *ib_http_jstrn(const char *p, size_t n);
json_t *ib_http_jstr(const char *s);
int ib_http_prefix_ci(const char *s, const char *prefix);
void ib_http_rfc3339(char *out, size_t len, int64_t ms);
/* End of the header block (the first empty line); the body starts at *body. */
size_t ib_http_header_block(const char *p, size_t n, size_t *body);

/* ---- responses (http.c) ---- */

/* owned: data is malloc'd and freed with the response. */
enum MHD_Result ib_http_respond(struct MHD_Connection *c, unsigned status, const char *ctype,
                                void *data, size_t len, int owned, ib_http_policy k,
                                const char *disp);
/* Consumes j. */
enum MHD_Result ib_http_send_json(struct MHD_Connection *c, unsigned status, json_t *j);
enum MHD_Result ib_http_send_error(struct MHD_Connection *c, unsigned status, const char *msg);
enum MHD_Result ib_http_not_allowed(struct MHD_Connection *c, const char *allow);

/* A non-negative integer query argument, dflt when absent or bad, at most max. */
int64_t ib_http_arg_int(struct MHD_Connection *c, const char *name, int64_t dflt, int64_t max);

/* ---- reading messages from the store (http.c) ---- */

typedef struct ib_http_meta {
    int64_t id, created_ms;
    size_t size;
    char *mail_from, *rcpt, *helo, *from, *to, *subject;
    int has_attachments;
    size_t bare_lf, bare_cr;
    int seen;
    char *tags; /* ",a,b," */
    char *dkim; /* the stored DKIM verdict (JSON), or NULL */
} ib_http_meta;

typedef struct ib_http_loaded {
    ib_http_meta m;
    char *raw;
    size_t len;
} ib_http_loaded;

/* 1 found, 0 not, -1 error; on 1, release with ib_http_unload. */
int ib_http_load(ib_http *h, int64_t id, ib_http_loaded *l);
void ib_http_unload(ib_http_loaded *l);
enum MHD_Result ib_http_load_error(struct MHD_Connection *c, int rc); /* 404 or 500 */

/* ---- the DKIM view (http_dkim.c) ---- */

enum MHD_Result ib_http_scalr_dkim(ib_http *h, struct MHD_Connection *c, int64_t id);
/* The verdict on a loaded message, with "records"; made and kept if the
 * store had none.  NULL when out of memory. */
json_t *ib_http_dkim_json(ib_http *h, const ib_http_loaded *l);
/* A list row's badge from a stored verdict: "pass", ... or null. */
json_t *ib_http_dkim_status(const char *stored);
/* Rows of a list whose "dkim" is null get a verdict made (and kept). */
void ib_http_dkim_fill(ib_http *h, json_t *items);

/* ---- MailHog API (http_mailhog.c) ---- */

/* /api/v2/messages, /api/v2/search (kind set) and /api/v1/messages (v1). */
enum MHD_Result ib_http_mh_list(ib_http *h, struct MHD_Connection *c, const char *kind, int v1);
enum MHD_Result ib_http_mh_get(ib_http *h, struct MHD_Connection *c, int64_t id);

/* ---- the UI's API (http_ui.c) ---- */

enum MHD_Result ib_http_scalr_list(ib_http *h, struct MHD_Connection *c);
enum MHD_Result ib_http_scalr_get(ib_http *h, struct MHD_Connection *c, int64_t id);
enum MHD_Result ib_http_scalr_html(ib_http *h, struct MHD_Connection *c, int64_t id);
enum MHD_Result ib_http_scalr_attachment(ib_http *h, struct MHD_Connection *c, int64_t id,
                                         const char *index);
/* /api/scalr/messages/ID/deliverability (http_deliver.c), on request only. */
enum MHD_Result ib_http_scalr_deliverability(ib_http *h, struct MHD_Connection *c, int64_t id);
enum MHD_Result ib_http_events(ib_http *h, struct MHD_Connection *c);
enum MHD_Result ib_http_chaos(ib_http *h, struct MHD_Connection *c, const char *method,
                              ib_http_req *r);

/* ---- read state and tags (http_state.c) ---- */

json_t *ib_http_tags_json(const char *stored); /* ",a,b," -> ["a","b"] */
/* /api/scalr/messages/{id}/read (PUT {"read": bool}) and .../tags (GET,
 * PUT {"tags": [...]}); what is "read" or "tags". */
enum MHD_Result ib_http_state(ib_http *h, struct MHD_Connection *c, const char *method,
                              ib_http_req *r, int64_t id, const char *what);

/* ---- link check (http_links.c) ---- */

/* .../links (GET) or, with check, .../links/check (POST). */
enum MHD_Result ib_http_links(ib_http *h, struct MHD_Connection *c, const char *method, int64_t id,
                              int check);

/* ---- HTML check (http_htmlcheck.c) ---- */

enum MHD_Result ib_http_htmlcheck(ib_http *h, struct MHD_Connection *c, const char *method,
                                  int64_t id);

/* ---- release (http_release.c) ---- */

enum MHD_Result ib_http_release_info(struct MHD_Connection *c);
enum MHD_Result ib_http_release(ib_http *h, struct MHD_Connection *c, const char *method,
                                ib_http_req *r, int64_t id);

#endif
