/* scalr-email send-batch: one message per JSON line, one result per line. */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "cli.h"

typedef cli_item item;

typedef struct run {
    item *items;
    size_t n_items, n_msgs, done;
    size_t *msg_item; /* batch index -> item */
    int worst;        /* exit status so far */
    int progress;     /* stderr is a terminal */
} run;

static const char *const code_names[] = {
    "OK",         "ENOTCONFIGURED", "ECONFIG",      "EINVAL",   "EFILE", "EREJECTED",
    "ETRANSIENT", "ETOOBIG",        "EUNSUPPORTED", "ECONNECT", "ETLS",  "EINSECURE",
    "EAUTH",      "ETIMEOUT",       "EPROTOCOL",    "EIO",      "ENOMEM"};

static const char *code_name(scalr_email_code c)
{
    return (size_t)c < sizeof code_names / sizeof code_names[0] ? code_names[c] : "EUNKNOWN";
}

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

/* A string, or a list of strings, into a NULL-terminated array. */




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
            json_object_set_new(o, "code", json_string(code_name(e->code)));
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
    if (r->progress) {
        size_t total = r->n_items, w = 30, fill = total ? r->done * w / total : w;
        char bar[31];
        memset(bar, '#', fill);
        memset(bar + fill, '.', w - fill);
        bar[w] = '\0';
        fprintf(stderr, "\r[%s] %zu/%zu", bar, r->done, total);
        if (r->done == total)
            fputc('\n', stderr);
    }
}

static void on_result(void *arg, size_t index, const scalr_email_error *e)
{
    run *r = arg;
    print_result(r, r->items[r->msg_item[index]].line, e, NULL);
}

static int read_items(FILE *f, run *r)
{
    char *line = NULL;
    size_t cap = 0, lineno = 0, alloc = 0;
    ssize_t len;
    errno = 0;
    while ((len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        size_t n = (size_t)len;
        while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            n--;
        size_t sp = 0;
        while (sp < n && (line[sp] == ' ' || line[sp] == '\t'))
            sp++;
        if (sp == n)
            continue; /* blank lines are not messages */
        if (r->n_items == alloc) {
            alloc = alloc ? alloc * 2 : 64;
            item *v = realloc(r->items, alloc * sizeof *v);
            if (!v) {
                free(line);
                return -1;
            }
            r->items = v;
        }
        item *it = &r->items[r->n_items++];
        memset(it, 0, sizeof *it);
        it->line = lineno;
        cli_item_parse(it, line, n);
    }
    free(line);
    return ferror(f) ? -1 : 0;
}

static const struct option opts[] = {
    {"connections", required_argument, NULL, 'k'},
    {"rate", required_argument, NULL, 'r'},
    {"env-file", required_argument, NULL, 'e'},
    {"verbose", no_argument, NULL, 'v'},
    {0, 0, 0, 0},
};

int cli_send_batch(int argc, char **argv)
{
    const char *env_file = NULL;
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
    if (scalr_email_client_from_env(&client, env_file, verbose ? cli_trace : NULL, NULL, &err) !=
        SCALR_EMAIL_OK)
        return cli_report(&err);

    FILE *f = strcmp(path, "-") ? fopen(path, "r") : stdin;
    if (!f) {
        fprintf(stderr, "scalr-email: cannot read %s: %s (input file unreadable)\n", path,
                strerror(errno));
        scalr_email_client_free(client);
        return EX_NOINPUT;
    }
    run r = {.progress = isatty(2)};
    int status = EX_OK;
    if (read_items(f, &r) < 0) {
        fprintf(stderr, "scalr-email: cannot read %s: %s\n", path, strerror(errno ? errno : EIO));
        status = EX_IOERR;
    }
    if (f != stdin)
        fclose(f);

    scalr_email_message *msgs = calloc(r.n_items + 1, sizeof *msgs);
    r.msg_item = calloc(r.n_items + 1, sizeof *r.msg_item);
    if (!status && (!msgs || !r.msg_item)) {
        fputs("scalr-email: out of memory\n", stderr);
        status = EX_OSERR;
    }
    if (!status) {
        /* Malformed lines are answered first: nothing of them is sent. */
        for (size_t i = 0; i < r.n_items; i++) {
            if (r.items[i].why[0]) {
                print_result(&r, r.items[i].line, NULL, r.items[i].why);
            } else {
                r.msg_item[r.n_msgs] = i;
                msgs[r.n_msgs++] = r.items[i].m;
            }
        }
        scalr_email_batch_opts o = {
            .connections = (unsigned)k, .rate = rate, .on_result = on_result, .on_result_arg = &r};
        if (r.n_msgs)
            scalr_email_client_send_batch(client, msgs, r.n_msgs, &o, NULL, &err);
        status = r.worst;
    }
    for (size_t i = 0; i < r.n_items; i++)
        cli_item_free(&r.items[i]);
    free(r.items);
    free(r.msg_item);
    free(msgs);
    scalr_email_client_free(client);
    return status;
}
