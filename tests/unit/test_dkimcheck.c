/* The dev inbox's DKIM verdict (inbox/dkimcheck.c): the status from the
 * verifier's results, the record lines, and the warnings read from each
 * signature's h= (folded, spaced, any case). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../inbox/dkimcheck.h"
#include "harness.h"

static char *text(const char *msg)
{
    return ib_dkim_check_text(msg, strlen(msg));
}

TEST(dkimcheck_unsigned_is_none)
{
    char *t = text("From: a@b.example\r\nSubject: hi\r\n\r\nno signature here\r\n");
    CHECK_STR(t, "{\"status\":\"none\",\"signatures\":[]}");
    free(t);
    /* the word elsewhere runs the verifier, which finds no field */
    t = text("From: a@b.example\r\nSubject: dkim-signature\r\n\r\nhi\r\n");
    CHECK_STR(t, "{\"status\":\"none\",\"signatures\":[]}");
    free(t);
}

static const char SIGNED[] =
    "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=acme.example; s=one;\r\n"
    "\th = From :\r\n To:from; bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=; b=AAAA\r\n"
    "dkim-signature: v=1; a=ed25519-sha256; c=relaxed/relaxed; d=acme.example; s=two;\r\n"
    " h=from:to:cc:subject:date:message-id:mime-version:content-type:from;\r\n"
    " bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=; b=AAAA\r\n"
    "From: a@acme.example\r\nTo: b@x.example\r\nSubject: hi\r\nDate: Fri, 4 Dec 2026 08:00:00 "
    "+0000\r\n"
    "Message-ID: <1@acme.example>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n";

TEST(dkimcheck_reasons_and_warnings)
{
    json_t *v = ib_dkim_check(SIGNED, strlen(SIGNED));
    CHECK(v != NULL);
    if (!v)
        return;
    CHECK_STR(json_string_value(json_object_get(v, "status")), "nokey");
    json_t *sigs = json_object_get(v, "signatures");
    CHECK_INT(json_array_size(sigs), 2);
    json_t *a = json_array_get(sigs, 0), *b = json_array_get(sigs, 1);
    CHECK_STR(json_string_value(json_object_get(a, "selector")), "one");
    CHECK_STR(json_string_value(json_object_get(a, "why")),
              "no key record for one._domainkey.acme.example");
    CHECK(json_is_false(json_object_get(a, "ok")));
    /* h=From:To:from (folded, spaced, names in any case): From oversigned; the
     * other fields present are not signed */
    char *w = json_dumps(json_object_get(a, "warnings"), JSON_COMPACT);
    CHECK_STR(w, "[\"Subject is not signed: it could be changed after signing\","
                 "\"Date is not signed: it could be changed after signing\","
                 "\"Message-ID is not signed: it could be changed after signing\","
                 "\"MIME-Version is not signed: it could be changed after signing\","
                 "\"Content-Type is not signed: it could be changed after signing\"]");
    free(w);
    /* everything present signed, From oversigned: no warning */
    CHECK_INT(json_array_size(json_object_get(b, "warnings")), 0);
    CHECK_STR(json_string_value(json_object_get(b, "algorithm")), "ed25519-sha256");
    json_decref(v);

    /* one From named once: not oversigned */
    const char *once = "DKIM-Signature: v=1; a=rsa-sha256; d=d.example; s=s; h=from:subject;"
                       " bh=x; b=y\r\nFrom: a@d.example\r\nSubject: s\r\n\r\n";
    v = ib_dkim_check(once, strlen(once));
    w = json_dumps(json_object_get(json_array_get(json_object_get(v, "signatures"), 0), "warnings"),
                   JSON_COMPACT);
    CHECK(w && strstr(w, "From is not oversigned") != NULL);
    CHECK_STR(json_string_value(json_object_get(v, "status")), "fail"); /* bad bh= */
    free(w);
    json_decref(v);
}

TEST(dkimcheck_records_file)
{
    char path[] = "/tmp/se-dkimcheck-XXXXXX", why[256] = "";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    const char *lines = "; a comment\n"
                        "one._domainkey.acme.example. 3600 IN TXT \"v=DKIM1; k=rsa; \" \"p=\"\n";
    CHECK_INT((int)write(fd, lines, strlen(lines)), (int)strlen(lines));
    close(fd);
    int64_t g0 = ib_dkim_generation();
    CHECK(g0 != 0);
    CHECK_INT(ib_dkim_records(path, why, sizeof why), 0);
    CHECK(ib_dkim_configured());
    CHECK(ib_dkim_generation() != g0); /* other records: stored verdicts are stale */
    json_t *v = ib_dkim_check(SIGNED, strlen(SIGNED));
    /* the record is found (its p= is empty: revoked), so this one is a failure */
    CHECK_STR(json_string_value(
                  json_object_get(json_array_get(json_object_get(v, "signatures"), 0), "why")),
              "the key was revoked (empty p=)");
    CHECK_STR(json_string_value(json_object_get(v, "status")), "fail");
    json_decref(v);
    ib_dkim_free();
    CHECK_INT((int)ib_dkim_generation(), (int)g0);
    CHECK(!ib_dkim_configured());
    unlink(path);
    CHECK_INT(ib_dkim_records("/nonexistent/records.txt", why, sizeof why), -1);
    CHECK(strstr(why, "cannot read") != NULL);
}
