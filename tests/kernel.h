/*
 * kernel.h — what the running kernel's io_uring offers, for tests that
 * skip (with a message, as liburing's tests do) where a feature is missing.
 */
#ifndef WEFT_TESTS_KERNEL_H
#define WEFT_TESTS_KERNEL_H

#include <liburing.h>
#include <stdbool.h>

/* Whether the kernel's io_uring knows opcode @op (false if io_uring itself
 * is unavailable). */
static inline bool test_kernel_has_op(int op)
{
    struct io_uring ring;
    if (io_uring_queue_init(2, &ring, 0) != 0)
        return false;
    struct io_uring_probe *p = io_uring_get_probe_ring(&ring);
    bool has = p && io_uring_opcode_supported(p, op);
    if (p)
        io_uring_free_probe(p);
    io_uring_queue_exit(&ring);
    return has;
}

/* weft infers multishot accept from IORING_OP_SOCKET (5.19) and multishot
 * recv with buffer rings from IORING_OP_SEND_ZC (6.0): io/ring.c. */
static inline bool test_kernel_has_multishot_accept(void)
{
    return test_kernel_has_op(IORING_OP_SOCKET);
}

static inline bool test_kernel_has_multishot_recv(void)
{
    return test_kernel_has_op(IORING_OP_SEND_ZC);
}

#endif
