/* kp_expiry.c: bounded retention through a time-ordered expiry index
 * (kp_expiry.h). */
#include "kpay/kp_expiry.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "kpay/kp_log.h"

size_t kp_expiry_key(char *buf, size_t size, const char *prefix, int64_t ms,
                     const char *id) {
        if (ms < 0)
                return 0;
        int n = snprintf(buf, size, "%s%016" PRIx64 ":%s", prefix, (uint64_t)ms,
                         id);
        if (n < 0 || (size_t)n >= size)
                return 0;
        return (size_t)n;
}

int kp_expiry_key_parse(const void *key, size_t klen, const char *prefix,
                        int64_t *msp, const char **idp, size_t *idlenp) {
        const char *k = key;
        size_t pl     = strlen(prefix);
        uint64_t ms   = 0;

        if (klen < pl || memcmp(k, prefix, pl))
                return 0;
        if (klen < pl + 16 + 1 || k[pl + 16] != ':')
                return -1;
        for (size_t i = pl; i < pl + 16; i++) {
                int d;
                if (k[i] >= '0' && k[i] <= '9')
                        d = k[i] - '0';
                else if (k[i] >= 'a' && k[i] <= 'f')
                        d = k[i] - 'a' + 10;
                else
                        return -1;
                ms = ms << 4 | (uint64_t)d;
        }
        /* The writer never stores a negative time. */
        if (ms > (uint64_t)INT64_MAX)
                return -1;
        *msp    = (int64_t)ms;
        *idp    = k + pl + 16 + 1;
        *idlenp = klen - (pl + 16 + 1);
        return 1;
}

int64_t kp_expiry_cutoff(int64_t now_ms, int64_t retention_ms) {
        int64_t cutoff;
        if (__builtin_sub_overflow(now_ms, retention_ms, &cutoff))
                return retention_ms > 0 ? INT64_MIN : INT64_MAX;
        return cutoff;
}

/* State of one run. */
typedef struct run_s {
        kp_ctx_t *ctx;
        int store;
        const char *prefix;
        int64_t cutoff;
        int64_t max;
        kp_expiry_cb *cb;
        void *opaque;
        int local;
        int64_t deleted;
        kp_err_t err;
} run_t;

static int run_cb(const void *key, size_t klen, const void *val, size_t vlen,
                  void *opaque) {
        run_t *x = opaque;
        int64_t ms;
        const char *id;
        size_t idlen;
        (void)val;
        (void)vlen;
        int r = kp_expiry_key_parse(key, klen, x->prefix, &ms, &id, &idlen);
        if (r == 0 || (r > 0 && ms >= x->cutoff) || x->deleted >= x->max)
                return 1; /* past the index, the first live entry, or done */
        if (r < 0)
                KP_WARN("store %d [%d]: deleting a malformed expiry key",
                        x->store, (int)kp_ctx_partition(x->ctx));
        else if ((x->err = x->cb(x->ctx, id, idlen, ms, x->opaque)))
                return 1;
        if ((x->err = x->local ? kp_ctx_write_local(x->ctx, x->store, key, klen,
                                                    NULL, 0)
                               : kp_ctx_delete(x->ctx, x->store, key, klen)))
                return 1;
        x->deleted++;
        return 0;
}

kp_err_t kp_expiry_run(kp_ctx_t *ctx, int store, const char *prefix,
                       int64_t cutoff, int64_t max, int local, kp_expiry_cb *cb,
                       void *opaque, int64_t *deletedp) {
        run_t x = {.ctx    = ctx,
                   .store  = store,
                   .prefix = prefix,
                   .cutoff = cutoff,
                   .max    = max,
                   .cb     = cb,
                   .opaque = opaque,
                   .local  = local};
        kp_err_t err =
            kp_ctx_scan(ctx, store, prefix, strlen(prefix), run_cb, &x);
        if (deletedp)
                *deletedp = x.deleted;
        return err ? err : x.err;
}
