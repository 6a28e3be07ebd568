/* libFuzzer target: the sendmail-mode reader (src/mime/ingest.c).
 *
 * The first byte picks the options (-i or not, -t or not) and a piece
 * size; the rest is the message.  Checks, besides memory safety:
 *   - fed in pieces or all at once, the result is the same: header, body,
 *     recipients and the point where a lone "." ended the input;
 *   - the body has only CRLF line ends (no bare CR or LF) and ends in CRLF
 *     when not empty; the header to send ends with the empty line;
 *   - without SMTPUTF8 the header to send is ASCII apart from the fields
 *     kept as they are (se_ingest_kept_raw), or the call failed. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mime/ingest.h"

#define FAIL(...)                                                                                  \
    do {                                                                                           \
        fprintf(stderr, "fuzz_ingest: " __VA_ARGS__);                                              \
        fputc('\n', stderr);                                                                       \
        abort();                                                                                   \
    } while (0)

typedef struct out {
    int rc, ended;
    se_buf head, head7, body;
    int rc7;
    size_t n_rcpt;
    char rcpts[4096];
} out;

static void run(const uint8_t *d, size_t n, const se_ingest_opts *o, size_t step, out *r)
{
    se_ingest in;
    se_ingest_init(&in, o);
    memset(r, 0, sizeof *r);
    size_t at = 0;
    r->rc = 0;
    while (at < n && !in.ended && r->rc == 0) {
        size_t k = step && n - at > step ? step : n - at;
        r->rc = se_ingest_feed(&in, d + at, k);
        at += k;
    }
    if (r->rc == 0)
        r->rc = se_ingest_finish(&in);
    r->ended = in.ended;
    if (r->rc == 0) {
        scalr_email_error err;
        if (se_ingest_header(&in, 1, NULL, &r->head, &err) < 0)
            FAIL("header with SMTPUTF8 failed: %s", err.message);
        r->rc7 = se_ingest_header(&in, 0, NULL, &r->head7, &err);
        se_ibody b = {0};
        if (se_ingest_rewind(&b, &in) < 0)
            FAIL("rewind");
        for (;;) {
            const char *p;
            size_t k;
            if (se_ingest_body_next(&b, &p, &k, &err) < 0)
                FAIL("body read: %s", err.message);
            if (!k)
                break;
            se_buf_append(&r->body, p, k);
        }
        se_ibody_free(&b);
        r->n_rcpt = in.n_rcpt;
        size_t len = 0;
        for (size_t i = 0; i < in.n_rcpt && len < sizeof r->rcpts - 1; i++)
            len += (size_t)snprintf(r->rcpts + len, sizeof r->rcpts - len, "%s\n", in.rcpt[i]);
    }
    se_ingest_free(&in);
}

static void done(out *r)
{
    se_buf_free(&r->head);
    se_buf_free(&r->head7);
    se_buf_free(&r->body);
}

static int same(const se_buf *a, const se_buf *b)
{
    return a->len == b->len && (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
    if (n < 1)
        return 0;
    const se_ingest_opts o = {
        .dot_ends = d[0] & 1, .header_rcpts = (d[0] >> 1) & 1, .max_header = 4096, .mem_body = 64};
    size_t step = (size_t)(d[0] >> 2) + 1;
    d++, n--;
    out whole, parts;
    run(d, n, &o, 0, &whole);
    run(d, n, &o, step, &parts);
    if (whole.rc != parts.rc || whole.ended != parts.ended)
        FAIL("pieces of %zu change the outcome", step);
    if (whole.rc == 0) {
        if (!same(&whole.head, &parts.head) || !same(&whole.body, &parts.body) ||
            whole.n_rcpt != parts.n_rcpt || strcmp(whole.rcpts, parts.rcpts))
            FAIL("pieces of %zu change the bytes", step);
        const se_buf *b = &whole.body;
        for (size_t i = 0; i < b->len; i++) {
            if (b->data[i] == '\n' && (i == 0 || b->data[i - 1] != '\r'))
                FAIL("bare LF in the body at %zu", i);
            if (b->data[i] == '\r' && (i + 1 >= b->len || b->data[i + 1] != '\n'))
                FAIL("bare CR in the body at %zu", i);
        }
        if (b->len && (b->len < 2 || memcmp(b->data + b->len - 2, "\r\n", 2)))
            FAIL("body does not end in CRLF");
        const se_buf *h = &whole.head;
        if (h->len < 2 || memcmp(h->data + h->len - 2, "\r\n", 2) ||
            (h->len > 2 && memcmp(h->data + h->len - 4, "\r\n\r\n", 4)))
            FAIL("header does not end with the empty line");
        if (whole.rc7 == 0) { /* 8-bit bytes only in fields kept as they are */
            const char *p = whole.head7.data, *end = p + whole.head7.len;
            const char *name = p;
            size_t name_len = 0;
            while (p < end) {
                const char *eol = memchr(p, '\n', (size_t)(end - p));
                eol = eol ? eol + 1 : end;
                if (*p != ' ' && *p != '\t') {
                    const char *colon = memchr(p, ':', (size_t)(eol - p));
                    name = p;
                    name_len = colon ? (size_t)(colon - p) : 0;
                }
                for (const char *q = p; q < eol; q++)
                    if ((unsigned char)*q >= 0x80 && !se_ingest_kept_raw(name, name_len))
                        FAIL("8-bit byte in %.*s sent without SMTPUTF8", (int)name_len, name);
                p = eol;
            }
        }
    }
    done(&whole);
    done(&parts);
    return 0;
}
