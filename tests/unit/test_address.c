/* The address parser: accepted forms, and each refusal with its reason. */
#include <string.h>

#include "harness.h"
#include "mime/address.h"

static void accepts(const char *in, const char *display, const char *addr)
{
    se_address a;
    char why[160];
    int rc = se_address_parse(in, &a, why, sizeof why);
    CHECK_INT(rc, 0);
    if (rc != 0) {
        CHECK_STR(why, "");
        return;
    }
    CHECK_STR(a.display, display);
    CHECK_STR(a.addr, addr);
    se_address_free(&a);
}

static void refuses(const char *in, const char *reason)
{
    se_address a;
    char why[160];
    CHECK_INT(se_address_parse(in, &a, why, sizeof why), -1);
    CHECK_STR(why, reason);
    CHECK(a.addr == NULL && a.display == NULL);
}

TEST(addr_accepts_forms)
{
    accepts("user@example.com", NULL, "user@example.com");
    accepts("<user@example.com>", NULL, "user@example.com");
    accepts("Name <user@example.com>", "Name", "user@example.com");
    accepts("  Name   <user@example.com>  ", "Name", "user@example.com");
    accepts("Jane Q. Public <jane@example.com>", "Jane Q. Public", "jane@example.com");
    accepts("\"Last, First\" <user@example.com>", "Last, First", "user@example.com");
    accepts("\"say \\\"hi\\\" \\\\o/\" <a@example.com>", "say \"hi\" \\o/", "a@example.com");
    accepts("\"<not@this>\" <a@example.com>", "<not@this>", "a@example.com");
    accepts("\"\" <a@example.com>", NULL, "a@example.com");
    accepts("Zo\xc3\xab \xc3\x9cn\xc3\xaf"
            "code <zoe@example.com>",
            "Zo\xc3\xab \xc3\x9cn\xc3\xaf"
            "code",
            "zoe@example.com");
    accepts("\xe5\x90\x8d\xe5\x89\x8d <x@example.com>", "\xe5\x90\x8d\xe5\x89\x8d",
            "x@example.com");
    accepts("first.last+tag@sub.example-domain.com", NULL, "first.last+tag@sub.example-domain.com");
    accepts("!#$%&'*+-/=?^_`{|}~@example.com", NULL, "!#$%&'*+-/=?^_`{|}~@example.com");
    accepts("root@localhost", NULL, "root@localhost");
    /* RFC 6531: UTF-8 local part and IDN domain. */
    /* RFC 6531: the local part stays UTF-8, the domain becomes A-labels. */
    accepts("\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.\xe5\xb9\xbf\xe5\x91\x8a", NULL,
            "\xe7\x94\xa8\xe6\x88\xb7@xn--fsqu00a.xn--4rr70v");
}

TEST(addr_refuses_injection)
{
    refuses("user@example.com\r\nBcc: x@evil.com", "contains CR or LF");
    refuses("Name\n <user@example.com>", "contains CR or LF");
    refuses("user@exa\rmple.com", "contains CR or LF");
    refuses("Na\tme <user@example.com>", "contains a control character");
    refuses("Na\x7fme <user@example.com>", "contains a control character");
    refuses("\x1b[31m <user@example.com>", "contains a control character");
    refuses("Bad \xc3 <user@example.com>", "not valid UTF-8");
}

TEST(addr_refuses_syntax)
{
    refuses("", "empty address");
    refuses("   ", "empty address");
    refuses(NULL, "empty address");
    refuses("\"john doe\"@example.com", "quoted local parts are not supported");
    refuses("\"a@b x\"@example.com", "quoted local parts are not supported");
    refuses("user@example.com (Comment)", "comments are not supported");
    refuses("user @example.com", "unexpected space in the address");
    refuses("user(comment)@example.com", "comments are not supported");
    refuses("Name (c) <user@example.com>", "comments are not supported");
    refuses("group: a@example.com;", "groups are not supported");
    refuses("a@example.com, b@example.com", "only one address is allowed");
    refuses("Last, First <user@example.com>",
            "only one address is allowed (quote a display name that contains a comma)");
    refuses("a@example.com <b@example.com>", "display name contains '@': quote it");
    refuses("\"Unbalanced <user@example.com>", "unbalanced quotes in the display name");
    refuses("Unbal\"anced <user@example.com>", "unbalanced quotes in the display name");
    refuses("Name <user@example.com", "unbalanced angle brackets");
    refuses("Name user@example.com>", "unbalanced angle brackets");
    refuses("Name <user@example.com> trailing", "text after '>'");
    refuses("Name <a@example.com> <b@example.com>", "text after '>'");
    refuses("\"Name\" trailing <user@example.com>", "text after the quoted display name");
    refuses("\"Name only\"", "display name without an address");
    refuses("Name <>", "empty address");
    refuses("userexample.com", "missing '@'");
    refuses("a@b@example.com", "more than one '@'");
    refuses("@example.com", "empty local part");
    refuses("user@", "empty domain");
    refuses("-oQ/tmp/x@example.com", "address starts with '-'");
    refuses("Name <-f@example.com>", "address starts with '-'");
    refuses(".user@example.com", "misplaced '.' in the local part");
    refuses("user.@example.com", "misplaced '.' in the local part");
    refuses("us..er@example.com", "misplaced '.' in the local part");
    refuses("us\\er@example.com", "invalid character '\\' in the local part");
    refuses("user@[192.0.2.1]", "address literals are not supported");
    refuses("user@example..com", "empty label in the domain");
    refuses("user@example.com.", "empty label in the domain");
    refuses("user@-example.com", "domain label starts or ends with '-'");
    refuses("user@example-.com", "domain label starts or ends with '-'");
    refuses("user@exa_mple.com", "invalid character '_' in the domain");
}

TEST(addr_length_limits)
{
    char buf[400];
    /* RFC 5321 4.5.3.1.1: local part <= 64 octets. */
    memset(buf, 'l', 64);
    strcpy(buf + 64, "@example.com");
    accepts(buf, NULL, buf);
    memset(buf, 'l', 65);
    strcpy(buf + 65, "@example.com");
    refuses(buf, "local part longer than 64 octets");
    /* Labels <= 63 octets. */
    strcpy(buf, "u@");
    memset(buf + 2, 'd', 63);
    strcpy(buf + 65, ".com");
    accepts(buf, NULL, buf);
    strcpy(buf, "u@");
    memset(buf + 2, 'd', 64);
    strcpy(buf + 66, ".com");
    refuses(buf, "domain label longer than 63 octets");
    /* Whole address <= 254 octets (RFC 5321 4.5.3.1.3 with its erratum):
     * 64 + '@' + 62 '.' 62 '.' 63 = 254. */
    memset(buf, 'l', 64);
    strcpy(buf + 64, "@");
    memset(buf + 65, 'd', 62);
    buf[127] = '.';
    memset(buf + 128, 'd', 62);
    buf[190] = '.';
    memset(buf + 191, 'd', 63);
    buf[254] = '\0';
    accepts(buf, NULL, buf);
    memmove(buf + 66, buf + 65, 190); /* first label 63 octets: 255 in all */
    buf[65] = 'd';
    CHECK_INT(strlen(buf), 255);
    refuses(buf, "address longer than 254 octets");
    /* Domain <= 255 octets. */
    strcpy(buf, "u@");
    size_t n = 2;
    for (int i = 0; i < 5; i++) {
        memset(buf + n, 'd', 51);
        n += 51;
        buf[n++] = '.';
    }
    strcpy(buf + n, "com");
    refuses(buf, "domain longer than 255 octets");
}

TEST(addr_helpers)
{
    CHECK_INT(se_address_needs_utf8("user@example.com"), 0);
    CHECK_INT(se_address_needs_utf8("\xe7\x94\xa8@example.com"), 1);
    CHECK_INT(se_address_needs_utf8("user@\xe4\xbe\x8b.com"), 1);
    CHECK_STR(se_address_domain("user@example.com"), "example.com");
    CHECK_STR(se_address_domain("nodomain"), "");
    se_address_free(NULL);
}

/* An IDN domain needs no SMTPUTF8: it is sent as A-labels (RFC 5890). */
TEST(addr_idn_domain_to_alabels)
{
    accepts("user@b\xc3\xbc"
            "cher.example",
            NULL, "user@xn--bcher-kva.example");
    accepts("Z <user@B\xc3\x9c"
            "CHER.example>",
            "Z", "user@xn--bcher-kva.example");
    se_address a;
    char why[160];
    CHECK_INT(se_address_parse("user@b\xc3\xbc"
                               "cher.example",
                               &a, why, sizeof why),
              0);
    CHECK_INT(se_address_needs_utf8(a.addr), 0);
    se_address_free(&a);
    refuses("user@xn--a.example\xc3\xbc", "invalid internationalized domain: domain label has "
                                          "character forbidden in non-transitional mode (TR46)");
}

/* Found by fuzz_address: UTS #46 maps fullwidth punctuation to ASCII, which
 * must not turn one address into two (or a header into something else). */
TEST(addr_idn_mapping_cannot_inject_punctuation)
{
    refuses("x@evil\xef\xbc\x8cvictim\xef\xbc\xa0"
            "bank.example",
            "invalid internationalized domain (after IDNA mapping: only one address is allowed)");
    refuses("x@evil\xef\xbc\x9e SIZE\xef\xbc\x9d"
            "1",
            "unexpected space in the address");
    refuses("j@\xef\xbc\x88",
            "invalid internationalized domain (after IDNA mapping: comments are not supported)");
    refuses("a@b\xe3\x80\x82", "invalid internationalized domain (after IDNA mapping: empty "
                               "label in the domain)");
}
