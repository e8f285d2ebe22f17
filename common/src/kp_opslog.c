/* kp_opslog.c: WARN-and-above log lines to kpay.ops.log (kp_opslog.h). */
#include "kpay/kp_opslog.h"

#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "kpay/kp_json.h"
#include "kpay/kp_kafka.h"
#include "kpay/kp_log.h"
#include "kpay/kp_mem.h"
#include "kpay/kp_time.h"
#include "kpay/kp_topics.h"

/* One queued line. */
typedef struct opslog_line_s {
        kp_log_level_t level;
        int64_t ts_ms;
        char *msg;
} opslog_line_t;

struct kp_opslog_s {
        char *service, *instance;
        char topic[256];
        rd_kafka_t *rk;
        pthread_t thread;
        int thread_started;

        pthread_mutex_t lock; /* the ring and stop */
        pthread_cond_t cond;
        opslog_line_t ring[KP_OPSLOG_QUEUE_MAX];
        size_t head, cnt;
        int stop;

        _Atomic int64_t dropped, delivered;
        kp_counter_t *m_dropped, *m_delivered;
};

static void count_drop(kp_opslog_t *ol, int64_t n) {
        atomic_fetch_add(&ol->dropped, n);
        if (ol->m_dropped)
                kp_counter_add(ol->m_dropped, n);
}

/* kp_log's sink: copy the line, or drop it; never wait for the thread.
 * @locality any thread that logs, under kp_log's lock */
static void sink(kp_log_level_t level, int64_t ts_ms, const char *msg,
                 void *opaque) {
        kp_opslog_t *ol = opaque;
        if (pthread_mutex_trylock(&ol->lock)) {
                /* Only the sink thread takes the lock, to pop lines: being
                 * unable to take it now is rare, and waiting is not an
                 * option for a logging thread. */
                count_drop(ol, 1);
                return;
        }
        if (ol->cnt == KP_OPSLOG_QUEUE_MAX) {
                pthread_mutex_unlock(&ol->lock);
                count_drop(ol, 1);
                return;
        }
        opslog_line_t *l =
            &ol->ring[(ol->head + ol->cnt++) % KP_OPSLOG_QUEUE_MAX];
        l->level = level;
        l->ts_ms = ts_ms;
        l->msg   = kp_strdup(msg);
        pthread_cond_signal(&ol->cond);
        pthread_mutex_unlock(&ol->lock);
}

/* The producer's librdkafka lines: on stderr, never into the sink (a line
 * about the ops-log producer itself would feed itself). */
static void opslog_rdkafka_log_cb(const rd_kafka_t *rk, int level,
                                  const char *fac, const char *buf) {
        /* librdkafka also logs on the caller's thread (CONFWARN from
         * rd_kafka_new() on the daemon's main thread): restore the flag,
         * or that thread's own lines would never reach the sink again. */
        int was         = kp_log_sink_off;
        kp_log_sink_off = 1;
        kp_log_rdkafka_cb(rk, level, fac, buf);
        kp_log_sink_off = was;
}

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
        (void)rk;
        kp_opslog_t *ol = opaque;
        if (m->err) {
                count_drop(ol, 1);
        } else {
                atomic_fetch_add(&ol->delivered, 1);
                if (ol->m_delivered)
                        kp_counter_add(ol->m_delivered, 1);
        }
}

static void produce_line(kp_opslog_t *ol, const opslog_line_t *l) {
        json_t *o = json_object();
        if (!o) {
                count_drop(ol, 1);
                return;
        }
        kp_json_set(o, "v", json_integer(1));
        kp_json_set(o, "ts", json_integer((json_int_t)l->ts_ms));
        kp_json_set(o, "level", json_string(kp_log_level_name(l->level)));
        kp_json_set(o, "service", json_string(ol->service));
        kp_json_set(o, "instance", json_string(ol->instance));
        /* A message of invalid UTF-8 is kept as a placeholder. */
        json_t *msg = json_string(l->msg);
        kp_json_set(o, "msg", msg ? msg : json_string("(not UTF-8)"));
        kp_json_set(o, "dropped",
                    json_integer((json_int_t)atomic_load(&ol->dropped)));
        char *val               = kp_json_dump(o);
        rd_kafka_resp_err_t err = rd_kafka_producev(
            ol->rk, RD_KAFKA_V_TOPIC(ol->topic),
            RD_KAFKA_V_KEY(ol->service, strlen(ol->service)),
            RD_KAFKA_V_VALUE(val, strlen(val)),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_HEADER("kpay-hop", ol->service, -1), RD_KAFKA_V_END);
        kp_free(val);
        if (err)
                count_drop(ol, 1); /* the queue is full: the broker is gone */
}

static void *opslog_thread(void *arg) {
        kp_opslog_t *ol = arg;
        opslog_line_t batch[64];
        kp_log_sink_off = 1;
        for (;;) {
                size_t n = 0;
                int stop;
                pthread_mutex_lock(&ol->lock);
                if (!ol->cnt && !ol->stop) {
                        struct timespec ts;
                        clock_gettime(CLOCK_REALTIME, &ts);
                        ts.tv_nsec += 100 * 1000000L;
                        if (ts.tv_nsec >= 1000000000L) {
                                ts.tv_sec++;
                                ts.tv_nsec -= 1000000000L;
                        }
                        pthread_cond_timedwait(&ol->cond, &ol->lock, &ts);
                }
                while (ol->cnt && n < sizeof(batch) / sizeof(batch[0])) {
                        batch[n++] = ol->ring[ol->head];
                        ol->head   = (ol->head + 1) % KP_OPSLOG_QUEUE_MAX;
                        ol->cnt--;
                }
                stop = ol->stop && !ol->cnt;
                pthread_mutex_unlock(&ol->lock);
                for (size_t i = 0; i < n; i++) {
                        produce_line(ol, &batch[i]);
                        kp_free(batch[i].msg);
                }
                rd_kafka_poll(ol->rk, 0);
                if (stop)
                        return NULL;
        }
}

kp_opslog_t *kp_opslog_start(const kp_app_conf_t *c, const char *service,
                             const char *instance, kp_metrics_t *m,
                             char *errstr, size_t errstr_size) {
        static const kp_kafka_prop_t props[] = {
            /* Lines are worth little once old: give up after 30 s. */
            {"message.timeout.ms", "30000", KP_PROP_DEFAULT},
            {"linger.ms", "50", KP_PROP_DEFAULT},
            {"queue.buffering.max.messages", "10000", KP_PROP_DEFAULT},
            {"enable.idempotence", "false", KP_PROP_DEFAULT},
            {"acks", "1", KP_PROP_DEFAULT},
            {NULL},
        };
        char cid[300];
        snprintf(cid, sizeof(cid), "kpay-%s-%s-opslog", service,
                 instance ? instance : "-");
        rd_kafka_conf_t *conf =
            kp_kafka_conf_build(c, cid, props, errstr, errstr_size);
        if (!conf)
                return NULL;
        kp_opslog_t *ol = kp_calloc(1, sizeof(*ol));
        ol->service     = kp_strdup(service);
        ol->instance    = kp_strdup(instance ? instance : "");
        kp_topic_name(ol->topic, sizeof(ol->topic), c ? c->topic_prefix : "",
                      KP_TOPIC_OPS_LOG);
        rd_kafka_conf_set_log_cb(conf, opslog_rdkafka_log_cb);
        rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
        rd_kafka_conf_set_opaque(conf, ol);
        char rderr[512];
        ol->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, rderr, sizeof(rderr));
        if (!ol->rk) {
                rd_kafka_conf_destroy(conf);
                snprintf(errstr, errstr_size, "the ops-log producer: %s",
                         rderr);
                (void)kp_opslog_stop(ol, 0);
                return NULL;
        }
        pthread_mutex_init(&ol->lock, NULL);
        pthread_cond_init(&ol->cond, NULL);
        if (m) {
                ol->m_dropped = kp_metrics_counter(
                    m, "kpay_ops_log_dropped_total",
                    "Log lines lost on their way to kpay.ops.log (queue "
                    "full, broker gone).",
                    NULL);
                ol->m_delivered = kp_metrics_counter(
                    m, "kpay_ops_log_records_total",
                    "Log lines delivered to kpay.ops.log.", NULL);
        }
        if (pthread_create(&ol->thread, NULL, opslog_thread, ol)) {
                snprintf(errstr, errstr_size,
                         "the ops-log thread: cannot "
                         "start");
                (void)kp_opslog_stop(ol, 0);
                return NULL;
        }
        ol->thread_started = 1;
        kp_log_set_sink(sink, KP_LOG_WARN, ol);
        return ol;
}

int64_t kp_opslog_stop(kp_opslog_t *ol, int timeout_ms) {
        if (!ol)
                return 0;
        if (ol->thread_started) {
                kp_log_set_sink(NULL, KP_LOG_WARN, NULL);
                pthread_mutex_lock(&ol->lock);
                ol->stop = 1;
                pthread_cond_signal(&ol->cond);
                pthread_mutex_unlock(&ol->lock);
                pthread_join(ol->thread, NULL);
        }
        if (ol->rk) {
                if (ol->thread_started) {
                        rd_kafka_flush(ol->rk, timeout_ms > 0 ? timeout_ms : 0);
                        /* Purge what is left so that destroy does not wait
                         * for it; its delivery reports count the drops. */
                        rd_kafka_purge(ol->rk, RD_KAFKA_PURGE_F_QUEUE |
                                                   RD_KAFKA_PURGE_F_INFLIGHT);
                        for (int i = 0; i < 100 && rd_kafka_outq_len(ol->rk);
                             i++)
                                rd_kafka_poll(ol->rk, 10);
                }
                rd_kafka_destroy(ol->rk);
        }
        if (ol->thread_started) {
                pthread_mutex_destroy(&ol->lock);
                pthread_cond_destroy(&ol->cond);
        }
        int64_t dropped = atomic_load(&ol->dropped);
        kp_free(ol->service);
        kp_free(ol->instance);
        kp_free(ol);
        return dropped;
}

int64_t kp_opslog_dropped(const kp_opslog_t *ol) {
        return atomic_load(&((kp_opslog_t *)ol)->dropped);
}

int64_t kp_opslog_delivered(const kp_opslog_t *ol) {
        return atomic_load(&((kp_opslog_t *)ol)->delivered);
}
