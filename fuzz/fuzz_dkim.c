/* libFuzzer target: DKIM verification (src/dkim/verify.c) and the body
 * canonicalizer (src/dkim/canon.c) on hostile messages.
 *
 * Checks, besides memory safety:
 *   - se_dkim_verify returns the number of DKIM-Signature fields (>= 0) and
 *     never says "ok" for a message nobody signed with the looked-up keys
 *     (the records are fixed, their private keys unknown here);
 *   - the body hash does not depend on how the body is split into pieces. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dkim/dkim.h"

#define FAIL(...)                                                                                  \
    do {                                                                                           \
        fprintf(stderr, "fuzz_dkim: " __VA_ARGS__);                                                \
        fputc('\n', stderr);                                                                       \
        abort();                                                                                   \
    } while (0)

static char *lookup(void *arg, const char *name)
{
    (void)arg;
    /* An Ed25519 record and an RSA-less one: keys nobody has the secret of. */
    if (strncmp(name, "rsa.", 4) == 0)
        return strdup("v=DKIM1; k=rsa; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA");
    return strdup("v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *msg = (const char *)data;
    se_dkim_result res[4];
    int n = se_dkim_verify(msg, size, lookup, NULL, res, 4);
    if (n < -1)
        FAIL("verify returned %d", n);
    for (int i = 0; i < n && i < 4; i++)
        if (res[i].ok)
            FAIL("signature %d verified without a known key", i);

    for (int relaxed = 0; relaxed < 2; relaxed++) {
        unsigned char whole[32], split[32];
        se_dkim_body b;
        if (se_dkim_body_init(&b, relaxed) < 0)
            return 0;
        se_dkim_body_update(&b, msg, size);
        se_dkim_body_final(&b, whole);
        if (se_dkim_body_init(&b, relaxed) < 0)
            return 0;
        size_t step = size ? (size_t)data[0] % 7 + 1 : 1;
        for (size_t i = 0; i < size; i += step)
            se_dkim_body_update(&b, msg + i, size - i < step ? size - i : step);
        se_dkim_body_final(&b, split);
        if (memcmp(whole, split, 32))
            FAIL("body hash depends on the split (relaxed %d, step %zu)", relaxed, step);
    }
    return 0;
}
