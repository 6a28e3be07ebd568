/* Reading a message the caller composed (see ingest.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <idn2.h>

#include "error.h"
#include "mime/address.h"
#include "mime/encode.h"
#include "mime/ingest.h"

#define STAGE "COMPOSE"
#define PIECE 65536

void se_ingest_init(se_ingest *r, const se_ingest_opts *opts)
{
    memset(r, 0, sizeof *r);
    if (opts)
        r->o = *opts;
    if (!r->o.max_header)
        r->o.max_header = 1 << 20;
    if (!r->o.mem_body)
        r->o.mem_body = 256 << 10;
    r->fd = -1;
    r->bol = 1;
}

void se_ingest_free(se_ingest *r)
{
    se_buf_free(&r->line);
    se_buf_free(&r->head);
    se_buf_free(&r->body);
    free(r->f);
    if (r->fd >= 0)
        close(r->fd);
    for (size_t i = 0; i < r->n_rcpt; i++)
        free(r->rcpt[i]);
    free(r->rcpt);
    memset(r, 0, sizeof *r);
    r->fd = -1;
}

/* The first failure stays: later ones are its consequences. */
#define fail(r, what, ...)                                                                         \
    ((r)->err.code == SCALR_EMAIL_OK ? (void)se_fail(&(r)->err, what, STAGE, __VA_ARGS__)          \
                                     : (void)0,                                                    \
     -1)

static int oom(se_ingest *r)
{
    return fail(r, SCALR_EMAIL_ENOMEM, "out of memory");
}

/* The spool: an unlinked file, so nothing is left behind whatever happens. */
static int spool_open(se_ingest *r)
{
    const char *dir = r->o.spool_dir;
    if (!dir || !*dir)
        dir = getenv("TMPDIR");
    if (!dir || !*dir)
        dir = "/tmp";
#ifdef O_TMPFILE
    r->fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
#endif
    if (r->fd < 0) {
        se_buf path = {0};
        se_buf_printf(&path, "%s/scalr-email-XXXXXX", dir);
        if (path.oom)
            return oom(r);
        r->fd = mkstemp(path.data);
        if (r->fd >= 0) {
            unlink(path.data);
            fcntl(r->fd, F_SETFD, FD_CLOEXEC);
        }
        se_buf_free(&path);
    }
    if (r->fd < 0)
        return fail(r, SCALR_EMAIL_EFILE, "cannot create a spool file in %s", dir);
    return 0;
}

static int spool_flush(se_ingest *r)
{
    if (r->fd < 0 && spool_open(r) < 0)
        return -1;
    size_t done = 0;
    while (done < r->body.len) {
        ssize_t k = write(r->fd, r->body.data + done, r->body.len - done);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return fail(r, SCALR_EMAIL_EFILE, "cannot write the spool file: %s",
                        strerror(k < 0 ? errno : ENOSPC));
        done += (size_t)k;
    }
    se_buf_reset(&r->body);
    return 0;
}

static int body_put(se_ingest *r, const char *p, size_t n)
{
    for (size_t i = 0; i < n && !r->body_8bit; i++)
        r->body_8bit = (unsigned char)p[i] >= 0x80;
    if (se_buf_append(&r->body, p, n) < 0)
        return oom(r);
    r->body_len += n;
    if (r->body.len >= r->o.mem_body && r->fd < 0)
        return spool_flush(r);
    if (r->fd >= 0 && r->body.len >= PIECE)
        return spool_flush(r);
    return 0;
}

static int is_field_name(const char *s, size_t n)
{
    size_t i = 0;
    while (i < n && s[i] != ':' && (unsigned char)s[i] > 32 && (unsigned char)s[i] < 127)
        i++;
    return i > 0 && i < n && s[i] == ':';
}

static int add_field(se_ingest *r, const char *s, size_t n)
{
    if (r->n_f == r->cap_f) {
        size_t cap = r->cap_f ? r->cap_f * 2 : 16;
        se_ifield *f = realloc(r->f, cap * sizeof *f);
        if (!f)
            return oom(r);
        r->f = f;
        r->cap_f = cap;
    }
    se_ifield *f = &r->f[r->n_f++];
    memset(f, 0, sizeof *f);
    f->off = r->head.len;
    f->name_len = (size_t)((const char *)memchr(s, ':', n) - s);
    se_buf_append(&r->head, s, n);
    se_buf_append(&r->head, "\r\n", 2);
    f->len = r->head.len - f->off;
    return r->head.oom ? oom(r) : 0;
}

/* A whole header line (without its line end) has been read. */
static int header_line(se_ingest *r)
{
    const char *s = r->line.data ? r->line.data : "";
    size_t n = r->line.len;
    int first = r->n_f == 0 && !r->skipped_first;
    if (n == 0) { /* RFC 5322 2.1: the empty line ends the header */
        r->in_body = 1;
        return 0;
    }
    if ((s[0] == ' ' || s[0] == '\t') && r->n_f) { /* RFC 5322 2.2.3: a fold */
        se_ifield *f = &r->f[r->n_f - 1];
        se_buf_append(&r->head, s, n);
        se_buf_append(&r->head, "\r\n", 2);
        f->len += n + 2;
        return r->head.oom ? oom(r) : 0;
    }
    if (first && n > 5 && !memcmp(s, "From ", 5)) { /* an mbox separator, as Postfix drops it */
        r->skipped_first = 1;
        return 0;
    }
    if (is_field_name(s, n))
        return add_field(r, s, n);
    /* Not a header field: the header is over and this line is the body's. */
    r->in_body = 1;
    if (body_put(r, s, n) < 0 || body_put(r, "\r\n", 2) < 0)
        return -1;
    return 0;
}

static int line_end(se_ingest *r)
{
    if (r->dot_held) { /* a line holding only "." */
        r->dot_held = 0;
        r->ended = 1;
        return 0;
    }
    if (!r->in_body) {
        int rc = header_line(r);
        se_buf_reset(&r->line);
        return rc;
    }
    r->bol = 1;
    return body_put(r, "\r\n", 2);
}

/* Text of the current line, after the "." check. */
static int put_text(se_ingest *r, const char *s, size_t n)
{
    if (r->in_body) {
        r->bol = 0;
        return body_put(r, s, n);
    }
    if (r->head.len + r->line.len + n > r->o.max_header)
        return fail(r, SCALR_EMAIL_EINVAL, "the message's header is larger than %zu bytes",
                    r->o.max_header);
    for (size_t i = 0; i < n && !r->head_8bit; i++)
        r->head_8bit = (unsigned char)s[i] >= 0x80;
    return se_buf_append(&r->line, s, n) < 0 ? oom(r) : 0;
}

static int text(se_ingest *r, const char *s, size_t n)
{
    int at_start = r->in_body ? r->bol : r->line.len == 0;
    /* Without -i a line holding only "." ends the input, as in Postfix: hold
     * a leading dot until the line shows whether it is that line. */
    if (r->o.dot_ends && at_start && !r->dot_held && n && s[0] == '.') {
        r->dot_held = 1;
        s++, n--;
    }
    if (!n)
        return 0;
    if (r->dot_held) {
        r->dot_held = 0;
        if (put_text(r, ".", 1) < 0)
            return -1;
    }
    return put_text(r, s, n);
}

int se_ingest_feed(se_ingest *r, const void *data, size_t n)
{
    const char *p = data;
    size_t i = 0;
    if (r->err.code != SCALR_EMAIL_OK)
        return -1;
    /* RFC 5321 2.3.8: bare CR and bare LF both become CRLF. */
    while (i < n && !r->ended) {
        if (r->cr) {
            r->cr = 0;
            if (p[i] == '\n') {
                i++;
                continue;
            }
        }
        char c = p[i];
        if (c == '\r' || c == '\n') {
            r->cr = c == '\r';
            i++;
            if (line_end(r) < 0)
                return -1;
            continue;
        }
        size_t j = i;
        while (j < n && p[j] != '\r' && p[j] != '\n')
            j++;
        if (text(r, p + i, j - i) < 0)
            return -1;
        i = j;
    }
    return 0;
}

static int name_is(const se_ingest *r, const se_ifield *f, const char *name)
{
    return f->name_len == strlen(name) && !strncasecmp(r->head.data + f->off, name, f->name_len);
}

/* The value of a field without its name, colon and final CRLF. */
static const char *value_of(const se_ingest *r, const se_ifield *f, size_t *n)
{
    const char *v = r->head.data + f->off + f->name_len + 1;
    *n = f->len - f->name_len - 1 - 2;
    return v;
}

static int take_rcpts(se_ingest *r, const se_ifield *f)
{
    size_t n;
    const char *v = value_of(r, f, &n);
    se_iaddr *a = NULL;
    long k = se_ingest_addresses(v, n, &a);
    if (k < 0)
        return oom(r);
    for (long i = 0; i < k; i++) {
        if (!a[i].addr[0])
            continue;
        int dup = 0;
        for (size_t j = 0; j < r->n_rcpt && !dup; j++)
            dup = !strcasecmp(r->rcpt[j], a[i].addr);
        if (dup)
            continue;
        char **nr = realloc(r->rcpt, (r->n_rcpt + 1) * sizeof *nr);
        if (!nr) {
            se_iaddr_free(a, k);
            return oom(r);
        }
        r->rcpt = nr;
        r->rcpt[r->n_rcpt++] = a[i].addr;
        a[i].addr = NULL;
    }
    se_iaddr_free(a, k);
    return 0;
}

int se_ingest_finish(se_ingest *r)
{
    if (r->finished)
        return r->err.code == SCALR_EMAIL_OK ? 0 : -1;
    r->finished = 1;
    if (r->err.code != SCALR_EMAIL_OK)
        return -1;
    if (!r->ended && (r->line.len || r->dot_held || (r->in_body && !r->bol)))
        if (line_end(r) < 0) /* the last line had no line end: give it one */
            return -1;
    if (r->fd >= 0 && r->body.len && spool_flush(r) < 0)
        return -1;
    int resent = 0;
    for (size_t i = 0; i < r->n_f; i++) {
        se_ifield *f = &r->f[i];
        const char *s = r->head.data + f->off;
        for (size_t k = 0; k < f->len && !f->non_ascii; k++)
            f->non_ascii = (unsigned char)s[k] >= 0x80;
        r->has_date |= name_is(r, f, "Date");
        r->has_msgid |= name_is(r, f, "Message-ID");
        r->has_from |= name_is(r, f, "From");
        /* RFC 5322 3.6.3: Bcc recipients are not shown (nor Resent-Bcc, 3.6.6) */
        f->removed = name_is(r, f, "Bcc") || name_is(r, f, "Resent-Bcc");
        resent |=
            name_is(r, f, "Resent-To") || name_is(r, f, "Resent-Cc") || name_is(r, f, "Resent-Bcc");
    }
    /* -t: a resent message goes to its Resent-* recipients only, as Postfix
     * and sendmail do (RFC 5322 3.6.6); otherwise to To, Cc and Bcc. */
    static const char *const plain[] = {"To", "Cc", "Bcc"};
    static const char *const again[] = {"Resent-To", "Resent-Cc", "Resent-Bcc"};
    const char *const *names = resent ? again : plain;
    for (size_t i = 0; r->o.header_rcpts && i < r->n_f; i++) {
        se_ifield *f = &r->f[i];
        if (name_is(r, f, names[0]) || name_is(r, f, names[1]) || name_is(r, f, names[2]))
            if (take_rcpts(r, f) < 0)
                return -1;
    }
    return 0;
}

/* ---- address lists (RFC 5322 3.4), leniently ---- */

void se_iaddr_free(se_iaddr *a, long n)
{
    for (long i = 0; i < n; i++) {
        free(a[i].display);
        free(a[i].addr);
    }
    free(a);
}

static char *trimmed(const char *s, size_t n)
{
    while (n && (*s == ' ' || *s == '\t'))
        s++, n--;
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    return strndup(s, n);
}

/* One mailbox: "addr", "Name <addr>", "\"Quoted\" <addr>", comments dropped. */
static int one_mailbox(const char *s, size_t n, se_iaddr *out)
{
    se_buf disp = {0}, plain = {0};
    const char *lt = NULL, *gt = NULL;
    int q = 0, depth = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '\r' || c == '\n')
            continue; /* folds */
        if (depth) {
            if (c == '\\' && i + 1 < n)
                i++;
            else if (c == '(')
                depth++;
            else if (c == ')')
                depth--;
            continue;
        }
        if (q) {
            if (c == '\\' && i + 1 < n)
                c = s[++i];
            else if (c == '"') {
                q = 0;
                continue;
            }
            se_buf_append(lt ? &plain : &disp, &c, 1);
            if (!lt)
                se_buf_append(&plain, &c, 1);
            continue;
        }
        if (c == '"') {
            q = 1;
            continue;
        }
        if (c == '(') {
            depth = 1;
            continue;
        }
        if (c == '<' && !lt) {
            lt = s + i;
            continue;
        }
        if (c == '>' && lt && !gt) {
            gt = s + i;
            continue;
        }
        if (lt && !gt)
            continue; /* inside <...>: taken below */
        se_buf_append(&disp, &c, 1);
        if (c != ' ' && c != '\t')
            se_buf_append(&plain, &c, 1);
    }
    int rc = 0;
    if (lt) {
        const char *a = lt + 1, *e = gt ? gt : s + n;
        const char *colon = memchr(a, ':', (size_t)(e - a));
        if (*a == '@' && colon) /* RFC 5322 4.4: an obsolete route */
            a = colon + 1;
        se_buf spec = {0};
        for (const char *k = a; k < e; k++)
            if (*k != ' ' && *k != '\t' && *k != '\r' && *k != '\n')
                se_buf_append(&spec, k, 1);
        out->addr = spec.data ? se_buf_steal(&spec, NULL) : strdup("");
        out->display = disp.len ? trimmed(disp.data, disp.len) : NULL;
        if (out->display && !*out->display) {
            free(out->display);
            out->display = NULL;
        }
    } else {
        out->addr = plain.data ? se_buf_steal(&plain, NULL) : strdup("");
        out->display = NULL;
    }
    if (!out->addr)
        rc = -1;
    se_buf_free(&disp);
    se_buf_free(&plain);
    return rc;
}

long se_ingest_addresses(const char *v, size_t n, se_iaddr **out)
{
    long count = 0, cap = 0;
    se_iaddr *a = NULL;
    size_t start = 0;
    int q = 0, depth = 0, angle = 0;
    *out = NULL;
    for (size_t i = 0; i <= n; i++) {
        char c = i < n ? v[i] : ',';
        if (i < n && depth) {
            if (c == '\\')
                i++;
            else if (c == '(')
                depth++;
            else if (c == ')')
                depth--;
            continue;
        }
        if (i < n && q) {
            if (c == '\\')
                i++;
            else if (c == '"')
                q = 0;
            continue;
        }
        if (i < n && c == '"') {
            q = 1;
            continue;
        }
        if (i < n && c == '(') {
            depth = 1;
            continue;
        }
        if (c == '<')
            angle = 1;
        else if (c == '>')
            angle = 0;
        if (angle && i < n)
            continue;
        if (c == ':') { /* RFC 5322 3.4: "group:" - its name is dropped */
            start = i + 1;
            continue;
        }
        if (c != ',' && c != ';')
            continue;
        size_t k = start;
        while (k < i && (v[k] == ' ' || v[k] == '\t' || v[k] == '\r' || v[k] == '\n'))
            k++;
        if (k < i) {
            if (count == cap) {
                long nc = cap ? cap * 2 : 8;
                se_iaddr *na = realloc(a, (size_t)nc * sizeof *na);
                if (!na) {
                    se_iaddr_free(a, count);
                    return -1;
                }
                a = na;
                cap = nc;
            }
            memset(&a[count], 0, sizeof a[count]);
            if (one_mailbox(v + k, i - k, &a[count]) < 0) {
                se_iaddr_free(a, count + 1);
                return -1;
            }
            if (a[count].addr[0] || a[count].display)
                count++;
            else
                free(a[count].addr), free(a[count].display);
        }
        start = i + 1;
        angle = 0;
    }
    *out = a;
    return count;
}

/* ---- the header to send ---- */

static int is_address_field(const se_ingest *r, const se_ifield *f)
{
    static const char *const names[] = {"From",          "To",          "Cc",        "Reply-To",
                                        "Sender",        "Resent-From", "Resent-To", "Resent-Cc",
                                        "Resent-Sender", NULL};
    for (size_t i = 0; names[i]; i++)
        if (name_is(r, f, names[i]))
            return 1;
    return 0;
}

/* Structured fields whose raw bytes are left alone: encoding them would
 * change what they mean. */
int se_ingest_kept_raw(const char *s, size_t n)
{
    static const char *const names[] = {
        "Date",        "Message-ID",   "In-Reply-To",    "References",  "Received",
        "Return-Path", "MIME-Version", "DKIM-Signature", "Resent-Date", "Resent-Message-ID",
        NULL};
    if (n > 8 && !strncasecmp(s, "Content-", 8) &&
        !(n == 19 && !strncasecmp(s, "Content-Description", 19)))
        return 1;
    if (n > 5 && !strncasecmp(s, "List-", 5))
        return 1;
    for (size_t i = 0; names[i]; i++)
        if (n == strlen(names[i]) && !strncasecmp(s, names[i], n))
            return 1;
    return 0;
}

static int is_structured(const se_ingest *r, const se_ifield *f)
{
    return se_ingest_kept_raw(r->head.data + f->off, f->name_len);
}

static char *unfold(const char *v, size_t n)
{
    se_buf b = {0};
    for (size_t i = 0; i < n; i++)
        if (v[i] != '\r' && v[i] != '\n')
            se_buf_append(&b, &v[i], 1);
    if (!b.data)
        return strdup("");
    return se_buf_steal(&b, NULL);
}

/* An address field with its display names RFC 2047-encoded (no SMTPUTF8). */
static int encode_address_field(const se_ingest *r, const se_ifield *f, se_buf *out,
                                scalr_email_error *err)
{
    size_t n;
    const char *v = value_of(r, f, &n);
    se_iaddr *a = NULL;
    long k = se_ingest_addresses(v, n, &a);
    if (k < 0)
        return se_fail(err, SCALR_EMAIL_ENOMEM, STAGE, "out of memory"), -1;
    se_buf_append(out, r->head.data + f->off, f->name_len);
    se_buf_puts(out, ":");
    size_t col = f->name_len + 1;
    int rc = 0;
    for (long i = 0; i < k && rc == 0; i++) {
        const char *addr = a[i].addr;
        const char *at = strrchr(addr, '@');
        if (!at && se_address_needs_utf8(addr)) {
            se_fail(err, SCALR_EMAIL_EINVAL, STAGE,
                    "%.*s holds non-ASCII text that is not an address and the server does not "
                    "offer SMTPUTF8; nothing was sent",
                    (int)f->name_len, r->head.data + f->off);
            rc = -1;
            break;
        }
        for (const char *p = addr; at && p < at; p++)
            if ((unsigned char)*p >= 0x80) {
                se_fail(err, SCALR_EMAIL_EINVAL, STAGE,
                        "address '%s' in %.*s has a non-ASCII local part and the server does "
                        "not offer SMTPUTF8; nothing was sent",
                        addr, (int)f->name_len, r->head.data + f->off);
                rc = -1;
                break;
            }
        if (rc)
            break;
        char *ascii = NULL;
        if (at && se_address_needs_utf8(at)) { /* RFC 5890: the domain as an A-label */
            if (idn2_to_ascii_8z(at + 1, &ascii, IDN2_NONTRANSITIONAL | IDN2_NFC_INPUT) !=
                IDN2_OK) {
                se_fail(err, SCALR_EMAIL_EINVAL, STAGE, "address '%s': invalid domain", addr);
                rc = -1;
                break;
            }
        }
        se_buf one = {0};
        if (a[i].display) {
            se_header_phrase(&one, a[i].display);
            se_buf_puts(&one, " <");
        }
        if (ascii) {
            se_buf_append(&one, addr, (size_t)(at - addr) + 1);
            se_buf_puts(&one, ascii);
            idn2_free(ascii);
        } else {
            se_buf_puts(&one, addr);
        }
        if (a[i].display)
            se_buf_puts(&one, ">");
        if (one.oom) {
            se_buf_free(&one);
            se_fail(err, SCALR_EMAIL_ENOMEM, STAGE, "out of memory");
            rc = -1;
            break;
        }
        /* RFC 5322 2.2.3: fold between addresses to stay near 78 columns. */
        if (i && col + one.len + 2 > 78) {
            se_buf_puts(out, ",\r\n ");
            col = 1;
        } else {
            se_buf_puts(out, i ? ", " : " ");
            col += i ? 2 : 1;
        }
        se_buf_append(out, one.data, one.len);
        col += one.len;
        se_buf_free(&one);
    }
    se_buf_puts(out, "\r\n");
    se_iaddr_free(a, k);
    return rc;
}

int se_ingest_header(const se_ingest *r, int utf8, const char *add, se_buf *out,
                     scalr_email_error *err)
{
    if (add)
        se_buf_puts(out, add);
    for (size_t i = 0; i < r->n_f; i++) {
        const se_ifield *f = &r->f[i];
        if (f->removed)
            continue;
        if (utf8 || !f->non_ascii || is_structured(r, f)) {
            se_buf_append(out, r->head.data + f->off, f->len);
            continue;
        }
        if (is_address_field(r, f)) {
            if (encode_address_field(r, f, out, err) < 0)
                return -1;
            continue;
        }
        /* RFC 2047 5(1): an unstructured field becomes encoded-words. */
        size_t n;
        const char *v = value_of(r, f, &n);
        char *val = unfold(v, n);
        char *name = strndup(r->head.data + f->off, f->name_len);
        if (!val || !name) {
            free(val);
            free(name);
            return se_fail(err, SCALR_EMAIL_ENOMEM, STAGE, "out of memory"), -1;
        }
        const char *s = val;
        while (*s == ' ' || *s == '\t')
            s++;
        if (!se_utf8_valid(s, strlen(s))) {
            se_fail(err, SCALR_EMAIL_EINVAL, STAGE,
                    "header field %s holds 8-bit bytes that are not UTF-8; nothing was sent", name);
            free(val);
            free(name);
            return -1;
        }
        se_header_unstructured(out, name, s);
        free(val);
        free(name);
    }
    se_buf_puts(out, "\r\n");
    if (out->oom)
        return se_fail(err, SCALR_EMAIL_ENOMEM, STAGE, "out of memory"), -1;
    return 0;
}

/* ---- the body, read back ---- */

int se_ingest_rewind(se_ibody *b, const se_ingest *r)
{
    b->r = r;
    b->pos = 0;
    if (r->fd >= 0 && !b->buf && !(b->buf = malloc(PIECE)))
        return -1;
    return 0;
}

int se_ingest_body_next(se_ibody *b, const char **p, size_t *n, scalr_email_error *err)
{
    const se_ingest *r = b->r;
    *p = "";
    *n = 0;
    if (b->pos >= r->body_len)
        return 0;
    if (r->fd < 0) {
        *p = r->body.data + b->pos;
        *n = (size_t)(r->body_len - b->pos);
        b->pos = r->body_len;
        return 0;
    }
    unsigned long long left = r->body_len - b->pos;
    size_t want = left < PIECE ? (size_t)left : PIECE;
    ssize_t k;
    while ((k = pread(r->fd, b->buf, want, (off_t)b->pos)) < 0 && errno == EINTR)
        ;
    if (k <= 0)
        return se_fail(err, SCALR_EMAIL_EFILE, "DATA", "cannot read the spool file: %s",
                       k < 0 ? strerror(errno) : "it is shorter than written"),
               -1;
    *p = b->buf;
    *n = (size_t)k;
    b->pos += (size_t)k;
    return 0;
}

void se_ibody_free(se_ibody *b)
{
    free(b->buf);
    b->buf = NULL;
}
