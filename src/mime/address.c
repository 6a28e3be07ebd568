/* Strict parsing of one address (see address.h).  The same result feeds the
 * header and the envelope, so what the caller validated is what SMTP sees.
 * Anything RFC 5322 allows but where parsers disagree (quoted local parts,
 * comments, groups, address literals) is refused rather than interpreted. */
#include "mime/address.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <idn2.h>

#include "mime/encode.h"

/* RFC 5321 4.5.3.1.1-3 and RFC 5321 errata: size limits in octets. */
#define LOCAL_MAX 64
#define DOMAIN_MAX 255
#define ADDR_MAX 254
#define LABEL_MAX 63

static int why_set(char *why, size_t whylen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int why_set(char *why, size_t whylen, const char *fmt, ...)
{
    if (why && whylen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, whylen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* RFC 5322 3.2.3: atext. */
static int is_atext(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return 1;
    return c && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

static int is_alnum(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static char *dup_range(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (!p)
        return NULL;
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

/* RFC 5322 3.4.1 addr-spec restricted to dot-atom@domain, plus RFC 6531
 * UTF-8 in both parts. */
static int check_addr_spec(const char *a, size_t n, char *why, size_t whylen)
{
    if (n == 0)
        return why_set(why, whylen, "empty address");
    if (memchr(a, '"', n))
        return why_set(why, whylen, "quoted local parts are not supported");
    if (memchr(a, '(', n) || memchr(a, ')', n))
        return why_set(why, whylen, "comments are not supported");
    if (memchr(a, ',', n))
        return why_set(why, whylen, "only one address is allowed");
    if (memchr(a, ':', n) || memchr(a, ';', n))
        return why_set(why, whylen, "groups are not supported");
    if (memchr(a, '<', n) || memchr(a, '>', n))
        return why_set(why, whylen, "unbalanced angle brackets");
    if (memchr(a, ' ', n))
        return why_set(why, whylen, "unexpected space in the address");
    /* msmtpd 1.8.19, PHPMailer CVE-2016-10033: never look like an option. */
    if (a[0] == '-')
        return why_set(why, whylen, "address starts with '-'");

    const char *at = memchr(a, '@', n);
    if (!at)
        return why_set(why, whylen, "missing '@'");
    if (memchr(at + 1, '@', n - (size_t)(at + 1 - a)))
        return why_set(why, whylen, "more than one '@'");
    size_t llen = (size_t)(at - a), dlen = n - llen - 1;
    if (llen == 0)
        return why_set(why, whylen, "empty local part");
    if (dlen == 0)
        return why_set(why, whylen, "empty domain");
    if (llen > LOCAL_MAX)
        return why_set(why, whylen, "local part longer than %d octets", LOCAL_MAX);
    if (dlen > DOMAIN_MAX)
        return why_set(why, whylen, "domain longer than %d octets", DOMAIN_MAX);
    if (n > ADDR_MAX)
        return why_set(why, whylen, "address longer than %d octets", ADDR_MAX);

    /* RFC 5322 3.2.3: dot-atom, dots neither leading, trailing nor double. */
    for (size_t i = 0; i < llen; i++) {
        unsigned char c = (unsigned char)a[i];
        if (c == '.') {
            if (i == 0 || i + 1 == llen || a[i + 1] == '.')
                return why_set(why, whylen, "misplaced '.' in the local part");
        } else if (!is_atext(c) && c < 0x80) {
            return why_set(why, whylen, "invalid character '%c' in the local part", c);
        }
    }

    const char *d = at + 1;
    if (d[0] == '[')
        return why_set(why, whylen, "address literals are not supported");
    /* RFC 1035 2.3.1 (LDH labels); non-ASCII labels are IDN U-labels. */
    size_t start = 0;
    for (size_t i = 0; i <= dlen; i++) {
        if (i < dlen && d[i] != '.')
            continue;
        size_t lab = i - start;
        const char *l = d + start;
        if (lab == 0)
            return why_set(why, whylen, "empty label in the domain");
        if (lab > LABEL_MAX)
            return why_set(why, whylen, "domain label longer than %d octets", LABEL_MAX);
        if (l[0] == '-' || l[lab - 1] == '-')
            return why_set(why, whylen, "domain label starts or ends with '-'");
        for (size_t k = 0; k < lab; k++) {
            unsigned char c = (unsigned char)l[k];
            if (!is_alnum(c) && c != '-' && c < 0x80)
                return why_set(why, whylen, "invalid character '%c' in the domain", c);
        }
        start = i + 1;
    }
    return 0;
}

static size_t trim_spaces(const char **s, size_t n)
{
    while (n && **s == ' ') {
        (*s)++;
        n--;
    }
    while (n && (*s)[n - 1] == ' ')
        n--;
    return n;
}

/* RFC 5322 3.2.4 quoted-string, without folding: returns the unescaped
 * content in *out; `q` points at the opening quote, *end receives the index
 * after the closing quote. */
static int parse_quoted(const char *q, size_t n, char **out, size_t *end, char *why, size_t whylen)
{
    char *dst = malloc(n + 1);
    if (!dst)
        return why_set(why, whylen, "out of memory");
    size_t o = 0, i = 1;
    for (; i < n; i++) {
        if (q[i] == '\\') {
            if (i + 1 >= n)
                break;
            dst[o++] = q[++i];
        } else if (q[i] == '"') {
            break;
        } else {
            dst[o++] = q[i];
        }
    }
    if (i >= n || q[i] != '"') {
        free(dst);
        return why_set(why, whylen, "unbalanced quotes in the display name");
    }
    dst[o] = '\0';
    *out = dst;
    *end = i + 1;
    return 0;
}

/* An unquoted display name: RFC 5322 3.2.5 phrase (atoms, and '.' as in
 * obs-phrase), non-ASCII allowed (RFC 6532).  Specials would change the
 * meaning ("a, b <c@d>" is two addresses), so they must be quoted. */
static int check_unquoted_display(const char *s, size_t n, char *why, size_t whylen)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == ',')
            return why_set(why, whylen,
                           "only one address is allowed "
                           "(quote a display name that contains a comma)");
        if (c == '"')
            return why_set(why, whylen, "unbalanced quotes in the display name");
        if (c == '(' || c == ')')
            return why_set(why, whylen, "comments are not supported");
        if (c == ':' || c == ';')
            return why_set(why, whylen, "groups are not supported");
        if (c == '@' || c == '[' || c == ']' || c == '\\')
            return why_set(why, whylen, "display name contains '%c': quote it", c);
    }
    return 0;
}

/* RFC 6531 3.2 / RFC 5890: an internationalized domain travels as A-labels
 * (xn--...), so only a non-ASCII local part needs SMTPUTF8.  libidn2 does
 * IDNA2008 with UTS #46 mapping. */
static int domain_to_alabels(char **addr, char *why, size_t whylen)
{
    char *at = strrchr(*addr, '@');
    if (!at || !se_address_needs_utf8(at + 1))
        return 0;
    char *ascii = NULL;
    int rc = idn2_to_ascii_8z(at + 1, &ascii, IDN2_NONTRANSITIONAL | IDN2_NFC_INPUT);
    if (rc != IDN2_OK)
        return why_set(why, whylen, "invalid internationalized domain: %s", idn2_strerror(rc));
    size_t ln = (size_t)(at - *addr), dn = strlen(ascii);
    if (dn > DOMAIN_MAX || ln + 1 + dn > ADDR_MAX) {
        idn2_free(ascii);
        return why_set(why, whylen, "address longer than %d octets once the domain is encoded",
                       ADDR_MAX);
    }
    char *out = malloc(ln + 1 + dn + 1);
    if (!out) {
        idn2_free(ascii);
        return why_set(why, whylen, "out of memory");
    }
    memcpy(out, *addr, ln + 1);
    memcpy(out + ln + 1, ascii, dn + 1);
    idn2_free(ascii);
    /* UTS #46 maps look-alikes (fullwidth ',' '@' '>', odd spaces) to ASCII
     * punctuation: the result must pass the same LDH check as any domain,
     * or "x@evil，victim＠bank" would become two addresses. */
    char inner[200] = "not ASCII";
    if (se_address_needs_utf8(out + ln + 1) ||
        check_addr_spec(out, ln + 1 + dn, inner, sizeof inner) < 0) {
        free(out);
        return why_set(why, whylen, "invalid internationalized domain (after IDNA mapping: %s)",
                       inner);
    }
    free(*addr);
    *addr = out;
    return 0;
}

int se_address_parse(const char *in, se_address *out, char *why, size_t whylen)
{
    *out = (se_address){0};
    if (why && whylen)
        why[0] = '\0';
    if (!in)
        return why_set(why, whylen, "empty address");
    size_t n = strlen(in);
    /* Header injection: refuse, never strip (field notes, CVE-2024-6923). */
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c == '\r' || c == '\n')
            return why_set(why, whylen, "contains CR or LF");
        if (c < 0x20 || c == 0x7f)
            return why_set(why, whylen, "contains a control character");
    }
    if (!se_utf8_valid(in, n))
        return why_set(why, whylen, "not valid UTF-8");
    const char *s = in;
    n = trim_spaces(&s, n);
    if (n == 0)
        return why_set(why, whylen, "empty address");

    char *display = NULL;
    const char *lt;
    if (s[0] == '"') {
        /* name-addr with a quoted display name: it may hold '<' or ','. */
        size_t end = 0;
        if (parse_quoted(s, n, &display, &end, why, whylen) < 0)
            return -1;
        while (end < n && s[end] == ' ')
            end++;
        if (end == n || s[end] != '<') {
            free(display);
            if (end == n)
                return why_set(why, whylen, "display name without an address");
            if (s[end] == '@')
                return why_set(why, whylen, "quoted local parts are not supported");
            return why_set(why, whylen, "text after the quoted display name");
        }
        if (!display[0]) {
            free(display);
            display = NULL;
        }
        lt = s + end;
    } else {
        lt = memchr(s, '<', n);
        if (!lt) {
            if (check_addr_spec(s, n, why, whylen) < 0)
                return -1;
            out->addr = dup_range(s, n);
            if (!out->addr)
                return why_set(why, whylen, "out of memory");
            if (domain_to_alabels(&out->addr, why, whylen) < 0) {
                se_address_free(out);
                return -1;
            }
            return 0;
        }
        /* name-addr: [display-name] "<" addr-spec ">" */
        const char *dstart = s;
        size_t dn = trim_spaces(&dstart, (size_t)(lt - s));
        if (dn) {
            if (check_unquoted_display(dstart, dn, why, whylen) < 0)
                return -1;
            display = dup_range(dstart, dn);
            if (!display)
                return why_set(why, whylen, "out of memory");
        }
    }

    const char *rest = lt + 1;
    size_t rn = n - (size_t)(rest - s);
    const char *gt = memchr(rest, '>', rn);
    if (!gt) {
        free(display);
        return why_set(why, whylen, "unbalanced angle brackets");
    }
    if (gt + 1 != s + n) {
        free(display);
        return why_set(why, whylen, "text after '>'");
    }
    size_t an = (size_t)(gt - rest);
    if (check_addr_spec(rest, an, why, whylen) < 0) {
        free(display);
        return -1;
    }
    out->addr = dup_range(rest, an);
    if (!out->addr) {
        free(display);
        return why_set(why, whylen, "out of memory");
    }
    out->display = display;
    if (domain_to_alabels(&out->addr, why, whylen) < 0) {
        se_address_free(out);
        return -1;
    }
    return 0;
}

void se_address_free(se_address *a)
{
    if (!a)
        return;
    free(a->display);
    free(a->addr);
    *a = (se_address){0};
}

int se_address_needs_utf8(const char *addr)
{
    for (const unsigned char *p = (const unsigned char *)addr; p && *p; p++)
        if (*p >= 0x80)
            return 1;
    return 0;
}

const char *se_address_domain(const char *addr)
{
    const char *at = strrchr(addr, '@');
    return at ? at + 1 : addr + strlen(addr);
}
