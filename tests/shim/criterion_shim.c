/* The runner behind criterion/criterion.h's stand-in (TSan builds only). */
#define _GNU_SOURCE
#include "criterion/criterion.h"

#include <fnmatch.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#define SHIM_SKIP_CODE 77

static struct shim_test *head, **tail = &head;

void shim_register(struct shim_test *t)
{
    *tail = t;
    tail = &t->next;
}

void shim_fail(const char *file, int line, const char *expr, const char *fmt, ...)
{
    fprintf(stderr, "[----] %s:%d: Assertion Failed\n[----]   %s\n", file, line, expr);
    if (fmt && *fmt) {
        va_list ap;
        va_start(ap, fmt);
        fputs("[----]   ", stderr);
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
        va_end(ap);
    }
    fflush(stderr);
    _exit(1);
}

void shim_skip(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("[SKIP] ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    fflush(stderr);
    _exit(SHIM_SKIP_CODE);
}

int main(int argc, char **argv)
{
    const char *filter = NULL;
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--filter") && i + 1 < argc)
            filter = argv[++i];
    unsigned tested = 0, passed = 0, failed = 0, crashed = 0;
    for (struct shim_test *t = head; t; t = t->next) {
        char full[256];
        snprintf(full, sizeof(full), "%s/%s", t->suite, t->name);
        if (t->disabled || (filter && fnmatch(filter, full, 0) != 0))
            continue;
        tested++;
        fflush(NULL);
        pid_t pid = fork();
        if (pid == 0) {
            if (t->timeout > 0)
                alarm((unsigned)(t->timeout + 0.999));
            if (t->init)
                t->init();
            t->fn();
            if (t->fini)
                t->fini();
            fflush(NULL);
            _exit(0);
        }
        int st = 0;
        waitpid(pid, &st, 0);
        if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
            passed++;
            fprintf(stderr, "[PASS] %s::%s\n", t->suite, t->name);
        } else if (WIFEXITED(st) && WEXITSTATUS(st) == SHIM_SKIP_CODE) {
            tested--;
            fprintf(stderr, "[SKIP] %s::%s\n", t->suite, t->name);
        } else if (WIFSIGNALED(st) && WTERMSIG(st) == SIGALRM) {
            failed++;
            fprintf(stderr, "[FAIL] %s::%s: Timed out. (%.0fs)\n", t->suite, t->name, t->timeout);
        } else if (WIFSIGNALED(st)) {
            crashed++;
            fprintf(stderr, "[FAIL] %s::%s: CRASH (signal %d)\n", t->suite, t->name, WTERMSIG(st));
        } else {
            failed++;
            fprintf(stderr, "[FAIL] %s::%s\n", t->suite, t->name);
        }
    }
    fprintf(stderr, "[====] Synthesis: Tested: %u | Passing: %u | Failing: %u | Crashing: %u \n",
            tested, passed, failed, crashed);
    return failed || crashed ? 1 : 0;
}
