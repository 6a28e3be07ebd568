/* EHLO reply parsing: the server's capabilities (RFC 5321 4.1.1.1 and the
 * extension RFCs).  Keywords and parameters are case-insensitive. */
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "smtp/engine_int.h"

static void add_word(se_buf *b, const char *w, size_t n)
{
    char up[64];
    if (n == 0 || n >= sizeof up)
        return;
    for (size_t i = 0; i < n; i++)
        up[i] = (char)toupper((unsigned char)w[i]);
    up[n] = '\0';
    for (const char *p = b->data; p && *p;) { /* no duplicates */
        size_t l = strcspn(p, " ");
        if (l == n && memcmp(p, up, n) == 0)
            return;
        p += l;
        p += *p == ' ';
    }
    if (b->len)
        se_buf_append(b, " ", 1);
    se_buf_append(b, up, n);
}

static int word_is(const char *w, size_t n, const char *kw)
{
    return strlen(kw) == n && strncasecmp(w, kw, n) == 0;
}

/* RFC 5321 4.1.1.1: ehlo-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-") */
static int keyword_ok(const char *w, size_t n)
{
    if (!n || !isalnum((unsigned char)w[0]))
        return 0;
    for (size_t i = 1; i < n; i++)
        if (!isalnum((unsigned char)w[i]) && w[i] != '-')
            return 0;
    return 1;
}

static void add_mech(se_smtp *s, const char *w, size_t n)
{
    if (word_is(w, n, "PLAIN"))
        s->mechs |= SE_AUTH_PLAIN;
    else if (word_is(w, n, "LOGIN"))
        s->mechs |= SE_AUTH_LOGIN;
    else if (word_is(w, n, "XOAUTH2"))
        s->mechs |= SE_AUTH_XOAUTH2;
    else if (word_is(w, n, "OAUTHBEARER"))
        s->mechs |= SE_AUTH_OAUTHBEARER;
    add_word(&s->offered, w, n);
}

static void parse_size(se_smtp *s, const char *w, size_t n)
{
    unsigned long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)w[i]))
            return;
        unsigned d = (unsigned)(w[i] - '0');
        if (v > (~0UL - d) / 10)
            return; /* larger than we can count: treat as no limit */
        v = v * 10 + d;
    }
    s->size_limit = v; /* RFC 1870 4: 0 means no fixed limit */
}

static void parse_ehlo_line(se_smtp *s, const char *p, size_t n)
{
    const char *words[64];
    size_t lens[64], nw = 0;
    size_t i = 0;
    while (i < n && nw < 64) {
        while (i < n && (p[i] == ' ' || p[i] == '\t'))
            i++;
        size_t st = i;
        while (i < n && p[i] != ' ' && p[i] != '\t')
            i++;
        if (i > st) {
            words[nw] = p + st;
            lens[nw++] = i - st;
        }
    }
    if (!nw)
        return;
    const char *kw = words[0];
    size_t kn = lens[0];
    /* The pre-RFC 4954 form "AUTH=PLAIN LOGIN" (old Outlook, still seen). */
    if (kn > 5 && strncasecmp(kw, "AUTH=", 5) == 0) {
        s->caps |= SE_CAP_AUTH;
        add_word(&s->ext, "AUTH", 4);
        add_mech(s, kw + 5, kn - 5);
        for (size_t j = 1; j < nw; j++)
            add_mech(s, words[j], lens[j]);
        return;
    }
    if (!keyword_ok(kw, kn))
        return;
    add_word(&s->ext, kw, kn);
    if (word_is(kw, kn, "PIPELINING"))
        s->caps |= SE_CAP_PIPELINING;
    else if (word_is(kw, kn, "CHUNKING"))
        s->caps |= SE_CAP_CHUNKING;
    else if (word_is(kw, kn, "8BITMIME"))
        s->caps |= SE_CAP_8BITMIME;
    else if (word_is(kw, kn, "SMTPUTF8"))
        s->caps |= SE_CAP_SMTPUTF8;
    else if (word_is(kw, kn, "DSN"))
        s->caps |= SE_CAP_DSN;
    else if (word_is(kw, kn, "STARTTLS"))
        s->caps |= SE_CAP_STARTTLS;
    else if (word_is(kw, kn, "ENHANCEDSTATUSCODES"))
        s->caps |= SE_CAP_ENHANCED;
    else if (word_is(kw, kn, "SIZE")) {
        s->caps |= SE_CAP_SIZE;
        if (nw > 1)
            parse_size(s, words[1], lens[1]);
    } else if (word_is(kw, kn, "AUTH")) {
        s->caps |= SE_CAP_AUTH;
        for (size_t j = 1; j < nw; j++)
            add_mech(s, words[j], lens[j]);
    }
}

void se_smtp_forget_caps(se_smtp *s)
{
    s->caps = 0;
    s->mechs = 0;
    s->size_limit = 0;
    se_buf_reset(&s->ext);
    se_buf_reset(&s->offered);
}

int se_smtp_parse_ehlo(se_smtp *s, const se_reply *r)
{
    se_smtp_forget_caps(s);
    const char *p = r->text;
    const char *nl = strchr(p, '\n'); /* the first line is the server's name */
    while (nl) {
        p = nl + 1;
        nl = strchr(p, '\n');
        parse_ehlo_line(s, p, nl ? (size_t)(nl - p) : strlen(p));
    }
    if (s->ext.oom || s->offered.oom) {
        se_smtp_fail(s, 0, SCALR_EMAIL_ENOMEM, "EHLO", "out of memory");
        return -1;
    }
    return 0;
}
