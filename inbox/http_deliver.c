/* GET /api/scalr/messages/ID/deliverability: would this message, as sent,
 * fail DMARC at the receiver?  Computed on request from the stored bytes and
 * envelope, with no DNS: RFC 7489 3.1 relaxed alignment (organisational
 * domains equal) of the DKIM signatures' d= and of the envelope sender with
 * the From domain.  Signatures are not verified here. */
#include <jansson.h>
#include <microhttpd.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "doctor/doctor.h"
#include "http_int.h"
#include "mimeparse.h"

/* The domain of an address or "Name <a@b>" into out ("" when none). */
static void domain_of(const char *addr, char *out, size_t outlen)
{
    out[0] = 0;
    const char *at = addr ? strrchr(addr, '@') : NULL;
    if (!at)
        return;
    size_t n = strcspn(at + 1, "> \t\r\n,;");
    if (n && n < outlen) {
        memcpy(out, at + 1, n);
        out[n] = 0;
        if (out[n - 1] == '.')
            out[n - 1] = 0;
    }
}

static int aligned(const char *a, const char *b)
{
    return a[0] && b[0] && !strcasecmp(se_org_domain(a), se_org_domain(b));
}

/* Every DKIM-Signature field's d= and s=, with whether d= aligns. */
static json_t *signatures(const char *raw, size_t len, const char *from, int *any_aligned)
{
    size_t body;
    size_t hl = ib_http_header_block(raw, len, &body);
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < hl;) {
        const char *nl = memchr(raw + i, '\n', hl - i);
        size_t next = nl ? (size_t)(nl - raw) + 1 : hl;
        while (next < hl && (raw[next] == ' ' || raw[next] == '\t')) {
            nl = memchr(raw + next, '\n', hl - next);
            next = nl ? (size_t)(nl - raw) + 1 : hl;
        }
        size_t fl = next - i;
        if (fl > 15 && !strncasecmp(raw + i, "DKIM-Signature:", 15) && fl < SE_DNS_MAX_TEXT) {
            char v[SE_DNS_MAX_TEXT + 1];
            size_t o = 0;
            for (size_t k = i + 15; k < next; k++) /* unfold (RFC 5322 2.2.3) */
                if (raw[k] != '\r' && raw[k] != '\n')
                    v[o++] = raw[k];
            v[o] = 0;
            se_tags *t = malloc(sizeof *t);
            char why[200];
            if (t && se_tags_parse(v, t, why, sizeof why) == 0 && se_tags_get(t, "d")) {
                const char *d = se_tags_get(t, "d"), *s = se_tags_get(t, "s");
                int al = aligned(d, from);
                *any_aligned |= al;
                json_array_append_new(arr, json_pack("{s:s, s:s?, s:b}", "d", d, "s", s,
                                                     "aligned", al));
            }
            free(t);
        }
        i = next;
    }
    return arr;
}

enum MHD_Result ib_http_scalr_deliverability(ib_http *h, struct MHD_Connection *c, int64_t id)
{
    ib_http_loaded l;
    int rc = ib_http_load(h, id, &l);
    if (rc != 1)
        return ib_http_load_error(c, rc);
    char *from_h = ib_header_get(l.raw, l.len, "From");
    char from[256], env[256];
    domain_of(from_h, from, sizeof from);
    domain_of(l.m.mail_from, env, sizeof env);
    free(from_h);
    int dkim_ok = 0;
    json_t *sigs = signatures(l.raw, l.len, from, &dkim_ok);
    int spf_ok = aligned(env, from);
    const char *note;
    if (!from[0])
        note = "the From header has no domain: receivers cannot apply DMARC and may reject it";
    else if (dkim_ok)
        note = "a DKIM signature aligns with the From domain: DMARC passes if it verifies";
    else if (spf_ok)
        note = "no aligned DKIM signature; the envelope sender aligns, so DMARC rests on SPF "
               "passing for the sending server alone (forwarding breaks it)";
    else
        note = "would fail DMARC as sent: no DKIM signature aligned with the From domain and the "
               "envelope sender's domain does not align with it";
    json_t *o = json_pack("{s:I, s:s, s:s, s:o, s:b, s:b, s:b, s:s}", "id", (json_int_t)id,
                          "from_domain", from, "envelope_domain", env, "dkim", sigs,
                          "dkim_aligned", dkim_ok, "spf_aligned", spf_ok, "would_fail_dmarc",
                          !from[0] || (!dkim_ok && !spf_ok), "note", note);
    ib_http_unload(&l);
    return ib_http_send_json(c, 200, o);
}
