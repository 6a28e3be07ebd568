/* Unit-test runner.  Usage: unit-tests [substring-filter] */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define MAX_TESTS 1024

static struct {
    const char *name;
    void (*fn)(void);
} tests[MAX_TESTS];
static int n_tests;
static int cur_failed;

void th_register(const char *name, void (*fn)(void))
{
    if (n_tests == MAX_TESTS) {
        fprintf(stderr, "too many tests\n");
        exit(2);
    }
    tests[n_tests].name = name;
    tests[n_tests].fn = fn;
    n_tests++;
}

void th_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "    %s:%d: ", file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    cur_failed++;
}

static void dump(const char *label, const unsigned char *p, size_t n)
{
    fprintf(stderr, "      %s (%zu bytes): \"", label, n);
    for (size_t i = 0; i < n && i < 4000; i++) {
        if (p[i] == '\r')
            fputs("\\r", stderr);
        else if (p[i] == '\n')
            fputs("\\n", stderr);
        else if (p[i] < 0x20 || p[i] >= 0x7f)
            fprintf(stderr, "\\x%02x", p[i]);
        else
            fputc(p[i], stderr);
    }
    fputs(n > 4000 ? "\"...\n" : "\"\n", stderr);
}

void th_check_mem(const char *file, int line, const char *what, const void *got, size_t got_len,
                  const void *want, size_t want_len)
{
    if (got && want && got_len == want_len && memcmp(got, want, got_len) == 0)
        return;
    if (!got && !want)
        return;
    th_fail(file, line, "%s differs", what);
    size_t i = 0;
    if (got && want)
        while (i < got_len && i < want_len && ((const char *)got)[i] == ((const char *)want)[i])
            i++;
    fprintf(stderr, "      first difference at byte %zu\n", i);
    dump("got ", got ? got : (const void *)"(null)", got ? got_len : 6);
    dump("want", want ? want : (const void *)"(null)", want ? want_len : 6);
}

int main(int argc, char **argv)
{
    const char *filter = argc > 1 ? argv[1] : NULL;
    int passed = 0, failed = 0;
    for (int i = 0; i < n_tests; i++) {
        if (filter && !strstr(tests[i].name, filter))
            continue;
        cur_failed = 0;
        tests[i].fn();
        if (cur_failed) {
            failed++;
            printf("FAIL %s\n", tests[i].name);
        } else {
            passed++;
            printf("ok   %s\n", tests[i].name);
        }
        fflush(stdout);
    }
    /* TH_SUITE names the summary line when a subset runs as its own suite. */
    const char *suite = getenv("TH_SUITE");
    printf("%s: %d passed, %d failed\n", suite && *suite ? suite : "unit", passed, failed);
    return failed ? 1 : 0;
}
