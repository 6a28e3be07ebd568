/* scalr-email template check|render: validate and preview templates
 * without sending anything. */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "cli.h"

static const char usage[] =
    "usage: scalr-email template check NAME [--data FILE] [--locale L] [--templates DIR]\n"
    "                                     [--allow-missing]\n"
    "       scalr-email template render NAME [--data FILE|-] [--locale L]\n"
    "                                     [--part subject|text|html|eml] [--fixed]\n"
    "                                     [--to ADDR] [--from SENDER] [--templates DIR]\n"
    "                                     [--allow-missing]\n"
    "\n"
    "A template is a folder DIR/NAME/ with subject.txt, body.html and optionally body.txt\n"
    "(DIR: --templates, else $SCALR_EMAIL_TEMPLATES, else ./templates).  The data is a JSON\n"
    "object; without --data, DIR/NAME/sample.json.\n"
    "\n"
    "check   renders every part for the default files and for every locale variant found\n"
    "        (body.fr.html, subject.fr-CA.txt, ...), or only for --locale; exit 0 when all\n"
    "        render, 65 on a template error or a missing variable (for deploy scripts).\n"
    "render  writes one part to standard output (default: eml, the whole message as it\n"
    "        would be sent); nothing goes over the network.  --fixed makes the Date,\n"
    "        Message-ID and MIME boundaries fixed, for golden files.\n"
    "Exit status: 0 ok, 64 usage, 65 template or data error, 66 no such template or file.\n";

enum { O_DATA = 300, O_LOCALE, O_PART, O_FIXED, O_TO, O_FROM, O_TEMPLATES, O_ALLOW };

static const struct option opts[] = {
    {"data", required_argument, NULL, O_DATA},
    {"locale", required_argument, NULL, O_LOCALE},
    {"part", required_argument, NULL, O_PART},
    {"fixed", no_argument, NULL, O_FIXED},
    {"to", required_argument, NULL, O_TO},
    {"from", required_argument, NULL, O_FROM},
    {"templates", required_argument, NULL, O_TEMPLATES},
    {"allow-missing", no_argument, NULL, O_ALLOW},
    {"help", no_argument, NULL, 'h'},
    {0, 0, 0, 0},
};

typedef struct targs {
    const char *name, *data, *locale, *part, *to, *from, *templates;
    int fixed, allow_missing;
} targs;

static const char *root_of(const targs *a)
{
    if (a->templates && *a->templates)
        return a->templates;
    const char *env = getenv("SCALR_EMAIL_TEMPLATES");
    return env && *env ? env : "./templates";
}

static char *read_all(const char *path, size_t *len)
{
    FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0;
    char *p = malloc(cap);
    for (size_t got; p; n += got) {
        if (n + 1 >= cap) {
            char *q = cap > (64u << 20) ? NULL : realloc(p, cap *= 2);
            if (!q) {
                free(p);
                p = NULL;
                errno = EFBIG;
                break;
            }
            p = q;
        }
        got = fread(p + n, 1, cap - n - 1, f);
        if (got == 0)
            break;
    }
    if (f != stdin)
        fclose(f);
    if (p) {
        p[n] = '\0';
        *len = n;
    }
    return p;
}

/* The data: --data, else ROOT/NAME/sample.json. */
static int load_data(const targs *a, char **data, size_t *len)
{
    char path[4096];
    const char *p = a->data;
    if (!p) {
        snprintf(path, sizeof path, "%s/%s/sample.json", root_of(a), a->name);
        p = path;
    }
    *data = read_all(p, len);
    if (*data)
        return 0;
    fprintf(stderr, "scalr-email: cannot read template data %s: %s%s\n",
            strcmp(p, "-") ? p : "from standard input", strerror(errno),
            a->data ? "" : " (give --data FILE)");
    return EX_NOINPUT;
}

static int render_one(const targs *a, const char *locale, const char *data, size_t len,
                      scalr_email_rendered *r)
{
    scalr_email_error err;
    scalr_email_template_opts o = {
        .root = a->templates, .locale = locale, .allow_missing = a->allow_missing};
    if (scalr_email_template_render(a->name, data, len, &o, r, &err) != SCALR_EMAIL_OK)
        return cli_report(&err);
    return 0;
}

/* Locales named by the folder's files: subject.fr.txt, body.fr-CA.html ... */
static int locales(const targs *a, char found[][40], int max)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", root_of(a), a->name);
    DIR *d = opendir(path);
    int n = 0;
    if (!d)
        return 0;
    for (struct dirent *e; (e = readdir(d));) {
        const char *nm = e->d_name, *rest = NULL;
        if (!strncmp(nm, "subject.", 8))
            rest = nm + 8;
        else if (!strncmp(nm, "body.", 5))
            rest = nm + 5;
        const char *dot = rest ? strchr(rest, '.') : NULL;
        if (!dot || dot == rest || (strcmp(dot, ".txt") && strcmp(dot, ".html")))
            continue;
        size_t l = (size_t)(dot - rest);
        int dup = 0;
        for (int i = 0; i < n; i++)
            dup |= strlen(found[i]) == l && !strncmp(found[i], rest, l);
        if (!dup && n < max && l < 40) {
            memcpy(found[n], rest, l);
            found[n++][l] = '\0';
        }
    }
    closedir(d);
    return n;
}

static int check(const targs *a)
{
    char *data;
    size_t len;
    int st = load_data(a, &data, &len);
    if (st)
        return st;
    char found[32][40];
    int n = a->locale ? 0 : locales(a, found, 32);
    scalr_email_rendered r;
    if ((st = render_one(a, a->locale, data, len, &r)) == 0) {
        scalr_email_rendered_free(&r);
        printf("ok %s%s%s\n", a->name, a->locale ? " " : "", a->locale ? a->locale : "");
    }
    for (int i = 0; i < n && !st; i++) {
        if ((st = render_one(a, found[i], data, len, &r)) == 0) {
            scalr_email_rendered_free(&r);
            printf("ok %s %s\n", a->name, found[i]);
        }
    }
    free(data);
    return st;
}

static int put(const char *s, size_t n)
{
    return fwrite(s, 1, n, stdout) == n && fflush(stdout) == 0 ? EX_OK : EX_IOERR;
}

static int render(const targs *a)
{
    static const char *const parts[] = {"subject", "text", "html", "eml"};
    const char *part = a->part ? a->part : "eml";
    int known = 0;
    for (size_t i = 0; i < 4; i++)
        known |= !strcmp(part, parts[i]);
    if (!known)
        return cli_usage_error("--part must be subject, text, html or eml, not '%s'", part);
    char *data;
    size_t len;
    int st = load_data(a, &data, &len);
    if (st)
        return st;
    scalr_email_rendered r;
    st = render_one(a, a->locale, data, len, &r);
    free(data);
    if (st)
        return st;
    if (!strcmp(part, "subject")) {
        st = put(r.subject, strlen(r.subject));
        if (!st)
            st = put("\n", 1);
    } else if (!strcmp(part, "text")) {
        st = put(r.body, r.body_len);
    } else if (!strcmp(part, "html")) {
        st = put(r.body_html, r.body_html_len);
    } else {
        scalr_email_error err;
        char *from_env = NULL, *eml = NULL;
        size_t n = 0;
        const char *from = a->from;
        if (!from && scalr_email_config_get(NULL, "SMTP_FROM", &from_env, &err) == SCALR_EMAIL_OK)
            from = from_env;
        scalr_email_message m = {
            .to = (const char *const[]){a->to ? a->to : "recipient@example.com", NULL},
            .subject = r.subject,
            .body = r.body_len ? r.body : "",
            .body_len = r.body_len,
            .body_html = r.body_html,
            .body_html_len = r.body_html_len,
        };
        const char *def = from ? from : "sender@example.com";
        scalr_email_code rc = a->fixed ? scalr_email_compose_fixed(&m, def, &eml, &n, &err)
                                       : scalr_email_compose(&m, def, &eml, &n, &err);
        st = rc == SCALR_EMAIL_OK ? put(eml, n) : cli_report(&err);
        free(eml);
        free(from_env);
    }
    scalr_email_rendered_free(&r);
    return st;
}

int cli_template(int argc, char **argv)
{
    if (argc < 2)
        return cli_usage_error("template needs a command: check or render");
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        fputs(usage, stdout);
        return EX_OK;
    }
    const char *sub = argv[1];
    if (strcmp(sub, "check") && strcmp(sub, "render"))
        return cli_usage_error("unknown template command '%s': check or render", sub);
    targs a = {0};
    optind = 1;
    opterr = 0;
    int c, ac = argc - 1;
    char **av = argv + 1; /* av[0] is the subcommand */
    while ((c = getopt_long(ac, av, ":h", opts, NULL)) != -1) {
        switch (c) {
        case O_DATA: a.data = optarg; break;
        case O_LOCALE: a.locale = optarg; break;
        case O_PART: a.part = optarg; break;
        case O_FIXED: a.fixed = 1; break;
        case O_TO: a.to = optarg; break;
        case O_FROM: a.from = optarg; break;
        case O_TEMPLATES: a.templates = optarg; break;
        case O_ALLOW: a.allow_missing = 1; break;
        case 'h': fputs(usage, stdout); return EX_OK;
        case ':': return cli_usage_error("option '%s' needs a value", av[optind - 1]);
        default: return cli_usage_error("unknown option '%s'", av[optind - 1]);
        }
    }
    if (optind >= ac)
        return cli_usage_error("template %s needs a template NAME", sub);
    a.name = av[optind];
    if (optind + 1 < ac)
        return cli_usage_error("unexpected argument '%s'", av[optind + 1]);
    if (!strcmp(sub, "check")) {
        if (a.part || a.fixed || a.to || a.from)
            return cli_usage_error("--part, --fixed, --to and --from go with template render");
        return check(&a);
    }
    return render(&a);
}
