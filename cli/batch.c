/* scalr-email send-batch: one message per JSON line, one result per line. */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "cli.h"

typedef cli_item item;

/* Lines in flight, by message index: an open-addressing table (linear
 * probing) holding only the messages between next() and their result, so it
 * stays small (about two per connection) however long the batch, and a
 * message held up on one connection keeps its line however far the others
 * move on meanwhile. */
typedef struct slot {
    size_t index;
    size_t line; /* 0: free */
} slot;

typedef struct line_map {
    slot *s;
    size_t cap; /* a power of two */
    size_t used;
} line_map;

static int map_put(line_map *m, size_t index, size_t line);

static int map_grow(line_map *m)
{
    line_map big = {.cap = m->cap ? m->cap * 2 : 256};
    big.s = calloc(big.cap, sizeof *big.s);
    if (!big.s)
        return -1;
    for (size_t i = 0; i < m->cap; i++)
        if (m->s[i].line)
            map_put(&big, m->s[i].index, m->s[i].line);
    free(m->s);
    *m = big;
    return 0;
}

static int map_put(line_map *m, size_t index, size_t line)
{
    if ((m->used + 1) * 2 > m->cap && map_grow(m) < 0)
        return -1;
    size_t i = index & (m->cap - 1);
    while (m->s[i].line)
        i = (i + 1) & (m->cap - 1);
    m->s[i] = (slot){index, line};
    m->used++;
    return 0;
}

/* The line of index, removed from the table (0 if it was never put). */
static size_t map_take(line_map *m, size_t index)
{
    if (!m->cap)
        return 0;
    size_t mask = m->cap - 1, i = index & mask;
    while (m->s[i].line && m->s[i].index != index)
        i = (i + 1) & mask;
    size_t line = m->s[i].line;
    if (!line)
        return 0;
    m->s[i].line = 0;
    m->used--;
    /* Backward-shift deletion: move later members of the probe run into
     * the hole when their home slot allows, so lookups need no tombstones. */
    for (size_t j = (i + 1) & mask; m->s[j].line; j = (j + 1) & mask) {
        size_t home = m->s[j].index & mask;
        if (((j - home) & mask) >= ((j - i) & mask)) {
            m->s[i] = m->s[j];
            m->s[j].line = 0;
            i = j;
        }
    }
    return line;
}

typedef struct run {
    FILE *in;
    size_t lineno;
    char *buf;
    size_t cap;
    int read_error;
    line_map lines; /* message index -> its line, while in flight */
    size_t done;
    int worst;    /* exit status so far */
    int progress; /* stderr is a terminal */
} run;

/* The most severe failure wins: the whole run's problems (configuration,
 * credentials, resources, a broken server) before one message's (bad
 * input, unreadable file, refused), and "try again later" last. */
static int severity(int status)
{
    static const int order[] = {EX_CONFIG, EX_NOPERM,      EX_OSERR,   EX_SOFTWARE, EX_PROTOCOL,
                                EX_IOERR,  EX_UNAVAILABLE, EX_DATAERR, EX_NOINPUT,  EX_TEMPFAIL};
    size_t n = sizeof order / sizeof order[0];
    for (size_t i = 0; i < n; i++)
        if (order[i] == status)
            return (int)(n - i);
    return status ? 1 : 0;
}

static void worse(run *r, int status)
{
    if (severity(status) > severity(r->worst))
        r->worst = status;
}

static void print_result(run *r, size_t line, const scalr_email_error *e, const char *why)
{
    json_t *o = json_object();
    if (!o)
        return;
    json_object_set_new(o, "line", json_integer((json_int_t)line));
    json_object_set_new(o, "ok", json_boolean(!why && e->code == SCALR_EMAIL_OK));
    if (why) {
        json_object_set_new(o, "smtp_code", json_integer(0));
        json_object_set_new(o, "error", json_string(why));
        json_object_set_new(o, "code", json_string("EINVAL"));
        worse(r, EX_DATAERR);
    } else {
        json_object_set_new(o, "smtp_code", json_integer(e->smtp_code));
        json_object_set_new(o, "enhanced", json_string(e->enhanced));
        json_object_set_new(o, "text", json_string(e->server_text));
        if (e->message_id[0])
            json_object_set_new(o, "message_id", json_string(e->message_id));
        if (e->code != SCALR_EMAIL_OK) {
            json_object_set_new(o, "error", json_string(e->message));
            json_object_set_new(o, "code", json_string(cli_code_name(e->code)));
            if (e->stage[0])
                json_object_set_new(o, "stage", json_string(e->stage));
            if (e->recipient[0])
                json_object_set_new(o, "recipient", json_string(e->recipient));
            worse(r, cli_exit_status(e->code));
        }
    }
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENSURE_ASCII);
    if (s) {
        puts(s);
        fflush(stdout);
    }
    free(s);
    json_decref(o);
    r->done++;
    if (r->progress && (r->done % 100 == 0))
        fprintf(stderr, "\r%zu done", r->done);
}

static void on_result(void *arg, size_t index, const scalr_email_error *e)
{
    run *r = arg;
    print_result(r, map_take(&r->lines, index), e, NULL);
}

/* The source: the next line that is a message.  Malformed lines are
 * answered here and skipped (nothing of them is sent).  Called one at a
 * time, as on_result is, so the output lines never interleave. */
static int next_message(void *arg, size_t index, const scalr_email_message **msg)
{
    run *r = arg;
    ssize_t len;
    errno = 0;
    while ((len = getline(&r->buf, &r->cap, r->in)) >= 0) {
        r->lineno++;
        size_t n = (size_t)len;
        while (n && (r->buf[n - 1] == '\n' || r->buf[n - 1] == '\r'))
            n--;
        size_t sp = 0;
        while (sp < n && (r->buf[sp] == ' ' || r->buf[sp] == '\t'))
            sp++;
        if (sp == n)
            continue; /* blank lines are not messages */
        item *it = calloc(1, sizeof *it);
        if (!it) {
            r->read_error = ENOMEM;
            return 0;
        }
        it->line = r->lineno;
        cli_item_parse(it, r->buf, n);
        if (it->why[0]) {
            print_result(r, it->line, NULL, it->why);
            cli_item_free(it);
            free(it);
            continue;
        }
        if (map_put(&r->lines, index, it->line) < 0) {
            cli_item_free(it);
            free(it);
            r->read_error = ENOMEM;
            return 0;
        }
        *msg = &it->m;
        return 1;
    }
    if (ferror(r->in))
        r->read_error = errno ? errno : EIO;
    return 0;
}

/* A line's "profile": its tenant's client, made once for the batch. */
static const char *message_profile(void *arg, size_t index, const scalr_email_message *msg)
{
    (void)arg;
    (void)index;
    return ((const item *)((const char *)msg - offsetof(item, m)))->profile;
}

static void release_message(void *arg, size_t index, const scalr_email_message *msg)
{
    (void)arg;
    (void)index;
    item *it = (item *)((char *)msg - offsetof(item, m));
    cli_item_free(it);
    free(it);
}

static const struct option opts[] = {
    {"connections", required_argument, NULL, 'k'}, {"rate", required_argument, NULL, 'r'},
    {"env-file", required_argument, NULL, 'e'},    {"profile", required_argument, NULL, 'p'},
    {"verbose", no_argument, NULL, 'v'},           {0, 0, 0, 0},
};

int cli_send_batch(int argc, char **argv)
{
    const char *env_file = NULL, *profile = NULL;
    unsigned long k = 1;
    double rate = 0;
    int verbose = 0, c;
    char *end;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":v", opts, NULL)) != -1) {
        switch (c) {
        case 'k':
            errno = 0;
            k = strtoul(optarg, &end, 10);
            if (errno || *end || end == optarg || k < 1 || k > 256)
                return cli_usage_error("--connections must be a number from 1 to 256");
            break;
        case 'r':
            errno = 0;
            rate = strtod(optarg, &end);
            if (errno || *end || end == optarg || !(rate > 0 && rate <= 1e6))
                return cli_usage_error("--rate must be a positive number of messages per second");
            break;
        case 'e': env_file = optarg; break;
        case 'p': profile = optarg; break;
        case 'v': verbose = 1; break;
        case ':': return cli_usage_error("option '%s' needs a value", argv[optind - 1]);
        default: return cli_usage_error("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind + 1 != argc)
        return cli_usage_error("send-batch needs one FILE (JSON Lines; '-' for standard input)");
    const char *path = argv[optind];

    scalr_email_client *client = NULL;
    scalr_email_error err;
    /* --profile: the whole batch is one tenant's (its server, account, key
     * and allowed domains). */
    scalr_email_code crc =
        profile ? scalr_email_client_from_profile(&client, profile, env_file,
                                                  verbose ? cli_trace : NULL, NULL, &err)
                : scalr_email_client_from_env(&client, env_file, verbose ? cli_trace : NULL, NULL,
                                              &err);
    /* No platform SMTP: lines naming a profile still go (the others fail,
     * each with its own result). */
    if (crc != SCALR_EMAIL_OK && !(crc == SCALR_EMAIL_ENOTCONFIGURED && !profile))
        return cli_report(&err);

    FILE *f = strcmp(path, "-") ? fopen(path, "r") : stdin;
    if (!f) {
        fprintf(stderr, "scalr-email: cannot read %s: %s (input file unreadable)\n", path,
                strerror(errno));
        scalr_email_client_free(client);
        return EX_NOINPUT;
    }
    run *r = calloc(1, sizeof *r);
    int status = EX_OK;
    if (!r) {
        fputs("scalr-email: out of memory\n", stderr);
        status = EX_OSERR;
    } else {
        r->in = f;
        r->progress = isatty(2);
        scalr_email_batch_opts o = {.connections = (unsigned)k,
                                    .rate = rate,
                                    .on_result = on_result,
                                    .on_result_arg = r,
                                    .env_file = env_file};
        const scalr_email_source src = {
            .next = next_message, .release = release_message, .arg = r, .profile = message_profile};
        scalr_email_client_send_stream(client, &src, &o, &err);
        if (r->progress && r->done)
            fprintf(stderr, "\r%zu done\n", r->done);
        status = r->worst;
        if (r->read_error) {
            fprintf(stderr, "scalr-email: cannot read %s: %s\n", path, strerror(r->read_error));
            status = r->read_error == ENOMEM ? EX_OSERR : EX_IOERR;
        }
        free(r->buf);
        free(r->lines.s);
        free(r);
    }
    if (f != stdin)
        fclose(f);
    scalr_email_client_free(client);
    return status;
}
