/* kp_proc_ctx.c: the API a daemon's process() and punctuate() use
 * (kp_proc.h, "Inside process() and punctuate()"): stores, emits, dead
 * letters. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "kp_proc_int.h"
#include "kpay/kp_discovery.h"
#include "kpay/kp_log.h"
#include "kpay/kp_mem.h"

int32_t kp_ctx_partition(const kp_ctx_t *ctx) {
        return ctx->task->partition;
}

int32_t kp_ctx_partition_count(const kp_ctx_t *ctx) {
        return ctx->proc->partition_cnt;
}

int32_t kp_ctx_key_partition(const kp_ctx_t *ctx, const void *key,
                             size_t klen) {
        if (!key || !klen)
                return -1;
        return kp_partition_for_key(key, klen, ctx->proc->partition_cnt);
}

int64_t kp_ctx_now_ms(const kp_ctx_t *ctx) {
        return ctx->now_ms;
}

int kp_ctx_store_index(const kp_ctx_t *ctx, const char *name) {
        for (int s = 0; s < ctx->proc->store_cnt; s++)
                if (!strcmp(ctx->proc->store_names[s], name))
                        return s;
        return -1;
}

static int store_ok(const kp_ctx_t *ctx, int store) {
        return store >= 0 && store < ctx->proc->store_cnt;
}

kp_err_t kp_ctx_get(kp_ctx_t *ctx, int store, const void *key, size_t klen,
                    void **valp, size_t *vlenp) {
        if (!store_ok(ctx, store))
                return KP_ERR_INVALID_ARG;
        return kp_store_get(ctx->task->stores[store], key, klen, valp, vlenp);
}

kp_err_t kp_ctx_get_decoded(kp_ctx_t *ctx, int store, const void *key,
                            size_t klen, kp_ctx_decode_cb *decode, void *out) {
        void *val;
        size_t vlen;
        kp_err_t err = kp_ctx_get(ctx, store, key, klen, &val, &vlen);
        if (err)
                return err;
        err = decode(val, vlen, out);
        kp_free(val);
        if (err) {
                KP_ERROR(
                    "store %s [%d]: a value of %zu bytes under a key of "
                    "%zu bytes does not decode: %s",
                    ctx->proc->store_names[store], (int)ctx->task->partition,
                    vlen, klen, kp_err2str(err));
                return KP_ERR_STORE;
        }
        return KP_OK;
}

kp_err_t kp_ctx_scan(kp_ctx_t *ctx, int store, const void *after,
                     size_t after_len, kp_ctx_scan_cb *cb, void *opaque) {
        if (!store_ok(ctx, store) || !cb)
                return KP_ERR_INVALID_ARG;
        return kp_store_scan_committed(ctx->task->stores[store], after,
                                       after_len, cb, opaque);
}

kp_err_t kp_ctx_put(kp_ctx_t *ctx, int store, const void *key, size_t klen,
                    const void *val, size_t vlen) {
        /* An empty value would be a tombstone on the compacted changelog
         * (and vanish on restore): refuse it. */
        if (!store_ok(ctx, store) || !val || !vlen)
                return KP_ERR_INVALID_ARG;
        if (txn_begin(ctx->proc))
                return KP_ERR_FATAL;
        /* The changelog record is produced at commit, once per key. */
        kp_store_put(ctx->task->stores[store], key, klen, val, vlen);
        return KP_OK;
}

kp_err_t kp_ctx_delete(kp_ctx_t *ctx, int store, const void *key, size_t klen) {
        if (!store_ok(ctx, store))
                return KP_ERR_INVALID_ARG;
        if (txn_begin(ctx->proc))
                return KP_ERR_FATAL;
        kp_store_delete(ctx->task->stores[store], key, klen);
        return KP_OK;
}

kp_err_t kp_ctx_cached(kp_ctx_t *ctx, int store, const void *key, size_t klen,
                       const kp_ctx_value_type_t *type, void **objp) {
        if (!store_ok(ctx, store) || !type || !objp)
                return KP_ERR_INVALID_ARG;
        for (cached_t *c = ctx->task->cached; c; c = c->next)
                if (c->store == store && c->klen == klen &&
                    !memcmp(c->key, key, klen)) {
                        *objp = c->obj;
                        return KP_OK;
                }
        if (txn_begin(ctx->proc))
                return KP_ERR_FATAL;
        void *obj = kp_malloc(type->size);
        type->init(obj);
        void *val;
        size_t vlen;
        kp_err_t err =
            kp_store_get(ctx->task->stores[store], key, klen, &val, &vlen);
        if (err == KP_OK) {
                kp_err_t derr = type->decode(val, vlen, obj);
                kp_free(val);
                if (derr) {
                        KP_ERROR("store %s [%d]: a value that does not decode",
                                 ctx->proc->store_names[store],
                                 (int)ctx->task->partition);
                        err = KP_ERR_STORE;
                }
        } else if (err == KP_ERR_NOT_FOUND) {
                err = KP_OK;
        }
        if (err) {
                type->clear(obj);
                kp_free(obj);
                return err;
        }
        cached_t *c = kp_malloc(sizeof(*c) + klen);
        c->store    = store;
        c->type     = type;
        c->written  = 0;
        c->obj      = obj;
        c->klen     = klen;
        if (klen)
                memcpy(c->key, key, klen);
        c->next           = ctx->task->cached;
        ctx->task->cached = c;
        *objp             = obj;
        return KP_OK;
}

void kp_ctx_cached_put(kp_ctx_t *ctx, void *obj) {
        for (cached_t *c = ctx->task->cached; c; c = c->next)
                if (c->obj == obj)
                        c->written = 1;
}

void cached_flush(kp_proc_t *proc, task_t *t) {
        (void)proc;
        for (cached_t *c = t->cached; c; c = c->next) {
                if (!c->written)
                        continue;
                size_t len;
                char *s = c->type->encode(c->obj, &len);
                kp_store_put(t->stores[c->store], c->key, c->klen, s, len);
                kp_free(s);
                c->written = 0;
        }
}

void cached_drop(task_t *t) {
        while (t->cached) {
                cached_t *c = t->cached;
                t->cached   = c->next;
                c->type->clear(c->obj);
                kp_free(c->obj);
                kp_free(c);
        }
}

kp_err_t kp_ctx_write_local(kp_ctx_t *ctx, int store, const void *key,
                            size_t klen, const void *val, size_t vlen) {
        if (!store_ok(ctx, store) || (val && !vlen))
                return KP_ERR_INVALID_ARG;
        if (txn_begin(ctx->proc))
                return KP_ERR_FATAL;
        kp_store_write_local(ctx->task->stores[store], key, klen, val, vlen);
        return KP_OK;
}

static const char *header_value(const rd_kafka_headers_t *hdrs,
                                const char *name, size_t *lenp) {
        const void *v;
        size_t len;
        if (!hdrs || rd_kafka_header_get_last(hdrs, name, &v, &len) != 0 || !v)
                return NULL;
        *lenp = len;
        return v;
}

/* Marks @p hdrs as written by this service (kpay-hop, replacing the
 * input's). */
static void set_hop(rd_kafka_headers_t *hdrs, const kp_proc_t *proc) {
        rd_kafka_header_remove(hdrs, "kpay-hop");
        rd_kafka_header_add(hdrs, "kpay-hop", -1, proc->service, -1);
}

/* A copy of the input record's headers (an empty set when it has none), for
 * a record that carries the input on: a dead letter, a re-routed record. */
static rd_kafka_headers_t *input_headers(const kp_record_t *rec) {
        return rec->headers ? rd_kafka_headers_copy(rec->headers)
                            : rd_kafka_headers_new(8);
}

kp_err_t kp_ctx_emit(kp_ctx_t *ctx, kp_topic_id_t topic, int32_t partition,
                     const void *key, size_t klen, const void *val, size_t vlen,
                     const rd_kafka_headers_t *headers) {
        kp_proc_t *proc = ctx->proc;
        if ((int)topic < 0 || (int)topic >= proc->topic_cnt)
                return KP_ERR_INVALID_ARG;
        if (txn_begin(proc))
                return KP_ERR_FATAL;
        rd_kafka_headers_t *hdrs =
            headers ? rd_kafka_headers_copy(headers) : rd_kafka_headers_new(2);
        size_t len;
        const char *trace;
        if (!header_value(hdrs, "kpay-trace", &len) && ctx->rec &&
            (trace = header_value(ctx->rec->headers, "kpay-trace", &len)))
                rd_kafka_header_add(hdrs, "kpay-trace", -1, trace,
                                    (ssize_t)len);
        set_hop(hdrs, proc);
        return proc_produce(proc, proc->topic_names[topic], partition, key,
                            klen, val, vlen, hdrs, NULL);
}

kp_err_t kp_ctx_dead_letter(kp_ctx_t *ctx, const char *error,
                            const char *detail) {
        kp_proc_t *proc        = ctx->proc;
        const kp_record_t *rec = ctx->rec;
        char num[32];
        if (!rec)
                return KP_ERR_INVALID_ARG;
        if (txn_begin(proc))
                return KP_ERR_FATAL;
        rd_kafka_headers_t *hdrs = input_headers(rec);
        rd_kafka_header_add(hdrs, "kpay-error", -1, error, -1);
        rd_kafka_header_add(hdrs, "kpay-error-detail", -1, detail ? detail : "",
                            -1);
        rd_kafka_header_add(hdrs, "kpay-source-topic", -1, rec->topic, -1);
        snprintf(num, sizeof(num), "%d", (int)rec->partition);
        rd_kafka_header_add(hdrs, "kpay-source-partition", -1, num, -1);
        snprintf(num, sizeof(num), "%" PRId64, rec->offset);
        rd_kafka_header_add(hdrs, "kpay-source-offset", -1, num, -1);
        rd_kafka_header_add(hdrs, "kpay-service", -1, proc->service, -1);
        set_hop(hdrs, proc);
        kp_err_t err =
            proc_produce(proc, proc->topic_names[KP_TOPIC_DLQ], -1, rec->key,
                         rec->key_len, rec->value, rec->value_len, hdrs, NULL);
        if (!err)
                kp_counter_add(proc->m_dlq, 1);
        return err;
}

kp_err_t kp_ctx_reroute(kp_ctx_t *ctx, kp_topic_id_t topic, int32_t partition,
                        const void *key, size_t klen) {
        kp_proc_t *proc        = ctx->proc;
        const kp_record_t *rec = ctx->rec;
        char from[48];
        if (!rec || (int)topic < 0 || (int)topic >= proc->topic_cnt ||
            partition < 0 || (!key && klen))
                return KP_ERR_INVALID_ARG;
        if (txn_begin(proc))
                return KP_ERR_FATAL;
        rd_kafka_headers_t *hdrs = input_headers(rec);
        /* The last hop only: a record re-routed twice (the partition count
         * changed in between) names where it was read this time. */
        snprintf(from, sizeof(from), "%d:%" PRId64, (int)rec->partition,
                 rec->offset);
        rd_kafka_header_remove(hdrs, "kpay-rerouted-from");
        rd_kafka_header_add(hdrs, "kpay-rerouted-from", -1, from, -1);
        set_hop(hdrs, proc);
        kp_err_t err =
            proc_produce(proc, proc->topic_names[topic], partition, key, klen,
                         rec->value, rec->value_len, hdrs, NULL);
        if (!err)
                kp_counter_add(proc->m_rerouted, 1);
        return err;
}
