/* Reading a composed message in pieces: the in-memory text, with each
 * deferred attachment read and base64-encoded one block at a time, so
 * memory stays flat whatever the attachment size (see compose.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "mime/compose.h"
#include "mime/encode.h"

#define STAGE "DATA"

void se_reader_init(se_reader *r, const se_composed *c)
{
    if (r->c && r->fd >= 0)
        close(r->fd);
    se_buf keep = r->c ? r->piece : (se_buf){0};
    *r = (se_reader){.c = c, .fd = -1, .piece = keep};
}

void se_reader_free(se_reader *r)
{
    if (r->fd >= 0)
        close(r->fd);
    r->fd = -1;
    se_buf_free(&r->piece);
}

static int same_file(const se_compose_part *p, const struct stat *st)
{
    return (unsigned long long)st->st_size == p->size && (unsigned long long)st->st_ino == p->ino &&
           (unsigned long long)st->st_dev == p->dev &&
           (long long)st->st_mtim.tv_sec == p->mtime_sec &&
           (long long)st->st_mtim.tv_nsec == p->mtime_nsec;
}

static int changed(const se_compose_part *p, scalr_email_error *err)
{
    se_fail(err, SCALR_EMAIL_EFILE, STAGE,
            "attachment '%s' changed while the message was being sent; it was not sent", p->path);
    return -1;
}

/* The next block of the open part, base64-encoded into r->piece. */
static int read_block(se_reader *r, const char **out, size_t *n, scalr_email_error *err)
{
    const se_compose_part *p = &r->c->parts[r->part];
    size_t want = r->left < SE_READER_BLOCK ? (size_t)r->left : SE_READER_BLOCK;
    unsigned char *buf = malloc(want ? want : 1);
    if (!buf)
        return se_fail(err, SCALR_EMAIL_ENOMEM, STAGE, "out of memory"), -1;
    size_t got = 0;
    while (got < want) {
        ssize_t k = read(r->fd, buf + got, want - got);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0) {
            int e = errno;
            free(buf);
            return se_fail(err, SCALR_EMAIL_EFILE, STAGE, "attachment '%s': %s", p->path,
                           strerror(e)),
                   -1;
        }
        if (k == 0) {
            free(buf);
            return changed(p, err); /* shorter than when it was measured */
        }
        got += (size_t)k;
    }
    r->left -= got;
    se_buf_reset(&r->piece);
    se_base64_lines(&r->piece, buf, got);
    free(buf);
    if (r->piece.oom)
        return se_fail(err, SCALR_EMAIL_ENOMEM, STAGE, "out of memory"), -1;
    if (r->left == 0) {
        /* The file must end here and be the one that was measured. */
        struct stat st;
        char extra;
        ssize_t k;
        while ((k = read(r->fd, &extra, 1)) < 0 && errno == EINTR)
            ;
        if (k != 0 || fstat(r->fd, &st) < 0 || !same_file(p, &st))
            return changed(p, err);
        close(r->fd);
        r->fd = -1;
        r->part++;
        r->piece.len -= 2; /* the delimiter's CRLF ends the last line */
    }
    *out = r->piece.data;
    *n = r->piece.len;
    return 0;
}

int se_reader_next(void *arg, const char **p, size_t *n, scalr_email_error *err)
{
    se_reader *r = arg;
    const se_composed *c = r->c;
    *p = "";
    *n = 0;
    if (r->fd >= 0)
        return read_block(r, p, n, err);
    size_t end = r->part < c->n_parts ? c->parts[r->part].at : c->data.len;
    if (r->pos < end) { /* text: straight from memory */
        *p = c->data.data + r->pos;
        *n = end - r->pos;
        r->pos = end;
        return 0;
    }
    if (r->part >= c->n_parts)
        return 0; /* the end */
    const se_compose_part *part = &c->parts[r->part];
    r->fd = open(part->path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (r->fd < 0)
        return se_fail(err, SCALR_EMAIL_EFILE, STAGE, "attachment '%s': %s", part->path,
                       strerror(errno)),
               -1;
    if (fstat(r->fd, &st) < 0 || !same_file(part, &st))
        return changed(part, err);
    r->left = part->size;
    return read_block(r, p, n, err);
}

scalr_email_code se_composed_flatten(se_composed *c, scalr_email_error *err)
{
    if (!c->n_parts)
        return SCALR_EMAIL_OK;
    se_buf all = {0};
    se_reader r = {0};
    se_reader_init(&r, c);
    if (se_buf_reserve(&all, c->size) < 0) {
        se_reader_free(&r);
        return se_fail(err, SCALR_EMAIL_ENOMEM, "COMPOSE", "out of memory");
    }
    for (;;) {
        const char *p;
        size_t n;
        if (se_reader_next(&r, &p, &n, err) < 0) {
            se_reader_free(&r);
            se_buf_free(&all);
            return err ? err->code : SCALR_EMAIL_EFILE;
        }
        if (!n)
            break;
        se_buf_append(&all, p, n);
    }
    se_reader_free(&r);
    if (all.oom) {
        se_buf_free(&all);
        return se_fail(err, SCALR_EMAIL_ENOMEM, "COMPOSE", "out of memory");
    }
    se_buf_free(&c->data);
    c->data = all;
    for (size_t i = 0; i < c->n_parts; i++)
        free(c->parts[i].path);
    free(c->parts);
    c->parts = NULL;
    c->n_parts = 0;
    return SCALR_EMAIL_OK;
}
