/* libFuzzer target: se_compose (src/mime/compose.h).
 *
 * Input: two flag bytes, then NUL-separated fields: subject, body, html,
 * the display names of sender, To, Cc and Reply-To, a whole Bcc address,
 * two extra headers (name, value), an attachment's file name and content
 * type; the rest of the input is the attachment's bytes.  The clock and
 * the "random" bytes are fixed.
 *
 * Checks on success, besides memory safety:
 *   - CRLF line ends only, every line <= 998 octets, a final CRLF;
 *   - 7-bit unless needs_smtputf8, and is_8bit says whether a byte >= 0x80
 *     is present;
 *   - the header block is well formed (fields "name:" or folded lines that
 *     are not blank), holds exactly the fields expected (so nothing was
 *     injected), no Bcc field, and not the Bcc address;
 *   - Subject and extra header values unfold and decode (RFC 2047) to what
 *     was given; the text, HTML and attachment parts decode to what was
 *     given; each MIME boundary delimits exactly the parts expected;
 *   - the envelope: MAIL FROM is the sender, recipients are deduplicated
 *     addr-specs.
 * On failure: EINVAL, EFILE or ENOTCONFIGURED, a one-line message, no
 * output. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mime/compose.h"

#define FAIL(...)                                                                                  \
    do {                                                                                           \
        fprintf(stderr, "fuzz_compose: " __VA_ARGS__);                                             \
        fputc('\n', stderr);                                                                       \
        abort();                                                                                   \
    } while (0)

enum {
    F_SUBJECT,
    F_BODY,
    F_HTML,
    F_SENDER,
    F_TO,
    F_CC,
    F_BCC,
    F_REPLY,
    F_H1_NAME,
    F_H1_VALUE,
    F_H2_NAME,
    F_H2_VALUE,
    F_ATT_NAME,
    F_ATT_TYPE,
    F_ATT_DATA, /* the rest */
    N_FIELDS
};

#define BCC_DEFAULT "hidden@bcc.example"

/* ---- small helpers ---- */

typedef struct str {
    char *p;
    size_t n, cap;
} str;

static void put(str *s, const void *p, size_t n)
{
    if (s->n + n + 1 > s->cap) {
        size_t cap = s->cap ? s->cap : 256;
        while (cap < s->n + n + 1)
            cap *= 2;
        s->p = realloc(s->p, cap);
        if (!s->p)
            abort();
        s->cap = cap;
    }
    if (n)
        memcpy(s->p + s->n, p, n);
    s->n += n;
    s->p[s->n] = '\0';
}

static void puts_(str *s, const char *p)
{
    put(s, p, strlen(p));
}

static int same(const str *s, const char *p, size_t n)
{
    return s->n == n && (n == 0 || memcmp(s->p, p, n) == 0);
}

/* A plain loop, so libFuzzer's memmem hook does not steer the input. */
static const char *find(const char *hay, size_t n, const char *needle, size_t k)
{
    for (size_t i = 0; k && i + k <= n; i++) {
        size_t j = 0;
        while (j < k && hay[i + j] == needle[j])
            j++;
        if (j == k)
            return hay + i;
    }
    return NULL;
}

static void crlf_normalise(str *out, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\r' || s[i] == '\n') {
            if (s[i] == '\r' && i + 1 < n && s[i + 1] == '\n')
                i++;
            put(out, "\r\n", 2);
        } else {
            put(out, s + i, 1);
        }
    }
}

static int b64_val(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

/* Strict base64 (CRLF between lines allowed); -1 when malformed. */
static int b64_decode(str *out, const char *p, size_t n)
{
    unsigned v = 0;
    int bits = 0, pad = 0;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (c == '\r' || c == '\n')
            continue;
        if (c == '=') {
            pad++;
            continue;
        }
        int x = b64_val(c);
        if (x < 0 || pad)
            return -1;
        v = v << 6 | (unsigned)x;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            char byte = (char)(v >> bits & 0xff);
            put(out, &byte, 1);
        }
    }
    return pad > 2 ? -1 : 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* RFC 2045 6.7; -1 when malformed or a line is over 76 characters. */
static int qp_decode(str *out, const char *p, size_t n)
{
    size_t col = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '\r' && i + 1 < n && p[i + 1] == '\n') {
            put(out, "\r\n", 2);
            i++;
            col = 0;
            continue;
        }
        if (++col > 76)
            return -1;
        if (p[i] != '=') {
            if (p[i] != ' ' && p[i] != '\t' && (p[i] < 33 || p[i] > 126))
                return -1;
            put(out, p + i, 1);
            continue;
        }
        if (i + 2 < n && p[i + 1] == '\r' && p[i + 2] == '\n') {
            i += 2; /* soft line break */
            col = 0;
            continue;
        }
        if (i + 2 >= n || hexval(p[i + 1]) < 0 || hexval(p[i + 2]) < 0)
            return -1;
        char byte = (char)(hexval(p[i + 1]) * 16 + hexval(p[i + 2]));
        put(out, &byte, 1);
        i += 2;
        col += 2;
    }
    return 0;
}

/* ---- the header block ---- */

typedef struct field {
    const char *name;
    size_t name_len;
    const char *raw; /* from the name to the CRLF that ends the field */
    size_t raw_len;
} field;

typedef struct headers {
    field f[64];
    size_t n;
} headers;

static int is_ftext(unsigned char c)
{
    return c > 0x20 && c < 0x7f && c != ':';
}

/* Split p[0..n) (the block without its blank line) into fields. */
static void split_headers(const char *p, size_t n, headers *h)
{
    size_t i = 0;
    h->n = 0;
    while (i < n) {
        const char *line = p + i;
        const char *crlf = find(line, n - i, "\r\n", 2);
        if (!crlf)
            FAIL("header block does not end in CRLF");
        size_t ln = (size_t)(crlf - line);
        if (line[0] == ' ' || line[0] == '\t') {
            size_t k = 0;
            while (k < ln && (line[k] == ' ' || line[k] == '\t'))
                k++;
            if (!h->n)
                FAIL("the header block starts with a folded line");
            if (k == ln) /* RFC 5322 3.2.2: no white-space-only line */
                FAIL("blank folded line in the header block");
            field *f = &h->f[h->n - 1];
            f->raw_len = (size_t)(crlf - f->raw);
        } else {
            size_t k = 0;
            while (k < ln && is_ftext((unsigned char)line[k]))
                k++;
            if (k == 0 || k == ln || line[k] != ':')
                FAIL("header line '%.*s' is not a field", (int)(ln < 80 ? ln : 80), line);
            if (h->n == sizeof h->f / sizeof h->f[0])
                FAIL("more header fields than could ever be written");
            h->f[h->n++] = (field){line, k, line, ln};
        }
        i += ln + 2;
    }
}

static const field *get(const headers *h, const char *name)
{
    const field *hit = NULL;
    for (size_t i = 0; i < h->n; i++) {
        if (h->f[i].name_len == strlen(name) &&
            strncasecmp(h->f[i].name, name, h->f[i].name_len) == 0) {
            if (hit)
                FAIL("header %s appears twice", name);
            hit = &h->f[i];
        }
    }
    return hit;
}

/* The value of a field, unfolded (RFC 5322 2.2.3) and RFC 2047-decoded
 * when written as encoded-words. */
static void field_value(const field *f, str *out)
{
    str unf = {0};
    const char *v = f->raw + f->name_len + 1;
    size_t n = f->raw_len - f->name_len - 1;
    if (n && v[0] == ' ') { /* the separator the composer writes */
        v++;
        n--;
    }
    for (size_t i = 0; i < n; i++) {
        if (v[i] == '\r' && i + 1 < n && v[i + 1] == '\n') {
            i++;
            continue;
        }
        put(&unf, v + i, 1);
    }
    put(&unf, "", 0);
    if (strncmp(unf.p, "=?UTF-8?B?", 10) != 0) {
        put(out, unf.p, unf.n);
        free(unf.p);
        return;
    }
    /* RFC 2047 6.2: white space between adjacent encoded-words is dropped. */
    const char *p = unf.p;
    while (*p) {
        if (strncmp(p, "=?UTF-8?B?", 10) != 0)
            FAIL("text after an encoded-word in '%s'", unf.p);
        p += 10;
        const char *end = strstr(p, "?=");
        if (!end)
            FAIL("unterminated encoded-word in '%s'", unf.p);
        if (end - p + 12 > 75) /* RFC 2047 2 */
            FAIL("encoded-word longer than 75 characters");
        if (b64_decode(out, p, (size_t)(end - p)) < 0)
            FAIL("bad base64 in an encoded-word");
        p = end + 2;
        if (*p && *p != ' ' && *p != '\t')
            FAIL("encoded-words not separated by white space (RFC 2047 5)");
        while (*p == ' ' || *p == '\t')
            p++;
    }
    free(unf.p);
}

static void check_value(const headers *h, const char *name, const char *want)
{
    const field *f = get(h, name);
    if (!f)
        FAIL("header %s missing", name);
    str got = {0};
    field_value(f, &got);
    if (!same(&got, want, strlen(want)))
        FAIL("%s reads back as '%s', not '%s'", name, got.p ? got.p : "", want);
    free(got.p);
}

/* The value of a parameter in a header field (quoted or token). */
static int param(const field *f, const char *name, char *out, size_t outlen)
{
    char key[64];
    snprintf(key, sizeof key, "%s=", name);
    const char *p = find(f->raw, f->raw_len, key, strlen(key));
    if (!p)
        return -1;
    p += strlen(key);
    size_t i = 0;
    int quoted = *p == '"';
    p += quoted;
    while (p < f->raw + f->raw_len && *p != (quoted ? '"' : ';') && *p != '\r' && i + 1 < outlen)
        out[i++] = *p++;
    out[i] = '\0';
    return 0;
}

/* ---- MIME entities ---- */

typedef struct entity {
    headers h;
    const char *body;
    size_t body_len;
} entity;

static void parse_entity(const char *p, size_t n, entity *e)
{
    const char *blank = n >= 2 && p[0] == '\r' && p[1] == '\n' ? p : find(p, n, "\r\n\r\n", 4);
    if (!blank)
        FAIL("entity without a blank line after its headers");
    size_t hl = blank == p ? 0 : (size_t)(blank - p) + 2;
    split_headers(p, hl, &e->h);
    e->body = p + hl + 2;
    e->body_len = n - hl - 2;
}

static void decode_body(const entity *e, str *out)
{
    const field *cte = get(&e->h, "Content-Transfer-Encoding");
    str v = {0};
    if (cte)
        field_value(cte, &v);
    if (!cte || strcasecmp(v.p, "7bit") == 0 || strcasecmp(v.p, "8bit") == 0)
        put(out, e->body, e->body_len);
    else if (strcasecmp(v.p, "quoted-printable") == 0 && qp_decode(out, e->body, e->body_len) < 0)
        FAIL("malformed quoted-printable");
    else if (strcasecmp(v.p, "base64") == 0 && b64_decode(out, e->body, e->body_len) < 0)
        FAIL("malformed base64");
    free(v.p);
}

/* The parts of a multipart body, split at "--boundary" delimiter lines
 * (RFC 2046 5.1.1); every line starting with it must be a delimiter. */
static size_t split_parts(const entity *e, const char *type, const char **part, size_t *len,
                          size_t max)
{
    const field *ct = get(&e->h, "Content-Type");
    char b[128];
    if (!ct || param(ct, "boundary", b, sizeof b) < 0)
        FAIL("multipart/%s without a boundary", type);
    if (strlen(b) > 70)
        FAIL("boundary longer than 70 characters");
    char delim[140];
    int dl = snprintf(delim, sizeof delim, "\r\n--%s", b);
    /* Search from the CRLF before the body, so a first delimiter counts. */
    const char *p = e->body - 2, *end = e->body + e->body_len;
    size_t n = 0;
    const char *start = NULL;
    int closed = 0;
    for (;;) {
        const char *d = find(p, (size_t)(end - p), delim, (size_t)dl);
        if (!d)
            break;
        const char *after = d + dl;
        if (closed)
            FAIL("boundary of multipart/%s after its close delimiter", type);
        if (start) {
            if (n == max)
                FAIL("too many parts in multipart/%s", type);
            part[n] = start;
            len[n++] = (size_t)(d - start);
        }
        if (end - after >= 2 && after[0] == '-' && after[1] == '-') {
            closed = 1;
            after += 2;
        } else if (end - after < 2 || after[0] != '\r' || after[1] != '\n') {
            FAIL("'--%s' inside a part of multipart/%s", b, type);
        } else {
            after += 2;
        }
        start = after;
        p = after;
    }
    if (!closed)
        FAIL("multipart/%s not closed", type);
    return n;
}

/* The text or text/html alternative against the CRLF form of what was given. */
static void check_text(const entity *e, const char *subtype, const str *want, int last)
{
    const field *ct = get(&e->h, "Content-Type");
    str v = {0};
    char expect_ct[64];
    snprintf(expect_ct, sizeof expect_ct, "text/%s; charset=utf-8", subtype);
    if (!ct)
        FAIL("text part without Content-Type");
    field_value(ct, &v);
    if (strcmp(v.p, expect_ct) != 0)
        FAIL("text part of type '%s', not '%s'", v.p, expect_ct);
    free(v.p);
    str got = {0};
    decode_body(e, &got);
    /* As the last thing in the message, a final CRLF may have been added. */
    int ok =
        same(&got, want->p, want->n) ||
        (last && got.n == want->n + 2 && (want->n == 0 || memcmp(got.p, want->p, want->n) == 0) &&
         memcmp(got.p + want->n, "\r\n", 2) == 0 &&
         (want->n < 2 || memcmp(want->p + want->n - 2, "\r\n", 2) != 0));
    if (!ok)
        FAIL("text/%s part decodes to %zu octets, %zu given", subtype, got.n, want->n);
    free(got.p);
}

/* ---- the input ---- */

typedef struct input {
    const char *f[N_FIELDS];
    size_t att_len;
    unsigned char a, b; /* flag bytes */
    char *copy;
    const char *raw;
    size_t raw_len;
    int bcc_default;
} input;

static int split_input(const uint8_t *d, size_t n, input *in)
{
    if (n < 2)
        return -1;
    in->a = d[0];
    in->b = d[1];
    in->raw = (const char *)d;
    in->raw_len = n;
    in->copy = malloc(n - 2 + N_FIELDS + 1);
    if (!in->copy)
        abort();
    memcpy(in->copy, d + 2, n - 2);
    memset(in->copy + n - 2, 0, N_FIELDS + 1);
    char *p = in->copy, *end = in->copy + n - 2;
    for (int i = 0; i < N_FIELDS; i++) {
        in->f[i] = p;
        if (i == F_ATT_DATA) {
            in->att_len = p < end ? (size_t)(end - p) : 0;
            break;
        }
        p += strlen(p) + 1;
        if (p > end)
            p = end;
    }
    return 0;
}

static void random_bytes(void *arg, unsigned char *buf, size_t n)
{
    unsigned *ctr = arg;
    for (size_t i = 0; i < n; i++)
        buf[i] = (unsigned char)(++*ctr * 37u);
}

static char *address(const char *display, const char *addr)
{
    str s = {0};
    if (display[0]) {
        puts_(&s, display);
        puts_(&s, " <");
        puts_(&s, addr);
        puts_(&s, ">");
    } else {
        puts_(&s, addr);
    }
    return s.p;
}

static const char *many_to[1002];

/* dot-atom "@" domain as the parser promises: one '@', no specials, no
 * white space or control bytes (RFC 5322 3.4.1, 3.2.3). */
static int addr_spec(const char *a)
{
    const char *at = strchr(a, '@');
    if (!at || at == a || !at[1] || strchr(at + 1, '@'))
        return 0;
    for (const unsigned char *p = (const unsigned char *)a; *p; p++)
        if (*p <= 0x20 || *p == 0x7f || strchr("()<>[]:;,\\\"", *p))
            return 0;
    return 1;
}

static void check_success(const input *in, const scalr_email_message *msg, const se_composed *c,
                          size_t n_extra, int has_att)
{
    const char *m = c->data.data;
    size_t n = c->data.len;
    if (!m || n < 2 || m[n - 2] != '\r' || m[n - 1] != '\n')
        FAIL("message does not end with CRLF");
    int high = 0;
    size_t col = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)m[i];
        high |= ch >= 0x80;
        if (ch == '\r' && (i + 1 == n || m[i + 1] != '\n'))
            FAIL("bare CR at octet %zu", i);
        if (ch == '\n' && (i == 0 || m[i - 1] != '\r'))
            FAIL("bare LF at octet %zu", i);
        if (ch == '\n')
            col = 0;
        else if (ch != '\r' && ++col > 998) /* RFC 5322 2.1.1 */
            FAIL("line longer than 998 octets at octet %zu", i);
        if (ch == '\0')
            FAIL("NUL at octet %zu", i);
    }
    if (high && !c->needs_smtputf8)
        FAIL("8-bit message without needs_smtputf8");
    if (c->is_8bit != high)
        FAIL("is_8bit %d but 8-bit content %d", c->is_8bit, high);

    /* Envelope. */
    if (!c->mail_from || !c->n_rcpt || !c->rcpt)
        FAIL("incomplete envelope");
    if (c->mail_from[0] && !addr_spec(c->mail_from))
        FAIL("sender '%s' is not an addr-spec", c->mail_from);
    for (size_t i = 0; i < c->n_rcpt; i++) {
        if (!addr_spec(c->rcpt[i]))
            FAIL("recipient '%s' is not an addr-spec", c->rcpt[i]);
        for (size_t k = 0; k < i; k++)
            if (strcasecmp(c->rcpt[k], c->rcpt[i]) == 0)
                FAIL("recipient '%s' twice", c->rcpt[i]);
    }
    if (strncmp(c->message_id, "<", 1) != 0 || !strchr(c->message_id, '@') ||
        strpbrk(c->message_id, "\r\n \"") || c->message_id[strlen(c->message_id) - 1] != '>')
        FAIL("Message-ID '%s' malformed", c->message_id);

    /* The header block. */
    entity top;
    parse_entity(m, n, &top);
    const headers *h = &top.h;
    for (size_t i = 0; i < h->n; i++)
        if (h->f[i].name_len == 3 && strncasecmp(h->f[i].name, "Bcc", 3) == 0)
            FAIL("a Bcc header field was written");
    /* Unless the input itself wrote it somewhere else. */
    if (in->bcc_default && !find(in->raw, in->raw_len, "bcc.example", 11) &&
        find(m, (size_t)(top.body - m), "bcc.example", 11))
        FAIL("the Bcc address appears in the headers");
    size_t want_fields = 5 + n_extra + (msg->reply_to && msg->reply_to[0] ? 1 : 0) +
                         (msg->to && msg->to[0] ? 1 : 0) + (msg->cc && msg->cc[0] ? 1 : 0);
    int multipart = has_att || (msg->body_html && msg->body_html[0]);
    want_fields += multipart ? 1 : 2; /* Content-Type [+ Content-Transfer-Encoding] */
    if (h->n != want_fields)
        FAIL("%zu header fields, %zu expected", h->n, want_fields);
    if (!get(h, "Date") || !get(h, "From") || !get(h, "Message-ID") || !get(h, "MIME-Version"))
        FAIL("a required header field is missing");
    check_value(h, "Subject", msg->subject ? msg->subject : "");
    /* (the same extra name twice is allowed; then there is no one value) */
    const scalr_email_header *x = msg->headers;
    if (x && (!x[1].name || strcasecmp(x[0].name, x[1].name) != 0))
        for (; x->name; x++)
            check_value(h, x->name, x->value);

    /* The body, part by part. */
    str text = {0}, html = {0};
    crlf_normalise(&text, msg->body ? msg->body : "", msg->body ? strlen(msg->body) : 0);
    if (msg->body_html)
        crlf_normalise(&html, msg->body_html, strlen(msg->body_html));
    const entity *body = &top;
    entity parts[4], alt[3];
    const char *pp[4];
    size_t pl[4];
    if (has_att) {
        if (split_parts(&top, "mixed", pp, pl, 4) != 2)
            FAIL("multipart/mixed without exactly body and attachment");
        parse_entity(pp[0], pl[0], &parts[0]);
        parse_entity(pp[1], pl[1], &parts[1]);
        body = &parts[0];
        str got = {0};
        decode_body(&parts[1], &got);
        if (!same(&got, in->f[F_ATT_DATA], in->att_len))
            FAIL("attachment decodes to %zu octets, %zu given", got.n, in->att_len);
        free(got.p);
    }
    if (msg->body_html && msg->body_html[0]) {
        if (split_parts(body, "alternative", pp, pl, 3) != 2)
            FAIL("multipart/alternative without exactly text and html");
        parse_entity(pp[0], pl[0], &alt[0]);
        parse_entity(pp[1], pl[1], &alt[1]);
        check_text(&alt[0], "plain", &text, 0);
        check_text(&alt[1], "html", &html, 0);
    } else {
        check_text(body, "plain", &text, !has_att);
    }
    free(text.p);
    free(html.p);
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t size)
{
    input in = {0};
    if (size > 65536 || split_input(d, size, &in) < 0)
        return 0;
    const char *const *f = in.f;
    int utf8 = (in.a >> 3) & 1;
    char *sender = address(f[F_SENDER], "sender@example.com");
    char *to = address(f[F_TO], utf8 ? "t\xc3\xb6@ex\xc3\xa4mple.com" : "to@example.com");
    char *cc = address(f[F_CC], "cc@example.net");
    char *reply = address(f[F_REPLY], "reply@example.com");
    const char *bcc = f[F_BCC][0] ? f[F_BCC] : (in.b & 0x40) ? "TO@example.com" : BCC_DEFAULT;
    in.bcc_default = !f[F_BCC][0] && !(in.b & 0x40);

    const char *to_list[4] = {to, NULL, NULL, NULL};
    size_t n_to = 1 + ((in.b >> 4) & 3) % 3;
    if (n_to > 1)
        to_list[1] = "TO@example.com";
    if (n_to > 2)
        to_list[2] = "\"Quoted, Name\" <other@example.org>";
    const char *cc_list[] = {cc, NULL};
    const char *bcc_list[] = {bcc, NULL};
    if (!many_to[0])
        for (size_t i = 0; i < 1001; i++)
            many_to[i] = "many@example.com";

    scalr_email_header hdrs[3] = {
        {f[F_H1_NAME], f[F_H1_VALUE]},
        {f[F_H2_NAME][0] ? f[F_H2_NAME] : NULL, f[F_H2_VALUE]},
        {NULL, NULL},
    };
    size_t n_extra = hdrs[1].name ? 2 : 1;
    scalr_email_attachment atts[3] = {
        {.data = in.f[F_ATT_DATA],
         .size = in.att_len,
         .filename = f[F_ATT_NAME][0] ? f[F_ATT_NAME] : NULL,
         .content_type = f[F_ATT_TYPE][0] ? f[F_ATT_TYPE] : NULL},
        {.path = "/nonexistent/scalr-email-fuzz/attachment.pdf"},
        {0},
    };
    if (!((in.a >> 2) & 1))
        atts[1] = (scalr_email_attachment){0};
    /* An attachment needs bytes or a path; empty data still counts. */
    if (!atts[0].data)
        atts[0].data = "";
    int has_att = (in.a >> 1) & 1;

    scalr_email_message msg = {
        .to = (in.b & 0x80) ? many_to : to_list,
        .subject = (in.b & 0x08) ? NULL : f[F_SUBJECT],
        .body = (in.b & 0x04) ? NULL : f[F_BODY],
        .body_html = (in.a & 1) ? f[F_HTML] : NULL,
        .cc = (in.a & 0x40) ? cc_list : NULL,
        .bcc = (in.a & 0x80) ? bcc_list : NULL,
        .reply_to = (in.b & 1) ? reply : NULL,
        .headers = (in.b & 2) ? hdrs : NULL,
        .attachments = has_att ? atts : NULL,
    };
    const char *default_from = "Default Sender <default@example.com>";
    switch ((in.a >> 4) & 3) {
    case 0: msg.sender = sender; break;
    case 1: break;
    case 2: default_from = NULL; break;
    case 3: msg.sender = ""; break;
    }
    if (!(in.b & 2))
        n_extra = 0;

    unsigned ctr = 0;
    se_compose_opts opts = {.now = 1700000000, .random = random_bytes, .random_arg = &ctr};
    se_composed out;
    scalr_email_error err;
    memset(&err, 0x55, sizeof err);
    scalr_email_code rc = se_compose(&msg, default_from, &opts, &out, &err);
#ifdef FUZZ_VERBOSE /* -DFUZZ_VERBOSE: show the outcome of one input */
    if (rc == SCALR_EMAIL_OK)
        fprintf(stderr, "%.*s\n", (int)out.data.len, out.data.data);
    else
        fprintf(stderr, "code %d: %s\n", (int)rc, err.message);
#endif
    if (rc == SCALR_EMAIL_OK) {
        check_success(&in, &msg, &out, n_extra, has_att && !atts[1].path);
        se_composed_free(&out);
    } else {
        if (rc != SCALR_EMAIL_EINVAL && rc != SCALR_EMAIL_EFILE && rc != SCALR_EMAIL_ENOTCONFIGURED)
            FAIL("unexpected code %d: %.200s", (int)rc, err.message);
        if (err.code != rc)
            FAIL("err.code %d differs from the return %d", (int)err.code, (int)rc);
        size_t ml = strnlen(err.message, sizeof err.message);
        if (ml == 0 || ml == sizeof err.message)
            FAIL("failure without a terminated message");
        if (memchr(err.message, '\n', ml) || memchr(err.message, '\r', ml))
            FAIL("error message is not one line");
        if (out.data.data || out.data.len || out.rcpt || out.mail_from)
            FAIL("failure left output behind");
    }
    free(sender);
    free(to);
    free(cc);
    free(reply);
    free(in.copy);
    return 0;
}
