/* The engine over JSON Lines, for the differential run in run.py: each input
 * line {"t": template, "d": data, "p": {partials}, "m": "spec"|"html"|"text"}
 * gives one output line {"o": output} or {"e": error}. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "template/mustache.h"

static char *load(void *arg, const char *name, int parent, size_t *len, const char **label,
                  char *why, size_t whylen)
{
    (void)parent, (void)why, (void)whylen;
    json_t *p = json_object_get(arg, name);
    if (!json_is_string(p))
        return NULL;
    *len = json_string_length(p);
    *label = name;
    char *s = malloc(*len + 1);
    if (s) {
        memcpy(s, json_string_value(p), *len);
        s[*len] = '\0';
    }
    return s;
}

int main(void)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, stdin)) > 0) {
        json_error_t je;
        json_t *in = json_loadb(line, (size_t)n, 0, &je), *res;
        if (!in) {
            res = json_pack("{s:s}", "e", je.text);
        } else {
            const char *m = json_string_value(json_object_get(in, "m"));
            json_t *t = json_object_get(in, "t");
            mu_opts o = {.mode = m && !strcmp(m, "html") ? MU_HTML
                                 : m && !strcmp(m, "text") ? MU_TEXT
                                                           : MU_SPEC,
                         .allow_missing = 1, .load = load, .load_arg = json_object_get(in, "p"),
                         .label = "t"};
            char *out = NULL, why[400];
            size_t len;
            if (mu_render(json_string_value(t), json_string_length(t), json_object_get(in, "d"),
                          &o, &out, &len, why, sizeof why))
                res = json_pack("{s:s}", "e", why);
            else
                res = json_pack("{s:s%}", "o", out, len);
            free(out);
        }
        char *s = json_dumps(res, JSON_COMPACT | JSON_ENSURE_ASCII);
        puts(s);
        fflush(stdout);
        free(s);
        json_decref(res);
        json_decref(in);
    }
    free(line);
    return 0;
}
