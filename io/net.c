/*
 * net.c — the networking helpers (weft.h "Networking"): addresses as
 * strings, listen, dial, name resolution on a helper thread, the accept
 * loop of a server.
 */
#define _GNU_SOURCE
#include "weft.h"
#include "alloc/mem.h"
#include "io/multishot.h"
#include "io/op.h"
#include "sched/spinlock.h"
#include "sched/task.h"
#include "sched/wait.h"
#include "sched/worker.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* ---- addresses ------------------------------------------------------------ */

struct parsed {
    bool unix_path;
    bool any;                  /* "" or "*" host: every address */
    char host[256];
    char port[32];
};

static int parse(const char *addr, struct parsed *p)
{
    memset(p, 0, sizeof(*p));
    if (!addr)
        return -EINVAL;
    if (!strncmp(addr, "unix:", 5)) {
        p->unix_path = true;
        if (strlen(addr + 5) >= sizeof(((struct sockaddr_un *)0)->sun_path) || !addr[5])
            return -EINVAL;
        snprintf(p->host, sizeof(p->host), "%s", addr + 5);
        return 0;
    }
    const char *colon;
    if (addr[0] == '[') {
        const char *end = strchr(addr, ']');
        if (!end || end[1] != ':' || (size_t)(end - addr - 1) >= sizeof(p->host))
            return -EINVAL;
        memcpy(p->host, addr + 1, (size_t)(end - addr - 1));
        colon = end + 1;
    } else {
        colon = strrchr(addr, ':');
        if (!colon || (size_t)(colon - addr) >= sizeof(p->host))
            return -EINVAL;
        memcpy(p->host, addr, (size_t)(colon - addr));
    }
    if (!colon[1] || strlen(colon + 1) >= sizeof(p->port))
        return -EINVAL;
    snprintf(p->port, sizeof(p->port), "%s", colon + 1);
    p->any = !p->host[0] || !strcmp(p->host, "*");
    return 0;
}

/* A numeric host and port, parsed in place (no lookup). */
static bool numeric(const struct parsed *p, struct sockaddr_storage *ss, socklen_t *len)
{
    char *end;
    long port = strtol(p->port, &end, 10);
    if (*end || port < 0 || port > 65535)
        return false;
    memset(ss, 0, sizeof(*ss));
    struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, p->host, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
        *len = sizeof(*a4);
        return true;
    }
    if (inet_pton(AF_INET6, p->host, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        *len = sizeof(*a6);
        return true;
    }
    return false;
}

static socklen_t addr_len(const struct sockaddr_storage *ss)
{
    return ss->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                     : sizeof(struct sockaddr_in);
}

/* ---- resolution on the blocking pool ---------------------------------------- */

/* Shared by the asking task and the pool's job; the last to let go frees
 * it, so a task that times out leaves the lookup to finish alone. */
struct lookup {
    _Atomic int refs;
    char host[256], port[32];
    int max, rc;
    struct sockaddr_storage out[16];
};

static int gai_errno(int e)
{
    switch (e) {
    case EAI_NONAME:
#ifdef EAI_NODATA
    case EAI_NODATA:
#endif
    case EAI_SERVICE:
        return -ENOENT;
    case EAI_MEMORY:
        return -ENOMEM;
    case EAI_AGAIN:
        return -EAGAIN;
    case EAI_SYSTEM:
        return errno ? -errno : -EIO;
    default:
        return -EIO;
    }
}

static int lookup_now(const char *host, const char *port, struct sockaddr_storage *out, int max)
{
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_ADDRCONFIG };
    struct addrinfo *res = NULL;
    int e = getaddrinfo(host, port, &hints, &res);
    if (e)
        return gai_errno(e);
    int n = 0;
    for (struct addrinfo *ai = res; ai && n < max; ai = ai->ai_next) {
        if (ai->ai_addrlen > sizeof(out[0]))
            continue;
        memset(&out[n], 0, sizeof(out[n]));
        memcpy(&out[n], ai->ai_addr, ai->ai_addrlen);
        n++;
    }
    freeaddrinfo(res);
    return n ? n : -ENOENT;
}

static void lookup_put(struct lookup *l)
{
    /* acq_rel: the last holder sees the other holder's writes before freeing. */
    if (atomic_fetch_sub_explicit(&l->refs, 1, memory_order_acq_rel) == 1)
        weft__mem_free(l, sizeof(*l));
}

/* The blocking pool's job: getaddrinfo, then drop the job's reference. */
static void *lookup_job(void *arg)
{
    struct lookup *l = arg;
    l->rc = lookup_now(l->host, l->port, l->out, l->max);
    lookup_put(l);
    return NULL;
}

int weft_net_resolve(const char *host, const char *port, struct sockaddr_storage *out,
                     int max, int64_t deadline)
{
    if (!host || !port || !out || max <= 0)
        return -EINVAL;
    struct parsed p = { 0 };
    snprintf(p.host, sizeof(p.host), "%s", host);
    snprintf(p.port, sizeof(p.port), "%s", port);
    socklen_t len;
    if (numeric(&p, &out[0], &len))
        return 1;
    if (!weft__task_current())
        return lookup_now(host, port, out, max);   /* a foreign thread blocks itself */
    if (weft_task_cancelled())
        return -ECANCELED;
    struct lookup *l = weft__mem_alloc(sizeof(*l));
    if (!l)
        return -ENOMEM;
    /* Two references, the job's and ours: a task that gives up (deadline,
     * cancellation) leaves the lookup to finish alone. relaxed: published
     * to the job by the pool's queue. */
    atomic_store_explicit(&l->refs, 2, memory_order_relaxed);
    snprintf(l->host, sizeof(l->host), "%s", host);
    snprintf(l->port, sizeof(l->port), "%s", port);
    l->max = max < 16 ? max : 16;
    weft_future *f;
    int rc = weft_blocking_spawn(&f, lookup_job, l);
    if (rc) {
        weft__mem_free(l, sizeof(*l));     /* the job never ran */
        return rc;
    }
    /* The future's completion releases the job's writes (l->rc, l->out). */
    rc = weft_future_await(f, NULL, deadline);
    weft_future_release(f);
    if (rc == 0) {
        rc = l->rc;
        for (int i = 0; i < rc; i++)
            out[i] = l->out[i];
    }
    lookup_put(l);
    return rc;
}

/* ---- listen and dial -------------------------------------------------------- */

static int set_int(int fd, int level, int opt, int v)
{
    return setsockopt(fd, level, opt, &v, sizeof(v)) < 0 ? -errno : 0;
}

int weft_net_nodelay(int fd, bool on)
{
    return set_int(fd, IPPROTO_TCP, TCP_NODELAY, on);
}

int weft_net_local_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
        return -errno;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return -EAFNOSUPPORT;
}

static int unix_addr(const char *path, struct sockaddr_un *un)
{
    memset(un, 0, sizeof(*un));
    un->sun_family = AF_UNIX;
    memcpy(un->sun_path, path, strnlen(path, sizeof(un->sun_path) - 1)); /* parse() checked */
    return (int)sizeof(*un);
}

static int listen_on(const struct sockaddr *sa, socklen_t len, int backlog, unsigned flags,
                     bool dual)
{
    int type = SOCK_STREAM | ((flags & WEFT_NET_NONBLOCK) ? SOCK_NONBLOCK : 0);
    int fd = weft_io_socket(sa->sa_family, type, 0);
    if (fd < 0)
        return fd;
    int rc = 0;
    if (sa->sa_family != AF_UNIX)
        rc = set_int(fd, SOL_SOCKET, SO_REUSEADDR, 1);
    if (!rc && (flags & WEFT_NET_REUSEPORT))
        rc = set_int(fd, SOL_SOCKET, SO_REUSEPORT, 1);
    if (!rc && sa->sa_family == AF_INET6)
        rc = set_int(fd, IPPROTO_IPV6, IPV6_V6ONLY, dual ? 0 : 1);
    if (!rc && bind(fd, sa, len) < 0)
        rc = -errno;
    if (!rc && listen(fd, backlog > 0 ? backlog : SOMAXCONN) < 0)
        rc = -errno;
    if (rc) {
        close(fd);
        return rc;
    }
    return fd;
}

int weft_net_listen(const char *addr, int backlog, unsigned flags)
{
    struct parsed p;
    int rc = parse(addr, &p);
    if (rc)
        return rc;
    if (p.unix_path) {
        struct sockaddr_un un;
        socklen_t len = (socklen_t)unix_addr(p.host, &un);
        /* A socket file left by an earlier run is replaced; anything else
         * at the path is not ours to remove: bind reports -EADDRINUSE. */
        struct stat st;
        if (lstat(p.host, &st) == 0 && S_ISSOCK(st.st_mode))
            unlink(p.host);
        return listen_on((struct sockaddr *)&un, len, backlog, flags, false);
    }
    struct sockaddr_storage ss[16];
    socklen_t len;
    if (p.any) {
        snprintf(p.host, sizeof(p.host), "::");
        if (!numeric(&p, &ss[0], &len))
            return -EINVAL;
        rc = listen_on((struct sockaddr *)&ss[0], len, backlog, flags, true);
        if (rc != -EAFNOSUPPORT)
            return rc;
        snprintf(p.host, sizeof(p.host), "0.0.0.0");   /* no IPv6 here */
        numeric(&p, &ss[0], &len);
        return listen_on((struct sockaddr *)&ss[0], len, backlog, flags, false);
    }
    int n = weft_net_resolve(p.host, p.port, ss, 16, WEFT_NEVER);
    if (n < 0)
        return n;
    rc = -EADDRNOTAVAIL;
    for (int i = 0; i < n; i++) {
        rc = listen_on((struct sockaddr *)&ss[i], addr_len(&ss[i]), backlog, flags, false);
        if (rc >= 0)
            return rc;
    }
    return rc;
}

static int dial_one(const struct sockaddr *sa, socklen_t len, unsigned flags, int64_t deadline)
{
    int fd = weft_io_socket(sa->sa_family, SOCK_STREAM, 0);
    if (fd < 0)
        return fd;
    int rc = weft_io_connect(fd, sa, len, deadline);
    if (!rc && (flags & WEFT_NET_NODELAY) && sa->sa_family != AF_UNIX)
        rc = weft_net_nodelay(fd, true);
    if (!rc && (flags & WEFT_NET_NONBLOCK)) {
        int fl = fcntl(fd, F_GETFL);
        if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
            rc = -errno;
    }
    if (rc) {
        close(fd);
        return rc;
    }
    return fd;
}

int weft_net_dial(const char *addr, unsigned flags, int64_t deadline)
{
    struct parsed p;
    int rc = parse(addr, &p);
    if (rc)
        return rc;
    if (p.unix_path) {
        struct sockaddr_un un;
        socklen_t len = (socklen_t)unix_addr(p.host, &un);
        return dial_one((struct sockaddr *)&un, len, flags, deadline);
    }
    if (p.any)
        snprintf(p.host, sizeof(p.host), "localhost");
    struct sockaddr_storage ss[16];
    int n = weft_net_resolve(p.host, p.port, ss, 16, deadline);
    if (n < 0)
        return n;
    rc = -ECONNREFUSED;
    for (int i = 0; i < n; i++) {
        rc = dial_one((struct sockaddr *)&ss[i], addr_len(&ss[i]), flags, deadline);
        if (rc >= 0 || rc == -ETIMEDOUT || rc == -ECANCELED)
            return rc;
    }
    return rc;
}

/* ---- the accept loop ----------------------------------------------------------- */

struct conn_start {
    weft_net_conn_fn fn;
    void *arg;
    int fd;
};

static void *conn_task(void *arg)
{
    struct conn_start cs = *(struct conn_start *)arg;
    weft__mem_free(arg, sizeof(cs));
    cs.fn(cs.fd, cs.arg);
    return NULL;
}

/* Errors after which accept can go on: the connection died in the queue,
 * or resources ran out for a moment (back off first). */
static bool accept_transient(int rc)
{
    return rc == -ECONNABORTED || rc == -EPROTO || rc == -EPERM || rc == -EINTR ||
           rc == -EAGAIN || rc == -ENETDOWN || rc == -ENOPROTOOPT || rc == -EHOSTDOWN ||
           rc == -ENONET || rc == -EHOSTUNREACH || rc == -EOPNOTSUPP || rc == -ENETUNREACH;
}

static bool accept_exhausted(int rc)
{
    return rc == -EMFILE || rc == -ENFILE || rc == -ENOBUFS || rc == -ENOMEM;
}

/* Start a connection's task; on failure the connection is closed. */
static int start_conn(int fd, weft_net_conn_fn fn, void *arg, const weft_task_opts *opts)
{
    struct conn_start *cs = weft__mem_alloc(sizeof(*cs));
    if (!cs) {
        close(fd);
        return -ENOMEM;
    }
    *cs = (struct conn_start){ .fn = fn, .arg = arg, .fd = fd };
    int rc = weft_task_spawn(NULL, conn_task, cs, opts);
    if (rc) {
        weft__mem_free(cs, sizeof(*cs));
        close(fd);
    }
    return rc;
}

/* Back off while out of fds: 1 ms, doubling to 100 ms. Returns 0 or the
 * sleep's error (-ECANCELED), or -ETIMEDOUT at the deadline. */
static int backoff(int64_t *delay, int64_t deadline)
{
    int64_t until = weft_deadline_in(*delay);
    if (until > deadline)
        until = deadline;
    int rc = weft_sleep_until(until);
    if (rc)
        return rc;
    if (weft_now() >= deadline)
        return -ETIMEDOUT;
    *delay = *delay * 2 > 100000000 ? 100000000 : *delay * 2;
    return 0;
}

static int serve_multishot(int lfd, weft_net_conn_fn fn, void *arg,
                           const weft_task_opts *opts, int64_t deadline);

int weft_net_serve(int lfd, weft_net_conn_fn fn, void *arg, const weft_task_opts *opts,
                   int64_t deadline)
{
    if (!fn)
        return -EINVAL;
    if (!weft__task_current())
        return -EPERM;
    int rc = serve_multishot(lfd, fn, arg, opts, deadline);
    if (rc != -EOPNOTSUPP)
        return rc;
    int64_t delay = 1000000;
    for (;;) {
        int fd = weft_io_accept(lfd, NULL, NULL, 0, deadline);
        if (fd >= 0) {
            delay = 1000000;
            start_conn(fd, fn, arg, opts);
            continue;
        }
        if (accept_transient(fd))
            continue;
        if (!accept_exhausted(fd))
            return fd;
        if ((rc = backoff(&delay, deadline)))
            return rc;
    }
}

/* ---- multishot accept ---------------------------------------------------------

One IORING_OP_ACCEPT with IORING_ACCEPT_MULTISHOT per listener, queued on
the ring of the worker the serve task runs on when it arms it. Its CQEs are
handled on that ring's owner thread (ms_complete): each accepted fd is put
on a list under a spinlock and the serve task is woken; the serve task
spawns the connection tasks (so they get its options, and its task-group
and cancellation context). The serve task is not pinned: the op belongs to
its ring, a cancellation reaches that ring through its cancel list (as
io/op.c does), and after the final CQE (no IORING_CQE_F_MORE) the next arm
uses whatever ring the task is on then. The struct lives on the serve
task's stack; the task returns only after the final CQE and after the
owner took any cancel request off its list. */

struct ms_accept {
    struct weft__multishot ms;        /* first; its lock guards what follows */
    struct conn_start *ready;         /* accepted, not yet spawned (LIFO) */
    bool final;                       /* a final CQE arrived, err is its result */
    int err;
    unsigned accepted;                /* CQEs with an fd, since the last arm */
};

#define MS_OF_OP(o) ((struct ms_accept *)(o))

/* Owner thread: a CQE of the multishot accept. */
static void ms_complete(struct weft__io_op *op, int res, unsigned flags)
{
    struct ms_accept *m = MS_OF_OP(op);
    struct conn_start *cs = NULL;
    if (res >= 0) {
        cs = weft__mem_alloc(sizeof(*cs));
        if (!cs) {
            close(res);
            res = -ENOMEM;      /* reported only if this is the final CQE */
        }
    }
    weft__spin_lock(&m->ms.lock);
    if (cs) {
        cs->fd = res;
        cs->arg = m->ready;     /* the list link until the task starts */
        m->ready = cs;
        m->accepted++;
    }
    if (!(flags & IORING_CQE_F_MORE)) {
        m->ms.armed = false;
        m->final = true;
        m->err = res < 0 ? res : 0;
    }
    weft__ms_wake_unlock(&m->ms);
}

/* Arm on the current worker's ring (task on its worker thread: the owner). */
static bool ms_arm(struct ms_accept *m, int lfd)
{
    struct weft__worker *me = weft__worker_current();
    if (!me || !me->ring.feat.multishot_accept)
        return false;
    struct io_uring_sqe *sqe = weft__ring_sqe(&me->ring);
    io_uring_prep_multishot_accept(sqe, lfd, NULL, NULL, SOCK_CLOEXEC);
    io_uring_sqe_set_data(sqe, &m->ms.op);
    weft__spin_lock(&m->ms.lock);
    m->final = false;
    m->err = 0;
    m->accepted = 0;
    weft__spin_unlock(&m->ms.lock);
    weft__ms_armed(&m->ms, &me->ring);
    return true;
}

/* Take the accepted fds and start their tasks. */
static void ms_spawn_ready(struct ms_accept *m, weft_net_conn_fn fn, void *arg,
                           const weft_task_opts *opts)
{
    weft__spin_lock(&m->ms.lock);
    struct conn_start *cs = m->ready;
    m->ready = NULL;
    weft__spin_unlock(&m->ms.lock);
    while (cs) {
        struct conn_start *next = cs->arg;
        *cs = (struct conn_start){ .fn = fn, .arg = arg, .fd = cs->fd };
        if (weft_task_spawn(NULL, conn_task, cs, opts)) {
            close(cs->fd);
            weft__mem_free(cs, sizeof(*cs));
        }
        cs = next;
    }
}

static bool ms_has_news(struct weft__multishot *ms)
{
    struct ms_accept *m = MS_OF_OP(ms);
    return m->ready || m->final;
}

/* End the armed op (if any) and wait for its final CQE and for the owner
 * to be done with the cancel request. Connections accepted meanwhile are
 * still started: the kernel took them off the backlog. */
static void ms_stop(struct ms_accept *m, weft_net_conn_fn fn, void *arg,
                    const weft_task_opts *opts)
{
    weft__ms_stop(&m->ms);
    ms_spawn_ready(m, fn, arg, opts);
}

/* Returns -EOPNOTSUPP when the kernel has no multishot accept (the caller
 * falls back to single shots), else as weft_net_serve. */
static int serve_multishot(int lfd, weft_net_conn_fn fn, void *arg,
                           const weft_task_opts *opts, int64_t deadline)
{
    struct ms_accept m;
    memset(&m, 0, sizeof(m));
    weft__ms_init(&m.ms, ms_complete, weft__ms_cancel_run);
    if (weft_task_cancelled())
        return -ECANCELED;
    if (!ms_arm(&m, lfd))
        return -EOPNOTSUPP;
    bool any = false;              /* accepted at least once */
    int64_t delay = 1000000;
    int rc;
    for (;;) {
        rc = weft__ms_wait(&m.ms, ms_has_news, deadline, 0);
        if (rc < 0)
            break;
        rc = 0;
        ms_spawn_ready(&m, fn, arg, opts);
        weft__spin_lock(&m.ms.lock);
        bool final = m.final;
        int err = m.err;
        if (m.accepted)
            any = true;
        if (final && m.accepted)
            delay = 1000000;
        weft__spin_unlock(&m.ms.lock);
        if (!final)
            continue;
        /* The op ended: re-arm (on the ring we are on now) after a
         * transient error, back off first when out of resources. */
        if (err == -EINVAL && !any)
            return -EOPNOTSUPP;    /* refused the flag: single shots */
        if (err && !accept_transient(err) && err != -ECANCELED) {
            if (!accept_exhausted(err)) {
                rc = err;
                break;
            }
            if ((rc = backoff(&delay, deadline)))
                break;
        }
        if (!ms_arm(&m, lfd)) {
            rc = -EOPNOTSUPP;      /* cannot happen: the feature is per kernel */
            break;
        }
    }
    ms_stop(&m, fn, arg, opts);
    return rc;
}
