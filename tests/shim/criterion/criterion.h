/*
 * A minimal stand-in for Criterion, used only by the TSan build.
 *
 * Criterion's sandbox (BoxFort) cannot start under ThreadSanitizer
 * (Snaipe/Criterion#274: "Could not initialize inheritable arena"), so the
 * TSan build compiles the same test files against this header instead. It
 * implements the subset the suite uses: Test() with .timeout/.init/.fini/
 * .disabled, the cr_assert* family (cr_expect* are fatal here too),
 * cr_skip_test and cr_log_*. Each test runs in a forked child with an
 * alarm for its timeout; the runner prints a Criterion-style synthesis.
 */
#ifndef WEFT_CRITERION_SHIM_H
#define WEFT_CRITERION_SHIM_H

#include <stdio.h>
#include <string.h>

struct shim_test {
    const char *suite, *name;
    void (*fn)(void);
    double timeout;
    void (*init)(void);
    void (*fini)(void);
    int disabled;
    const char *description;
    struct shim_test *next;
};

void shim_register(struct shim_test *t);
/* No format attribute: assertions without a message pass "" (an empty
 * format, which -Wformat-zero-length would reject). */
__attribute__((noreturn))
void shim_fail(const char *file, int line, const char *expr, const char *fmt, ...);
__attribute__((noreturn)) void shim_skip(const char *fmt, ...);

#define Test(s_, n_, ...)                                                        \
    static void s_##_##n_##_impl(void);                                          \
    static struct shim_test s_##_##n_##_desc = {                                 \
        .suite = #s_, .name = #n_, .fn = s_##_##n_##_impl, __VA_ARGS__           \
    };                                                                           \
    __attribute__((constructor)) static void s_##_##n_##_reg(void)              \
    {                                                                            \
        shim_register(&s_##_##n_##_desc);                                        \
    }                                                                            \
    static void s_##_##n_##_impl(void)

#define cr_assert(cond, ...)                                                     \
    do {                                                                         \
        if (!(cond))                                                             \
            shim_fail(__FILE__, __LINE__, #cond, "" __VA_ARGS__);                \
    } while (0)
#define cr_assert_fail(...) shim_fail(__FILE__, __LINE__, "fail", "" __VA_ARGS__)
#define cr_assert_not(c, ...) cr_assert(!(c), __VA_ARGS__)
#define cr_assert_eq(a, b, ...) cr_assert((a) == (b), __VA_ARGS__)
#define cr_assert_neq(a, b, ...) cr_assert((a) != (b), __VA_ARGS__)
#define cr_assert_lt(a, b, ...) cr_assert((a) < (b), __VA_ARGS__)
#define cr_assert_leq(a, b, ...) cr_assert((a) <= (b), __VA_ARGS__)
#define cr_assert_gt(a, b, ...) cr_assert((a) > (b), __VA_ARGS__)
#define cr_assert_geq(a, b, ...) cr_assert((a) >= (b), __VA_ARGS__)
#define cr_assert_null(a, ...) cr_assert((a) == NULL, __VA_ARGS__)
#define cr_assert_not_null(a, ...) cr_assert((a) != NULL, __VA_ARGS__)
#define cr_assert_str_eq(a, b, ...) cr_assert(strcmp((a), (b)) == 0, __VA_ARGS__)
#define cr_assert_str_neq(a, b, ...) cr_assert(strcmp((a), (b)) != 0, __VA_ARGS__)
#define cr_assert_arr_eq(a, b, n, ...) cr_assert(memcmp((a), (b), (n)) == 0, __VA_ARGS__)
#define cr_expect cr_assert
#define cr_expect_eq cr_assert_eq
#define cr_expect_neq cr_assert_neq
#define cr_skip_test(...) shim_skip("" __VA_ARGS__)
#define cr_log_info(...) (fprintf(stderr, "[LOG ] " __VA_ARGS__), fputc('\n', stderr))
#define cr_log_warn(...) (fprintf(stderr, "[WARN] " __VA_ARGS__), fputc('\n', stderr))
#define cr_log_error(...) (fprintf(stderr, "[ERR ] " __VA_ARGS__), fputc('\n', stderr))

#endif
