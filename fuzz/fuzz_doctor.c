/* libFuzzer target: the doctor's record parsers and checks (src/doctor/).
 *
 * The input is one TXT record text.  Checks, besides memory safety:
 *   - se_spf_parse: on success every term is a known mechanism with a known
 *     qualifier, the lookup count is at most the terms + 1 (redirect);
 *   - se_tags_parse: on success no tag name repeats;
 *   - se_doctor_run with a zone where every TXT query answers the input (so
 *     include:, redirect= and DKIM/DMARC all see it, loops included) ends,
 *     and every finding has a why and, with a fix, a name, type and value. */
#include <arpa/nameser.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "doctor/doctor.h"

#define FAIL(...)                                                                                  \
    do {                                                                                           \
        fprintf(stderr, "fuzz_doctor: " __VA_ARGS__);                                              \
        fputc('\n', stderr);                                                                       \
        abort();                                                                                   \
    } while (0)

static const char *record;

static se_dns_status answer(void *arg, const char *name, int type, se_dns_answer *out, char *why,
                            size_t whylen)
{
    (void)arg;
    (void)name;
    (void)why;
    (void)whylen;
    memset(out, 0, sizeof *out);
    out->rec[0] = strdup(type == ns_t_mx ? "mx.example" : record);
    out->pref[0] = 10;
    out->n = out->rec[0] != NULL;
    return out->n ? SE_DNS_FOUND : SE_DNS_NONE;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > SE_DNS_MAX_TEXT)
        return 0;
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = 0;
    for (size_t i = 0; i < size; i++)
        if (!text[i])
            text[i] = ' '; /* as dns.c stores it */

    char why[300];
    se_spf *spf = malloc(sizeof *spf);
    if (spf && se_spf_parse(text, spf, why, sizeof why) == 0) {
        for (size_t i = 0; i < spf->n; i++) {
            static const char *const known[] = {"all", "include", "a", "mx", "ptr",
                                                "ip4", "ip6", "exists"};
            int ok = 0;
            for (size_t k = 0; k < sizeof known / sizeof known[0]; k++)
                ok |= !strcmp(spf->t[i].mech, known[k]);
            if (!ok || !strchr("+-~?", spf->t[i].qual))
                FAIL("term %zu: '%c%s'", i, spf->t[i].qual, spf->t[i].mech);
        }
        if (se_spf_lookups(spf) > (int)spf->n + 1)
            FAIL("%d lookups from %zu terms", se_spf_lookups(spf), spf->n);
    }
    free(spf);

    se_tags *t = malloc(sizeof *t);
    if (t && se_tags_parse(text, t, why, sizeof why) == 0)
        for (size_t i = 0; i < t->n; i++)
            for (size_t k = i + 1; k < t->n; k++)
                if (!strcmp(t->name[i], t->name[k]))
                    FAIL("tag '%s' twice", t->name[i]);
    free(t);

    record = text;
    se_finding f[SE_DOCTOR_CHECKS];
    se_doctor_opts o = {.domain = "fuzz.example",
                        .smtp_host = "smtp.sendgrid.net",
                        .dkim_selector = "s1",
                        .dkim_pubkey = "AAAA",
                        .dkim_keytype = "rsa",
                        .lookup = answer};
    if (se_doctor_run(&o, f, why, sizeof why) == 0)
        for (int i = 0; i < SE_DOCTOR_CHECKS; i++) {
            if (!f[i].why[0])
                FAIL("%s: no why", f[i].name);
            if (f[i].has_fix && (!f[i].fix_name[0] || !f[i].fix_type[0] || !f[i].fix_value[0]))
                FAIL("%s: an incomplete fix", f[i].name);
        }
    free(text);
    return 0;
}
