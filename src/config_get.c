/* scalr_email_config_get: one variable, looked up as the client does. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "error.h"
#include "util/buf.h"

struct lookup {
    const char *name;
    char *value;
    int oom;
};

static int take(void *arg, const char *key, const char *value)
{
    struct lookup *l = arg;
    if (strcmp(key, l->name) != 0)
        return 0;
    free(l->value); /* a later line wins, as in a shell */
    l->value = strdup(value);
    if (!l->value)
        l->oom = 1;
    return 0;
}

scalr_email_code scalr_email_config_get(const char *env_file, const char *name, char **value,
                                        scalr_email_error *err)
{
    se_error_clear(err);
    if (!name || !value)
        return se_fail(err, SCALR_EMAIL_EINVAL, "CONFIG", "config_get: NULL argument");
    *value = NULL;
    const char *v = getenv(name);
    if (v && *v) {
        *value = strdup(v);
        return *value ? SCALR_EMAIL_OK
                      : se_fail(err, SCALR_EMAIL_ENOMEM, "CONFIG", "out of memory");
    }
    if (!env_file)
        return SCALR_EMAIL_OK;

    FILE *f = fopen(env_file, "rb");
    if (!f)
        return se_fail(err, SCALR_EMAIL_ECONFIG, "CONFIG", "cannot read env file %s: %s", env_file,
                       strerror(errno));
    se_buf text = {0};
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        se_buf_append(&text, chunk, n);
    int bad = ferror(f);
    fclose(f);
    if (bad || text.oom) {
        se_buf_free(&text);
        return se_fail(err, SCALR_EMAIL_ECONFIG, "CONFIG", "cannot read env file %s", env_file);
    }
    struct lookup l = {.name = name};
    char why[200] = "";
    int line = se_dotenv_parse(text.data ? text.data : "", text.len, take, &l, why, sizeof why);
    se_buf_free(&text);
    if (line != 0 || l.oom) {
        free(l.value);
        if (line < 0 || l.oom)
            return se_fail(err, SCALR_EMAIL_ENOMEM, "CONFIG", "out of memory");
        return se_fail(err, SCALR_EMAIL_ECONFIG, "CONFIG", "%s:%d: %s", env_file, line, why);
    }
    if (l.value && !*l.value) {
        free(l.value);
        l.value = NULL;
    }
    *value = l.value;
    return SCALR_EMAIL_OK;
}
