/* The message composer: validate a scalr_email_message, then write it as
 * RFC 5322 / MIME bytes.  Everything is checked before anything is
 * written, so a refused message never leaves half an output behind.
 *
 * Shape of the output:
 *   text only            text/plain
 *   text + html          multipart/alternative (text, html)   RFC 2046 5.1.4
 *   + calendar           multipart/alternative (text, [html], calendar)
 *   + inline parts       the html becomes multipart/related (html, inline...)
 *                                                             RFC 2387
 *   + attachments        multipart/mixed (the above, attachment...)  */
#include "mime/compose.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "error.h"
#include "mime/address.h"
#include "mime/encode.h"
#include "mime/mimetypes.h"

#define STAGE "COMPOSE"
#define MAX_RCPT 1000
/* RFC 5322 2.1.1 */
#define LINE_SOFT 78
#define LINE_HARD 998
#define HEADER_NAME_MAX 76

typedef struct addr_list {
    se_address *v;
    size_t n;
} addr_list;

typedef struct text_part {
    se_buf crlf; /* the text with CRLF line ends */
    int is_7bit; /* else quoted-printable */
} text_part;

typedef struct attachment {
    const char *filename; /* caller's memory or a literal */
    char type[128];
    int utf8_text; /* a text type whose bytes are UTF-8 */
    const unsigned char *data;
    size_t size;
    unsigned char *owned; /* file contents we read */
    int deferred;         /* read while sending (opts->defer_over)   */
    const char *path;
    struct stat st;
    size_t at;       /* where its base64 goes in the output     */
    const char *cid; /* inline part's content ID, or NULL        */
} attachment;

typedef struct state {
    const scalr_email_message *msg;
    const se_compose_opts *opts;
    scalr_email_error *err;
    se_address sender, reply_to;
    addr_list to, cc, bcc;
    text_part text, html, cal;
    int has_html, has_cal;
    char method[40]; /* the calendar's METHOD */
    attachment *att;
    size_t n_att, n_inline;
    char mixed[40], alt[40], rel[40]; /* boundaries */
    char *envelope_from;              /* NULL: the From address; "": null sender */
} state;

static void list_free(addr_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        se_address_free(&l->v[i]);
    free(l->v);
    *l = (addr_list){0};
}

static size_t list_len(const char *const *l)
{
    size_t n = 0;
    while (l && l[n])
        n++;
    return n;
}

static int get_random(const se_compose_opts *opts, unsigned char *buf, size_t n)
{
    if (opts && opts->random) {
        opts->random(opts->random_arg, buf, n);
        return 0;
    }
    return RAND_bytes(buf, (int)n) == 1 ? 0 : -1;
}

static void hexify(char *dst, const unsigned char *src, size_t n)
{
    static const char hx[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        dst[2 * i] = hx[src[i] >> 4];
        dst[2 * i + 1] = hx[src[i] & 15];
    }
    dst[2 * n] = '\0';
}

static int contains(const char *hay, size_t n, const char *needle)
{
    size_t k = strlen(needle);
    for (size_t i = 0; k <= n && i <= n - k; i++)
        if (hay[i] == needle[0] && memcmp(hay + i, needle, k) == 0)
            return 1;
    return 0;
}

/* Why a header-bound string is refused, or NULL.  Header injection is
 * refused, never stripped (field notes: CVE-2024-6923, CVE-2021-23400). */
static const char *text_problem(const char *s, int tab_ok)
{
    size_t n = strlen(s);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\r' || c == '\n')
            return "contains CR or LF";
        if ((c < 0x20 && !(tab_ok && c == '\t')) || c == 0x7f)
            return "contains a control character";
    }
    return se_utf8_valid(s, n) ? NULL : "is not valid UTF-8";
}

static scalr_email_code parse_one(state *st, const char *in, const char *field, se_address *out)
{
    char why[160];
    if (se_address_parse(in, out, why, sizeof why) < 0)
        return se_fail(st->err, SCALR_EMAIL_EINVAL, STAGE, "%s: %s", field, why);
    return SCALR_EMAIL_OK;
}

static scalr_email_code parse_list(state *st, const char *const *in, const char *field,
                                   addr_list *out)
{
    size_t n = list_len(in);
    if (!n)
        return SCALR_EMAIL_OK;
    out->v = calloc(n, sizeof *out->v);
    if (!out->v)
        return se_fail(st->err, SCALR_EMAIL_ENOMEM, STAGE, "out of memory");
    for (size_t i = 0; i < n; i++) {
        char why[160];
        if (se_address_parse(in[i], &out->v[i], why, sizeof why) < 0)
            return se_fail(st->err, SCALR_EMAIL_EINVAL, STAGE, "%s address %zu: %s", field, i + 1,
                           why);
        out->n++;
    }
    return SCALR_EMAIL_OK;
}

static scalr_email_code check_addresses(state *st, const char *default_from)
{
    const scalr_email_message *m = st->msg;
    const char *from = m->sender && m->sender[0] ? m->sender : default_from;
    if (!from || !from[0])
        return se_fail(st->err, SCALR_EMAIL_ENOTCONFIGURED, "CONFIG",
                       "no sender: set SMTP_FROM or pass a sender");
    scalr_email_code rc = parse_one(st, from, "sender", &st->sender);
    if (!rc && m->reply_to && m->reply_to[0])
        rc = parse_one(st, m->reply_to, "Reply-To address", &st->reply_to);
    if (rc)
        return rc;
    /* RFC 5321 4.5.3.1.8 asks servers for 100 at least; far past that a
     * single message is a mistake, not a mailing. */
    size_t total = list_len(m->to) + list_len(m->cc) + list_len(m->bcc);
    if (total == 0)
        return se_fail(st->err, SCALR_EMAIL_EINVAL, STAGE,
                       "no recipients: give at least one to, cc or bcc address");
    if (total > MAX_RCPT)
        return se_fail(st->err, SCALR_EMAIL_EINVAL, STAGE, "%zu recipients: at most %d per message",
                       total, MAX_RCPT);
    if ((rc = parse_list(st, m->to, "To", &st->to)) ||
        (rc = parse_list(st, m->cc, "Cc", &st->cc)) ||
        (rc = parse_list(st, m->bcc, "Bcc", &st->bcc)))
        return rc;
    return SCALR_EMAIL_OK;
}

/* Header fields we write ourselves, and where the caller sets them. */
static const struct {
    const char *name;
    const char *instead;
} reserved[] = {
    {"Date", "it is generated"},
    {"From", "use the sender field"},
    {"Sender", "use the sender field"},
    {"Reply-To", "use the reply_to field"},
    {"To", "use the to field"},
    {"Cc", "use the cc field"},
    {"Bcc", "use the bcc field (never written as a header)"},
    {"Subject", "use the subject field"},
    {"Message-ID", "it is generated"},
    {"MIME-Version", "it is generated"},
    {"Content-Type", "it follows from body, body_html and attachments"},
    {"Content-Transfer-Encoding", "it is chosen by the composer"},
    {"Content-Disposition", "use attachments"},
};

static scalr_email_code check_headers(state *st)
{
    const char *subject = st->msg->subject ? st->msg->subject : "";
    const char *why = text_problem(subject, 1);
    if (why)
        return se_fail(st->err, SCALR_EMAIL_EINVAL, STAGE, "subject %s", why);

    for (const scalr_email_header *h = st->msg->headers; h && h->name; h++) {
        size_t n = strlen(h->name);
        /* RFC 5322 2.2: field-name = 1*ftext, printable ASCII except ':'. */
        int ok = n >= 1 && n <= HEADER_NAME_MAX;
        for (size_t i = 0; ok && i < n; i++) {
            unsigned char c = (unsigned char)h->name[i];
            ok = c > 0x20 && c < 0x7f && c != ':';
        }
        if (!ok)
            return se_fail(st->err, SCALR_EMAIL_EINVAL, STAGE,
                           "header name '%s' is invalid: use 1 to %d printable ASCII "
                           "characters without ':' or space",
                           h->name, HEADER_NAME_MAX);
        for (size_t i = 0; i < sizeof reserved / sizeof reserved[0]; i++)
            if (strcasecmp(h->name, reserved[i].name) == 0)
                return se_fail(st->err, SCALR_EMAIL_EINVAL, STAGE,
                               "header '%s' cannot be set as an extra header: %s", h->name,
                               reserved[i].instead);
        why = text_problem(h->value ? h->value : "", 1);
        if (why)
            return se_fail(st->err, SCALR_EMAIL_EINVAL, STAGE, "header '%s': value %s", h->name,
                           why);
    }
    return SCALR_EMAIL_OK;
}

/* RFC 2045 2.7: 7bit data is ASCII in lines of at most 998 octets. */
static int is_7bit(const se_buf *b)
{
    size_t line = 0;
    for (size_t i = 0; i < b->len; i++) {
        unsigned char c = (unsigned char)b->data[i];
        if (c >= 0x80)
            return 0;
        if (c == '\n') {
            line = 0;
        } else if (c != '\r' && ++line > LINE_HARD) {
            return 0;
        }
    }
    return 1;
}

static scalr_email_code prepare_text(state *st, const char *s, size_t len, const char *field,
                                     text_part *out)
{
    if (len && memchr(s, '\0', len))
        return se_fail(st->err, SCALR_EMAIL_EINVAL, STAGE, "%s contains a NUL byte", field);
    if (!se_utf8_valid(s, len))
        return se_fail(st->err, SCALR_EMAIL_EINVAL, STAGE, "%s is not valid UTF-8", field);
    /* RFC 5321 2.3.8: no bare CR or LF; done before any dot-stuffing. */
    if (se_crlf_normalise(&out->crlf, s, len) < 0 || se_buf_reserve(&out->crlf, 0) < 0)
        return se_fail(st->err, SCALR_EMAIL_ENOMEM, STAGE, "out of memory");
    out->is_7bit = is_7bit(&out->crlf);
    return SCALR_EMAIL_OK;
}

static scalr_email_code check_bodies(state *st)
{
    const scalr_email_message *m = st->msg;
    const char *body = m->body ? m->body : "";
    size_t len = m->body && m->body_len ? m->body_len : strlen(body);
    scalr_email_code rc = prepare_text(st, body, len, "body", &st->text);
    if (rc || !m->body_html)
        return rc;
    len = m->body_html_len ? m->body_html_len : strlen(m->body_html);
    if (!len)
        return SCALR_EMAIL_OK;
    st->has_html = 1;
    return prepare_text(st, m->body_html, len, "HTML body", &st->html);
}

/* RFC 2045 5.1: token, i.e. no space, control or tspecial. */
static int is_token(const char *s, size_t n)
{
    if (!n)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c >= 0x7f || strchr("()<>@,;:\\\"/[]?=", c))
            return 0;
    }
    return 1;
}

/* RFC 5545 3.7.2: the METHOD property names the iTIP method (RFC 5546)
 * that also goes into the part's Content-Type (RFC 6047 2.4). */
static scalr_email_code check_calendar(state *st)
{
    const char *cal = st->msg->calendar;
    if (!cal)
        return SCALR_EMAIL_OK;
    if (!*cal)
        return se_fail(st->err, SCALR_EMAIL_EINVAL, STAGE, "calendar is empty");
    scalr_email_code rc = prepare_text(st, cal, strlen(cal), "calendar", &st->cal);
    if (rc)
        return rc;
    const char *p = st->cal.crlf.data, *end = p + st->cal.crlf.len;
    while (p < end) {
        const char *eol = memchr(p, '\r', (size_t)(end - p));
        if (!eol)
            eol = end;
        if (eol - p > 7 && strncasecmp(p, "METHOD:", 7) == 0) {
            size_t n = (size_t)(eol - p - 7);
            if (!is_token(p + 7, n) || n >= sizeof st->method)
                return se_fail(st->err, SCALR_EMAIL_EINVAL, STAGE,
                               "calendar: METHOD is not a short token");
            memcpy(st->method, p + 7, n);
            st->method[n] = '\0';
            st->has_cal = 1;
            return SCALR_EMAIL_OK;
        }
        p = eol + 2;
    }
    return se_fail(st->err, SCALR_EMAIL_EINVAL, STAGE,
                   "calendar has no METHOD line (REQUEST, CANCEL, PUBLISH...)");
}

/* The envelope sender apart from From: an address, or <> (null sender). */
static scalr_email_code check_envelope_from(state *st)
{
    const char *ef = st->msg->envelope_from;
    if (!ef)
        return SCALR_EMAIL_OK;
    if (!*ef || strcmp(ef, "<>") == 0) {
        st->envelope_from = strdup("");
    } else {
        se_address a = {0};
        scalr_email_code rc = parse_one(st, ef, "envelope sender", &a);
        if (rc)
            return rc;
        st->envelope_from = strdup(a.addr);
        se_address_free(&a);
    }
    return st->envelope_from ? SCALR_EMAIL_OK
                             : se_fail(st->err, SCALR_EMAIL_ENOMEM, STAGE, "out of memory");
}

/* RFC 3461 4: xtext, '+' and hex for '+', '=' and anything outside 33..126. */
static char *xtext(const char *s)
{
    char *out = malloc(strlen(s) * 3 + 1), *o = out;
    if (!out)
        return NULL;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c < 33 || c > 126 || c == '+' || c == '=')
            o += sprintf(o, "+%02X", c);
        else
            *o++ = (char)c;
    }
    *o = '\0';
    return out;
}

/* RFC 3461 4.1, 4.3, 4.4: NOTIFY, RET and ENVID, checked and encoded. */
static scalr_email_code check_dsn(state *st, se_composed *out)
{
    const scalr_email_message *m = st->msg;
    if (!m->dsn_notify && !m->dsn_ret && !m->dsn_envid)
        return SCALR_EMAIL_OK;
    out->dsn = 1;
    if (m->dsn_notify) {
        char buf[64];
        size_t n = strlen(m->dsn_notify);
        if (!n || n >= sizeof buf)
            return se_fail(st->err, SCALR_EMAIL_EINVAL, STAGE,
                           "DSN notify must be never or success,failure,delay");
        for (size_t i = 0; i <= n; i++)
            buf[i] = (char)(m->dsn_notify[i] >= 'a' && m->dsn_notify[i] <= 'z'
                                ? m->dsn_notify[i] - 32
                                : m->dsn_notify[i]);
        int seen = 0, never = 0;
        for (char *save = NULL, *w = strtok_r(buf, ",", &save); w; w = strtok_r(NULL, ",", &save)) {
            int bit = strcmp(w, "SUCCESS") == 0   ? 1
                      : strcmp(w, "FAILURE") == 0 ? 2
                      : strcmp(w, "DELAY") == 0   ? 4
                      : strcmp(w, "NEVER") == 0   ? 8
                                                  : 0;
            if (!bit || (seen & bit))
                return se_fail(st->err, SCALR_EMAIL_EINVAL, STAGE,
                               "DSN notify '%s': use never, or any of success,failure,delay",
                               m->dsn_notify);
            seen |= bit;
            never |= bit == 8;
        }
        /* RFC 3461 4.1: NEVER stands alone. */
        if (!seen || (never && seen != 8))
            return se_fail(st->err, SCALR_EMAIL_EINVAL, STAGE,
                           "DSN notify '%s': never cannot be combined", m->dsn_notify);
        char joined[64] = "";
        const char *names[] = {"SUCCESS", "FAILURE", "DELAY", "NEVER"};
        for (int b = 0; b < 4; b++)
            if (seen & (1 << b)) {
                if (joined[0])
                    strcat(joined, ",");
                strcat(joined, names[b]);
            }
        if (!(out->dsn_notify = strdup(joined)))
            return se_fail(st->err, SCALR_EMAIL_ENOMEM, STAGE, "out of memory");
    }
    if (m->dsn_ret) {
        if (strcasecmp(m->dsn_ret, "full") && strcasecmp(m->dsn_ret, "hdrs"))
            return se_fail(st->err, SCALR_EMAIL_EINVAL, STAGE,
                           "DSN return '%s': use full or hdrs", m->dsn_ret);
        out->dsn_ret = strdup(strcasecmp(m->dsn_ret, "full") ? "HDRS" : "FULL");
        if (!out->dsn_ret)
            return se_fail(st->err, SCALR_EMAIL_ENOMEM, STAGE, "out of memory");
    }
    if (m->dsn_envid) {
        size_t n = strlen(m->dsn_envid);
        const char *why = !n ? "is empty" : n > 100 ? "is longer than 100 characters" : NULL;
        for (size_t i = 0; i < n && !why; i++)
            if ((unsigned char)m->dsn_envid[i] < 0x20 || (unsigned char)m->dsn_envid[i] > 0x7e)
                why = "must be printable ASCII";
        if (why)
            return se_fail(st->err, SCALR_EMAIL_EINVAL, STAGE, "DSN envelope ID %s", why);
        if (!(out->dsn_envid = xtext(m->dsn_envid)))
            return se_fail(st->err, SCALR_EMAIL_ENOMEM, STAGE, "out of memory");
    }
    return SCALR_EMAIL_OK;
}

static scalr_email_code check_content_type(state *st, size_t k, const char *ct, char *dst,
                                           size_t dstlen)
{
    const char *slash = strchr(ct, '/');
    size_t n = strlen(ct);
    if (n >= dstlen)
        return se_fail(st->err, SCALR_EMAIL_EINVAL, STAGE,
                       "attachment %zu: content type longer than %zu characters", k, dstlen - 1);
    if (!slash || !is_token(ct, (size_t)(slash - ct)) ||
        !is_token(slash + 1, n - (size_t)(slash + 1 - ct)))
        return se_fail(st->err, SCALR_EMAIL_EINVAL, STAGE,
                       "attachment %zu: content type '%s' is not of the form type/subtype", k, ct);
    /* RFC 2046 5.1.1 / 5.2.1: composite types may not be base64-encoded,
     * and attachments always are. */
    if (strncasecmp(ct, "multipart/", 10) == 0 || strncasecmp(ct, "message/", 8) == 0)
        return se_fail(st->err, SCALR_EMAIL_EINVAL, STAGE,
                       "attachment %zu: content type '%s' cannot be base64-encoded; "
                       "use application/octet-stream",
                       k, ct);
    memcpy(dst, ct, n + 1);
    return SCALR_EMAIL_OK;
}

static int read_file(const char *path, unsigned char **out, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    se_buf b = {0};
    for (;;) {
        if (se_buf_reserve(&b, 65536) < 0) {
            se_buf_free(&b);
            close(fd);
            errno = ENOMEM;
            return -1;
        }
        ssize_t r = read(fd, b.data + b.len, b.cap - b.len - 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            se_buf_free(&b);
            close(fd);
            errno = e;
            return -1;
        }
        if (r == 0)
            break;
        b.len += (size_t)r;
    }
    close(fd);
    *out = (unsigned char *)se_buf_steal(&b, len);
    return *out ? 0 : -1;
}

/* 1 if s[0..n) is valid UTF-8 so far, for text read in blocks: an
 * incomplete sequence at the end is kept in *keep for the next block. */
static int utf8_block(const unsigned char *s, size_t n, size_t *keep)
{
    size_t cut = n, back = 0;
    while (back < 3 && cut > 0 && (s[cut - 1] & 0xC0) == 0x80) {
        cut--;
        back++;
    }
    if (cut > 0 && s[cut - 1] >= 0xC0) {
        unsigned char lead = s[cut - 1];
        size_t need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : 2;
        if (n - (cut - 1) < need)
            cut--; /* the sequence continues in the next block */
        else
            cut = n;
    } else {
        cut = n;
    }
    *keep = n - cut;
    return se_utf8_valid((const char *)s, cut);
}

/* A file attachment larger than opts->defer_over is only measured now
 * (and, for a text type, checked for UTF-8 block by block); its bytes are
 * read while sending.  1: deferred, 0: small enough to read now, -1: errno. */
static int defer_file(state *st, attachment *t, const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    if (fstat(fd, &t->st) < 0 || !S_ISREG(t->st.st_mode) ||
        (unsigned long long)t->st.st_size <= st->opts->defer_over) {
        int e = errno;
        close(fd);
        errno = e;
        return S_ISREG(t->st.st_mode) || e == 0 ? 0 : -1;
    }
    t->deferred = 1;
    t->path = path;
    t->size = (size_t)t->st.st_size;
    t->utf8_text = strncasecmp(t->type, "text/", 5) == 0;
    if (t->utf8_text) {
        unsigned char *b = malloc(65536 + 4);
        size_t keep = 0;
        if (!b) {
            close(fd);
            errno = ENOMEM;
            return -1;
        }
        for (;;) {
            ssize_t r = read(fd, b + keep, 65536);
            if (r < 0 && errno == EINTR)
                continue;
            if (r < 0) {
                int e = errno;
                free(b);
                close(fd);
                errno = e;
                return -1;
            }
            size_t n = keep + (size_t)r;
            if (r == 0) {
                t->utf8_text = keep == 0;
                break;
            }
            if (!utf8_block(b, n, &keep)) {
                t->utf8_text = 0;
                break;
            }
            memmove(b, b + n - keep, keep);
        }
        free(b);
    }
    close(fd);
    return 1;
}

static scalr_email_code check_attachments(state *st)
{
    const scalr_email_attachment *a = st->msg->attachments;
    size_t n = 0;
    while (a && (a[n].path || a[n].data))
        n++;
    if (!n)
        return SCALR_EMAIL_OK;
    st->att = calloc(n, sizeof *st->att);
    if (!st->att)
        return se_fail(st->err, SCALR_EMAIL_ENOMEM, STAGE, "out of memory");
    st->n_att = n;

    /* Names and types first, so a bad message fails before any file read. */
    for (size_t i = 0; i < n; i++) {
        attachment *t = &st->att[i];
        const char *name = a[i].filename;
        if (!name && a[i].path) {
            const char *slash = strrchr(a[i].path, '/');
            name = slash ? slash + 1 : a[i].path;
        }
        if (!name)
            name = "attachment";
        const char *why = text_problem(name, 0);
        if (!why && !name[0])
            why = "is empty";
        if (!why && strchr(name, '/'))
            why = "contains '/'";
        if (why)
            return se_fail(st->err, SCALR_EMAIL_EINVAL, STAGE, "attachment %zu: filename %s", i + 1,
                           why);
        t->filename = name;
        if (a[i].content_id) {
            const char *cid = a[i].content_id;
            const char *cwhy = !cid[0] ? "is empty" : strlen(cid) > 200 ? "is too long" : NULL;
            for (const char *c = cid; *c && !cwhy; c++)
                if ((unsigned char)*c <= 0x20 || (unsigned char)*c >= 0x7f || *c == '<' || *c == '>')
                    cwhy = "must be printable ASCII without space, '<' or '>'";
            for (size_t k = 0; k < i && !cwhy; k++)
                if (st->att[k].cid && strcmp(st->att[k].cid, cid) == 0)
                    cwhy = "is used twice";
            if (cwhy)
                return se_fail(st->err, SCALR_EMAIL_EINVAL, STAGE,
                               "inline part %zu: content ID '%s' %s", i + 1, cid, cwhy);
            t->cid = cid;
            st->n_inline++;
        }
        scalr_email_code rc = check_content_type(
            st, i + 1, a[i].content_type ? a[i].content_type : se_mime_type_for_name(name), t->type,
            sizeof t->type);
        if (rc)
            return rc;
    }
    for (size_t i = 0; i < n; i++) {
        attachment *t = &st->att[i];
        if (a[i].data) {
            t->data = a[i].data;
            t->size = a[i].size;
        } else if (st->opts && st->opts->defer_over && !t->cid) { /* inline parts are small */
            int r = defer_file(st, t, a[i].path);
            if (r < 0)
                return se_fail(st->err, SCALR_EMAIL_EFILE, STAGE, "attachment '%s': %s", a[i].path,
                               strerror(errno));
            if (r > 0)
                continue; /* utf8_text is set */
            if (read_file(a[i].path, &t->owned, &t->size) < 0)
                return se_fail(st->err, SCALR_EMAIL_EFILE, STAGE, "attachment '%s': %s", a[i].path,
                               strerror(errno));
            t->data = t->owned;
        } else if (read_file(a[i].path, &t->owned, &t->size) < 0) {
            return se_fail(st->err, SCALR_EMAIL_EFILE, STAGE, "attachment '%s': %s", a[i].path,
                           strerror(errno));
        } else {
            t->data = t->owned;
        }
        t->utf8_text =
            strncasecmp(t->type, "text/", 5) == 0 && se_utf8_valid((const char *)t->data, t->size);
    }
    if (st->n_inline && !st->has_html)
        return se_fail(st->err, SCALR_EMAIL_EINVAL, STAGE,
                       "an inline part needs an HTML body that shows it (cid:)");
    return SCALR_EMAIL_OK;
}

/* Every cid: URL of the HTML (RFC 2392) names an inline part. */
static scalr_email_code check_cids(state *st)
{
    if (!st->has_html)
        return SCALR_EMAIL_OK;
    const char *h = st->html.crlf.data;
    size_t n = st->html.crlf.len;
    for (size_t i = 0; i + 4 <= n; i++) {
        if (strncasecmp(h + i, "cid:", 4) != 0)
            continue;
        size_t j = i + 4;
        while (j < n && !strchr("\"'()<> \t\r\n", h[j]))
            j++;
        size_t len = j - i - 4;
        int found = 0;
        for (size_t k = 0; k < st->n_att && !found; k++)
            found = st->att[k].cid && strlen(st->att[k].cid) == len &&
                    memcmp(st->att[k].cid, h + i + 4, len) == 0;
        if (!found)
            return se_fail(st->err, SCALR_EMAIL_EINVAL, STAGE,
                           "the HTML refers to cid:%.*s but no inline part has that content ID",
                           (int)(len > 200 ? 200 : len), h + i + 4);
        i = j - 1;
    }
    return SCALR_EMAIL_OK;
}

/* RFC 2046 5.1.1: a boundary must not occur in any body part.  QP and
 * base64 never produce "=_", so only 7bit texts need checking. */
static scalr_email_code pick_boundary(state *st, char *dst, const char *other, const char *other2)
{
    for (int attempt = 0; attempt < 16; attempt++) {
        unsigned char r[12];
        if (get_random(st->opts, r, sizeof r) < 0)
            return se_fail(st->err, SCALR_EMAIL_EIO, STAGE, "no random bytes from OpenSSL");
        memcpy(dst, "=_scalr_", 8);
        hexify(dst + 8, r, sizeof r);
        if ((other && strcmp(dst, other) == 0) || (other2 && strcmp(dst, other2) == 0))
            continue;
        if (st->has_cal && st->cal.is_7bit && contains(st->cal.crlf.data, st->cal.crlf.len, dst))
            continue;
        if (st->text.is_7bit && contains(st->text.crlf.data, st->text.crlf.len, dst))
            continue;
        if (st->has_html && st->html.is_7bit &&
            contains(st->html.crlf.data, st->html.crlf.len, dst))
            continue;
        return SCALR_EMAIL_OK;
    }
    return se_fail(st->err, SCALR_EMAIL_EINVAL, STAGE, "could not choose a MIME boundary");
}

/* RFC 5322 3.3: date-time, C-locale names, local time with its offset. */
void se_compose_put_date(se_buf *b, time_t now)
{
    static const char *const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    struct tm tm;
    long off = 0;
    if (localtime_r(&now, &tm))
        off = tm.tm_gmtoff;
    else
        gmtime_r(&now, &tm);
    char sign = off < 0 ? '-' : '+';
    if (off < 0)
        off = -off;
    se_buf_printf(b, "Date: %s, %02d %s %04d %02d:%02d:%02d %c%02ld%02ld\r\n", days[tm.tm_wday % 7],
                  tm.tm_mday, months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
                  tm.tm_sec, sign, off / 3600, off / 60 % 60);
}

static size_t column(const se_buf *b)
{
    size_t i = b->len;
    while (i > 0 && b->data[i - 1] != '\n')
        i--;
    return b->len - i;
}

static void truncate_to(se_buf *b, size_t len)
{
    b->len = len;
    if (b->data)
        b->data[len] = '\0';
}

static void put_mailbox(se_buf *b, const se_address *a)
{
    if (!a->display) {
        se_buf_puts(b, a->addr);
        return;
    }
    se_header_phrase(b, a->display);
    /* RFC 5322 3.4: CFWS may precede the angle-addr, so we may fold there. */
    se_buf_puts(b, column(b) + 3 + strlen(a->addr) > LINE_SOFT ? "\r\n <" : " <");
    se_buf_puts(b, a->addr);
    se_buf_puts(b, ">");
}

/* An address-list field, folded between addresses (RFC 5322 3.4). */
static void put_address_field(se_buf *b, const char *name, const se_address *v, size_t n)
{
    se_buf_printf(b, "%s: ", name);
    for (size_t i = 0; i < n; i++) {
        size_t mark = b->len;
        if (i == 0) {
            put_mailbox(b, &v[i]);
            continue;
        }
        se_buf_puts(b, ", ");
        put_mailbox(b, &v[i]);
        /* Did not fit on the current line: start it on a fresh one. */
        if (!b->oom && (column(b) > LINE_SOFT || contains(b->data + mark, b->len - mark, "\n"))) {
            truncate_to(b, mark);
            se_buf_puts(b, ",\r\n ");
            put_mailbox(b, &v[i]);
        }
    }
    se_buf_puts(b, "\r\n");
}

static void put_text_entity(se_buf *b, const char *subtype, const text_part *t)
{
    se_buf_printf(b,
                  "Content-Type: text/%s; charset=utf-8\r\n"
                  "Content-Transfer-Encoding: %s\r\n\r\n",
                  subtype, t->is_7bit ? "7bit" : "quoted-printable");
    if (t->is_7bit)
        se_buf_append(b, t->crlf.data, t->crlf.len);
    else
        se_qp_encode(b, t->crlf.data, t->crlf.len);
}

/* RFC 6047 2.4: the method goes into the Content-Type too. */
static void put_calendar_entity(se_buf *b, const state *st)
{
    const text_part *t = &st->cal;
    se_buf_printf(b,
                  "Content-Type: text/calendar; method=%s; charset=utf-8\r\n"
                  "Content-Transfer-Encoding: %s\r\n\r\n",
                  st->method, t->is_7bit ? "7bit" : "quoted-printable");
    if (t->is_7bit)
        se_buf_append(b, t->crlf.data, t->crlf.len);
    else
        se_qp_encode(b, t->crlf.data, t->crlf.len);
}

static void put_multipart_header(se_buf *b, const char *subtype, const char *boundary)
{
    se_buf_printf(b, "Content-Type: multipart/%s;\r\n boundary=\"%s\"\r\n", subtype, boundary);
}

static void put_attachment_entity(se_buf *b, attachment *t);

/* The HTML, with its inline parts in a multipart/related (RFC 2387). */
static void put_html_entity(se_buf *b, state *st)
{
    if (!st->n_inline) {
        put_text_entity(b, "html", &st->html);
        return;
    }
    se_buf_printf(b, "Content-Type: multipart/related;\r\n boundary=\"%s\";\r\n type=\"text/html\"\r\n",
                  st->rel);
    se_buf_printf(b, "\r\n--%s\r\n", st->rel);
    put_text_entity(b, "html", &st->html);
    for (size_t i = 0; i < st->n_att; i++) {
        if (!st->att[i].cid)
            continue;
        se_buf_printf(b, "\r\n--%s\r\n", st->rel);
        put_attachment_entity(b, &st->att[i]);
    }
    se_buf_printf(b, "\r\n--%s--", st->rel);
}

/* The text, or the alternative of text, html and calendar (the richest
 * last, RFC 2046 5.1.4): headers, blank line, body; without a final line
 * break (the next delimiter's CRLF ends it). */
static void put_body_entity(se_buf *b, state *st)
{
    if (!st->has_html && !st->has_cal) {
        put_text_entity(b, "plain", &st->text);
        return;
    }
    put_multipart_header(b, "alternative", st->alt);
    se_buf_printf(b, "\r\n--%s\r\n", st->alt);
    put_text_entity(b, "plain", &st->text);
    if (st->has_html) {
        se_buf_printf(b, "\r\n--%s\r\n", st->alt);
        put_html_entity(b, st);
    }
    if (st->has_cal) {
        se_buf_printf(b, "\r\n--%s\r\n", st->alt);
        put_calendar_entity(b, st);
    }
    se_buf_printf(b, "\r\n--%s--", st->alt);
}

static void put_attachment_entity(se_buf *b, attachment *t)
{
    se_buf_printf(b, "Content-Type: %s", t->type);
    if (t->utf8_text)
        se_buf_puts(b, "; charset=utf-8");
    se_mime_param(b, "name", t->filename);
    if (t->cid) /* RFC 2392, RFC 2183 */
        se_buf_printf(b, "\r\nContent-ID: <%s>\r\nContent-Disposition: inline", t->cid);
    else
        se_buf_puts(b, "\r\nContent-Disposition: attachment");
    se_mime_param(b, "filename", t->filename);
    se_buf_puts(b, "\r\nContent-Transfer-Encoding: base64\r\n\r\n");
    if (t->deferred) {
        t->at = b->len; /* the reader puts the base64 here */
        return;
    }
    size_t before = b->len;
    se_base64_lines(b, t->data, t->size);
    if (b->len > before)
        truncate_to(b, b->len - 2); /* the delimiter's CRLF ends the last line */
}

static void put_message(se_buf *b, state *st, const char *message_id, time_t now)
{
    const scalr_email_message *m = st->msg;
    se_compose_put_date(b, now);
    put_address_field(b, "From", &st->sender, 1);
    if (st->reply_to.addr)
        put_address_field(b, "Reply-To", &st->reply_to, 1);
    /* RFC 5322 3.6.3: no To field is fine when there are only Cc/Bcc. */
    if (st->to.n)
        put_address_field(b, "To", st->to.v, st->to.n);
    if (st->cc.n)
        put_address_field(b, "Cc", st->cc.v, st->cc.n);
    se_header_unstructured(b, "Subject", m->subject ? m->subject : "");
    se_buf_printf(b, "Message-ID: %s\r\nMIME-Version: 1.0\r\n", message_id);
    for (const scalr_email_header *h = m->headers; h && h->name; h++)
        se_header_unstructured(b, h->name, h->value ? h->value : "");

    if (st->n_att == st->n_inline) {
        put_body_entity(b, st);
        if (b->len < 2 || memcmp(b->data + b->len - 2, "\r\n", 2) != 0)
            se_buf_puts(b, "\r\n");
        return;
    }
    put_multipart_header(b, "mixed", st->mixed);
    se_buf_printf(b, "\r\nThis is a multi-part message in MIME format.\r\n--%s\r\n", st->mixed);
    put_body_entity(b, st);
    for (size_t i = 0; i < st->n_att; i++) {
        if (st->att[i].cid)
            continue; /* in the multipart/related */
        se_buf_printf(b, "\r\n--%s\r\n", st->mixed);
        put_attachment_entity(b, &st->att[i]);
    }
    se_buf_printf(b, "\r\n--%s--\r\n", st->mixed);
}

/* Envelope recipients: to, cc, bcc, first occurrence of each kept. */
static scalr_email_code fill_envelope(state *st, se_composed *out)
{
    size_t total = st->to.n + st->cc.n + st->bcc.n;
    out->rcpt = calloc(total, sizeof *out->rcpt);
    out->mail_from = strdup(st->envelope_from ? st->envelope_from : st->sender.addr);
    if (!out->rcpt || !out->mail_from)
        return se_fail(st->err, SCALR_EMAIL_ENOMEM, STAGE, "out of memory");
    const addr_list *lists[] = {&st->to, &st->cc, &st->bcc};
    out->needs_smtputf8 = se_address_needs_utf8(out->mail_from) ||
                          se_address_needs_utf8(st->sender.addr) ||
                          (st->reply_to.addr && se_address_needs_utf8(st->reply_to.addr));
    for (size_t l = 0; l < 3; l++) {
        for (size_t i = 0; i < lists[l]->n; i++) {
            const char *a = lists[l]->v[i].addr;
            int dup = 0;
            for (size_t k = 0; k < out->n_rcpt && !dup; k++)
                dup = strcasecmp(out->rcpt[k], a) == 0;
            if (dup)
                continue;
            if (!(out->rcpt[out->n_rcpt] = strdup(a)))
                return se_fail(st->err, SCALR_EMAIL_ENOMEM, STAGE, "out of memory");
            out->n_rcpt++;
            out->needs_smtputf8 |= se_address_needs_utf8(a);
        }
    }
    return SCALR_EMAIL_OK;
}

static scalr_email_code compose(state *st, const char *default_from, se_composed *out)
{
    scalr_email_code rc;
    if ((rc = check_addresses(st, default_from)) || (rc = check_headers(st)) ||
        (rc = check_bodies(st)) || (rc = check_calendar(st)) || (rc = check_envelope_from(st)) ||
        (rc = check_attachments(st)) || (rc = check_cids(st)) || (rc = check_dsn(st, out)))
        return rc;

    /* RFC 5322 3.6.4: a unique id on a domain the sender controls. */
    unsigned char r[16];
    char hexid[33];
    if (get_random(st->opts, r, sizeof r) < 0)
        return se_fail(st->err, SCALR_EMAIL_EIO, STAGE, "no random bytes from OpenSSL");
    hexify(hexid, r, sizeof r);
    const char *domain = se_address_domain(st->sender.addr);
    if (strlen(domain) + sizeof hexid + 3 > sizeof out->message_id)
        domain = "scalr-email.invalid";
    snprintf(out->message_id, sizeof out->message_id, "<%s@%s>", hexid, domain);

    if ((st->has_html || st->has_cal) && (rc = pick_boundary(st, st->alt, NULL, NULL)))
        return rc;
    if (st->n_inline && (rc = pick_boundary(st, st->rel, st->alt, NULL)))
        return rc;
    if (st->n_att > st->n_inline && (rc = pick_boundary(st, st->mixed, st->alt, st->rel)))
        return rc;
    if ((rc = fill_envelope(st, out)))
        return rc;

    time_t now = st->opts && st->opts->now ? st->opts->now : time(NULL);
    put_message(&out->data, st, out->message_id, now);
    if (out->data.oom)
        return se_fail(st->err, SCALR_EMAIL_ENOMEM, STAGE, "out of memory");
    out->size = out->data.len;
    for (size_t i = 0; i < st->n_att; i++) {
        if (!st->att[i].deferred)
            continue;
        if (!out->parts && !(out->parts = calloc(st->n_att, sizeof *out->parts)))
            return se_fail(st->err, SCALR_EMAIL_ENOMEM, STAGE, "out of memory");
        const attachment *t = &st->att[i];
        se_compose_part *p = &out->parts[out->n_parts++];
        if (!(p->path = strdup(t->path)))
            return se_fail(st->err, SCALR_EMAIL_ENOMEM, STAGE, "out of memory");
        p->at = t->at;
        /* RFC 2045 6.8: 4 characters per 3 octets, CRLF after each 76,
         * none after the last line (the delimiter's CRLF ends it). */
        size_t chars = (t->size + 2) / 3 * 4;
        p->encoded = chars + (chars + 75) / 76 * 2 - 2;
        p->size = (unsigned long long)t->st.st_size;
        p->ino = (unsigned long long)t->st.st_ino;
        p->dev = (unsigned long long)t->st.st_dev;
        p->mtime_sec = (long long)t->st.st_mtim.tv_sec;
        p->mtime_nsec = (long long)t->st.st_mtim.tv_nsec;
        out->size += p->encoded;
    }
    for (size_t i = 0; i < out->data.len && !out->is_8bit; i++)
        out->is_8bit = (unsigned char)out->data.data[i] >= 0x80;
    return SCALR_EMAIL_OK;
}

scalr_email_code se_compose(const scalr_email_message *msg, const char *default_from,
                            const se_compose_opts *opts, se_composed *out, scalr_email_error *err)
{
    *out = (se_composed){0};
    if (!msg)
        return se_fail(err, SCALR_EMAIL_EINVAL, STAGE, "no message");
    state st = {.msg = msg, .opts = opts, .err = err};
    scalr_email_code rc = compose(&st, default_from, out);

    se_address_free(&st.sender);
    se_address_free(&st.reply_to);
    list_free(&st.to);
    list_free(&st.cc);
    list_free(&st.bcc);
    se_buf_free(&st.text.crlf);
    se_buf_free(&st.html.crlf);
    se_buf_free(&st.cal.crlf);
    free(st.envelope_from);
    for (size_t i = 0; i < st.n_att; i++)
        free(st.att[i].owned);
    free(st.att);
    if (rc)
        se_composed_free(out);
    return rc;
}

void se_composed_free(se_composed *c)
{
    if (!c)
        return;
    se_buf_free(&c->data);
    free(c->mail_from);
    free(c->dsn_notify);
    free(c->dsn_ret);
    free(c->dsn_envid);
    for (size_t i = 0; i < c->n_rcpt; i++)
        free(c->rcpt[i]);
    free(c->rcpt);
    for (size_t i = 0; i < c->n_parts; i++)
        free(c->parts[i].path);
    free(c->parts);
    *c = (se_composed){0};
}
