/* libFuzzer target: the dev inbox's DKIM verdict (inbox/dkimcheck.h) on a
 * received message, without key records.
 *
 * Checks, besides memory safety and bounded work:
 *   - a verdict is always made (the message's bytes can never lose it), and
 *     it dumps as JSON: names and reasons taken from hostile d=, s= and a=
 *     values are valid UTF-8;
 *   - one entry per signature the verifier sees (at most 8), none verifies
 *     (there are no keys), each with a reason;
 *   - the status agrees with the entries: "none" exactly when there are none,
 *     never "pass";
 *   - the same input gives the same text twice (no hidden state). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dkim/dkim.h"
#include "dkimcheck.h"

#define FAIL(...)                                                                                  \
    do {                                                                                           \
        fprintf(stderr, "fuzz_dkimcheck: " __VA_ARGS__);                                           \
        fputc('\n', stderr);                                                                       \
        abort();                                                                                   \
    } while (0)

/* The public wrapper lives in src/dkim/api.c, which needs the whole client. */
int scalr_email_dkim_verify(const char *msg, size_t len, scalr_email_dkim_lookup_fn lookup,
                            void *arg, scalr_email_dkim_result *res, size_t max)
{
    return se_dkim_verify(msg, len, lookup, arg, res, max);
}

static char *no_key(void *arg, const char *name)
{
    (void)arg;
    (void)name;
    return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *msg = (const char *)data;
    json_t *v = ib_dkim_check(msg, size);
    if (!v)
        FAIL("no verdict");
    const char *status = json_string_value(json_object_get(v, "status"));
    json_t *sigs = json_object_get(v, "signatures");
    if (!status || !json_is_array(sigs))
        FAIL("verdict without status or signatures");
    se_dkim_result res[8];
    int n = se_dkim_verify(msg, size, no_key, NULL, res, 8);
    size_t want = n < 0 ? 0 : (size_t)(n > 8 ? 8 : n);
    if (json_array_size(sigs) != want)
        FAIL("%zu entries for %d signatures", json_array_size(sigs), n);
    if (strcmp(status, json_array_size(sigs) ? "fail" : "none") && strcmp(status, "nokey"))
        FAIL("status %s with %zu signatures and no keys", status, json_array_size(sigs));
    if (!strcmp(status, "nokey") && !json_array_size(sigs))
        FAIL("nokey without signatures");
    size_t i;
    json_t *s;
    json_array_foreach(sigs, i, s)
    {
        if (!json_is_string(json_object_get(s, "domain")) ||
            !json_is_string(json_object_get(s, "selector")) ||
            !json_is_string(json_object_get(s, "algorithm")) ||
            !json_is_array(json_object_get(s, "warnings")))
            FAIL("signature %zu lacks a field", i);
        if (json_is_true(json_object_get(s, "ok")))
            FAIL("signature %zu verified without a key", i);
        const char *why = json_string_value(json_object_get(s, "why"));
        if (!why || !*why)
            FAIL("signature %zu fails without a reason", i);
    }
    json_decref(v);
    char *a = ib_dkim_check_text(msg, size), *b = ib_dkim_check_text(msg, size);
    if (!a || !b || strcmp(a, b))
        FAIL("not the same text twice");
    free(a);
    free(b);
    return 0;
}
