/* fence.c — see fence.h. */
#define _GNU_SOURCE
#include "sched/fence.h"

#include <errno.h>
#include <linux/membarrier.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

bool weft__fence_asym;

static long membarrier(int cmd)
{
    return syscall(SYS_membarrier, cmd, 0, 0);
}

void weft__fence_init(void)
{
    const char *off = getenv("WEFT_NO_MEMBARRIER");
    if (off && *off && *off != '0') {
        weft__fence_asym = false;
        return;
    }
    long cmds = membarrier(MEMBARRIER_CMD_QUERY);
    weft__fence_asym = cmds > 0 && (cmds & MEMBARRIER_CMD_PRIVATE_EXPEDITED) &&
                       membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) == 0;
}

void weft__fence_heavy(void)
{
    if (!weft__fence_asym)
        return;     /* no light side is plain then: nothing to pair with */
    /* Registered above, so the man page leaves it no way to fail; if it
     * did, the light sides would be unprotected: stop loudly. */
    while (membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) != 0) {
        if (errno != EINTR) {
            fprintf(stderr, "weft: membarrier failed after registration: %s\n",
                    strerror(errno));
            abort();
        }
    }
}
