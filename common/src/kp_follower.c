/* kp_follower.c: follows one topic read_committed without a consumer group,
 * optionally keeping the latest value per key. */
#include "kpay/kp_follower.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kpay/kp_conf.h"
#include "kpay/kp_kafka.h"
#include "kpay/kp_log.h"
#include "kpay/kp_mem.h"
#include "kpay/kp_time.h"

/* How long one metadata or offset request of the reading thread may take;
 * it bounds how long kp_follower_destroy() waits for the thread. */
#define KP_FOL_REQUEST_TIMEOUT_MS 1000
/* Retry interval while the topic does not exist. */
#define KP_FOL_RETRY_MS 1000
/* Poll timeout of the follower thread; bounds the reaction to stop. */
#define KP_FOL_POLL_MS 100
/* At most this many queued events are handled by one kp_follower_poll(). */
#define KP_FOL_POLL_MAX 100000

typedef struct kp_fol_entry_s {
        char *key; /**< NUL-terminated (not counted in key_len) */
        size_t key_len;
        char *value; /**< NUL-terminated (not counted in value_len) */
        size_t value_len;
        void *decoded;   /**< from the decode hook, or NULL */
        int64_t recv_ms; /**< CLOCK_MONOTONIC ms it counts as received */
} kp_fol_entry_t;

struct kp_follower_s {
        kp_follower_conf_t conf; /**< its strings point to the copies below */
        char *topic, *client_id, *log_name;

        rd_kafka_t *rk;
        rd_kafka_topic_t *rkt; /**< for metadata look-ups only */
        /* A second handle, read_uncommitted, only to ask for end offsets:
         * under read_committed the broker answers with the last stable
         * offset, which lags behind a transaction whose commit has already
         * returned until its markers are written. The high watermark does
         * not, and the follower's position reaches it exactly when every
         * transaction below it is resolved. */
        rd_kafka_t *rk_end;

        pthread_t thread;
        int thread_started;

        /* Touched only by the reading thread (the follower's own, or the
         * one driving it). */
        int waiting_logged;
        int64_t retry_at_ms; /**< next look-up of a missing topic */

        /* Everything below is shared with the reading thread, under lock. */
        pthread_mutex_t lock;
        pthread_cond_t cond; /**< CLOCK_MONOTONIC; broadcast on any change */
        int stop;
        int recheck;       /**< a caller wants the partition count re-read */
        int lost;          /**< the topic or a partition of it disappeared */
        int end_pending;   /**< from_end, and not assigned at the end yet */
        int32_t part_cnt;  /**< partitions assigned, 0 before assignment */
        int64_t *position; /**< next offset to read per partition, or -1 */
        kp_fol_entry_t *entries; /**< sorted by key */
        size_t entry_cnt, entry_size;
};

/* Waits on f->cond until CLOCK_MONOTONIC time @p deadline_ms (forever when
 * negative). Returns 0 when signalled, ETIMEDOUT when the deadline passed.
 * @locality with the lock */
static int fol_wait(kp_follower_t *f, int64_t deadline_ms) {
        int r;
        if (deadline_ms < 0) {
                r = pthread_cond_wait(&f->cond, &f->lock);
        } else {
                struct timespec ts = {
                    .tv_sec  = deadline_ms / 1000,
                    .tv_nsec = (deadline_ms % 1000) * 1000000};
                r = pthread_cond_timedwait(&f->cond, &f->lock, &ts);
        }
        if (r != 0 && r != ETIMEDOUT) {
                KP_FATAL("%s: waiting on a condition failed: %s", f->log_name,
                         strerror(r));
                abort();
        }
        return r;
}

/* The partition count of the topic: >0 when it exists, 0 when the cluster
 * says it does not, -1 when the cluster could not be asked. */
static int32_t fol_partition_count(kp_follower_t *f, int timeout_ms) {
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_resp_err_t err =
            rd_kafka_metadata(f->rk, 0, f->rkt, &md, timeout_ms);
        if (err) {
                KP_DEBUG("%s: metadata for %s: %s", f->log_name, f->topic,
                         rd_kafka_err2str(err));
                return -1;
        }
        int32_t cnt = 0;
        for (int i = 0; i < md->topic_cnt; i++) {
                const struct rd_kafka_metadata_topic *t = &md->topics[i];
                if (strcmp(t->topic, f->topic))
                        continue;
                if (t->err && t->err != RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
                        KP_DEBUG("%s: metadata for %s: %s", f->log_name,
                                 f->topic, rd_kafka_err2str(t->err));
                if (t->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
                        cnt = 0;
                else if (t->partition_cnt > 0)
                        cnt = t->partition_cnt;
                else
                        cnt = -1;
        }
        rd_kafka_metadata_destroy(md);
        return cnt;
}

/* (Re)assigns every partition of the topic. Partitions already followed
 * continue from their position; new ones start at the beginning, or, for
 * the first assignment of a from_end follower, at the end offsets (last
 * stable offsets) asked for here, so that what is written after this call
 * is read however late the fetch starts.
 * @locality reading thread, without the lock */
static kp_err_t fol_assign(kp_follower_t *f) {
        int32_t cnt = fol_partition_count(f, KP_FOL_REQUEST_TIMEOUT_MS);
        pthread_mutex_lock(&f->lock);
        if (cnt == 0)
                /* Everything a topic created from now on holds is new. */
                f->end_pending = 0;
        int same        = cnt == f->part_cnt;
        int end_pending = f->end_pending;
        pthread_mutex_unlock(&f->lock);
        if (cnt <= 0)
                return KP_ERR_NOT_FOUND;
        if (same)
                return KP_OK; /* already following all of them */

        int64_t *pos = kp_calloc((size_t)cnt, sizeof(*pos));
        pthread_mutex_lock(&f->lock);
        for (int32_t p = 0; p < cnt; p++)
                pos[p] = p < f->part_cnt ? f->position[p] : -1;
        pthread_mutex_unlock(&f->lock);
        for (int32_t p = 0; end_pending && p < cnt; p++) {
                int64_t lo;
                rd_kafka_resp_err_t err = rd_kafka_query_watermark_offsets(
                    f->rk, f->topic, p, &lo, &pos[p],
                    KP_FOL_REQUEST_TIMEOUT_MS);
                if (err) {
                        KP_DEBUG("%s: end offset of %s [%" PRId32 "]: %s",
                                 f->log_name, f->topic, p,
                                 rd_kafka_err2str(err));
                        kp_free(pos);
                        return KP_ERR_KAFKA;
                }
        }

        rd_kafka_topic_partition_list_t *parts =
            rd_kafka_topic_partition_list_new(cnt);
        for (int32_t p = 0; p < cnt; p++)
                rd_kafka_topic_partition_list_add(parts, f->topic, p)->offset =
                    pos[p] >= 0 ? pos[p] : RD_KAFKA_OFFSET_BEGINNING;
        rd_kafka_resp_err_t err = rd_kafka_assign(f->rk, parts);
        rd_kafka_topic_partition_list_destroy(parts);
        if (err) {
                KP_WARN("%s: assigning %s: %s", f->log_name, f->topic,
                        rd_kafka_err2str(err));
                kp_free(pos);
                return KP_ERR_KAFKA;
        }

        pthread_mutex_lock(&f->lock);
        kp_free(f->position);
        f->position    = pos;
        f->part_cnt    = cnt;
        f->end_pending = 0;
        pthread_cond_broadcast(&f->cond);
        pthread_mutex_unlock(&f->lock);
        KP_LOG(f->conf.quiet ? KP_LOG_DEBUG : KP_LOG_INFO,
               "%s: following %s (%" PRId32 " partitions%s)", f->log_name,
               f->topic, cnt, end_pending ? ", from the end" : "");
        return KP_OK;
}

/* Drops the assignment, so that the thread looks the topic up again.
 * @locality reading thread, without the lock */
static void fol_unassign(kp_follower_t *f) {
        rd_kafka_resp_err_t err = rd_kafka_assign(f->rk, NULL);
        if (err)
                KP_WARN("%s: unassigning %s: %s", f->log_name, f->topic,
                        rd_kafka_err2str(err));
        pthread_mutex_lock(&f->lock);
        kp_free(f->position);
        f->position = NULL;
        f->part_cnt = 0;
        pthread_cond_broadcast(&f->cond);
        pthread_mutex_unlock(&f->lock);
}

static int fol_keycmp(const void *a, size_t alen, const void *b, size_t blen) {
        int r = memcmp(a, b, alen < blen ? alen : blen);
        return r ? r : (alen > blen) - (alen < blen);
}

/* The index of @p key in the table, or where it would go.
 * @returns 1 when found. @locality with the lock */
static int fol_find(const kp_follower_t *f, const void *key, size_t key_len,
                    size_t *idxp) {
        size_t lo = 0, hi = f->entry_cnt;
        while (lo < hi) {
                size_t mid              = lo + (hi - lo) / 2;
                const kp_fol_entry_t *e = &f->entries[mid];
                int r = fol_keycmp(key, key_len, e->key, e->key_len);
                if (r == 0) {
                        *idxp = mid;
                        return 1;
                }
                if (r < 0)
                        hi = mid;
                else
                        lo = mid + 1;
        }
        *idxp = lo;
        return 0;
}

/* Frees what entry @p e holds (not its key). */
static void fol_entry_clear_value(kp_follower_t *f, kp_fol_entry_t *e) {
        if (e->decoded && f->conf.free_decoded)
                f->conf.free_decoded(e->decoded, f->conf.opaque);
        kp_free(e->value);
        e->decoded = NULL;
        e->value   = NULL;
}

/* Applies one record to the table: @p decoded is taken over.
 * @locality with the lock */
static void fol_table_apply(kp_follower_t *f, const kp_follower_record_t *rec,
                            void *decoded, int64_t recv_ms) {
        size_t i;
        int found = fol_find(f, rec->key, rec->key_len, &i);
        kp_fol_entry_t *e;

        if (!rec->value) {
                if (!found)
                        return;
                e = &f->entries[i];
                fol_entry_clear_value(f, e);
                kp_free(e->key);
                memmove(e, e + 1, (f->entry_cnt - i - 1) * sizeof(*e));
                f->entry_cnt--;
                return;
        }
        if (found) {
                e = &f->entries[i];
                fol_entry_clear_value(f, e);
        } else {
                if (f->entry_cnt == f->entry_size) {
                        f->entry_size = f->entry_size ? f->entry_size * 2 : 16;
                        f->entries    = kp_realloc(
                               f->entries, f->entry_size * sizeof(*f->entries));
                }
                e = &f->entries[i];
                memmove(e + 1, e, (f->entry_cnt - i) * sizeof(*e));
                f->entry_cnt++;
                e->key     = kp_strndup(rec->key, rec->key_len);
                e->key_len = rec->key_len;
        }
        e->value     = kp_strndup(rec->value, rec->value_len);
        e->value_len = rec->value_len;
        e->decoded   = decoded;
        e->recv_ms   = recv_ms;
}

/* @locality reading thread, without the lock */
static void fol_advance(kp_follower_t *f, int32_t partition, int64_t offset) {
        pthread_mutex_lock(&f->lock);
        if (partition >= 0 && partition < f->part_cnt &&
            offset > f->position[partition]) {
                f->position[partition] = offset;
                pthread_cond_broadcast(&f->cond);
        }
        pthread_mutex_unlock(&f->lock);
}

/* Handles one record: the table, then on_record, then the position (so
 * that a sync that sees the position also sees the callback done).
 * @returns 1 when it was handed to on_record, else 0.
 * @locality reading thread, without the lock */
static int fol_record(kp_follower_t *f, const rd_kafka_message_t *m) {
        char errstr[256];
        rd_kafka_headers_t *hdrs = NULL;
        int handed               = 0;
        kp_follower_record_t rec = {
            .key       = m->key,
            .key_len   = m->key ? m->key_len : 0,
            .value     = m->payload,
            .value_len = m->payload ? m->len : 0,
            .partition = m->partition,
            .offset    = m->offset,
            .timestamp = rd_kafka_message_timestamp(m, NULL),
        };
        if (!rd_kafka_message_headers(m, &hdrs))
                rec.headers = hdrs;

        if (f->conf.keep_table) {
                if (!rec.key || rec.key_len == 0) {
                        KP_WARN("%s: skipping %s [%" PRId32 "] offset %" PRId64
                                ": no key",
                                f->log_name, f->topic, m->partition, m->offset);
                        goto advance;
                }
                void *decoded = NULL;
                int64_t ts    = rec.timestamp;
                if (rec.value && f->conf.decode) {
                        errstr[0] = '\0';
                        decoded   = f->conf.decode(&rec, &ts, f->conf.opaque,
                                                   errstr, sizeof(errstr));
                        if (!decoded) {
                                KP_WARN("%s: skipping %s [%" PRId32
                                        "] offset %" PRId64 " key %.*s: %s",
                                        f->log_name, f->topic, m->partition,
                                        m->offset, (int)rec.key_len,
                                        (const char *)rec.key, errstr);
                                goto advance;
                        }
                }
                /* Counted from the local receive time, so that clock skew
                 * between hosts does not matter; but a record already older
                 * than stale_after_ms by its own clock is dated back by its
                 * age. */
                int64_t recv_ms = kp_mono_ms();
                if (rec.value && ts > 0 && f->conf.stale_after_ms > 0) {
                        int64_t age = kp_wall_ms() - ts;
                        if (age > f->conf.stale_after_ms)
                                recv_ms -= age;
                }
                rec.decoded = decoded;
                pthread_mutex_lock(&f->lock);
                fol_table_apply(f, &rec, decoded, recv_ms);
                pthread_mutex_unlock(&f->lock);
        }
        if (f->conf.on_record) {
                f->conf.on_record(&rec, f->conf.opaque);
                handed = 1;
        }
advance:
        fol_advance(f, m->partition, m->offset + 1);
        return handed;
}

static int fol_topic_gone(rd_kafka_resp_err_t err) {
        return err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
               err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC ||
               err == RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION;
}

/* Handles one consumer event. @returns 1 for a record handed on, else 0.
 * @locality reading thread, without the lock */
static int fol_event(kp_follower_t *f, rd_kafka_message_t *m) {
        if (!m->err)
                return fol_record(f, m);
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                /* The end of what is readable (under read_committed, past
                 * any transaction markers, which are never delivered). */
                fol_advance(f, m->partition, m->offset);
                return 0;
        }
        KP_WARN("%s: consuming %s: %s", f->log_name, f->topic,
                rd_kafka_message_errstr(m));
        if (fol_topic_gone(m->err)) {
                pthread_mutex_lock(&f->lock);
                f->lost = 1;
                pthread_mutex_unlock(&f->lock);
        }
        return 0;
}

/* librdkafka reports a deleted topic or partition as a generic error, not
 * on a partition: the follower then drops its assignment and looks the
 * topic up again, so that a re-created topic is read from its start.
 * @locality reading thread (inside rd_kafka_consumer_poll()), or the
 *           thread closing the consumer */
static void fol_error_cb(rd_kafka_t *rk, int err, const char *reason,
                         void *opaque) {
        kp_follower_t *f = opaque;
        (void)rk;
        KP_WARN("%s: %s: %s", f->log_name, rd_kafka_err2name(err), reason);
        if (fol_topic_gone(err)) {
                pthread_mutex_lock(&f->lock);
                f->lost = 1;
                pthread_mutex_unlock(&f->lock);
        }
}

/* Serves what is queued on the handles without waiting (errors, logs), so
 * that nothing piles up while the follower is not consuming.
 * @locality reading thread, without the lock */
static void fol_serve(kp_follower_t *f) {
        rd_kafka_message_t *m;
        rd_kafka_poll(f->rk_end, 0);
        while ((m = rd_kafka_consumer_poll(f->rk, 0))) {
                fol_event(f, m);
                rd_kafka_message_destroy(m);
        }
}

/* Waits up to @p wait_ms, and no later than @p until_ms, for stop or a
 * recheck. @locality reading thread, without the lock */
static void fol_idle(kp_follower_t *f, int wait_ms, int64_t until_ms) {
        int64_t deadline = kp_mono_ms() + wait_ms;
        if (until_ms < deadline)
                deadline = until_ms;
        pthread_mutex_lock(&f->lock);
        while (!f->stop && !f->recheck && fol_wait(f, deadline) != ETIMEDOUT)
                ;
        pthread_mutex_unlock(&f->lock);
}

/* One turn of the reading loop: (re)assigns when needed, else waits up to
 * @p wait_ms for one event. @p eventp is set when an event was handled.
 * @returns 1 when a record was handed to on_record, else 0.
 * @locality reading thread, without the lock */
static int fol_step(kp_follower_t *f, int wait_ms, int *eventp) {
        *eventp = 0;
        pthread_mutex_lock(&f->lock);
        int lost     = f->lost;
        int recheck  = f->recheck;
        int assigned = f->part_cnt > 0;
        f->lost = f->recheck = 0;
        pthread_mutex_unlock(&f->lock);

        if (lost && assigned) {
                KP_WARN("%s: lost %s, looking it up again", f->log_name,
                        f->topic);
                fol_unassign(f);
                assigned = 0;
        }
        if (!assigned || recheck) {
                if (!assigned && !recheck && kp_mono_ms() < f->retry_at_ms) {
                        fol_serve(f);
                        fol_idle(f, wait_ms, f->retry_at_ms);
                        return 0;
                }
                kp_err_t err = fol_assign(f);
                if (err && !assigned) {
                        fol_serve(f);
                        if (!f->waiting_logged)
                                KP_LOG(
                                    f->conf.quiet ? KP_LOG_DEBUG : KP_LOG_INFO,
                                    "%s: waiting for topic %s", f->log_name,
                                    f->topic);
                        f->waiting_logged = 1;
                        f->retry_at_ms    = kp_mono_ms() + KP_FOL_RETRY_MS;
                        fol_idle(f, wait_ms, f->retry_at_ms);
                        return 0;
                }
                f->waiting_logged = 0;
                return 0;
        }

        rd_kafka_poll(f->rk_end, 0);
        rd_kafka_message_t *m = rd_kafka_consumer_poll(f->rk, wait_ms);
        if (!m)
                return 0;
        *eventp    = 1;
        int handed = fol_event(f, m);
        rd_kafka_message_destroy(m);
        return handed;
}

static void *fol_main(void *arg) {
        kp_follower_t *f = arg;
        int event;
        pthread_mutex_lock(&f->lock);
        while (!f->stop) {
                pthread_mutex_unlock(&f->lock);
                fol_step(f, KP_FOL_POLL_MS, &event);
                pthread_mutex_lock(&f->lock);
        }
        pthread_mutex_unlock(&f->lock);
        return NULL;
}

/* The configuration of the reading handle. @returns NULL with errstr. */
static rd_kafka_conf_t *fol_conf_new(const kp_app_conf_t *c,
                                     const char *client_id, char *errstr,
                                     size_t errstr_size) {
        /* rd_kafka_assign() and rd_kafka_consumer_poll() need a consumer
         * group handle, hence a group.id; it is never joined (no subscribe)
         * and never committed to. */
        const kp_kafka_prop_t props[] = {
            {"group.id", client_id, KP_PROP_REQUIRE},
            {"enable.auto.commit", "false", KP_PROP_REQUIRE},
            {"enable.auto.offset.store", "false", KP_PROP_REQUIRE},
            {"isolation.level", "read_committed", KP_PROP_REQUIRE},
            {"enable.partition.eof", "true", KP_PROP_REQUIRE},
            {"auto.offset.reset", "earliest", KP_PROP_REQUIRE},
            /* Under read_committed the broker does not end a long poll
             * when commit markers make records readable, so a sync would
             * wait for the whole fetch.wait.max.ms (500 ms by default):
             * poll faster. */
            {"fetch.wait.max.ms", "100", KP_PROP_DEFAULT},
            KP_KAFKA_CONSUMER_MEMORY("2000", "1024"),
            {NULL},
        };
        rd_kafka_conf_t *conf =
            kp_kafka_conf_build(c, client_id, props, errstr, errstr_size);
        return conf;
}

/* A consumer handle of @p conf, which it takes over either way.
 * @returns NULL with errstr. */
static rd_kafka_t *fol_consumer_new(const kp_follower_t *f,
                                    rd_kafka_conf_t *conf, char *errstr,
                                    size_t errstr_size) {
        char rderr[512];
        /* rd_kafka_new() takes ownership of conf only on success. */
        rd_kafka_t *rk =
            rd_kafka_new(RD_KAFKA_CONSUMER, conf, rderr, sizeof(rderr));
        if (!rk) {
                snprintf(errstr, errstr_size, "%s: consumer: %s", f->log_name,
                         rderr);
                rd_kafka_conf_destroy(conf);
        }
        return rk;
}

/* The parts of kp_follower_new() that need the follower to exist.
 * @returns 0, or -1 with errstr (the caller destroys the follower). */
static int fol_start(kp_follower_t *f, const kp_app_conf_t *c, char *errstr,
                     size_t errstr_size) {
        int r;

        rd_kafka_conf_t *conf =
            fol_conf_new(c, f->client_id, errstr, errstr_size);
        if (!conf)
                return -1;
        rd_kafka_conf_set_error_cb(conf, fol_error_cb);
        rd_kafka_conf_set_opaque(conf, f);
        if (!(f->rk = fol_consumer_new(f, conf, errstr, errstr_size)))
                return -1;
        rd_kafka_resp_err_t err = rd_kafka_poll_set_consumer(f->rk);
        if (err) {
                snprintf(errstr, errstr_size, "%s: consumer: %s", f->log_name,
                         rd_kafka_err2str(err));
                return -1;
        }

        conf = kp_kafka_conf_new(c, NULL, f->client_id, errstr, errstr_size);
        if (!conf)
                return -1;
        if (kp_kafka_conf_set(conf, "isolation.level", "read_uncommitted",
                              errstr, errstr_size)) {
                rd_kafka_conf_destroy(conf);
                return -1;
        }
        if (!(f->rk_end = fol_consumer_new(f, conf, errstr, errstr_size)))
                return -1;
        f->rkt = rd_kafka_topic_new(f->rk, f->topic, NULL);
        if (!f->rkt) {
                snprintf(errstr, errstr_size, "%s: topic %s: %s", f->log_name,
                         f->topic, rd_kafka_err2str(rd_kafka_last_error()));
                return -1;
        }
        if (f->conf.threaded) {
                if ((r = pthread_create(&f->thread, NULL, fol_main, f))) {
                        snprintf(errstr, errstr_size, "%s: thread: %s",
                                 f->log_name, strerror(r));
                        return -1;
                }
                f->thread_started = 1;
        }
        return 0;
}

kp_follower_t *kp_follower_new(const kp_app_conf_t *c,
                               const kp_follower_conf_t *fc, char *errstr,
                               size_t errstr_size) {
        pthread_condattr_t cattr;
        int r;

        if (!fc || !fc->topic || !*fc->topic) {
                snprintf(errstr, errstr_size, "follower: no topic given");
                return NULL;
        }
        if ((fc->decode || fc->free_decoded) && !fc->keep_table) {
                snprintf(errstr, errstr_size,
                         "follower: decode and free_decoded need keep_table");
                return NULL;
        }
        if (fc->stale_after_ms < 0) {
                snprintf(errstr, errstr_size,
                         "follower: stale_after_ms must not be negative");
                return NULL;
        }

        kp_follower_t *f = kp_calloc(1, sizeof(*f));
        f->conf          = *fc;
        f->topic         = kp_strdup(fc->topic);
        f->client_id =
            kp_strdup(fc->client_id ? fc->client_id : "kpay-follower");
        f->log_name       = kp_strdup(fc->log_name ? fc->log_name : "follower");
        f->conf.topic     = f->topic;
        f->conf.client_id = f->client_id;
        f->conf.log_name  = f->log_name;
        f->end_pending    = fc->from_end;

        if ((r = pthread_mutex_init(&f->lock, NULL))) {
                snprintf(errstr, errstr_size, "%s: mutex: %s", f->log_name,
                         strerror(r));
                goto fail_early;
        }
        if ((r = pthread_condattr_init(&cattr)) ||
            (r = pthread_condattr_setclock(&cattr, CLOCK_MONOTONIC)) ||
            (r = pthread_cond_init(&f->cond, &cattr))) {
                snprintf(errstr, errstr_size, "%s: condition: %s", f->log_name,
                         strerror(r));
                pthread_condattr_destroy(&cattr);
                pthread_mutex_destroy(&f->lock);
                goto fail_early;
        }
        pthread_condattr_destroy(&cattr);

        if (fol_start(f, c, errstr, errstr_size)) {
                kp_follower_destroy(f);
                return NULL;
        }
        return f;

fail_early:
        kp_free(f->topic);
        kp_free(f->client_id);
        kp_free(f->log_name);
        kp_free(f);
        return NULL;
}

int kp_follower_poll(kp_follower_t *f, int timeout_ms) {
        int n = 0, event = 0;
        if (!f || f->conf.threaded)
                return -1;
        int64_t deadline = kp_mono_ms() + (timeout_ms > 0 ? timeout_ms : 0);
        for (;;) {
                int64_t left = deadline - kp_mono_ms();
                n += fol_step(f, left > 0 ? (int)left : 0, &event);
                if (event || left <= 0)
                        break;
        }
        for (int i = 0; event && i < KP_FOL_POLL_MAX; i++)
                n += fol_step(f, 0, &event);
        return n;
}

/* Milliseconds left before @p deadline_ms (CLOCK_MONOTONIC, or negative for
 * none) for one request, at most @p cap; <= 0 when the time is up. */
static int fol_left(int64_t deadline_ms, int cap) {
        if (deadline_ms < 0)
                return cap;
        int64_t left = deadline_ms - kp_mono_ms();
        return left < cap ? (int)left : cap;
}

/* Pauses after a failed request before the next try: *@p wait_ms (100 ms
 * at first, doubled after each failure up to 1 s), never past the
 * deadline. Waits on the condition, so stop ends it early. */
static void fol_backoff(kp_follower_t *f, int64_t deadline_ms,
                        int64_t *wait_ms) {
        int64_t until = kp_mono_ms() + *wait_ms;
        *wait_ms      = *wait_ms < 500 ? *wait_ms * 2 : 1000;
        if (deadline_ms >= 0 && deadline_ms < until)
                until = deadline_ms;
        pthread_mutex_lock(&f->lock);
        if (!f->stop)
                fol_wait(f, until);
        pthread_mutex_unlock(&f->lock);
}

/* The end offsets (high watermarks) of the @p cnt partitions, -1 for an
 * empty one, asked for until @p deadline_ms. @returns NULL on time-out. */
static int64_t *fol_end_offsets(kp_follower_t *f, int32_t cnt,
                                int64_t deadline_ms) {
        int64_t *end = kp_calloc((size_t)cnt, sizeof(*end));
        int64_t wait = 100;
        for (int32_t p = 0; p < cnt; p++) {
                for (;;) {
                        int64_t lo, hi;
                        int left = fol_left(deadline_ms, 5000);
                        if (left <= 0) {
                                kp_free(end);
                                return NULL;
                        }
                        rd_kafka_resp_err_t err =
                            rd_kafka_query_watermark_offsets(
                                f->rk_end, f->topic, p, &lo, &hi, left);
                        if (!err) {
                                /* Nothing to read when the log is empty. */
                                end[p] = hi > lo ? hi : -1;
                                break;
                        }
                        KP_DEBUG("%s: end offset of %s [%" PRId32 "]: %s",
                                 f->log_name, f->topic, p,
                                 rd_kafka_err2str(err));
                        fol_backoff(f, deadline_ms, &wait);
                }
        }
        return end;
}

/* @locality with the lock */
static int fol_reached(const kp_follower_t *f, const int64_t *end,
                       int32_t cnt) {
        if (f->part_cnt < cnt)
                return 0;
        for (int32_t p = 0; p < cnt; p++)
                if (end[p] >= 0 && f->position[p] < end[p])
                        return 0;
        return 1;
}

kp_err_t kp_follower_sync(kp_follower_t *f, int timeout_ms) {
        int64_t deadline = timeout_ms < 0 ? -1 : kp_mono_ms() + timeout_ms;
        int32_t cnt;
        kp_err_t ret = KP_ERR_TIMED_OUT;
        int event;

        if (!f)
                return KP_ERR_INVALID_ARG;

        /* The end offsets at call time. Requests that fail (no broker yet)
         * are retried until the deadline. */
        int64_t wait = 100;
        for (;;) {
                int left = fol_left(deadline, 5000);
                if (left <= 0)
                        return KP_ERR_TIMED_OUT;
                cnt = fol_partition_count(f, left);
                if (cnt == 0) {
                        /* No topic: nothing to read, and everything a topic
                         * created from now on holds is new. */
                        pthread_mutex_lock(&f->lock);
                        f->end_pending = 0;
                        pthread_mutex_unlock(&f->lock);
                        return KP_OK;
                }
                if (cnt > 0)
                        break;
                fol_backoff(f, deadline, &wait);
        }
        int64_t *end = fol_end_offsets(f, cnt, deadline);
        if (!end)
                return KP_ERR_TIMED_OUT;

        /* Wait for the reading thread to reach them, or read up to them. */
        pthread_mutex_lock(&f->lock);
        if (f->part_cnt < cnt) {
                /* Not following yet, or the topic grew: look again now. */
                f->recheck = 1;
                pthread_cond_broadcast(&f->cond);
        }
        for (;;) {
                if (fol_reached(f, end, cnt)) {
                        ret = KP_OK;
                        break;
                }
                if (f->stop)
                        break;
                if (f->conf.threaded) {
                        if (fol_wait(f, deadline) == ETIMEDOUT)
                                break;
                        continue;
                }
                int left = fol_left(deadline, KP_FOL_POLL_MS);
                if (left <= 0)
                        break;
                pthread_mutex_unlock(&f->lock);
                fol_step(f, left, &event);
                pthread_mutex_lock(&f->lock);
        }
        pthread_mutex_unlock(&f->lock);
        kp_free(end);
        return ret;
}

kp_err_t kp_follower_get(kp_follower_t *f, const void *key, size_t key_len,
                         char **valuep, size_t *lenp) {
        size_t i;
        kp_err_t ret = KP_ERR_NOT_FOUND;

        if (valuep)
                *valuep = NULL;
        if (lenp)
                *lenp = 0;
        if (!f || !f->conf.keep_table || !valuep || (!key && key_len))
                return KP_ERR_INVALID_ARG;
        pthread_mutex_lock(&f->lock);
        if (fol_find(f, key, key_len, &i)) {
                const kp_fol_entry_t *e = &f->entries[i];
                *valuep                 = kp_strndup(e->value, e->value_len);
                if (lenp)
                        *lenp = e->value_len;
                ret = KP_OK;
        }
        pthread_mutex_unlock(&f->lock);
        return ret;
}

size_t kp_follower_foreach(kp_follower_t *f, kp_follower_foreach_cb_t *cb,
                           void *opaque) {
        size_t n = 0;
        if (!f || !cb)
                return 0;
        pthread_mutex_lock(&f->lock);
        while (n < f->entry_cnt) {
                const kp_fol_entry_t *e = &f->entries[n++];
                if (cb(e->key, e->key_len, e->value, e->value_len, e->decoded,
                       e->recv_ms, opaque))
                        break;
        }
        pthread_mutex_unlock(&f->lock);
        return n;
}

void kp_follower_destroy(kp_follower_t *f) {
        if (!f)
                return;
        if (f->thread_started) {
                pthread_mutex_lock(&f->lock);
                f->stop = 1;
                pthread_cond_broadcast(&f->cond);
                pthread_mutex_unlock(&f->lock);
                int r = pthread_join(f->thread, NULL);
                if (r)
                        KP_ERROR("%s: joining the thread: %s", f->log_name,
                                 strerror(r));
        }
        if (f->rkt)
                rd_kafka_topic_destroy(f->rkt);
        if (f->rk) {
                rd_kafka_resp_err_t err = rd_kafka_consumer_close(f->rk);
                if (err)
                        KP_WARN("%s: closing the consumer: %s", f->log_name,
                                rd_kafka_err2str(err));
                rd_kafka_destroy(f->rk);
        }
        if (f->rk_end)
                rd_kafka_destroy(f->rk_end);
        for (size_t i = 0; i < f->entry_cnt; i++) {
                fol_entry_clear_value(f, &f->entries[i]);
                kp_free(f->entries[i].key);
        }
        kp_free(f->entries);
        kp_free(f->position);
        pthread_cond_destroy(&f->cond);
        pthread_mutex_destroy(&f->lock);
        kp_free(f->topic);
        kp_free(f->client_id);
        kp_free(f->log_name);
        kp_free(f);
}
