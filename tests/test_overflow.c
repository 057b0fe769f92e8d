/*
 * test_overflow.c — a task that runs off its stack hits the guard page and
 * is reported by name; an unrelated fault is left to the default action.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "weft.h"
#include "tests/helpers.h"

static volatile int g_limit = 1 << 30;   /* opaque to the compiler */

static int recurse(volatile char *prev, int depth)
{
    volatile char frame[1024];
    frame[0] = (char)depth;
    frame[1023] = prev ? prev[0] : 0;
    if (depth >= g_limit)
        return frame[0];
    return recurse(frame, depth + 1) + frame[5];
}

static void *overflow_task(void *arg)
{
    return (void *)(intptr_t)recurse(NULL, 0);
}

static void *overflow_main(void *arg)
{
    weft_task t;
    weft_task_opts o = { .name = "deep-recursion", .stack_size = 64 * 1024 };
    weft_task_spawn(&t, overflow_task, NULL, &o);
    weft_task_join(t, NULL, WEFT_NEVER);
    return NULL;
}

static void *null_deref_main(void *arg)
{
    volatile int *p = (int *)(uintptr_t)arg;
    return (void *)(intptr_t)*p;
}

/* Runs weft_run(main_fn) in a child; returns its wait status and stderr. */
static int run_child(void *(*main_fn)(void *), char *err, size_t len)
{
    int fd[2];
    cr_assert_eq(pipe(fd), 0);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fd[1], STDERR_FILENO);
        close(fd[0]);
        weft_config cfg = { .workers = 2 };
        weft_run(&cfg, main_fn, NULL, NULL);
        _exit(0);
    }
    close(fd[1]);
    size_t got = 0;
    ssize_t n;
    while (got + 1 < len && (n = read(fd[0], err + got, len - 1 - got)) > 0)
        got += (size_t)n;
    err[got] = 0;
    close(fd[0]);
    int st;
    waitpid(pid, &st, 0);
    return st;
}

Test(overflow, task_overflow_is_reported_by_name, .timeout = 60)
{
    if (TEST_SANITIZED)
        cr_skip_test("the sanitizers install their own fault handlers");
    char err[4096];
    int st = run_child(overflow_main, err, sizeof(err));
    cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT, "status %#x, stderr: %s", st, err);
    cr_assert(strstr(err, "stack overflow in task 'deep-recursion'"), "stderr: %s", err);
    cr_assert(strstr(err, "64 KiB"), "stderr: %s", err);
}

Test(overflow, other_faults_keep_default_action, .timeout = 60)
{
    if (TEST_SANITIZED)
        cr_skip_test("the sanitizers install their own fault handlers");
    char err[4096];
    int st = run_child(null_deref_main, err, sizeof(err));
    cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV, "status %#x, stderr: %s", st, err);
    cr_assert_null(strstr(err, "stack overflow"), "stderr: %s", err);
}
