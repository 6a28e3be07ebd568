/* DKIM canonicalization (RFC 6376 3.4): the body streamed into SHA-256, and
 * header fields, relaxed. */
#include <openssl/evp.h>
#include <string.h>
#include <strings.h>

#include "dkim/dkim.h"

static void out_flush(se_dkim_body *b)
{
    if (b->n)
        EVP_DigestUpdate(b->md, b->out, b->n);
    b->n = 0;
}

static void out_byte(se_dkim_body *b, unsigned char c)
{
    if (b->n == sizeof b->out)
        out_flush(b);
    b->out[b->n++] = c;
}

/* Held-back line ends and whitespace go out only before more content. */
static void out_content(se_dkim_body *b, unsigned char c)
{
    for (; b->crlf; b->crlf--) {
        out_byte(b, '\r');
        out_byte(b, '\n');
    }
    if (b->wsp)
        out_byte(b, ' ');
    b->wsp = 0;
    out_byte(b, c);
    b->any = 1;
}

int se_dkim_body_init(se_dkim_body *b, int relaxed)
{
    memset(b, 0, sizeof *b);
    b->relaxed = relaxed;
    b->md = EVP_MD_CTX_new();
    if (!b->md || !EVP_DigestInit_ex(b->md, EVP_sha256(), NULL)) {
        EVP_MD_CTX_free(b->md);
        b->md = NULL;
        return -1;
    }
    return 0;
}

void se_dkim_body_update(se_dkim_body *b, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (b->cr) {
            b->cr = 0;
            if (c == '\n') {
                /* RFC 6376 3.4.4: whitespace at the end of a line goes. */
                b->wsp = 0;
                b->crlf++;
                continue;
            }
            out_content(b, '\r'); /* a bare CR is content */
        }
        if (c == '\r') {
            b->cr = 1;
        } else if (b->relaxed && (c == ' ' || c == '\t')) {
            b->wsp = 1; /* a run of WSP becomes one SP */
        } else if (!b->relaxed && (c == ' ' || c == '\t')) {
            out_content(b, c);
        } else {
            out_content(b, c);
        }
    }
}

int se_dkim_body_final(se_dkim_body *b, unsigned char digest[32])
{
    if (b->cr)
        out_content(b, '\r');
    if (b->relaxed && b->wsp && !b->crlf)
        b->wsp = 0; /* trailing whitespace on an unterminated last line */
    /* 3.4.3 / 3.4.4: trailing empty lines go; a non-empty body ends in one
     * CRLF; an empty body is "" relaxed and CRLF simple. */
    if (b->any || !b->relaxed) {
        out_byte(b, '\r');
        out_byte(b, '\n');
    }
    out_flush(b);
    unsigned len = 0;
    int ok = EVP_DigestFinal_ex(b->md, digest, &len) && len == 32;
    EVP_MD_CTX_free(b->md);
    b->md = NULL;
    return ok ? 0 : -1;
}

static int wsp(char c)
{
    return c == ' ' || c == '\t';
}

void se_dkim_canon_header(se_buf *out, const char *f, size_t n, int crlf)
{
    size_t colon = 0;
    while (colon < n && f[colon] != ':')
        colon++;
    size_t name_end = colon;
    while (name_end > 0 && wsp(f[name_end - 1]))
        name_end--;
    for (size_t i = 0; i < name_end; i++) {
        char c = f[i];
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        se_buf_append(out, &c, 1);
    }
    se_buf_append(out, ":", 1);
    /* Unfold, runs of WSP to one SP, none after the colon or at the end. */
    int pending = 0, started = 0;
    for (size_t i = colon + 1; i < n; i++) {
        char c = f[i];
        if (c == '\r' || c == '\n')
            continue;
        if (wsp(c)) {
            pending = 1;
            continue;
        }
        if (pending && started)
            se_buf_append(out, " ", 1);
        pending = 0;
        started = 1;
        se_buf_append(out, &c, 1);
    }
    if (crlf)
        se_buf_append(out, "\r\n", 2);
}

size_t se_dkim_split_fields(const char *h, size_t len, se_dkim_field *f, size_t max)
{
    size_t nf = 0, i = 0;
    while (i < len) {
        size_t start = i;
        for (;;) {
            while (i < len && h[i] != '\n')
                i++;
            if (i + 1 >= len || (h[i + 1] != ' ' && h[i + 1] != '\t'))
                break;
            i++; /* a fold: the field goes on */
        }
        size_t end = i;
        if (end > start && h[end - 1] == '\r')
            end--;
        if (i < len)
            i++;
        if (end > start && nf < max)
            f[nf++] = (se_dkim_field){h + start, end - start, 0};
    }
    return nf;
}

int se_dkim_field_is(const se_dkim_field *f, const char *name, size_t n)
{
    if (f->n < n + 1 || strncasecmp(f->p, name, n))
        return 0;
    size_t i = n;
    while (i < f->n && (f->p[i] == ' ' || f->p[i] == '\t'))
        i++;
    return i < f->n && f->p[i] == ':';
}
