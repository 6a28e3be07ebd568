#define _GNU_SOURCE /* pipe2 */
/* SMTP_OAUTH_TOKEN_CMD: a command whose first output line is the token,
 * run without a shell (like msmtp's passwordeval), bounded by a deadline. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "auth/oauth.h"
#include "error.h"

extern char **environ;

#define CMD_ARGS_MAX 64
#define CMD_OUT_MAX 16384 /* a token is a few KiB at most */

/* Split on blanks; '...' literal, "..." with \" and \\.  -1: unbalanced. */
static int split(char *s, char **argv, int max)
{
    int argc = 0;
    char *w = s;
    while (*s) {
        while (*s == ' ' || *s == '\t')
            s++;
        if (!*s)
            break;
        if (argc == max - 1)
            return -1;
        argv[argc++] = w;
        while (*s && *s != ' ' && *s != '\t') {
            if (*s == '\'' || *s == '"') {
                char q = *s++;
                while (*s && *s != q) {
                    if (q == '"' && *s == '\\' && (s[1] == '"' || s[1] == '\\'))
                        s++;
                    *w++ = *s++;
                }
                if (*s != q)
                    return -1;
                s++;
            } else {
                *w++ = *s++;
            }
        }
        if (*s)
            s++;
        *w++ = '\0';
    }
    argv[argc] = NULL;
    return argc;
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

scalr_email_code se_oauth_run_cmd(const char *cmd, unsigned timeout_ms, char **tok,
                                  scalr_email_error *err)
{
    *tok = NULL;
    char *copy = strdup(cmd);
    char *argv[CMD_ARGS_MAX];
    if (!copy)
        return se_fail(err, SCALR_EMAIL_ENOMEM, "OAUTH", "out of memory");
    int argc = split(copy, argv, CMD_ARGS_MAX);
    if (argc <= 0) {
        free(copy);
        return se_fail(err, SCALR_EMAIL_ECONFIG, "OAUTH",
                       "SMTP_OAUTH_TOKEN_CMD is empty, has an unbalanced quote or too many "
                       "words");
    }
    int out[2], errp[2];
    if (pipe2(out, O_CLOEXEC) != 0) {
        free(copy);
        return se_fail(err, SCALR_EMAIL_EIO, "OAUTH", "pipe: %s", strerror(errno));
    }
    if (pipe2(errp, O_CLOEXEC) != 0) {
        close(out[0]);
        close(out[1]);
        free(copy);
        return se_fail(err, SCALR_EMAIL_EIO, "OAUTH", "pipe: %s", strerror(errno));
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_adddup2(&fa, errp[1], 2);
    pid_t pid;
    int sp = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(out[1]);
    close(errp[1]);
    if (sp != 0) {
        close(out[0]);
        close(errp[0]);
        se_fail(err, SCALR_EMAIL_ECONFIG, "OAUTH", "SMTP_OAUTH_TOKEN_CMD: cannot run %s: %s",
                argv[0], strerror(sp));
        free(copy);
        return SCALR_EMAIL_ECONFIG;
    }
    char *buf = calloc(1, CMD_OUT_MAX + 1), ebuf[512] = "";
    size_t n = 0, en = 0;
    int open_fds = 2, timed_out = 0;
    long long deadline = now_ms() + timeout_ms;
    struct pollfd pf[2] = {{.fd = out[0], .events = POLLIN}, {.fd = errp[0], .events = POLLIN}};
    while (buf && open_fds > 0) {
        long long left = deadline - now_ms();
        if (left <= 0) {
            timed_out = 1;
            break;
        }
        int r = poll(pf, 2, (int)left);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            timed_out = r == 0;
            break;
        }
        for (int i = 0; i < 2; i++) {
            if (pf[i].fd < 0 || !(pf[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            char tmp[1024];
            ssize_t got = read(pf[i].fd, tmp, sizeof tmp);
            if (got <= 0) {
                close(pf[i].fd);
                pf[i].fd = -1;
                open_fds--;
                continue;
            }
            if (i == 0) { /* capped: the rest is read and dropped */
                size_t take = (size_t)got < CMD_OUT_MAX - n ? (size_t)got : CMD_OUT_MAX - n;
                memcpy(buf + n, tmp, take);
                n += take;
            } else {
                size_t take =
                    (size_t)got < sizeof ebuf - 1 - en ? (size_t)got : sizeof ebuf - 1 - en;
                memcpy(ebuf + en, tmp, take);
                en += take;
            }
            OPENSSL_cleanse(tmp, sizeof tmp);
        }
    }
    for (int i = 0; i < 2; i++)
        if (pf[i].fd >= 0)
            close(pf[i].fd);
    if (timed_out)
        kill(pid, SIGKILL);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    scalr_email_code rc = SCALR_EMAIL_OK;
    ebuf[strcspn(ebuf, "\r\n")] = '\0';
    if (!buf) {
        rc = se_fail(err, SCALR_EMAIL_ENOMEM, "OAUTH", "out of memory");
    } else if (timed_out) {
        rc = se_fail(err, SCALR_EMAIL_ECONFIG, "OAUTH",
                     "SMTP_OAUTH_TOKEN_CMD %s gave no token within %u ms (killed)", argv[0],
                     timeout_ms);
    } else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        rc = se_fail(
            err, SCALR_EMAIL_ECONFIG, "OAUTH", "SMTP_OAUTH_TOKEN_CMD %s failed (%s %d)%s%s",
            argv[0], WIFEXITED(status) ? "exit status" : "signal",
            WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status), ebuf[0] ? ": " : "", ebuf);
    } else {
        buf[strcspn(buf, "\r\n")] = '\0';
        int printable = buf[0] != '\0';
        for (const char *q = buf; *q; q++)
            if (*q <= ' ' || *q > '~')
                printable = 0;
        /* Blanks or control bytes would break the SASL string; say so
         * without quoting what was printed (it may be a secret). */
        if (!buf[0])
            rc = se_fail(err, SCALR_EMAIL_ECONFIG, "OAUTH",
                         "SMTP_OAUTH_TOKEN_CMD %s printed no token", argv[0]);
        else if (!printable)
            rc = se_fail(err, SCALR_EMAIL_ECONFIG, "OAUTH",
                         "SMTP_OAUTH_TOKEN_CMD %s printed a first line that is not a token "
                         "(blanks or control characters)",
                         argv[0]);
        else if (!(*tok = strdup(buf)))
            rc = se_fail(err, SCALR_EMAIL_ENOMEM, "OAUTH", "out of memory");
    }
    if (buf) {
        OPENSSL_cleanse(buf, CMD_OUT_MAX);
        free(buf);
    }
    free(copy);
    return rc;
}
