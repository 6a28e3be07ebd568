/* The message: DATA with its dot-unstuffing (RFC 5321 4.5.2), BDAT
 * chunks (RFC 3030), the size limit (RFC 1870) and the end of the message. */
#define _GNU_SOURCE /* O_TMPFILE */
#include "smtpd_int.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Why a DATA or BDAT cannot start now, or NULL. */
static const char *data_refusal(const ib_smtpd *s)
{
    if (!s->helo)
        return "503 5.5.1 Error: send HELO/EHLO first";
    if (!s->in_mail)
        return "503 5.5.1 Error: need MAIL command";
    if (s->n_rcpt == 0) /* RFC 2920 3.1: 554 when every RCPT failed */
        return s->rcpt_tried ? "554 5.5.1 Error: no valid recipients"
                             : "503 5.5.1 Error: need RCPT command";
    return NULL;
}

void ib_smtpd_cmd_data(ib_smtpd *s, size_t n)
{
    const char *bad = n ? "501 5.5.4 Syntax: DATA" : data_refusal(s);
    if (!bad && s->used_bdat) /* RFC 3030 3: never DATA after BDAT */
        bad = "503 5.5.1 Error: DATA after BDAT";
    if (bad) {
        ib_smtpd_error(s, bad);
        return;
    }
    ib_smtpd_reply(s, "354 End data with <CR><LF>.<CR><LF>");
    s->st = S_DATA;
    s->bol = 1;
    s->prev = 0;
}

/* RFC 3030 2: BDAT <size> [LAST].  The chunk is read even when refused. */
void ib_smtpd_cmd_bdat(ib_smtpd *s, const char *args, size_t n)
{
    size_t i = 0;
    const char *w1, *w2;
    size_t l1 = ib_smtpd_next_word(args, n, &i, &w1), l2 = ib_smtpd_next_word(args, n, &i, &w2);
    uint64_t size;
    if (ib_smtpd_parse_u64(w1, l1, &size) < 0 || (l2 && !ci_eq(w2, l2, "LAST")) || i < n) {
        /* Without a size there is no way to find the next command. */
        ib_smtpd_reply(s, "501 5.5.4 Syntax: BDAT size [LAST]");
        s->closing = 1;
        return;
    }
    const char *bad = data_refusal(s);
    snprintf(s->chunk_refusal, sizeof s->chunk_refusal, "%s", bad ? bad : "");
    s->chunk_left = size;
    s->chunk_last = l2 != 0;
    s->st = S_BDAT;
    if (!bad)
        s->used_bdat = 1;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* An unnamed temporary file (gone when closed, whatever happens). */
static int temp_file(void)
{
    const char *dir = getenv("TMPDIR");
    if (!dir || !*dir)
        dir = "/tmp";
    int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd >= 0)
        return fd;
    char path[4096];
    snprintf(path, sizeof path, "%s/scalr-email-inbox.XXXXXX", dir);
    fd = mkstemp(path);
    if (fd >= 0)
        unlink(path);
    return fd;
}

/* Bytes of the message: in memory up to SPILL_AT, then to a temporary
 * file, so that many big messages at once cost disk, not memory. */
static void msg_append(ib_smtpd *s, const char *p, size_t n)
{
    s->msg_size += n;
    if (s->msg_size > s->conf->max_size) {
        if (!s->too_big) /* counted from here on, never buffered */
            se_buf_free(&s->msg);
        s->too_big = 1;
        return;
    }
    if (s->msg_oom)
        return;
    if (s->spill_fd < 0 && s->msg.len + n > SPILL_AT) {
        int fd = temp_file();
        if (fd >= 0 && write_all(fd, s->msg.data ? s->msg.data : "", s->msg.len) == 0) {
            s->spill_fd = fd;
            s->spill_len = s->msg.len;
            se_buf_free(&s->msg);
        } else if (fd >= 0) {
            close(fd);
        }
    }
    if (s->spill_fd >= 0) {
        if (write_all(s->spill_fd, p, n) < 0) {
            s->msg_oom = 1; /* 452: the disk is full */
            return;
        }
        s->spill_len += n;
        return;
    }
    if (se_buf_append(&s->msg, p, n) < 0) {
        s->msg_oom = 1;
        se_buf_free(&s->msg);
    }
}

/* Bare line endings in n bytes of content: a LF without a CR before it, a
 * CR without a LF after it (s->prev carries the byte before; a CR at the
 * very end is decided by the next byte). */
static void count_bare(ib_smtpd *s, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char before = i ? (unsigned char)p[i - 1] : s->prev;
        if (p[i] == '\n' && before != '\r')
            s->bare_lf++;
        if (before == '\r' && p[i] != '\n')
            s->bare_cr++;
    }
    if (n)
        s->prev = (unsigned char)p[n - 1];
}

/* DATA: lines up to "." alone, RFC 5321 4.5.2 transparency undone.  Only
 * <CR><LF>.<CR><LF> ends the data (as in Postfix 3.9): a bare LF or CR is
 * content, never a line end, so "\n.\n" cannot smuggle a second message
 * (CVE-2023-51764).  Bare endings are counted and the message marked. */
int ib_smtpd_data_input(ib_smtpd *s)
{
    const char *p = s->in.data + s->in_off, *end = s->in.data + s->in.len;
    while (p < end) {
        if (s->bol && *p == '.') {
            if (p + 1 == end || (p[1] == '\r' && p + 2 == end))
                break; /* wait: it may be the end */
            if (p[1] == '\r' && p[2] == '\n') {
                p += 3;
                s->in_off = (size_t)(p - s->in.data);
                s->st = S_MSG_END;
                return 1;
            }
            p++; /* RFC 5321 4.5.2: drop the leading dot */
        }
        const char *lf = memchr(p, '\n', (size_t)(end - p));
        const char *stop = lf ? lf + 1 : end;
        int crlf = lf && (lf > p ? lf[-1] : (char)s->prev) == '\r';
        if (stop > p) {
            count_bare(s, p, (size_t)(stop - p));
            msg_append(s, p, (size_t)(stop - p));
        }
        s->bol = crlf;
        p = stop;
    }
    s->in_off = (size_t)(p - s->in.data);
    return 0;
}

int ib_smtpd_bdat_input(ib_smtpd *s)
{
    size_t avail = s->in.len - s->in_off;
    size_t take = s->chunk_left < avail ? (size_t)s->chunk_left : avail;
    if (take && !s->chunk_refusal[0]) {
        count_bare(s, s->in.data + s->in_off, take);
        msg_append(s, s->in.data + s->in_off, take);
    }
    s->in_off += take;
    s->chunk_left -= take;
    if (s->chunk_left)
        return 0;
    s->st = S_CMD;
    if (s->chunk_refusal[0])
        ib_smtpd_error(s, s->chunk_refusal);
    else if (s->chunk_last)
        s->st = S_MSG_END;
    else if (s->too_big)
        ib_smtpd_reply(s, "552 5.3.4 Error: message size exceeds fixed maximum message size");
    else
        ib_smtpd_reply(s, "250 2.0.0 %" PRIu64 " octets received", s->msg_size);
    return 1;
}

int ib_smtpd_msg_end(ib_smtpd *s)
{
    ib_verdict v;
    if (ib_smtpd_chaos(s, IB_STAGE_DATA, NULL, &v) == HELD)
        return 1;
    s->st = S_CMD;
    if (ib_smtpd_chaos_acts(s, &v)) {
        ib_smtpd_reset(s);
        return 1;
    }
    if (s->too_big) { /* RFC 1870 6.3 */
        ib_smtpd_reply(s, "552 5.3.4 Error: message size exceeds fixed maximum message size");
    } else if (s->msg_oom) {
        ib_smtpd_reply(s, "452 4.3.1 Error: insufficient system storage");
    } else {
        if (s->used_bdat && s->prev == '\r')
            s->bare_cr++; /* a BDAT message ending in a lone CR */
        s->st = S_MSG_END;
        s->msg_ready = 1;
        return 1;
    }
    ib_smtpd_reset(s);
    return 1;
}
