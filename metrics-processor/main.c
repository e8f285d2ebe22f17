/* kpay-metrics: the instrumentation plane (docs/metrics.md). It reads
 * kpay.payments.complete and kpay.dlq and counts every record in tumbling
 * windows of 1 s and 1 min per partition (store `windows`), keeps the
 * slowest payments of each minute (store `slowest`), closes windows on
 * wall-clock time through punctuation and emits them to
 * kpay.metrics.windows, and answers /v1/metrics/windows, /sla and /slowest
 * merged over the partitions it owns. The decisions are the pure functions
 * of metrics.c; this file reads the stores, applies them and serves. */
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kpay/kp_app.h"
#include "kpay/kp_conf.h"
#include "kpay/kp_hist.h"
#include "kpay/kp_http.h"
#include "kpay/kp_json.h"
#include "kpay/kp_log.h"
#include "kpay/kp_mem.h"
#include "kpay/kp_metrics.h"
#include "kpay/kp_payment.h"
#include "kpay/kp_proc.h"
#include "kpay/kp_time.h"
#include "kpay/kp_topics.h"
#include "metrics.h"

/* Punctuation: how often windows are checked for closing. */
#define METRICS_PUNCTUATE_MS 200
/* The most closing keys and expired windows handled per punctuation. */
#define METRICS_MAX_PER_RUN 500
/* The most windows one query may span. */
#define METRICS_QUERY_MAX_WINDOWS 3600
/* Buckets of the Prometheus histogram: le = 2^k ms, k = 0..20. */
#define METRICS_PROM_BUCKETS 21

typedef struct metrics_opts_s {
        int64_t grace_ms;
        int64_t seconds_retention_ms;
        int64_t minutes_retention_ms;
        int64_t max_future_ms;
        int64_t slowest;
        int64_t sla_p99_ms;
        int64_t sla_min_throughput;
        int64_t sla_max_rejection_bp;
} metrics_opts_t;

static metrics_opts_t mopts;

#define MOPT(f) offsetof(metrics_opts_t, f)
static const kp_conf_opt_t metrics_opts[] = {
    {"grace-ms", 0, KP_CONF_INT, MOPT(grace_ms), "2000", 0, 3600000, "MS",
     "A window is final once the wall clock passes its end plus this grace "
     "period (for late records); later records are counted as late."},
    {"seconds-retention-ms", 0, KP_CONF_INT, MOPT(seconds_retention_ms),
     "3600000", 60000, INT64_C(31536000000), "MS",
     "How long 1 s windows are kept."},
    {"minutes-retention-ms", 0, KP_CONF_INT, MOPT(minutes_retention_ms),
     "604800000", 3600000, INT64_C(31536000000), "MS",
     "How long 1 min windows and the slowest payments are kept."},
    {"max-future-ms", 0, KP_CONF_INT, MOPT(max_future_ms), "60000", 0, 86400000,
     "MS",
     "An outcome whose times are later than now plus this is counted as "
     "invalid (future_time)."},
    {"slowest", 0, KP_CONF_INT, MOPT(slowest), "10", 0, 1000, "N",
     "How many of the slowest payments of each minute are kept."},
    {"sla-p99-ms", 0, KP_CONF_INT, MOPT(sla_p99_ms), "200", 1, 86400000, "MS",
     "SLA objective: the p99 of the end-to-end latency stays below this."},
    {"sla-min-throughput", 0, KP_CONF_INT, MOPT(sla_min_throughput), "1000", 0,
     100000000, "PER_S",
     "SLA objective: outcomes per second while traffic flows."},
    {"sla-max-rejection-bp", 0, KP_CONF_INT, MOPT(sla_max_rejection_bp), "100",
     1, 10000, "BP",
     "SLA objective: rejected outcomes stay below this share, in basis "
     "points (100 = 1 %)."},
    {NULL},
};

/* Decoded windows of the last records, by (partition, key), each with the
 * bytes it was stored as: a window read from the store is taken from here
 * when the stored bytes are the same (so an aborted transaction, a
 * rebalance or a restore can never hand out a stale one), which spares
 * decoding it on every record. Processing thread only. */
#define METRICS_CACHE_SLOTS 64

typedef struct cache_ent_s {
        int used;
        int32_t partition;
        char key[METRICS_KEY_SIZE];
        size_t klen;
        char *bytes;
        size_t len;
        metrics_window_t w;
        uint64_t last_use;
} cache_ent_t;

/* What the callbacks share: the options, the processor (for the queries)
 * and the counters. */
typedef struct metrics_app_s {
        metrics_conf_t conf;
        metrics_objectives_t obj;
        kp_proc_t *proc;
        kp_counter_t *records[3]; /* by metrics_kind_t */
        kp_counter_t *late;
        kp_counter_t *expired;
        kp_counter_t *emitted[3]; /* by metrics_close_t: final, amended */
        kp_counter_t *expired_windows;
        kp_histogram_t *e2e;
        kp_gauge_t *throughput;
        kp_gauge_t *quantile[5]; /* p50 p95 p99 p999 max of the minute */
        kp_gauge_t *sla_ok[3], *sla_burn[3];
        int64_t next_gauges_ms, next_sla_ms;
        cache_ent_t cache[METRICS_CACHE_SLOTS];
        uint64_t cache_clock;
        kp_counter_t *cache_hits, *cache_misses;
} metrics_app_t;

static const char *const kind_names[] = {"outcome", "invalid", "dead_letter"};

/* ------------------------------------------------------------------------
 * Counting a record
 */

static kp_err_t window_decode(const void *buf, size_t len,
                              metrics_window_t *w) {
        char err[256];
        if (metrics_window_decode(buf, len, w, err, sizeof(err))) {
                KP_ERROR("store windows: %s", err);
                return KP_ERR_PARSE;
        }
        return KP_OK;
}

static kp_err_t slowest_decode(const void *buf, size_t len,
                               metrics_slowest_t *s) {
        char err[256];
        memset(s, 0, sizeof(*s));
        if (metrics_slowest_decode(buf, len, s, err, sizeof(err))) {
                KP_ERROR("store slowest: %s", err);
                return KP_ERR_PARSE;
        }
        return KP_OK;
}

KP_CTX_TYPED_GETTER(get_slowest, metrics_slowest_t, slowest_decode)

static void cache_drop(cache_ent_t *e) {
        if (!e->used)
                return;
        kp_free(e->bytes);
        metrics_window_clear(&e->w);
        e->used = 0;
}

static cache_ent_t *cache_find(metrics_app_t *a, int32_t partition,
                               const char *key, size_t klen) {
        for (int i = 0; i < METRICS_CACHE_SLOTS; i++) {
                cache_ent_t *e = &a->cache[i];
                if (e->used && e->partition == partition && e->klen == klen &&
                    !memcmp(e->key, key, klen))
                        return e;
        }
        return NULL;
}

/* Keeps @p w (moved in) stored as @p bytes (taken) under @p key. */
static void cache_put(metrics_app_t *a, int32_t partition, const char *key,
                      size_t klen, metrics_window_t *w, char *bytes,
                      size_t len) {
        cache_ent_t *e = cache_find(a, partition, key, klen);
        if (!e) {
                e = &a->cache[0];
                for (int i = 0; i < METRICS_CACHE_SLOTS && e->used; i++)
                        if (!a->cache[i].used ||
                            a->cache[i].last_use < e->last_use)
                                e = &a->cache[i];
        }
        cache_drop(e);
        e->used      = 1;
        e->partition = partition;
        memcpy(e->key, key, klen);
        e->klen     = klen;
        e->bytes    = bytes;
        e->len      = len;
        e->w        = *w;
        e->last_use = ++a->cache_clock;
}

/* Reads window @p key (@p size, @p start) of the current partition: from
 * the cache when the stored bytes match, else decoded; an empty window
 * when there is none (*foundp 0). */
static kp_err_t window_load(kp_ctx_t *ctx, metrics_app_t *a, const char *key,
                            size_t klen, metrics_size_t size, int64_t start,
                            metrics_window_t *w, int *foundp) {
        void *val;
        size_t vlen;
        kp_err_t err =
            kp_ctx_get(ctx, METRICS_ST_WINDOWS, key, klen, &val, &vlen);
        cache_ent_t *e = cache_find(a, kp_ctx_partition(ctx), key, klen);
        *foundp        = err == KP_OK;
        if (err == KP_ERR_NOT_FOUND) {
                if (e)
                        cache_drop(e);
                metrics_window_init(w, size, start);
                return KP_OK;
        }
        if (err)
                return err;
        if (e && e->len == vlen && !memcmp(e->bytes, val, vlen)) {
                *w = e->w; /* moved out */
                kp_free(e->bytes);
                e->used = 0;
                kp_counter_add(a->cache_hits, 1);
        } else {
                if (e)
                        cache_drop(e);
                kp_counter_add(a->cache_misses, 1);
                err = window_decode(val, vlen, w) ? KP_ERR_STORE : KP_OK;
        }
        kp_free(val);
        return err;
}

/* Stores window @p w (taken, whatever the outcome) under @p key. */
static kp_err_t window_save(kp_ctx_t *ctx, metrics_app_t *a, const char *key,
                            size_t klen, metrics_window_t *w) {
        size_t vlen;
        char *val = metrics_window_encode(w, METRICS_JSON_STORE, &vlen);
        kp_err_t err =
            kp_ctx_put(ctx, METRICS_ST_WINDOWS, key, klen, val, vlen);
        if (err) {
                kp_free(val);
                metrics_window_clear(w);
                return err;
        }
        cache_put(a, kp_ctx_partition(ctx), key, klen, w, val, vlen);
        return KP_OK;
}

/* Loads the window of @p size holding @p ev and counts @p ev in it. */
static kp_err_t window_count(kp_ctx_t *ctx, metrics_app_t *a,
                             const metrics_event_t *ev, metrics_size_t size,
                             metrics_window_t *w, int *foundp) {
        char key[METRICS_KEY_SIZE];
        int64_t start = metrics_window_start(size, ev->event_ms);
        size_t klen   = metrics_window_key(key, sizeof(key), size, start);
        kp_err_t err  = window_load(ctx, a, key, klen, size, start, w, foundp);
        if (err)
                return err;
        err = metrics_window_add(w, ev, kp_ctx_now_ms(ctx), a->conf.grace_ms);
        if (err)
                metrics_window_clear(w);
        return err;
}

/* Stores @p w (taken) and, when it needs one, its closing key: a new
 * window is due at its end plus the grace period; a final one that a late
 * record just amended (the first since its last emission) is due at once. */
static kp_err_t window_store(kp_ctx_t *ctx, metrics_app_t *a,
                             metrics_window_t *w, int found) {
        char key[METRICS_KEY_SIZE], ckey[METRICS_KEY_SIZE];
        size_t klen =
            metrics_window_key(key, sizeof(key), w->size, w->start_ms);
        int64_t due = -1;
        if (!found)
                due = metrics_window_end(w) + a->conf.grace_ms;
        else if (w->final && w->rev == w->emitted_rev + 1)
                due = kp_ctx_now_ms(ctx);
        kp_err_t err = window_save(ctx, a, key, klen, w);
        if (err || due < 0)
                return err;
        size_t clen = metrics_close_key(ckey, sizeof(ckey), due, key);
        return kp_ctx_put(ctx, METRICS_ST_WINDOWS, ckey, clen, "1", 1);
}

static kp_err_t slowest_count(kp_ctx_t *ctx, metrics_app_t *a,
                              const metrics_event_t *ev) {
        char key[METRICS_KEY_SIZE];
        metrics_slowest_t s = {0};
        metrics_slow_t item;
        int64_t minute = metrics_window_start(METRICS_1M, ev->event_ms);
        size_t klen    = metrics_slowest_key(key, sizeof(key), minute);
        kp_err_t err   = get_slowest(ctx, METRICS_ST_SLOWEST, key, klen, &s);
        if (err == KP_ERR_NOT_FOUND) {
                memset(&s, 0, sizeof(s));
                s.minute_ms = minute;
        } else if (err) {
                return err;
        }
        metrics_slow_of(ev, kp_ctx_partition(ctx), &item);
        if (metrics_slowest_offer(&s, &item, (size_t)a->conf.slowest_n)) {
                char *val = kp_json_dump(metrics_slowest_to_json(&s));
                err       = kp_ctx_put(ctx, METRICS_ST_SLOWEST, key, klen, val,
                                       strlen(val));
                kp_free(val);
        }
        metrics_slowest_clear(&s);
        return err;
}

static kp_err_t count_event(kp_ctx_t *ctx, metrics_app_t *a,
                            metrics_event_t *ev) {
        metrics_window_t w[METRICS_SIZE__CNT];
        int found[METRICS_SIZE__CNT], counted[METRICS_SIZE__CNT] = {0};
        int64_t now  = kp_ctx_now_ms(ctx);
        kp_err_t err = KP_OK;

        /* Older than every window kept: counted now, as invalid. */
        int kept = 0;
        for (int s = 0; s < METRICS_SIZE__CNT; s++)
                kept += !metrics_event_expired(ev, (metrics_size_t)s, now,
                                               &a->conf);
        if (!kept) {
                metrics_event_make_invalid(ev, "too_old");
                ev->event_ms = now;
        }
        for (int pass = 0; pass < 2; pass++) {
                for (int s = 0; s < METRICS_SIZE__CNT; s++) {
                        if (metrics_event_expired(ev, (metrics_size_t)s, now,
                                                  &a->conf))
                                continue;
                        err = window_count(ctx, a, ev, (metrics_size_t)s, &w[s],
                                           &found[s]);
                        if (err)
                                break;
                        counted[s] = 1;
                }
                if (err != KP_ERR_OVERFLOW)
                        break;
                /* A figure would overflow: the record is counted as an
                 * invalid "overflow" instead, never lost. */
                for (int s = 0; s < METRICS_SIZE__CNT; s++)
                        if (counted[s])
                                metrics_window_clear(&w[s]);
                memset(counted, 0, sizeof(counted));
                metrics_event_make_invalid(ev, "overflow");
                ev->event_ms = now;
                err          = KP_OK;
        }
        for (int s = 0; s < METRICS_SIZE__CNT; s++) {
                if (!counted[s]) {
                        if (!err)
                                kp_counter_add(a->expired, 1);
                        continue;
                }
                if (!err && s == METRICS_1S &&
                    now >= metrics_window_end(&w[s]) + a->conf.grace_ms)
                        kp_counter_add(a->late, 1);
                if (!err)
                        err = window_store(ctx, a, &w[s], found[s]);
                else
                        metrics_window_clear(&w[s]);
        }
        if (!err && ev->kind == METRICS_OUTCOME && counted[METRICS_1M])
                err = slowest_count(ctx, a, ev);
        if (!err) {
                kp_counter_add(a->records[ev->kind], 1);
                if (ev->kind == METRICS_OUTCOME)
                        kp_histogram_observe(
                            a->e2e, (double)ev->lat[METRICS_LAT_E2E] / 1000.0);
        }
        return err;
}

static const char *header(const kp_record_t *rec, const char *name,
                          size_t *lenp) {
        const void *v = NULL;
        *lenp         = 0;
        if (!rec->headers ||
            rd_kafka_header_get_last(rec->headers, name, &v, lenp) != 0)
                return NULL;
        return v;
}

static kp_err_t process(kp_ctx_t *ctx, const kp_record_t *rec, void *opaque) {
        metrics_app_t *a = opaque;
        metrics_event_t ev;
        int64_t now = kp_ctx_now_ms(ctx);

        if (rec->input == METRICS_IN_DLQ) {
                size_t elen, slen;
                const char *e = header(rec, "kpay-error", &elen);
                const char *s = header(rec, "kpay-service", &slen);
                metrics_classify_dead_letter(e, elen, s, slen, rec->timestamp,
                                             now, &a->conf, &ev);
        } else {
                kp_payment_t p;
                char detail[256];
                kp_pay_err_t perr = kp_payment_parse(
                    rec->value ? rec->value : "", rec->value_len, &p, detail,
                    sizeof(detail));
                metrics_classify_payment(perr ? NULL : &p, perr, now, &a->conf,
                                         &ev);
                if (!perr)
                        kp_payment_clear(&p);
                if (ev.kind == METRICS_INVALID)
                        KP_DEBUG("partition %d offset %" PRId64
                                 ": counted as invalid (%s)",
                                 (int)rec->partition, rec->offset, ev.cause);
        }
        return count_event(ctx, a, &ev);
}

/* ------------------------------------------------------------------------
 * Punctuation: closing and expiring windows
 */

typedef struct close_run_s {
        kp_ctx_t *ctx;
        metrics_app_t *a;
        int64_t now;
        int handled;
        kp_err_t err;
} close_run_t;

/* Emits the window @p wkey is due for, if anything is new. */
static kp_err_t close_window(close_run_t *r, const char *wkey, size_t wklen) {
        metrics_window_t w;
        metrics_size_t size;
        int64_t start;
        char tkey[METRICS_KEY_SIZE];
        int found;
        int64_t grace = r->a->conf.grace_ms;
        if (metrics_window_key_parse(wkey, wklen, &size, &start))
                return KP_OK; /* not a window key: the closing key goes */
        kp_err_t err =
            window_load(r->ctx, r->a, wkey, wklen, size, start, &w, &found);
        if (err)
                return err;
        if (!found) {
                metrics_window_clear(&w);
                return KP_OK; /* expired meanwhile */
        }
        metrics_close_t what = metrics_window_due(&w, r->now, grace);
        if (what == METRICS_CLOSE_NOTHING) {
                /* Not due under the grace period in force (raised since
                 * the key was written): the key moves to when it is. */
                int64_t at = metrics_window_next_due(&w, r->now, grace);
                metrics_window_clear(&w);
                if (at <= r->now)
                        return KP_OK;
                char wk[METRICS_KEY_SIZE], ckey[METRICS_KEY_SIZE];
                memcpy(wk, wkey, wklen); /* NUL-terminated */
                wk[wklen]   = '\0';
                size_t clen = metrics_close_key(ckey, sizeof(ckey), at, wk);
                return kp_ctx_put(r->ctx, METRICS_ST_WINDOWS, ckey, clen, "1",
                                  1);
        }
        metrics_window_emitted(&w, r->now);
        size_t vlen;
        char *val = metrics_window_encode(&w, 0, &vlen);
        size_t tlen =
            metrics_topic_key(tkey, sizeof(tkey), &w, kp_ctx_partition(r->ctx));
        err = window_save(r->ctx, r->a, wkey, wklen, &w);
        if (!err)
                err = kp_ctx_emit(r->ctx, KP_TOPIC_METRICS_WINDOWS,
                                  kp_ctx_partition(r->ctx), tkey, tlen, val,
                                  vlen, NULL);
        kp_free(val);
        if (!err)
                kp_counter_add(r->a->emitted[what], 1);
        return err;
}

static int close_cb(const void *key, size_t klen, const void *val, size_t vlen,
                    void *opaque) {
        close_run_t *r = opaque;
        int64_t due;
        const char *wkey;
        size_t wklen;
        (void)val;
        (void)vlen;
        int k = metrics_close_key_parse(key, klen, &due, &wkey, &wklen);
        if (k == 0 || (k > 0 && due > r->now) ||
            r->handled >= METRICS_MAX_PER_RUN)
                return 1; /* past the index, not due yet, or enough */
        if (k < 0)
                KP_WARN("store windows [%d]: deleting a malformed closing key",
                        (int)kp_ctx_partition(r->ctx));
        else if ((r->err = close_window(r, wkey, wklen)))
                return 1;
        r->err = kp_ctx_delete(r->ctx, METRICS_ST_WINDOWS, key, klen);
        r->handled++;
        return r->err != KP_OK;
}

typedef struct expire_run_s {
        kp_ctx_t *ctx;
        metrics_app_t *a;
        int store;
        char prefix;    /* 's', 'm', or 0 for the slowest store */
        int64_t cutoff; /* windows ending at or before it are deleted */
        int handled;
        kp_err_t err;
} expire_run_t;

static int expire_cb(const void *key, size_t klen, const void *val, size_t vlen,
                     void *opaque) {
        expire_run_t *x = opaque;
        metrics_size_t size;
        int64_t start;
        (void)val;
        (void)vlen;
        if (x->handled >= METRICS_MAX_PER_RUN)
                return 1;
        if (x->prefix) {
                if (klen < 1 || ((const char *)key)[0] != x->prefix)
                        return 1; /* past this size's windows */
                if (metrics_window_key_parse(key, klen, &size, &start))
                        return 1;
                if (start + metrics_size_ms(size) > x->cutoff)
                        return 1; /* the oldest is young enough */
                /* The window leaves the topic too: a tombstone. */
                metrics_window_t w;
                char tkey[METRICS_KEY_SIZE];
                metrics_window_init(&w, size, start);
                size_t tlen = metrics_topic_key(tkey, sizeof(tkey), &w,
                                                kp_ctx_partition(x->ctx));
                if ((x->err = kp_ctx_emit(x->ctx, KP_TOPIC_METRICS_WINDOWS,
                                          kp_ctx_partition(x->ctx), tkey, tlen,
                                          NULL, 0, NULL)))
                        return 1;
        } else {
                char buf[24];
                if (klen >= sizeof(buf))
                        return 1;
                memcpy(buf, key, klen);
                buf[klen] = '\0';
                start     = strtoll(buf, NULL, 10);
                if (start + metrics_size_ms(METRICS_1M) > x->cutoff)
                        return 1;
        }
        if ((x->err = kp_ctx_delete(x->ctx, x->store, key, klen)))
                return 1;
        kp_counter_add(x->a->expired_windows, 1);
        x->handled++;
        return 0;
}

static kp_err_t expire(kp_ctx_t *ctx, metrics_app_t *a, int store, char prefix,
                       int64_t cutoff) {
        expire_run_t x = {ctx, a, store, prefix, cutoff, 0, KP_OK};
        char after[2]  = {prefix, '\0'};
        kp_err_t err   = kp_ctx_scan(ctx, store, prefix ? after : NULL,
                                   prefix ? 1 : 0, expire_cb, &x);
        return err ? err : x.err;
}

static void punctuate(kp_ctx_t *ctx, int64_t now_ms, void *opaque) {
        metrics_app_t *a = opaque;
        close_run_t r    = {ctx, a, now_ms, 0, KP_OK};
        kp_err_t err     = kp_ctx_scan(ctx, METRICS_ST_WINDOWS,
                                       METRICS_CLOSE_PREFIX, 1, close_cb, &r);
        if (!err)
                err = r.err;
        if (!err)
                err = expire(ctx, a, METRICS_ST_WINDOWS, 's',
                             now_ms - a->conf.retention_ms[METRICS_1S]);
        if (!err)
                err = expire(ctx, a, METRICS_ST_WINDOWS, 'm',
                             now_ms - a->conf.retention_ms[METRICS_1M]);
        if (!err)
                err = expire(ctx, a, METRICS_ST_SLOWEST, 0,
                             now_ms - a->conf.retention_ms[METRICS_1M]);
        if (err)
                KP_ERROR("partition %d: punctuation: %s",
                         (int)kp_ctx_partition(ctx), kp_err2str(err));
}

/* ------------------------------------------------------------------------
 * Queries: committed windows of every owned partition, merged
 */

typedef struct merge_s {
        metrics_window_t w;
        int have;
        kp_err_t err;
} merge_t;

static void merge_cb(int32_t partition, const void *val, size_t vlen,
                     void *opaque) {
        merge_t *m = opaque;
        metrics_window_t w;
        char err[256];
        if (!val || m->err)
                return;
        if (metrics_window_decode(val, vlen, &w, err, sizeof(err))) {
                KP_ERROR("store windows [%d]: %s", (int)partition, err);
                m->err = KP_ERR_STORE;
                return;
        }
        if (!m->have) {
                m->w    = w;
                m->have = 1;
                return;
        }
        m->err = metrics_window_merge(&m->w, &w);
        metrics_window_clear(&w);
}

/* The window of @p size at @p start merged over the owned partitions:
 * KP_OK with m->have 0 when no partition has it. */
static kp_err_t merged_window(metrics_app_t *a, metrics_size_t size,
                              int64_t start, merge_t *m) {
        char key[METRICS_KEY_SIZE];
        size_t klen = metrics_window_key(key, sizeof(key), size, start);
        memset(m, 0, sizeof(*m));
        if (kp_proc_foreach_committed(a->proc, METRICS_ST_WINDOWS, key, klen,
                                      merge_cb, m) < 0 &&
            !m->err)
                m->err = KP_ERR_STORE;
        if (m->err && m->have) {
                metrics_window_clear(&m->w);
                m->have = 0;
        }
        return m->err;
}

/* Parses a query parameter as a non-negative integer; @p def when absent.
 * @returns 0, or -1 when malformed. */
static int query_int(const kp_http_req_t *req, const char *name, int64_t def,
                     int64_t *out) {
        const char *s = kp_http_req_query(req, name);
        char *end;
        if (!s) {
                *out = def;
                return 0;
        }
        long long v = strtoll(s, &end, 10);
        if (!*s || *end || v < 0)
                return -1;
        *out = v;
        return 0;
}

static json_t *instance_json(metrics_app_t *a) {
        json_t *o         = json_object();
        kp_service_t *svc = kp_proc_service(a->proc);
        if (!o)
                kp_json_dump(NULL); /* aborts: out of memory */
        kp_json_set(o, "service", json_string(kp_service_name(svc)));
        kp_json_set(o, "instance", json_string(kp_service_instance(svc)));
        kp_json_set(o, "owned_partitions",
                    json_integer(kp_proc_owned_partitions(a->proc)));
        kp_json_set(o, "partition_count",
                    json_integer(kp_proc_partition_count(a->proc)));
        return o;
}

static void h_windows(const kp_http_req_t *req, const char *rest,
                      kp_http_resp_t *resp, void *opaque) {
        metrics_app_t *a = opaque;
        const char *sz   = kp_http_req_query(req, "size");
        int size         = metrics_size_parse(sz ? sz : "1s");
        int64_t from, to, now = kp_wall_ms();
        (void)rest;
        if (size < 0) {
                kp_http_resp_error(resp, 400, "bad_request",
                                   "size must be 1s or 1m");
                return;
        }
        int64_t len = metrics_size_ms((metrics_size_t)size);
        if (query_int(req, "to", now, &to) ||
            query_int(req, "from", to > 60 * len ? to - 60 * len : 0, &from) ||
            from > to) {
                kp_http_resp_error(resp, 400, "bad_request",
                                   "from and to are ms since the epoch, "
                                   "from <= to");
                return;
        }
        from = metrics_window_start((metrics_size_t)size, from);
        if ((to - from) / len > METRICS_QUERY_MAX_WINDOWS) {
                kp_http_resp_error(resp, 400, "bad_request",
                                   "at most %d windows per query",
                                   METRICS_QUERY_MAX_WINDOWS);
                return;
        }
        json_t *o = instance_json(a), *arr = json_array();
        if (!arr)
                kp_json_dump(NULL); /* aborts: out of memory */
        kp_json_set(o, "size", json_string(metrics_size2str(size)));
        kp_json_set(o, "from", json_integer(from));
        kp_json_set(o, "to", json_integer(to));
        for (int64_t t = from; t < to; t += len) {
                merge_t m;
                if (merged_window(a, (metrics_size_t)size, t, &m)) {
                        json_decref(o);
                        json_decref(arr);
                        kp_http_resp_error(resp, 500, "store_error",
                                           "reading window %" PRId64 ": %s", t,
                                           kp_err2str(m.err));
                        return;
                }
                if (!m.have)
                        continue;
                metrics_verdict_t v;
                json_t *wj = metrics_window_to_json(&m.w, 0);
                metrics_verdict(&m.w, -1, &a->obj, &v);
                kp_json_set(wj, "sla", metrics_verdict_to_json(&v));
                kp_json_append(arr, wj);
                metrics_window_clear(&m.w);
        }
        kp_json_set(o, "windows", arr);
        kp_http_resp_json(resp, 200, o);
}

/* The minute windows [from, to) merged into @p out (initialised; clear
 * it), with the seconds in which traffic flowed in *trafficp. */
static kp_err_t merged_minutes(metrics_app_t *a, int64_t from, int64_t to,
                               metrics_window_t *out, int64_t *trafficp) {
        kp_err_t err = KP_OK;
        metrics_window_init(out, METRICS_1M, 0);
        out->partitions = 0;
        out->final      = 1;
        *trafficp       = 0;
        for (int64_t t = from; !err && t < to; t += 60000) {
                merge_t m;
                if ((err = merged_window(a, METRICS_1M, t, &m)) || !m.have)
                        continue;
                /* Windows of different minutes merge as one period: the
                 * same start, their active seconds counted apart. */
                *trafficp += __builtin_popcountll((uint64_t)m.w.active_mask);
                m.w.start_ms = 0;
                err          = metrics_window_merge(out, &m.w);
                metrics_window_clear(&m.w);
        }
        return err;
}

/* Verdicts over the last 1, 5 and 15 complete minutes and the minute in
 * progress (docs/metrics.md, "SLA"). */
static const int sla_periods[] = {1, 5, 15};

static kp_err_t sla_verdicts(metrics_app_t *a, int64_t now,
                             metrics_verdict_t v[3], metrics_verdict_t *cur) {
        int64_t minute = metrics_window_start(METRICS_1M, now);
        metrics_window_t w, part;
        int64_t traffic = 0, t;
        kp_err_t err    = KP_OK;
        /* Each period adds the minutes before the previous one's, so that
         * every minute window is read once. */
        metrics_window_init(&w, METRICS_1M, 0);
        w.partitions = 0;
        w.final      = 1;
        for (int i = 0, done = 0; !err && i < 3; i++) {
                err = merged_minutes(a, minute - sla_periods[i] * 60000,
                                     minute - done * 60000, &part, &t);
                if (!err)
                        err = metrics_window_merge(&w, &part);
                metrics_window_clear(&part);
                traffic += t;
                done = sla_periods[i];
                if (!err)
                        metrics_verdict(&w, traffic, &a->obj, &v[i]);
        }
        metrics_window_clear(&w);
        if (!err && cur) {
                err = merged_minutes(a, minute, minute + 60000, &w, &traffic);
                if (!err)
                        metrics_verdict(&w, traffic, &a->obj, cur);
                metrics_window_clear(&w);
        }
        return err;
}

static void h_sla(const kp_http_req_t *req, const char *rest,
                  kp_http_resp_t *resp, void *opaque) {
        metrics_app_t *a = opaque;
        metrics_verdict_t v[3], cur;
        int64_t now = kp_wall_ms();
        (void)req;
        (void)rest;
        kp_err_t err = sla_verdicts(a, now, v, &cur);
        if (err) {
                kp_http_resp_error(resp, 500, "store_error", "%s",
                                   kp_err2str(err));
                return;
        }
        json_t *o = instance_json(a), *ob = json_object(), *p = json_object();
        if (!ob || !p)
                kp_json_dump(NULL); /* aborts: out of memory */
        kp_json_set(ob, "p99_ms", json_integer(a->obj.p99_ms));
        kp_json_set(ob, "min_throughput", json_integer(a->obj.min_throughput));
        kp_json_set(ob, "max_rejection_bp",
                    json_integer(a->obj.max_rejection_bp));
        kp_json_set(o, "objectives", ob);
        kp_json_set(o, "now_ms", json_integer(now));
        for (int i = 0; i < 3; i++) {
                char name[8];
                snprintf(name, sizeof(name), "%dm", sla_periods[i]);
                kp_json_set(p, name, metrics_verdict_to_json(&v[i]));
        }
        kp_json_set(o, "periods", p);
        kp_json_set(o, "current_minute", metrics_verdict_to_json(&cur));
        kp_http_resp_json(resp, 200, o);
}

typedef struct slow_merge_s {
        metrics_slowest_t s;
        size_t max;
        kp_err_t err;
} slow_merge_t;

static void slow_cb(int32_t partition, const void *val, size_t vlen,
                    void *opaque) {
        slow_merge_t *m       = opaque;
        metrics_slowest_t one = {0};
        char err[256];
        if (!val || m->err)
                return;
        if (metrics_slowest_decode(val, vlen, &one, err, sizeof(err))) {
                KP_ERROR("store slowest [%d]: %s", (int)partition, err);
                m->err = KP_ERR_STORE;
                return;
        }
        metrics_slowest_merge(&m->s, &one, m->max);
        metrics_slowest_clear(&one);
}

static void h_slowest(const kp_http_req_t *req, const char *rest,
                      kp_http_resp_t *resp, void *opaque) {
        metrics_app_t *a = opaque;
        int64_t minute;
        char key[METRICS_KEY_SIZE];
        (void)rest;
        if (query_int(req, "minute",
                      metrics_window_start(METRICS_1M, kp_wall_ms()),
                      &minute)) {
                kp_http_resp_error(resp, 400, "bad_request",
                                   "minute is ms since the epoch");
                return;
        }
        minute         = metrics_window_start(METRICS_1M, minute);
        slow_merge_t m = {{0}, (size_t)a->conf.slowest_n, KP_OK};
        m.s.minute_ms  = minute;
        size_t klen    = metrics_slowest_key(key, sizeof(key), minute);
        if (kp_proc_foreach_committed(a->proc, METRICS_ST_SLOWEST, key, klen,
                                      slow_cb, &m) < 0 &&
            !m.err)
                m.err = KP_ERR_STORE;
        if (m.err) {
                metrics_slowest_clear(&m.s);
                kp_http_resp_error(resp, 500, "store_error", "%s",
                                   kp_err2str(m.err));
                return;
        }
        json_t *o = instance_json(a), *s = metrics_slowest_to_json(&m.s);
        kp_json_set(o, "minute_ms", json_integer(minute));
        kp_json_set(o, "items", json_incref(json_object_get(s, "items")));
        json_decref(s);
        metrics_slowest_clear(&m.s);
        kp_http_resp_json(resp, 200, o);
}

/* ------------------------------------------------------------------------
 * Live gauges on /metrics, refreshed every second from committed windows
 */

static void tick(kp_proc_t *proc, int64_t now_ms, void *opaque) {
        metrics_app_t *a         = opaque;
        static const double qs[] = {0.5, 0.95, 0.99, 0.999, 1.0};
        merge_t m;
        (void)proc;
        if (now_ms < a->next_gauges_ms)
                return;
        a->next_gauges_ms = now_ms + 1000;
        /* The last second that is final by now. */
        int64_t sec =
            metrics_window_start(METRICS_1S, now_ms - a->conf.grace_ms) - 1000;
        if (!merged_window(a, METRICS_1S, sec, &m)) {
                kp_gauge_set(
                    a->throughput,
                    m.have ? (double)(m.w.complete_count + m.w.rejected_count)
                           : 0.0);
                if (m.have)
                        metrics_window_clear(&m.w);
        }
        /* Percentiles of the minute in progress. */
        if (!merged_window(a, METRICS_1M,
                           metrics_window_start(METRICS_1M, now_ms), &m)) {
                for (int i = 0; i < 5; i++)
                        kp_gauge_set(
                            a->quantile[i],
                            m.have && m.w.lat[METRICS_LAT_E2E].count
                                ? (double)kp_hist_quantile(
                                      &m.w.lat[METRICS_LAT_E2E], qs[i]) /
                                      1000.0
                                : NAN);
                if (m.have)
                        metrics_window_clear(&m.w);
        }
        /* The SLA every five seconds (21 minute windows each time). */
        if (now_ms >= a->next_sla_ms) {
                a->next_sla_ms = now_ms + 5000;
                metrics_verdict_t v[3];
                if (!sla_verdicts(a, now_ms, v, NULL))
                        for (int i = 0; i < 3; i++) {
                                kp_gauge_set(a->sla_ok[i], v[i].ok);
                                kp_gauge_set(a->sla_burn[i], v[i].burn_rate);
                        }
        }
}

static void register_metrics(kp_metrics_t *m, metrics_app_t *a) {
        char labels[64];
        double bounds[METRICS_PROM_BUCKETS];
        for (int k = 0; k < 3; k++) {
                snprintf(labels, sizeof(labels), "kind=\"%s\"", kind_names[k]);
                a->records[k] = kp_metrics_counter(
                    m, "kpay_metrics_records_total",
                    "Records counted in windows, by kind (outcome, invalid, "
                    "dead_letter).",
                    labels);
        }
        a->late = kp_metrics_counter(
            m, "kpay_metrics_late_records_total",
            "Records counted after their 1 s window was due (end + grace).",
            NULL);
        a->expired = kp_metrics_counter(
            m, "kpay_metrics_expired_records_total",
            "Window counts skipped because the window is past its retention.",
            NULL);
        a->emitted[METRICS_CLOSE_FINAL] = kp_metrics_counter(
            m, "kpay_metrics_windows_emitted_total",
            "Windows emitted to kpay.metrics.windows.", "why=\"final\"");
        a->emitted[METRICS_CLOSE_AMEND] = kp_metrics_counter(
            m, "kpay_metrics_windows_emitted_total",
            "Windows emitted to kpay.metrics.windows.", "why=\"amended\"");
        a->cache_hits = kp_metrics_counter(
            m, "kpay_metrics_window_cache_total",
            "Windows read while counting: from the cache of decoded windows "
            "or decoded from the store.",
            "result=\"hit\"");
        a->cache_misses = kp_metrics_counter(
            m, "kpay_metrics_window_cache_total",
            "Windows read while counting: from the cache of decoded windows "
            "or decoded from the store.",
            "result=\"miss\"");
        a->expired_windows = kp_metrics_counter(
            m, "kpay_metrics_windows_expired_total",
            "Windows and slowest lists deleted after their retention.", NULL);
        /* Powers of two of ms are bucket bounds of kp_hist and of a native
         * histogram of schema 0, so these counts are exact. */
        for (int k = 0; k < METRICS_PROM_BUCKETS; k++)
                bounds[k] = ldexp(1.0, k) / 1000.0;
        a->e2e = kp_metrics_histogram(
            m, "kpay_metrics_e2e_latency_seconds",
            "End-to-end latency of the outcomes counted by this instance "
            "(complete_ms - created_ms).",
            NULL, bounds, METRICS_PROM_BUCKETS);
        a->throughput = kp_metrics_gauge(
            m, "kpay_metrics_throughput",
            "Outcomes in the last final second, over this instance's "
            "partitions.",
            NULL);
        static const char *const qn[] = {"0.5", "0.95", "0.99", "0.999", "1"};
        for (int i = 0; i < 5; i++) {
                snprintf(labels, sizeof(labels), "quantile=\"%s\"", qn[i]);
                a->quantile[i] = kp_metrics_gauge(
                    m, "kpay_metrics_minute_e2e_latency_seconds",
                    "End-to-end latency quantiles of the minute in progress "
                    "(NaN without outcomes).",
                    labels);
        }
        for (int i = 0; i < 3; i++) {
                snprintf(labels, sizeof(labels), "period=\"%dm\"",
                         sla_periods[i]);
                a->sla_ok[i] = kp_metrics_gauge(
                    m, "kpay_metrics_sla_ok",
                    "1 when every SLA objective holds over the period.",
                    labels);
                a->sla_burn[i] = kp_metrics_gauge(
                    m, "kpay_metrics_sla_burn_rate",
                    "Error-budget burn rate over the period (1: at the "
                    "allowed pace).",
                    labels);
        }
}

static kp_err_t init(kp_proc_t *proc, void *opaque) {
        metrics_app_t *a                 = opaque;
        a->proc                          = proc;
        a->conf.grace_ms                 = mopts.grace_ms;
        a->conf.retention_ms[METRICS_1S] = mopts.seconds_retention_ms;
        a->conf.retention_ms[METRICS_1M] = mopts.minutes_retention_ms;
        a->conf.max_future_ms            = mopts.max_future_ms;
        a->conf.slowest_n                = mopts.slowest;
        a->obj.p99_ms                    = mopts.sla_p99_ms;
        a->obj.min_throughput            = mopts.sla_min_throughput;
        a->obj.max_rejection_bp          = mopts.sla_max_rejection_bp;
        register_metrics(kp_proc_metrics(proc), a);
        kp_service_t *svc = kp_proc_service(proc);
        kp_service_route(svc, "GET", "/v1/metrics/windows", h_windows, a);
        kp_service_route(svc, "GET", "/v1/metrics/sla", h_sla, a);
        kp_service_route(svc, "GET", "/v1/metrics/slowest", h_slowest, a);
        return KP_OK;
}

static void fini(kp_proc_t *proc, void *opaque) {
        metrics_app_t *a = opaque;
        (void)proc;
        for (int i = 0; i < METRICS_CACHE_SLOTS; i++)
                cache_drop(&a->cache[i]);
}

int main(int argc, char **argv) {
        static metrics_app_t a;
        static const kp_conf_section_t sections[] = {{metrics_opts, &mopts},
                                                     {NULL, NULL}};
        static const kp_proc_def_t def            = {
                       .name = "kpay-metrics",
                       .summary =
                           "Metrics processor: throughput, money and latency per second "
                                      "and "
                                      "per minute, stage breakdown, SLA, slowest payments, dead "
                                      "letters.",
                       .layout                = &metrics_layout,
                       .sections              = sections,
                       .process               = process,
                       .punctuate             = punctuate,
                       .punctuate_interval_ms = METRICS_PUNCTUATE_MS,
                       .init                  = init,
                       .tick                  = tick,
                       .fini                  = fini,
                       .opaque                = &a,
        };
        return kp_proc_main(&def, argc, argv);
}
