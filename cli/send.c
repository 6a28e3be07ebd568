/* scalr-email send */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "cli.h"

/* A growable NULL-terminated list of argv strings (not copied). */
typedef struct {
    const char **v;
    size_t n;
} strlist;

static int push(strlist *l, const char *s)
{
    const char **v = realloc(l->v, (l->n + 2) * sizeof *v);
    if (!v)
        return -1;
    v[l->n++] = s;
    v[l->n] = NULL;
    l->v = v;
    return 0;
}

/* Whole file (or stdin for NULL) into memory; bodies keep embedded NULs so
 * that the library can refuse them. */
static char *slurp(const char *path, size_t *len)
{
    FILE *f = path ? fopen(path, "rb") : stdin;
    if (!f)
        return NULL;
    size_t cap = 8192, n = 0;
    char *p = malloc(cap);
    while (p) {
        if (n + 4096 + 1 > cap) {
            char *q = realloc(p, cap *= 2);
            if (!q) {
                free(p);
                p = NULL;
                errno = ENOMEM;
                break;
            }
            p = q;
        }
        size_t got = fread(p + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0) {
            if (ferror(f)) {
                int e = errno;
                free(p);
                p = NULL;
                errno = e ? e : EIO;
            }
            break;
        }
    }
    if (path)
        fclose(f);
    if (p) {
        p[n] = '\0';
        *len = n;
    }
    return p;
}

enum {
    OPT_TO = 256,
    OPT_SUBJECT,
    OPT_BODY,
    OPT_BODY_FILE,
    OPT_HTML,
    OPT_HTML_FILE,
    OPT_FROM,
    OPT_CC,
    OPT_BCC,
    OPT_REPLY_TO,
    OPT_HEADER,
    OPT_ATTACH,
    OPT_ENV_FILE,
    OPT_PRINT,
    OPT_TEMPLATE,
    OPT_DATA,
    OPT_LOCALE,
    OPT_ALLOW_MISSING,
    OPT_TEMPLATES,
    OPT_INLINE,
    OPT_CALENDAR,
    OPT_DSN_NOTIFY,
    OPT_DSN_RET,
    OPT_ENVID,
    OPT_ENVELOPE_FROM,
    OPT_UNSUBSCRIBE,
    OPT_UNSUBSCRIBE_MAILTO,
    OPT_PROFILE
};

static const struct option opts[] = {
    {"to", required_argument, NULL, OPT_TO},
    {"subject", required_argument, NULL, OPT_SUBJECT},
    {"body", required_argument, NULL, OPT_BODY},
    {"body-file", required_argument, NULL, OPT_BODY_FILE},
    {"html", required_argument, NULL, OPT_HTML},
    {"html-file", required_argument, NULL, OPT_HTML_FILE},
    {"from", required_argument, NULL, OPT_FROM},
    {"cc", required_argument, NULL, OPT_CC},
    {"bcc", required_argument, NULL, OPT_BCC},
    {"reply-to", required_argument, NULL, OPT_REPLY_TO},
    {"header", required_argument, NULL, OPT_HEADER},
    {"attach", required_argument, NULL, OPT_ATTACH},
    {"env-file", required_argument, NULL, OPT_ENV_FILE},
    {"print", no_argument, NULL, OPT_PRINT},
    {"template", required_argument, NULL, OPT_TEMPLATE},
    {"data", required_argument, NULL, OPT_DATA},
    {"locale", required_argument, NULL, OPT_LOCALE},
    {"allow-missing", no_argument, NULL, OPT_ALLOW_MISSING},
    {"templates", required_argument, NULL, OPT_TEMPLATES},
    {"inline", required_argument, NULL, OPT_INLINE},
    {"calendar", required_argument, NULL, OPT_CALENDAR},
    {"dsn-notify", required_argument, NULL, OPT_DSN_NOTIFY},
    {"dsn-ret", required_argument, NULL, OPT_DSN_RET},
    {"envid", required_argument, NULL, OPT_ENVID},
    {"envelope-from", required_argument, NULL, OPT_ENVELOPE_FROM},
    {"unsubscribe", required_argument, NULL, OPT_UNSUBSCRIBE},
    {"unsubscribe-mailto", required_argument, NULL, OPT_UNSUBSCRIBE_MAILTO},
    {"profile", required_argument, NULL, OPT_PROFILE},
    {"verbose", no_argument, NULL, 'v'},
    {0, 0, 0, 0},
};

struct send_args {
    strlist to, cc, bcc, headers, attach, inl;
    const char *subject, *body, *body_file, *html, *html_file, *from, *reply_to, *env_file;
    const char *tmpl, *data, *locale, *templates;
    int print, verbose, allow_missing;
    const char *calendar, *dsn_notify, *dsn_ret, *envid, *envelope_from;
    const char *unsub, *unsub_mailto; /* one-click unsubscribe (RFC 8058) */
    const char *profile;              /* a sender profile (tenant) */
    char unsub_value[1024];
};

static int parse(int argc, char **argv, struct send_args *a, const struct option *all,
                 int (*on_extra)(void *arg, int opt, const char *val), void *arg)
{
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":v", all, NULL)) != -1) {
        int rc = 0;
        if (c >= 1000 && on_extra) {
            int st = on_extra(arg, c, optarg);
            if (st)
                return st;
            continue;
        }
        switch (c) {
        case OPT_TO: rc = push(&a->to, optarg); break;
        case OPT_CC: rc = push(&a->cc, optarg); break;
        case OPT_BCC: rc = push(&a->bcc, optarg); break;
        case OPT_HEADER: rc = push(&a->headers, optarg); break;
        case OPT_ATTACH: rc = push(&a->attach, optarg); break;
        case OPT_INLINE: rc = push(&a->inl, optarg); break;
        case OPT_CALENDAR: a->calendar = optarg; break;
        case OPT_DSN_NOTIFY: a->dsn_notify = optarg; break;
        case OPT_DSN_RET: a->dsn_ret = optarg; break;
        case OPT_ENVID: a->envid = optarg; break;
        case OPT_ENVELOPE_FROM: a->envelope_from = optarg; break;
        case OPT_SUBJECT: a->subject = optarg; break;
        case OPT_BODY: a->body = optarg; break;
        case OPT_BODY_FILE: a->body_file = optarg; break;
        case OPT_HTML: a->html = optarg; break;
        case OPT_HTML_FILE: a->html_file = optarg; break;
        case OPT_FROM: a->from = optarg; break;
        case OPT_REPLY_TO: a->reply_to = optarg; break;
        case OPT_ENV_FILE: a->env_file = optarg; break;
        case OPT_PRINT: a->print = 1; break;
        case OPT_TEMPLATE: a->tmpl = optarg; break;
        case OPT_DATA: a->data = optarg; break;
        case OPT_LOCALE: a->locale = optarg; break;
        case OPT_TEMPLATES: a->templates = optarg; break;
        case OPT_ALLOW_MISSING: a->allow_missing = 1; break;
        case OPT_UNSUBSCRIBE: a->unsub = optarg; break;
        case OPT_UNSUBSCRIBE_MAILTO: a->unsub_mailto = optarg; break;
        case OPT_PROFILE: a->profile = optarg; break;
        case 'v': a->verbose = 1; break;
        case ':': return cli_usage_error("option '%s' needs a value", argv[optind - 1]);
        default: return cli_usage_error("unknown option '%s'", argv[optind - 1]);
        }
        if (rc < 0) {
            fputs("scalr-email: out of memory\n", stderr);
            return EX_OSERR;
        }
    }
    if (optind < argc)
        return cli_usage_error("unexpected argument '%s'", argv[optind]);
    if (!a->to.n && !a->cc.n && !a->bcc.n)
        return cli_usage_error("send needs at least one recipient (--to, --cc or --bcc)");
    if (a->tmpl) {
        if (a->subject || a->body || a->body_file || a->html || a->html_file)
            return cli_usage_error("--template makes the subject and bodies: no --subject, "
                                   "--body or --html with it");
        if (!a->data)
            return cli_usage_error("--template needs --data FILE ('-': standard input)");
        return 0;
    }
    if (a->data || a->locale || a->allow_missing || a->templates)
        return cli_usage_error("--data, --locale, --templates and --allow-missing go with "
                               "--template");
    if (!a->subject)
        return cli_usage_error("send needs --subject");
    if (a->body && a->body_file)
        return cli_usage_error("--body and --body-file are exclusive");
    if (a->html && a->html_file)
        return cli_usage_error("--html and --html-file are exclusive");
    return 0;
}

/* "Name: value" -> header; the library validates name and value. */
static int split_headers(const strlist *in, scalr_email_header **out)
{
    *out = calloc(in->n + 1, sizeof **out);
    if (!*out)
        return EX_OSERR;
    for (size_t i = 0; i < in->n; i++) {
        const char *colon = strchr(in->v[i], ':');
        if (!colon || colon == in->v[i])
            return cli_usage_error("--header '%s' is not 'Name: value'", in->v[i]);
        char *name = strndup(in->v[i], (size_t)(colon - in->v[i]));
        if (!name)
            return EX_OSERR;
        const char *value = colon + 1;
        while (*value == ' ' || *value == '\t')
            value++;
        (*out)[i].name = name;
        (*out)[i].value = value;
    }
    return 0;
}

/* --unsubscribe URL [--unsubscribe-mailto ADDR]: the two RFC 8058 fields,
 * after the --header ones (names owned like theirs). */
static int add_unsubscribe(struct send_args *a, scalr_email_header **hs)
{
    if (!a->unsub) {
        if (a->unsub_mailto)
            return cli_usage_error("--unsubscribe-mailto needs --unsubscribe URL");
        return 0;
    }
    scalr_email_error err;
    if (scalr_email_unsubscribe_value(a->unsub, a->unsub_mailto, a->unsub_value,
                                      sizeof a->unsub_value, &err) != SCALR_EMAIL_OK)
        return cli_report(&err);
    size_t n = 0;
    while ((*hs)[n].name)
        n++;
    scalr_email_header *more = realloc(*hs, (n + 3) * sizeof *more);
    if (!more)
        return EX_OSERR;
    *hs = more;
    more[n] = (scalr_email_header){strdup("List-Unsubscribe"), a->unsub_value};
    more[n + 1] =
        (scalr_email_header){strdup("List-Unsubscribe-Post"), "List-Unsubscribe=One-Click"};
    more[n + 2] = (scalr_email_header){0};
    if (!more[n].name || !more[n + 1].name)
        return EX_OSERR;
    return 0;
}

static int read_input(const char *what, const char *path, char **data, size_t *len)
{
    *data = slurp(path, len);
    if (*data)
        return 0;
    fprintf(stderr, "scalr-email: cannot read %s %s: %s (input file unreadable)\n", what,
            path ? path : "from standard input", strerror(errno));
    return EX_NOINPUT;
}

struct cli_msg {
    struct send_args a;
    scalr_email_header *headers;
    scalr_email_attachment *att;
    char *body_buf, *html_buf, *cal_buf;
    scalr_email_rendered r;
    scalr_email_message m;
};

void cli_msg_free(cli_msg *c)
{
    if (!c)
        return;
    if (c->headers)
        for (size_t i = 0; c->headers[i].name; i++)
            free((char *)c->headers[i].name);
    free(c->headers);
    free(c->att);
    free(c->body_buf);
    free(c->html_buf);
    scalr_email_rendered_free(&c->r);
    free(c->cal_buf);
    free(c->a.inl.v);
    free(c->a.to.v);
    free(c->a.cc.v);
    free(c->a.bcc.v);
    free(c->a.headers.v);
    free(c->a.attach.v);
    free(c);
}

const scalr_email_message *cli_msg_message(const cli_msg *c)
{
    return &c->m;
}
const char *cli_msg_env_file(const cli_msg *c)
{
    return c->a.env_file;
}
const char *cli_msg_profile(const cli_msg *c)
{
    return c->a.profile;
}
int cli_msg_verbose(const cli_msg *c)
{
    return c->a.verbose;
}

int cli_msg_parse(int argc, char **argv, const void *extra_opts, size_t n_extra,
                  int (*on_extra)(void *arg, int opt, const char *val), void *arg, cli_msg **out)
{
    *out = NULL;
    cli_msg *c = calloc(1, sizeof *c);
    size_t n_base = sizeof opts / sizeof opts[0] - 1;
    struct option *all = calloc(n_base + n_extra + 1, sizeof *all);
    if (!c || !all) {
        free(c);
        free(all);
        fputs("scalr-email: out of memory\n", stderr);
        return EX_OSERR;
    }
    memcpy(all, opts, n_base * sizeof *all);
    if (n_extra)
        memcpy(all + n_base, extra_opts, n_extra * sizeof *all);
    int status = parse(argc, argv, &c->a, all, on_extra, arg);
    free(all);
    if (status)
        goto fail;
    if ((status = split_headers(&c->a.headers, &c->headers)))
        goto fail;
    if ((status = add_unsubscribe(&c->a, &c->headers)))
        goto fail;
    c->att = calloc(c->a.attach.n + c->a.inl.n + 1, sizeof *c->att);
    if (!c->att) {
        status = EX_OSERR;
        goto fail;
    }
    for (size_t i = 0; i < c->a.attach.n; i++)
        c->att[i].path = c->a.attach.v[i];
    /* --inline: the file's name is its content ID (<img src="cid:NAME">). */
    for (size_t i = 0; i < c->a.inl.n; i++) {
        const char *p = c->a.inl.v[i], *slash = strrchr(p, '/');
        c->att[c->a.attach.n + i].path = p;
        c->att[c->a.attach.n + i].content_id = slash ? slash + 1 : p;
    }
    scalr_email_message *m = &c->m;
    *m = (scalr_email_message){
        .to = c->a.to.v,
        .cc = c->a.cc.v,
        .bcc = c->a.bcc.v,
        .subject = c->a.subject,
        .sender = c->a.from,
        .reply_to = c->a.reply_to,
        .headers = c->headers,
        .attachments = c->att,
        .dsn_notify = c->a.dsn_notify,
        .dsn_ret = c->a.dsn_ret,
        .dsn_envid = c->a.envid,
        .envelope_from = c->a.envelope_from,
    };
    if (c->a.calendar) {
        size_t clen = 0;
        if ((status = read_input("--calendar", c->a.calendar, &c->cal_buf, &clen)))
            goto fail;
        if (strlen(c->cal_buf) != clen) {
            fprintf(stderr, "scalr-email: --calendar %s contains a NUL byte\n", c->a.calendar);
            status = EX_DATAERR;
            goto fail;
        }
        m->calendar = c->cal_buf;
    }
    size_t len = 0;
    if (c->a.tmpl) {
        if ((status = read_input("--data", strcmp(c->a.data, "-") ? c->a.data : NULL, &c->body_buf,
                                 &len)))
            goto fail;
        scalr_email_error err;
        scalr_email_template_opts to = {
            .root = c->a.templates, .locale = c->a.locale, .allow_missing = c->a.allow_missing};
        if (scalr_email_template_render(c->a.tmpl, c->body_buf, len, &to, &c->r, &err)) {
            status = cli_report(&err);
            goto fail;
        }
        m->subject = c->r.subject;
        m->body = c->r.body;
        m->body_len = c->r.body_len;
        m->body_html = c->r.body_html;
        m->body_html_len = c->r.body_html_len;
        if (!m->body_len)
            m->body = "";
        *out = c;
        return 0;
    }
    if (c->a.body) {
        m->body = c->a.body;
    } else {
        if ((status = read_input("--body-file", c->a.body_file, &c->body_buf, &len)))
            goto fail;
        m->body = c->body_buf;
        m->body_len = len;
    }
    if (c->a.html) {
        m->body_html = c->a.html;
    } else if (c->a.html_file) {
        if ((status = read_input("--html-file", c->a.html_file, &c->html_buf, &len)))
            goto fail;
        m->body_html = c->html_buf;
        m->body_html_len = len;
    }
    /* An empty file must not mean "use strlen" of a longer buffer. */
    if (m->body && m->body_len == 0 && c->body_buf)
        m->body = "";
    if (m->body_html && m->body_html_len == 0 && c->html_buf)
        m->body_html = "";
    *out = c;
    return 0;
fail:
    cli_msg_free(c);
    return status;
}

int cli_send(int argc, char **argv)
{
    cli_msg *c = NULL;
    char *printed = NULL;
    scalr_email_client *client = NULL;
    scalr_email_error err;
    int status = cli_msg_parse(argc, argv, NULL, 0, NULL, NULL, &c);
    if (status)
        goto out;
    const scalr_email_message *m = &c->m;
    if (c->a.print) {
        /* As it would be sent: the profile's From, DKIM-signed when configured. */
        size_t n;
        if (scalr_email_compose_configured(m, c->a.profile, c->a.env_file, &printed, &n, &err) !=
            SCALR_EMAIL_OK) {
            status = cli_report(&err);
            goto out;
        }
        status = fwrite(printed, 1, n, stdout) == n && fflush(stdout) == 0 ? EX_OK : EX_IOERR;
        goto out;
    }

    if ((c->a.profile
             ? scalr_email_client_from_profile(&client, c->a.profile, c->a.env_file,
                                               c->a.verbose ? cli_trace : NULL, NULL, &err)
             : scalr_email_client_from_env(&client, c->a.env_file, c->a.verbose ? cli_trace : NULL,
                                           NULL, &err)) != SCALR_EMAIL_OK) {
        status = cli_report(&err);
        goto out;
    }
    if (scalr_email_client_dkim_weak(client)) /* RFC 8301 3.2: 1024 still verifies */
        fputs("scalr-email: warning: the DKIM key is RSA under 2048 bits\n", stderr);
    if (scalr_email_client_send(client, m, &err) != SCALR_EMAIL_OK) {
        status = cli_report(&err);
        goto out;
    }
    printf("sent %s (%d%s%s %s)\n", err.message_id, err.smtp_code, err.enhanced[0] ? " " : "",
           err.enhanced, err.server_text);
    status = EX_OK;
out:
    free(printed);
    cli_msg_free(c);
    scalr_email_client_free(client);
    return status;
}
