/* kp_tsan_c11.c: C11 <threads.h> on top of pthreads, for TSan builds only.
 *
 * librdkafka (Debian's 2.0.2) creates its threads with C11 thrd_create()
 * and locks with mtx_lock()/cnd_wait(). glibc implements those by calling
 * its internal __pthread_* functions directly, which ThreadSanitizer's
 * pthread interceptors never see, and gcc 12's libtsan has no C11 thread
 * interceptors. The result is that every librdkafka thread runs without a
 * TSan thread state (its first malloc crashes inside the TSan allocator)
 * and none of librdkafka's locking is visible to TSan.
 *
 * Linked into the executables of a KPAY_TSAN build only (CMakeLists.txt),
 * these definitions interpose glibc's: librdkafka's calls land here and go
 * on through the intercepted pthread functions. The types are glibc's,
 * which are layout-compatible with their pthread counterparts (asserted
 * below).
 *
 * The pthread_rwlock_* functions are here for a related reason:
 * tests/tsan.supp has TSan ignore the interceptors called from inside
 * librdkafka (called_from_lib), and that drops the synchronization of the
 * rwlocks librdkafka takes directly (rk_lock, rkt_lock) along with the
 * memory accesses. Calls that come through these forwarders reach TSan's
 * interceptors from this (instrumented) file, so they count again.
 */
#define _GNU_SOURCE /* RTLD_NEXT */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <threads.h>

_Static_assert(sizeof(thrd_t) == sizeof(pthread_t), "thrd_t");
_Static_assert(sizeof(mtx_t) == sizeof(pthread_mutex_t), "mtx_t");
_Static_assert(sizeof(cnd_t) == sizeof(pthread_cond_t), "cnd_t");
_Static_assert(sizeof(once_flag) == sizeof(pthread_once_t), "once_flag");

static int thrd_err(int err) {
        switch (err) {
        case 0:
                return thrd_success;
        case ENOMEM:
                return thrd_nomem;
        case ETIMEDOUT:
                return thrd_timedout;
        case EBUSY:
                return thrd_busy;
        default:
                return thrd_error;
        }
}

typedef struct c11_start_s {
        thrd_start_t func;
        void *arg;
} c11_start_t;

/* A C11 thread function returns int; pthread's returns void *. */
static void *c11_trampoline(void *p) {
        c11_start_t start = *(c11_start_t *)p;
        free(p);
        return (void *)(intptr_t)start.func(start.arg);
}

int thrd_create(thrd_t *thr, thrd_start_t func, void *arg) {
        /* Plain malloc: this is not kpay memory and must not count in
         * kp_mem's live allocations. */
        c11_start_t *start = malloc(sizeof(*start));
        if (!start)
                return thrd_nomem;
        start->func = func;
        start->arg  = arg;
        int r = pthread_create((pthread_t *)thr, NULL, c11_trampoline, start);
        if (r != 0)
                free(start);
        return thrd_err(r);
}

int thrd_join(thrd_t thr, int *res) {
        void *ret = NULL;
        int r     = pthread_join((pthread_t)thr, &ret);
        if (r == 0 && res)
                *res = (int)(intptr_t)ret;
        return thrd_err(r);
}

int thrd_detach(thrd_t thr) {
        return thrd_err(pthread_detach((pthread_t)thr));
}

int mtx_init(mtx_t *mtx, int type) {
        pthread_mutexattr_t attr;
        pthread_mutexattr_init(&attr);
        if (type & mtx_recursive)
                pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
        int r = pthread_mutex_init((pthread_mutex_t *)mtx, &attr);
        pthread_mutexattr_destroy(&attr);
        return thrd_err(r);
}

int mtx_lock(mtx_t *mtx) {
        return thrd_err(pthread_mutex_lock((pthread_mutex_t *)mtx));
}

int mtx_trylock(mtx_t *mtx) {
        return thrd_err(pthread_mutex_trylock((pthread_mutex_t *)mtx));
}

int mtx_timedlock(mtx_t *restrict mtx, const struct timespec *restrict ts) {
        return thrd_err(pthread_mutex_timedlock((pthread_mutex_t *)mtx, ts));
}

int mtx_unlock(mtx_t *mtx) {
        return thrd_err(pthread_mutex_unlock((pthread_mutex_t *)mtx));
}

void mtx_destroy(mtx_t *mtx) {
        pthread_mutex_destroy((pthread_mutex_t *)mtx);
}

int cnd_init(cnd_t *cond) {
        return thrd_err(pthread_cond_init((pthread_cond_t *)cond, NULL));
}

int cnd_signal(cnd_t *cond) {
        return thrd_err(pthread_cond_signal((pthread_cond_t *)cond));
}

int cnd_broadcast(cnd_t *cond) {
        return thrd_err(pthread_cond_broadcast((pthread_cond_t *)cond));
}

int cnd_wait(cnd_t *cond, mtx_t *mtx) {
        return thrd_err(
            pthread_cond_wait((pthread_cond_t *)cond, (pthread_mutex_t *)mtx));
}

int cnd_timedwait(cnd_t *restrict cond, mtx_t *restrict mtx,
                  const struct timespec *restrict ts) {
        return thrd_err(pthread_cond_timedwait((pthread_cond_t *)cond,
                                               (pthread_mutex_t *)mtx, ts));
}

void cnd_destroy(cnd_t *cond) {
        pthread_cond_destroy((pthread_cond_t *)cond);
}

void call_once(once_flag *flag, void (*func)(void)) {
        pthread_once((pthread_once_t *)flag, func);
}

/* The next definition (TSan's interceptor, which in turn calls glibc's) of
 * each rwlock function, looked up once. */
typedef int rwlock_fn_t(pthread_rwlock_t *);
typedef int rwlock_init_fn_t(pthread_rwlock_t *, const pthread_rwlockattr_t *);

static void *next_fn(_Atomic(void *) *cache, const char *name) {
        void *fn = atomic_load_explicit(cache, memory_order_acquire);
        if (!fn) {
                fn = dlsym(RTLD_NEXT, name);
                if (!fn)
                        abort();
                atomic_store_explicit(cache, fn, memory_order_release);
        }
        return fn;
}

#define KP_TSAN_RWLOCK_FORWARD(name)                                           \
        int name(pthread_rwlock_t *rw) {                                       \
                static _Atomic(void *) next;                                   \
                return ((rwlock_fn_t *)next_fn(&next, #name))(rw);             \
        }

KP_TSAN_RWLOCK_FORWARD(pthread_rwlock_rdlock)
KP_TSAN_RWLOCK_FORWARD(pthread_rwlock_wrlock)
KP_TSAN_RWLOCK_FORWARD(pthread_rwlock_tryrdlock)
KP_TSAN_RWLOCK_FORWARD(pthread_rwlock_trywrlock)
KP_TSAN_RWLOCK_FORWARD(pthread_rwlock_unlock)

/* librdkafka destroys a topic's rkt_lock when the topic's last reference
 * is dropped, an atomic decrement TSan cannot see, so TSan's destroy check
 * would report it against the last rdlock on a broker thread. glibc's
 * pthread_rwlock_destroy() does nothing but return 0, so for librdkafka's
 * calls only that check is skipped; TSan forgets the lock when its memory
 * is freed or initialized again. Every other caller (kp_proc's tasks_lock)
 * keeps the check. */
int pthread_rwlock_destroy(pthread_rwlock_t *rw) {
        static _Atomic(void *) next;
        Dl_info info;
        if (dladdr(__builtin_return_address(0), &info) && info.dli_fname &&
            strstr(info.dli_fname, "librdkafka"))
                return 0;
        return ((rwlock_fn_t *)next_fn(&next, "pthread_rwlock_destroy"))(rw);
}

int pthread_rwlock_init(pthread_rwlock_t *restrict rw,
                        const pthread_rwlockattr_t *restrict attr) {
        static _Atomic(void *) next;
        return ((rwlock_init_fn_t *)next_fn(&next, "pthread_rwlock_init"))(
            rw, attr);
}
