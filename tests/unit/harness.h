/* A tiny unit-test harness: TEST() registers, CHECK* record and go on.
 * The runner (tests/unit/main.c) prints one line per test and ends with
 * "unit: N passed, N failed". */
#ifndef SE_HARNESS_H
#define SE_HARNESS_H

#include <stddef.h>
#include <string.h>

void th_register(const char *name, void (*fn)(void));
void th_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void th_check_mem(const char *file, int line, const char *what, const void *got, size_t got_len,
                  const void *want, size_t want_len);

#define TEST(name)                                                                                 \
    static void name(void);                                                                        \
    __attribute__((constructor)) static void th_reg_##name(void)                                   \
    {                                                                                              \
        th_register(#name, name);                                                                  \
    }                                                                                              \
    static void name(void)

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            th_fail(__FILE__, __LINE__, "CHECK(%s)", #cond);                                       \
    } while (0)

#define CHECK_INT(got, want)                                                                       \
    do {                                                                                           \
        long long g_ = (long long)(got), w_ = (long long)(want);                                   \
        if (g_ != w_)                                                                              \
            th_fail(__FILE__, __LINE__, "%s == %lld, want %lld", #got, g_, w_);                    \
    } while (0)

#define CHECK_STR(got, want)                                                                       \
    do {                                                                                           \
        const char *g_ = (got), *w_ = (want);                                                      \
        th_check_mem(__FILE__, __LINE__, #got, g_, g_ ? strlen(g_) : 0, w_, w_ ? strlen(w_) : 0);  \
    } while (0)

#define CHECK_MEM(got, got_len, want)                                                              \
    th_check_mem(__FILE__, __LINE__, #got, (got), (got_len), (want), strlen(want))

#endif
