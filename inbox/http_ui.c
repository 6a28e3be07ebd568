/* Our own JSON API for the UI (/api/scalr): message lists and details
 * with decoded headers and bodies, the HTML part for the sandboxed frame,
 * attachments, the event stream (server-sent events) that tells the UI
 * when the store changed, and the chaos rules. */
#include "http_int.h"

#include <errno.h>
#include <iconv.h>
#include <jansson.h>
#include <microhttpd.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mimeparse.h"
#include "preview.h"
#include "util/buf.h"

#define MAX_STREAMS 32           /* concurrent event streams               */
#define MAX_HTML_OUT (64u << 20) /* cid: images inlined into one HTML page  */
#define MAX_CID_IMAGES 64        /* image parts a page may refer to         */
#define MAX_CID_LOOKUPS 4096     /* "cid:" references resolved in one page  */
#define SSE_POLL_MS 250          /* how soon a stream notices a stop        */
#define SSE_KEEPALIVE_MS 15000

/* ---- our API for the UI ---------------------------------------------------- */

/* Text in `charset` as UTF-8; unknown charsets pass through (and are
 * cleaned by jstrn).  Only plain names reach iconv_open. */
static void to_utf8(se_buf *out, const char *charset, const char *p, size_t n)
{
    iconv_t cd = (iconv_t)-1;
    if (charset && strlen(charset) < 40 &&
        strspn(charset, "abcdefghijklmnopqrstuvwxyz0123456789-_.:") == strlen(charset) &&
        strcmp(charset, "utf-8") != 0 && strcmp(charset, "us-ascii") != 0)
        cd = iconv_open("UTF-8", charset);
    if (cd == (iconv_t)-1) {
        se_buf_append(out, p, n);
        return;
    }
    char *in = (char *)p;
    size_t left = n;
    while (left > 0 && se_buf_reserve(out, (left < 16384 ? left * 4 : 65536) + 16) == 0) {
        char *o = out->data + out->len;
        size_t room = out->cap - out->len - 1, before = room;
        size_t r = iconv(cd, &in, &left, &o, &room);
        out->len += before - room;
        out->data[out->len] = '\0';
        if (r == (size_t)-1 && errno != E2BIG) {
            se_buf_append(out, "\xef\xbf\xbd", 3);
            in++;
            left--;
        }
    }
    iconv_close(cd);
}

/* The warning for a message whose client sent bare line endings (stored
 * with it by the SMTP side), or null. */
static json_t *warning_json(size_t lf, size_t cr)
{
    if (!lf && !cr)
        return json_null();
    char w[200];
    snprintf(w, sizeof w,
             "this client sent bare line endings (%zu bare LF, %zu bare CR); Gmail and Exchange "
             "refuse such mail",
             lf, cr);
    return json_string(w);
}

static int summary_json(void *arg, const ib_summary *s)
{
    char created[40];
    ib_http_rfc3339(created, sizeof created, s->created_ms);
    json_t *o = json_pack(
        "{s:I, s:s, s:I, s:I, s:o*, s:o*, s:o*, s:o*, s:o*, s:b, s:o*, s:b, s:o*}", "id",
        (json_int_t)s->id, "created", created, "created_ms", (json_int_t)s->created_ms, "size",
        (json_int_t)s->size, "from", ib_http_jstr(s->from), "to", ib_http_jstr(s->to), "subject",
        ib_http_jstr(s->subject), "mail_from", ib_http_jstr(s->mail_from), "rcpt",
        ib_http_jstr(s->rcpt), "has_attachments", s->has_attachments, "warning",
        warning_json(s->bare_lf, s->bare_cr), "read", s->seen, "tags", ib_http_tags_json(s->tags));
    if (o)
        json_object_set_new(o, "dkim", ib_http_dkim_status(s->dkim));
    return !o || json_array_append_new(arg, o) != 0;
}

enum MHD_Result ib_http_scalr_list(ib_http *h, struct MHD_Connection *c)
{
    const char *kind = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "kind");
    const char *query = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "query");
    if (kind && !*kind)
        kind = NULL;
    if (kind && !strcmp(kind, "unread"))
        query = ""; /* needs none */
    else if (!query || !*query)
        kind = NULL;
    else if (!kind)
        kind = "containing";
    if (kind && !strcmp(kind, "unread"))
        ;
    else if (kind && strcmp(kind, "from") != 0 && strcmp(kind, "to") != 0 &&
             strcmp(kind, "containing") != 0 && strcmp(kind, "tag") != 0)
        return ib_http_send_error(c, 400, "kind must be from, to, containing, tag or unread");
    int64_t start = ib_http_arg_int(c, "start", 0, INT64_MAX / 2),
            limit = ib_http_arg_int(c, "limit", 50, 500);
    json_t *items = json_array();
    int64_t total = 0;
    if (!items || ib_store_list(h->st, kind, query ? query : "", start, limit, summary_json, items,
                                &total) < 0) {
        json_decref(items);
        return ib_http_send_error(c, 500, "cannot read the message store");
    }
    ib_http_dkim_fill(h, items); /* outside the store's read: it loads and writes */
    ib_store_use u;
    ib_store_usage(h->st, &u);
    char why[200];
    snprintf(why, sizeof why,
             "the oldest messages were dropped to keep the in-memory store under --max-memory "
             "(%llu bytes); start the inbox with --db FILE to keep everything",
             (unsigned long long)u.cap);
    return ib_http_send_json(
        c, 200,
        json_pack("{s:I, s:I, s:I, s:I, s:I, s:o, s:{s:I, s:I, s:I, s:I, s:o}}", "total",
                  (json_int_t)total, "unread", (json_int_t)ib_store_unseen(h->st), "count",
                  (json_int_t)json_array_size(items), "start", (json_int_t)start, "version",
                  (json_int_t)ib_store_version(h->st), "items", items, "store", "bytes",
                  (json_int_t)u.bytes, "max_memory", (json_int_t)u.cap, "dropped",
                  (json_int_t)u.dropped, "dropped_bytes", (json_int_t)u.dropped_bytes,
                  "dropped_why", u.dropped ? json_string(why) : json_null()));
}

typedef struct parsed {
    ib_http_loaded l;
    ib_part *parts;
    size_t n;
    long text, html; /* chosen body parts, -1 when absent */
} parsed;

static int parse_message(ib_http *h, int64_t id, parsed *pm)
{
    memset(pm, 0, sizeof *pm);
    int rc = ib_http_load(h, id, &pm->l);
    if (rc != 1)
        return rc;
    if (ib_mime_parts(pm->l.raw, pm->l.len, &pm->parts, &pm->n) != 0) {
        ib_http_unload(&pm->l);
        return -1;
    }
    pm->text = pm->html = -1;
    for (size_t i = 0; i < pm->n; i++) {
        const ib_part *p = &pm->parts[i];
        if (p->is_attachment)
            continue;
        if (pm->text < 0 && strcmp(p->content_type, "text/plain") == 0)
            pm->text = (long)i;
        if (pm->html < 0 && strcmp(p->content_type, "text/html") == 0)
            pm->html = (long)i;
    }
    return 1;
}

static void parsed_free(parsed *pm)
{
    ib_mime_parts_free(pm->parts, pm->n);
    ib_http_unload(&pm->l);
}

static json_t *body_json(const parsed *pm, long idx)
{
    if (idx < 0)
        return json_null();
    const ib_part *p = &pm->parts[idx];
    se_buf b = {0};
    to_utf8(&b, p->charset, p->body, p->body_len);
    json_t *j = b.oom ? NULL : ib_http_jstrn(b.data ? b.data : "", b.len);
    se_buf_free(&b);
    return j;
}

static json_t *header_json(const parsed *pm, const char *name)
{
    char *v = ib_header_get(pm->l.raw, pm->l.len, name);
    json_t *j = ib_http_jstr(v);
    free(v);
    return j;
}

/* Every header field in order, values decoded (RFC 2047) for reading. */
static json_t *header_list(const char *raw, size_t len)
{
    size_t body;
    size_t hl = ib_http_header_block(raw, len, &body);
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < hl;) {
        const char *nl = memchr(raw + i, '\n', hl - i);
        size_t next = nl ? (size_t)(nl - raw) + 1 : hl;
        while (next < hl && (raw[next] == ' ' || raw[next] == '\t')) {
            nl = memchr(raw + next, '\n', hl - next);
            next = nl ? (size_t)(nl - raw) + 1 : hl;
        }
        const char *colon = memchr(raw + i, ':', next - i);
        if (colon && colon > raw + i && raw[i] != ' ' && raw[i] != '\t') {
            const char *v = colon + 1;
            while (v < raw + next && (*v == ' ' || *v == '\t'))
                v++;
            char *dv = ib_decode_header(v, (size_t)(raw + next - v));
            size_t dl = dv ? strlen(dv) : 0;
            while (dl > 0 && dv[dl - 1] == ' ')
                dv[--dl] = '\0';
            json_array_append_new(arr,
                                  json_pack("{s:o*, s:o*}", "name",
                                            ib_http_jstrn(raw + i, (size_t)(colon - (raw + i))),
                                            "value", ib_http_jstr(dv)));
            free(dv);
        }
        i = next;
    }
    return arr;
}

/* A text/calendar part (RFC 5545) as a card: the method, and the first
 * event's summary, start, end, location and organizer.  Lines are unfolded
 * (3.1) and text escapes undone (3.3.11); values are capped. */
#define CAL_SCAN_MAX (1u << 20)
#define CAL_VALUE_MAX 300

static void cal_put(json_t *o, const char *key, const char *v, size_t n, int text)
{
    char out[CAL_VALUE_MAX + 1];
    size_t k = 0;
    for (size_t i = 0; i < n && k < CAL_VALUE_MAX; i++) {
        char ch = v[i];
        if (text && ch == '\\' && i + 1 < n) {
            ch = v[++i];
            if (ch == 'n' || ch == 'N')
                ch = '\n';
        }
        out[k++] = ch;
    }
    out[k] = '\0';
    if (!json_object_get(o, key))
        json_object_set_new(o, key, ib_http_jstr(out));
}

static json_t *calendar_json(const ib_part *p)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    size_t len = p->body_len < CAL_SCAN_MAX ? p->body_len : CAL_SCAN_MAX;
    /* Unfold into a copy: CRLF (or LF) followed by a space or tab goes. */
    char *u = malloc(len + 1);
    if (!u)
        return o;
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (p->body[i] == '\r' && i + 1 < len && p->body[i + 1] == '\n')
            continue;
        if (p->body[i] == '\n' && i + 1 < len &&
            (p->body[i + 1] == ' ' || p->body[i + 1] == '\t')) {
            i++;
            continue;
        }
        u[n++] = p->body[i];
    }
    u[n] = '\0';
    int in_event = 0, events = 0;
    for (size_t i = 0; i < n;) {
        size_t e = i;
        while (e < n && u[e] != '\n')
            e++;
        const char *line = u + i;
        size_t ll = e - i;
        i = e + 1;
        size_t name_len = strcspn(line, ";:\n");
        const char *colon = memchr(line, ':', ll);
        if (!colon || name_len > ll)
            continue;
        const char *val = colon + 1;
        size_t vl = (size_t)(line + ll - val);
#define IS(nm) (name_len == strlen(nm) && strncasecmp(line, nm, name_len) == 0)
        if (IS("BEGIN") && vl == 6 && strncasecmp(val, "VEVENT", 6) == 0) {
            in_event = ++events == 1;
        } else if (IS("END") && vl == 6 && strncasecmp(val, "VEVENT", 6) == 0) {
            in_event = 0;
        } else if (IS("METHOD") && !in_event) {
            cal_put(o, "method", val, vl, 0);
        } else if (in_event && IS("SUMMARY")) {
            cal_put(o, "summary", val, vl, 1);
        } else if (in_event && IS("LOCATION")) {
            cal_put(o, "location", val, vl, 1);
        } else if (in_event && IS("DTSTART")) {
            cal_put(o, "start", val, vl, 0);
        } else if (in_event && IS("DTEND")) {
            cal_put(o, "end", val, vl, 0);
        } else if (in_event && IS("ORGANIZER")) {
            if (vl >= 7 && strncasecmp(val, "mailto:", 7) == 0) {
                val += 7;
                vl -= 7;
            }
            cal_put(o, "organizer", val, vl, 0);
        }
#undef IS
    }
    free(u);
    json_object_set_new(o, "events", json_integer(events));
    return o;
}

enum MHD_Result ib_http_scalr_get(ib_http *h, struct MHD_Connection *c, int64_t id)
{
    parsed pm;
    int rc = parse_message(h, id, &pm);
    if (rc != 1)
        return ib_http_load_error(c, rc);
    json_t *atts = json_array(), *rcpt = json_array(), *cals = json_array();
    for (size_t i = 0; cals && i < pm.n; i++)
        if (strcmp(pm.parts[i].content_type, "text/calendar") == 0)
            json_array_append_new(cals, calendar_json(&pm.parts[i]));
    for (size_t i = 0; atts && i < pm.n; i++) {
        const ib_part *p = &pm.parts[i];
        if ((long)i == pm.text || (long)i == pm.html)
            continue;
        json_array_append_new(
            atts, json_pack("{s:I, s:o*, s:s, s:I, s:o*, s:b}", "index", (json_int_t)i, "filename",
                            ib_http_jstr(p->filename), "type", p->content_type, "size",
                            (json_int_t)p->body_len, "content_id", ib_http_jstr(p->content_id),
                            "inline", !p->is_attachment && p->content_id));
    }
    for (const char *r = pm.l.m.rcpt; *r && rcpt;) {
        const char *sep = strstr(r, ", ");
        size_t n = sep ? (size_t)(sep - r) : strlen(r);
        json_array_append_new(rcpt, ib_http_jstrn(r, n));
        r += sep ? n + 2 : n;
    }
    char created[40];
    ib_http_rfc3339(created, sizeof created, pm.l.m.created_ms);
    json_t *o = json_pack(
        "{s:I, s:s, s:I, s:I, s:o*, s:o*, s:o*, s:o*, s:o*, s:o*, s:o*, s:o*, s:o*, s:o*, s:o*, "
        "s:o*, s:o*, s:o*, s:I, s:I, s:o*}",
        "id", (json_int_t)id, "created", created, "created_ms", (json_int_t)pm.l.m.created_ms,
        "size", (json_int_t)pm.l.len, "mail_from", ib_http_jstr(pm.l.m.mail_from), "rcpt", rcpt,
        "helo", ib_http_jstr(pm.l.m.helo), "subject", header_json(&pm, "Subject"), "from",
        header_json(&pm, "From"), "to", header_json(&pm, "To"), "cc", header_json(&pm, "Cc"),
        "date", header_json(&pm, "Date"), "message_id", header_json(&pm, "Message-ID"), "headers",
        header_list(pm.l.raw, pm.l.len), "text", body_json(&pm, pm.text), "html",
        body_json(&pm, pm.html), "attachments", atts, "warning",
        warning_json(pm.l.m.bare_lf, pm.l.m.bare_cr), "bare_lf", (json_int_t)pm.l.m.bare_lf,
        "bare_cr", (json_int_t)pm.l.m.bare_cr, "calendar", cals);
    if (o)
        json_object_set_new(o, "dkim", ib_http_dkim_json(h, &pm.l));
    parsed_free(&pm);
    return ib_http_send_json(c, 200, o);
}

static int sane_type(const char *t)
{
    size_t n = strlen(t), slash = strcspn(t, "/");
    return n > 2 && n < 100 && slash > 0 && slash < n - 1 && !strchr(t + slash + 1, '/') &&
           strspn(t, "abcdefghijklmnopqrstuvwxyz0123456789!#$&^_.+-/") == n;
}

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static void b64_put(se_buf *out, const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i += 3) {
        unsigned v =
            (unsigned)p[i] << 16 | (i + 1 < n ? p[i + 1] << 8 : 0) | (i + 2 < n ? p[i + 2] : 0);
        char q[4] = {B64[v >> 18 & 63], B64[v >> 12 & 63], i + 1 < n ? B64[v >> 6 & 63] : '=',
                     i + 2 < n ? B64[v & 63] : '='};
        se_buf_append(out, q, 4);
    }
}

/* The HTML part with cid: references (RFC 2392) to the message's own images
 * turned into data: URLs, since a sandboxed frame can fetch nothing. */
static void inline_cids(se_buf *out, const parsed *pm, const char *html, size_t n)
{
    const ib_part *img[MAX_CID_IMAGES];
    size_t nimg = 0, lookups = 0, i = 0, lit = 0;
    for (size_t k = 0; k < pm->n && nimg < MAX_CID_IMAGES; k++)
        if (pm->parts[k].content_id && strncmp(pm->parts[k].content_type, "image/", 6) == 0 &&
            sane_type(pm->parts[k].content_type))
            img[nimg++] = &pm->parts[k];
    while (nimg && i + 4 < n && lookups < MAX_CID_LOOKUPS && out->len < MAX_HTML_OUT) {
        if (strncasecmp(html + i, "cid:", 4) != 0) {
            i++;
            continue;
        }
        size_t s = i + 4, e = s;
        while (e < n && e - s < 256 && !strchr("\"'()<> \t\r\n", html[e]))
            e++;
        const ib_part *hit = NULL;
        lookups++;
        for (size_t k = 0; k < nimg && !hit; k++)
            if (strlen(img[k]->content_id) == e - s &&
                memcmp(img[k]->content_id, html + s, e - s) == 0)
                hit = img[k];
        if (hit) {
            se_buf_append(out, html + lit, i - lit);
            se_buf_printf(out, "data:%s;base64,", hit->content_type);
            b64_put(out, (const unsigned char *)hit->body, hit->body_len);
            lit = e;
        }
        i = e;
    }
    se_buf_append(out, html + lit, n - lit);
}

enum MHD_Result ib_http_scalr_html(ib_http *h, struct MHD_Connection *c, int64_t id)
{
    parsed pm;
    int rc = parse_message(h, id, &pm);
    if (rc != 1)
        return ib_http_load_error(c, rc);
    if (pm.html < 0) {
        parsed_free(&pm);
        return ib_http_send_error(c, 404, "this message has no HTML part");
    }
    const ib_part *p = &pm.parts[pm.html];
    se_buf out = {0};
    inline_cids(&out, &pm, p->body, p->body_len);
    const char *scheme = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "scheme");
    if (scheme && strcmp(scheme, "dark") == 0 && ib_preview_dark(&out) < 0)
        out.oom = 1; /* preview.c: the dark-mode preview */
    char ctype[80] = "text/html; charset=utf-8";
    if (p->charset && strlen(p->charset) < 40 &&
        strspn(p->charset, "abcdefghijklmnopqrstuvwxyz0123456789-_.:") == strlen(p->charset))
        snprintf(ctype, sizeof ctype, "text/html; charset=%s", p->charset);
    parsed_free(&pm);
    if (out.oom) {
        se_buf_free(&out);
        return ib_http_send_error(c, 500, "out of memory");
    }
    size_t len = out.len;
    char *body = se_buf_steal(&out, NULL);
    return ib_http_respond(c, 200, ctype, body ? body : "", len, body != NULL, K_FRAME, NULL);
}

/* Content-Disposition for a download: an ASCII fallback and the exact name
 * as RFC 6266 / RFC 8187 filename*. */
static void disposition(char *out, size_t len, const char *name, size_t index)
{
    char fallback[128], ext[512];
    size_t f = 0, e = 0;
    if (!name || !*name) {
        snprintf(out, len, "attachment; filename=\"part-%zu\"", index);
        return;
    }
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
        if (f + 1 < sizeof fallback && (*p & 0xc0) != 0x80) /* one '_' per character */
            fallback[f++] = *p < 0x20 || *p >= 0x7f || strchr("\"\\/;%", *p) ? '_' : (char)*p;
        if (e + 4 < sizeof ext) {
            if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                strchr("!#$&+-.^_`|~", *p))
                ext[e++] = (char)*p;
            else
                e += (size_t)snprintf(ext + e, sizeof ext - e, "%%%02X", *p);
        }
    }
    fallback[f] = ext[e] = '\0';
    snprintf(out, len, "attachment; filename=\"%s\"; filename*=UTF-8''%s", fallback, ext);
}

enum MHD_Result ib_http_scalr_attachment(ib_http *h, struct MHD_Connection *c, int64_t id,
                                         const char *index)
{
    char *end;
    unsigned long k = strtoul(index, &end, 10);
    if (!*index || *end || index[0] == '-' || index[0] == '+')
        return ib_http_send_error(c, 404, "no such attachment");
    parsed pm;
    int rc = parse_message(h, id, &pm);
    if (rc != 1)
        return ib_http_load_error(c, rc);
    if (k >= pm.n) {
        parsed_free(&pm);
        return ib_http_send_error(c, 404, "no such attachment");
    }
    ib_part *p = &pm.parts[k];
    char disp[800], ctype[128] = "application/octet-stream";
    disposition(disp, sizeof disp, p->filename, k);
    if (sane_type(p->content_type))
        snprintf(ctype, sizeof ctype, "%s", p->content_type);
    char *body = p->body;
    size_t len = p->body_len;
    p->body = NULL;
    parsed_free(&pm);
    return ib_http_respond(c, 200, ctype, body, len, 1, K_FILE, disp);
}

/* ---- event stream (server-sent events) --------------------------------- */

typedef struct stream {
    ib_http *h;
    uint64_t seen;
    unsigned idle_ms;
    int started;
} stream;

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    stream *s = cls;
    (void)pos;
    if (!s->started) {
        s->started = 1;
        s->seen = ib_store_version(s->h->st);
        return snprintf(buf, max, "retry: 2000\nevent: hello\ndata: {\"version\":%llu}\n\n",
                        (unsigned long long)s->seen);
    }
    while (!atomic_load(&s->h->stopping)) {
        uint64_t v = ib_store_wait(s->h->st, s->seen, SSE_POLL_MS);
        if (v != s->seen) {
            s->seen = v;
            s->idle_ms = 0;
            return snprintf(buf, max, "event: change\ndata: {\"version\":%llu}\n\n",
                            (unsigned long long)v);
        }
        s->idle_ms += SSE_POLL_MS;
        if (s->idle_ms >= SSE_KEEPALIVE_MS) { /* also finds clients that left */
            s->idle_ms = 0;
            return snprintf(buf, max, ": keepalive\n\n");
        }
    }
    return MHD_CONTENT_READER_END_OF_STREAM;
}

static void stream_free(void *cls)
{
    stream *s = cls;
    atomic_fetch_sub(&s->h->streams, 1);
    free(s);
}

enum MHD_Result ib_http_events(ib_http *h, struct MHD_Connection *c)
{
    if (atomic_fetch_add(&h->streams, 1) >= MAX_STREAMS) {
        atomic_fetch_sub(&h->streams, 1);
        return ib_http_send_error(c, 503, "too many event streams");
    }
    stream *s = calloc(1, sizeof *s);
    struct MHD_Response *r =
        s ? MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 1024, stream_read, s, stream_free)
          : NULL;
    if (!r) {
        atomic_fetch_sub(&h->streams, 1);
        free(s);
        return ib_http_send_error(c, 500, "out of memory");
    }
    s->h = h;
    MHD_add_response_header(r, "Content-Type", "text/event-stream");
    MHD_add_response_header(r, "Cache-Control", "no-store");
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, "Content-Security-Policy", ib_http_csp_api);
    enum MHD_Result ret = MHD_queue_response(c, 200, r);
    MHD_destroy_response(r);
    return ret;
}

/* ---- chaos rules ------------------------------------------------------------- */

static json_t *chaos_rules(ib_http *h)
{
    char *s = ib_chaos_json(h->chaos);
    json_t *arr = s ? json_loads(s, 0, NULL) : NULL;
    free(s);
    return json_pack("{s:o*}", "rules", arr);
}

enum MHD_Result ib_http_chaos(ib_http *h, struct MHD_Connection *c, const char *method,
                              ib_http_req *r)
{
    if (!h->chaos)
        return ib_http_send_error(c, 404, "fault injection is not available");
    if (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0)
        return ib_http_send_json(c, 200, chaos_rules(h));
    if (strcmp(method, "DELETE") == 0) {
        ib_chaos_clear(h->chaos);
        return ib_http_send_json(c, 200, chaos_rules(h));
    }
    if (strcmp(method, "POST") != 0)
        return ib_http_not_allowed(c, "GET, POST, DELETE");
    const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");
    if (!ct || !ib_http_prefix_ci(ct, "application/json")) /* forces a CORS preflight */
        return ib_http_send_error(c, 415, "send application/json");
    if (r->too_big)
        return ib_http_send_error(c, 413, "request body too large");
    json_t *j = json_loadb(r->body.data ? r->body.data : "", r->body.len, 0, NULL);
    json_t *one = json_object_get(j, "rule"), *many = json_object_get(j, "rules");
    if (!json_is_string(one) && !json_is_array(many)) {
        json_decref(j);
        return ib_http_send_error(c, 400,
                                  "expected {\"rule\": \"STAGE:ACTION...\"} or {\"rules\": [...]}");
    }
    size_t n = one ? 1 : json_array_size(many);
    for (size_t i = 0; i < n; i++) {
        json_t *rule = one ? one : json_array_get(many, i);
        char why[256] = "rule must be a string";
        if (!json_is_string(rule) ||
            ib_chaos_add(h->chaos, json_string_value(rule), why, sizeof why) != 0) {
            json_decref(j);
            return ib_http_send_json(c, 400,
                                     json_pack("{s:s, s:I}", "error", why, "added", (json_int_t)i));
        }
    }
    json_decref(j);
    return ib_http_send_json(c, 200, chaos_rules(h));
}
