/* Timing driver for bench/template_bench.py: renders the benchmark invoice
 * with our engine, in memory (template text, partials and parsed data held
 * in memory, as the reference engines are measured) and through the public
 * scalr_email_template_render() (files read, JSON parsed, text part derived).
 *
 *   template_driver engine DIR TEMPLATE N   -> "ns_per_render bytes"
 *   template_driver api DIR N               -> "ns_per_render bytes"
 *
 * TEMPLATE is invoice/body.html (layout) or invoice/flat.html (partials). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "scalr_email.h"
#include "template/mustache.h"

static char *slurp(const char *dir, const char *rel, size_t *len)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        exit(1);
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *p = malloc((size_t)n + 1);
    if (!p || fread(p, 1, (size_t)n, f) != (size_t)n)
        exit(1);
    p[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return p;
}

typedef struct mem {
    const char *dir;
    char *src[4];
    size_t len[4];
} mem;

static const char *const names[4] = {"header", "footer", "row", "base"};

static char *load(void *arg, const char *name, int parent, size_t *len, const char **label,
                  char *why, size_t whylen)
{
    (void)parent, (void)why, (void)whylen;
    mem *m = arg;
    for (int i = 0; i < 4; i++)
        if (!strcmp(name, names[i])) {
            *len = m->len[i];
            *label = names[i];
            char *s = malloc(m->len[i] + 1);
            memcpy(s, m->src[i], m->len[i] + 1);
            return s;
        }
    return NULL;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

int main(int argc, char **argv)
{
    if (argc < 4)
        return 2;
    const char *dir = argv[2];
    size_t dlen;
    char *data = slurp(dir, "invoice/sample.json", &dlen);
    size_t bytes = 0;
    double t0, t1;
    if (!strcmp(argv[1], "engine") && argc == 5) {
        long n = atol(argv[4]);
        mem m = {.dir = dir};
        const char *files[4] = {"_partials/header.html", "_partials/footer.html",
                                "_partials/row.html", "_layouts/base.html"};
        for (int i = 0; i < 4; i++)
            m.src[i] = slurp(dir, files[i], &m.len[i]);
        size_t tl;
        char *tmpl = slurp(dir, argv[3], &tl);
        json_t *d = json_loadb(data, dlen, 0, NULL);
        mu_opts o = {.mode = MU_HTML, .load = load, .load_arg = &m, .label = argv[3]};
        t0 = now();
        for (long i = 0; i < n; i++) {
            char *out, why[300];
            if (mu_render(tmpl, tl, d, &o, &out, &bytes, why, sizeof why)) {
                fprintf(stderr, "%s\n", why);
                return 1;
            }
            free(out);
        }
        t1 = now();
        printf("%.0f %zu\n", (t1 - t0) / n, bytes);
        return 0;
    }
    if (!strcmp(argv[1], "api")) {
        long n = atol(argv[3]);
        scalr_email_template_opts o = {.root = dir};
        t0 = now();
        for (long i = 0; i < n; i++) {
            scalr_email_rendered r;
            scalr_email_error err;
            if (scalr_email_template_render("invoice", data, dlen, &o, &r, &err)) {
                fprintf(stderr, "%s\n", err.message);
                return 1;
            }
            bytes = r.body_html_len + r.body_len + strlen(r.subject);
            scalr_email_rendered_free(&r);
        }
        t1 = now();
        printf("%.0f %zu\n", (t1 - t0) / n, bytes);
        return 0;
    }
    return 2;
}
