/* Messages the caller composed (sendmail mode): read in, given the fields
 * they lack, and sent from the spool while it is read back. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/rand.h>

#include "client_int.h"
#include "error.h"
#include "mime/address.h"
#include "mime/encode.h"
#include "net/conn.h"
#include "raw_int.h"

scalr_email_code scalr_email_raw_new(scalr_email_raw **out, const scalr_email_raw_opts *opts,
                                     scalr_email_error *err)
{
    se_error_clear(err);
    if (!out)
        return se_fail(err, SCALR_EMAIL_EINVAL, "COMPOSE", "raw_new: NULL argument");
    *out = NULL;
    scalr_email_raw *r = calloc(1, sizeof *r);
    if (!r)
        return se_fail(err, SCALR_EMAIL_ENOMEM, "COMPOSE", "out of memory");
    static const scalr_email_raw_opts none = {0};
    if (!opts)
        opts = &none;
    const se_ingest_opts io = {
        .dot_ends = opts->dot_ends,
        .header_rcpts = opts->header_recipients,
        .max_header = opts->max_header,
    };
    se_ingest_init(&r->in, &io);
    if (opts->full_name) {
        for (const char *s = opts->full_name; *s; s++)
            if ((unsigned char)*s < 0x20 || *s == 0x7f) {
                free(r);
                return se_fail(err, SCALR_EMAIL_EINVAL, "COMPOSE",
                               "the full name contains a control character");
            }
        if (!se_utf8_valid(opts->full_name, strlen(opts->full_name))) {
            free(r);
            return se_fail(err, SCALR_EMAIL_EINVAL, "COMPOSE", "the full name is not UTF-8");
        }
        if (!(r->full_name = strdup(opts->full_name))) {
            free(r);
            return se_fail(err, SCALR_EMAIL_ENOMEM, "COMPOSE", "out of memory");
        }
    }
    *out = r;
    return SCALR_EMAIL_OK;
}

static scalr_email_code ingest_error(const se_ingest *in, scalr_email_error *err)
{
    if (err)
        *err = in->err;
    return in->err.code;
}

scalr_email_code scalr_email_raw_feed(scalr_email_raw *r, const void *data, size_t n, int *ended,
                                      scalr_email_error *err)
{
    if (!r || (!data && n))
        return se_fail(err, SCALR_EMAIL_EINVAL, "COMPOSE", "raw_feed: NULL argument");
    if (r->in.finished)
        return se_fail(err, SCALR_EMAIL_EINVAL, "COMPOSE", "raw_feed after the end");
    int rc = se_ingest_feed(&r->in, data, n);
    if (ended)
        *ended = r->in.ended;
    return rc < 0 ? ingest_error(&r->in, err) : SCALR_EMAIL_OK;
}

scalr_email_code scalr_email_raw_finish(scalr_email_raw *r, scalr_email_error *err)
{
    if (!r)
        return se_fail(err, SCALR_EMAIL_EINVAL, "COMPOSE", "raw_finish: NULL argument");
    return se_ingest_finish(&r->in) < 0 ? ingest_error(&r->in, err) : SCALR_EMAIL_OK;
}

size_t scalr_email_raw_recipients(scalr_email_raw *r, const char *const **list)
{
    static const char *const none[] = {NULL};
    if (list)
        *list = none;
    if (!r || se_ingest_finish(&r->in) < 0)
        return 0;
    if (list && r->in.n_rcpt)
        *list = (const char *const *)r->in.rcpt;
    return r->in.n_rcpt;
}

void scalr_email_raw_free(scalr_email_raw *r)
{
    if (!r)
        return;
    se_ingest_free(&r->in);
    free(r->full_name);
    free(r);
}

void se_raw_env_free(se_raw_env *e)
{
    free(e->mail_from);
    for (size_t i = 0; i < e->n_rcpt; i++)
        free(e->rcpt[i]);
    free(e->rcpt);
    se_buf_free(&e->add);
    memset(e, 0, sizeof *e);
}

/* One address given by the caller, as an addr-spec. */
static scalr_email_code one_addr(const char *in, const char *what, char **out,
                                 scalr_email_error *err)
{
    se_address a;
    char why[200];
    if (se_address_parse(in, &a, why, sizeof why) < 0) {
        se_fail(err, SCALR_EMAIL_EINVAL, strcmp(what, "sender") ? "RCPT" : "MAIL",
                "%s address '%s' is not usable: %s", what, in, why);
        if (err && strcmp(what, "sender"))
            se_copy_line(err->recipient, sizeof err->recipient, in, strlen(in));
        return SCALR_EMAIL_EINVAL;
    }
    *out = strdup(a.addr);
    se_address_free(&a);
    return *out ? SCALR_EMAIL_OK : se_fail(err, SCALR_EMAIL_ENOMEM, "COMPOSE", "out of memory");
}

/* The first address of the message's From field, when it is a usable
 * addr-spec: the envelope sender when none is given or configured. */
static char *header_from(const scalr_email_raw *r)
{
    for (size_t i = 0; i < r->in.n_f; i++) {
        const se_ifield *f = &r->in.f[i];
        const char *s = r->in.head.data + f->off;
        if (f->name_len != 4 || strncasecmp(s, "From", 4))
            continue;
        se_iaddr *a = NULL;
        long n = se_ingest_addresses(s + 5, f->len - 5 - 2, &a);
        char *out = NULL;
        se_address parsed;
        char why[200];
        if (n > 0 && se_address_parse(a[0].addr, &parsed, why, sizeof why) == 0) {
            out = strdup(parsed.addr);
            se_address_free(&parsed);
        }
        se_iaddr_free(a, n > 0 ? n : 0);
        return out;
    }
    return NULL;
}

scalr_email_code se_raw_prepare(scalr_email_raw *r, const char *mail_from, const char *const *rcpt,
                                const char *default_from, se_raw_env *e, scalr_email_error *err)
{
    memset(e, 0, sizeof *e);
    if (se_ingest_finish(&r->in) < 0)
        return ingest_error(&r->in, err);
    scalr_email_code rc = SCALR_EMAIL_OK;
    se_address def = {0};
    int have_def = 0;
    if (default_from && *default_from) {
        char why[200];
        if (se_address_parse(default_from, &def, why, sizeof why) < 0)
            return se_fail(err, SCALR_EMAIL_ECONFIG, "CONFIG", "SMTP_FROM '%s' is not usable: %s",
                           default_from, why);
        have_def = 1;
    }
    if (mail_from && *mail_from)
        rc = one_addr(mail_from, "sender", &e->mail_from, err);
    else if (mail_from)
        e->mail_from = strdup(""); /* RFC 5321 4.5.5: the null sender <> */
    else if (have_def)
        e->mail_from = strdup(def.addr);
    else if (!(e->mail_from = header_from(r)))
        rc = se_fail(err, SCALR_EMAIL_ENOTCONFIGURED, "CONFIG",
                     "no envelope sender: give -f ADDR, set SMTP_FROM, or put a From field in "
                     "the message");
    if (rc == SCALR_EMAIL_OK && !e->mail_from)
        rc = se_fail(err, SCALR_EMAIL_ENOMEM, "COMPOSE", "out of memory");
    for (size_t i = 0; rc == SCALR_EMAIL_OK && rcpt && rcpt[i]; i++) {
        char *a = NULL;
        if ((rc = one_addr(rcpt[i], "recipient", &a, err)) != SCALR_EMAIL_OK)
            break;
        int dup = 0;
        for (size_t k = 0; k < e->n_rcpt && !dup; k++)
            dup = !strcasecmp(e->rcpt[k], a);
        if (dup) {
            free(a);
            continue;
        }
        char **nr = realloc(e->rcpt, (e->n_rcpt + 1) * sizeof *nr);
        if (!nr) {
            free(a);
            rc = se_fail(err, SCALR_EMAIL_ENOMEM, "COMPOSE", "out of memory");
            break;
        }
        e->rcpt = nr;
        e->rcpt[e->n_rcpt++] = a;
        e->addr_utf8 |= se_address_needs_utf8(a);
    }
    if (rc == SCALR_EMAIL_OK && !e->n_rcpt)
        rc = se_fail(err, SCALR_EMAIL_EINVAL, "RCPT", "no recipients");
    if (rc != SCALR_EMAIL_OK)
        goto out;
    e->addr_utf8 |= se_address_needs_utf8(e->mail_from);

    /* The address an added From and Message-ID use. */
    const char *from_addr = *e->mail_from ? e->mail_from : have_def ? def.addr : NULL;
    time_t now = time(NULL);
    if (!r->in.has_date) /* RFC 5322 3.6: Date and From are required */
        se_compose_put_date(&e->add, now);
    if (!r->in.has_msgid) { /* RFC 5322 3.6.4 */
        unsigned char rnd[16];
        if (RAND_bytes(rnd, sizeof rnd) != 1) {
            rc = se_fail(err, SCALR_EMAIL_EIO, "COMPOSE", "no random bytes from OpenSSL");
            goto out;
        }
        const char *dom = from_addr ? se_address_domain(from_addr) : NULL;
        if (!dom || !*dom || strlen(dom) > 200)
            dom = "scalr-email.invalid";
        char *p = e->message_id;
        *p++ = '<';
        for (size_t i = 0; i < sizeof rnd; i++, p += 2)
            snprintf(p, 3, "%02x", rnd[i]);
        snprintf(p, sizeof e->message_id - (size_t)(p - e->message_id), "@%s>", dom);
        se_buf_printf(&e->add, "Message-ID: %s\r\n", e->message_id);
    } else {
        for (size_t i = 0; i < r->in.n_f; i++) {
            const se_ifield *f = &r->in.f[i];
            const char *s = r->in.head.data + f->off;
            if (f->name_len != 10 || strncasecmp(s, "Message-ID", 10))
                continue;
            const char *v = s + 11, *end = s + f->len;
            while (v < end && (*v == ' ' || *v == '\t'))
                v++;
            while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
                end--;
            se_copy_line(e->message_id, sizeof e->message_id, v, (size_t)(end - v));
            break;
        }
    }
    if (!r->in.has_from) {
        if (!from_addr) {
            rc = se_fail(err, SCALR_EMAIL_ENOTCONFIGURED, "CONFIG",
                         "the message has no From field and no sender is configured (SMTP_FROM)");
            goto out;
        }
        /* The configured name only goes with the configured address. */
        const char *name = r->full_name                                   ? r->full_name
                           : have_def && !strcasecmp(from_addr, def.addr) ? def.display
                                                                          : NULL;
        se_buf_puts(&e->add, "From: ");
        if (name && *name) {
            se_header_phrase(&e->add, name);
            se_buf_printf(&e->add, " <%s>\r\n", from_addr);
        } else {
            se_buf_printf(&e->add, "%s\r\n", from_addr);
        }
    }
    if (e->add.oom)
        rc = se_fail(err, SCALR_EMAIL_ENOMEM, "COMPOSE", "out of memory");
out:
    if (have_def)
        se_address_free(&def);
    if (rc != SCALR_EMAIL_OK)
        se_raw_env_free(e);
    return rc;
}

static int has_8bit(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] >= 0x80)
            return 1;
    return 0;
}

scalr_email_code se_raw_body_hash(const scalr_email_raw *r, unsigned char bh[32],
                                  scalr_email_error *err)
{
    se_dkim_body body;
    se_ibody b = {0};
    if (se_dkim_body_init(&body, 1) < 0)
        return se_fail(err, SCALR_EMAIL_ENOMEM, "COMPOSE", "out of memory");
    scalr_email_code rc = SCALR_EMAIL_OK;
    if (se_ingest_rewind(&b, &r->in) < 0)
        rc = se_fail(err, SCALR_EMAIL_ENOMEM, "COMPOSE", "out of memory");
    while (rc == SCALR_EMAIL_OK) {
        const char *p;
        size_t n;
        if (se_ingest_body_next(&b, &p, &n, err) < 0)
            rc = err ? err->code : SCALR_EMAIL_EFILE;
        else if (!n)
            break;
        else
            se_dkim_body_update(&body, p, n);
    }
    se_ibody_free(&b);
    if (se_dkim_body_final(&body, bh) < 0 && rc == SCALR_EMAIL_OK)
        rc = se_fail(err, SCALR_EMAIL_ENOMEM, "COMPOSE", "out of memory");
    return rc;
}

scalr_email_code se_raw_dkim_sign(const se_dkim_signer *s, const unsigned char bh[32], se_buf *head,
                                  scalr_email_error *err)
{
    if (!s || !s->n)
        return SCALR_EMAIL_OK;
    if (head->len < 2)
        return se_fail(err, SCALR_EMAIL_EINVAL, "COMPOSE", "DKIM: the message has no header");
    size_t hlen = head->len - 2; /* without the empty line */
    scalr_email_code rc =
        se_dkim_check_aligned(s->keys, s->n, s->allow_mismatch, head->data, hlen, err);
    se_buf sig = {0};
    if (rc == SCALR_EMAIL_OK)
        rc = se_dkim_sign(s->keys, s->n, head->data, hlen, bh, time(NULL), &sig, err);
    if (rc == SCALR_EMAIL_OK) {
        se_buf all = {0};
        se_buf_reserve(&all, sig.len + head->len);
        se_buf_append(&all, sig.data, sig.len);
        se_buf_append(&all, head->data, head->len);
        if (all.oom) {
            se_buf_free(&all);
            rc = se_fail(err, SCALR_EMAIL_ENOMEM, "COMPOSE", "out of memory");
        } else {
            se_buf_free(head);
            *head = all;
        }
    }
    se_buf_free(&sig);
    return rc;
}

/* Before connecting: the sender within the allowed domains, and the From
 * domain aligned with the DKIM keys (the header as the least capable
 * server would get it; From is never re-encoded differently). */
static scalr_email_code raw_check(const scalr_email_client *c, const scalr_email_raw *r,
                                  const se_raw_env *e, scalr_email_error *err)
{
    if (!c->allowed && !c->dkim)
        return SCALR_EMAIL_OK;
    se_buf head = {0};
    scalr_email_code rc = SCALR_EMAIL_OK;
    if (se_ingest_header(&r->in, 0, e->add.data, &head, err) < 0)
        rc = err ? err->code : SCALR_EMAIL_EINVAL;
    if (rc == SCALR_EMAIL_OK)
        rc = se_client_check_sender(c, e->mail_from, head.data, head.len, err);
    if (rc == SCALR_EMAIL_OK && c->dkim && head.len >= 2)
        rc = se_dkim_check_aligned(c->dkim->keys, c->dkim->n, c->dkim->allow_mismatch, head.data,
                                   head.len - 2, err);
    se_buf_free(&head);
    return rc;
}

/* The message for the engine: the header block, then the body pieces. */
typedef struct raw_source {
    const se_buf *head; /* with the body too when it is in memory */
    int head_done, body_in_head;
    se_ibody body;
} raw_source;

static int raw_next(void *arg, const char **p, size_t *n, scalr_email_error *err)
{
    raw_source *s = arg;
    if (!s->head_done) {
        s->head_done = 1;
        *p = s->head->data;
        *n = s->head->len;
        return 0;
    }
    if (s->body_in_head) {
        *p = "";
        *n = 0;
        return 0;
    }
    return se_ingest_body_next(&s->body, p, n, err);
}

scalr_email_code scalr_email_client_send_raw(scalr_email_client *c, scalr_email_raw *r,
                                             const char *mail_from, const char *const *rcpt,
                                             scalr_email_error *err)
{
    se_error_clear(err);
    if (!c || !r)
        return se_fail(err, SCALR_EMAIL_EINVAL, "COMPOSE", "send_raw: NULL argument");
    scalr_email_error local;
    if (!err)
        err = &local;
    se_raw_env e;
    scalr_email_code rc = se_raw_prepare(r, mail_from, rcpt, c->s.from, &e, err);
    if (rc != SCALR_EMAIL_OK)
        return rc;
    se_buf head = {0};
    unsigned char bh[32];
    if ((rc = raw_check(c, r, &e, err)) != SCALR_EMAIL_OK ||
        (c->dkim && (rc = se_raw_body_hash(r, bh, err)) != SCALR_EMAIL_OK)) {
        se_raw_env_free(&e);
        return rc;
    }
    snprintf(err->message_id, sizeof err->message_id, "%s", e.message_id);
    long long limit = c->send_timeout_ms ? se_conn_now_ms() + c->send_timeout_ms : 0;
    for (int attempt = 0;; attempt++) {
        se_session *ss = NULL;
        rc = se_client_session_until(c, &ss, limit, err);
        if (rc != SCALR_EMAIL_OK)
            break;
        /* RFC 6531 3.2: raw UTF-8 fields only to a server that takes them. */
        int utf8 = (se_smtp_caps(ss->eng) & SE_CAP_SMTPUTF8) != 0;
        se_buf_reset(&head);
        if (se_ingest_header(&r->in, utf8, e.add.data, &head, err) < 0) {
            rc = err->code;
            se_client_release(c, ss);
            break;
        }
        /* Signed per connection: the header's encoding depends on the
         * server (SMTPUTF8), and the signature covers it as sent. */
        if (c->dkim && (rc = se_raw_dkim_sign(c->dkim, bh, &head, err)) != SCALR_EMAIL_OK) {
            se_client_release(c, ss);
            break;
        }
        int head8 = has_8bit(head.data, head.len);
        size_t head_len = head.len;
        /* A body held in memory goes in the same write as the header. */
        int in_mem = r->in.fd < 0;
        if (in_mem && r->in.body.len && se_buf_append(&head, r->in.body.data, r->in.body.len) < 0) {
            se_client_release(c, ss);
            rc = se_fail(err, SCALR_EMAIL_ENOMEM, "DATA", "out of memory");
            break;
        }
        const se_smtp_envelope env = {
            .mail_from = e.mail_from,
            .rcpt = (const char *const *)e.rcpt,
            .n_rcpt = e.n_rcpt,
            .needs_smtputf8 = e.addr_utf8 || (utf8 && head8),
            .is_8bit = head8 || r->in.body_8bit, /* RFC 6152 */
        };
        raw_source src = {.head = &head, .body_in_head = in_mem};
        if (se_ingest_rewind(&src.body, &r->in) < 0) {
            se_client_release(c, ss);
            rc = se_fail(err, SCALR_EMAIL_ENOMEM, "DATA", "out of memory");
            break;
        }
        const se_smtp_source s = {
            .next = raw_next, .arg = &src, .size = head_len + (size_t)r->in.body_len};
        int handed = 0, reused = ss->reused;
        rc = se_client_transact_source(c, ss, &env, &s, e.message_id, err, &handed);
        se_ibody_free(&src.body);
        se_client_release(c, ss);
        if (rc != SCALR_EMAIL_OK && reused && !handed && attempt == 0 &&
            se_client_conn_failure(err))
            continue;
        break;
    }
    if (err->message_id[0] == '\0')
        snprintf(err->message_id, sizeof err->message_id, "%s", e.message_id);
    se_buf_free(&head);
    se_raw_env_free(&e);
    return rc;
}
