/* kp_kafka.c: librdkafka configuration shared by every kpay client. */
#include "kpay/kp_kafka.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "kpay/kp_app.h"
#include "kpay/kp_conf.h"
#include "kpay/kp_log.h"
#include "kpay/kp_time.h"

kp_err_t kp_kafka_conf_set(rd_kafka_conf_t *conf, const char *name,
                           const char *value, char *errstr,
                           size_t errstr_size) {
        char rderr[256];
        if (rd_kafka_conf_set(conf, name, value, rderr, sizeof(rderr)) !=
            RD_KAFKA_CONF_OK) {
                snprintf(errstr, errstr_size, "Kafka property %s=%s: %s", name,
                         value, rderr);
                return KP_ERR_CONFIG;
        }
        return KP_OK;
}

rd_kafka_conf_t *kp_kafka_conf_new(const kp_app_conf_t *c,
                                   const char *bootstrap, const char *client_id,
                                   char *errstr, size_t errstr_size) {
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        if (!bootstrap && c)
                bootstrap = c->bootstrap_servers;
        if (!bootstrap)
                bootstrap = "127.0.0.1:9092";
        if (kp_kafka_conf_set(conf, "bootstrap.servers", bootstrap, errstr,
                              errstr_size) ||
            (client_id && kp_kafka_conf_set(conf, "client.id", client_id,
                                            errstr, errstr_size)))
                goto fail;
        rd_kafka_conf_set_log_cb(conf, kp_log_rdkafka_cb);
        /* A default of every client (-X overrides it below): a small
         * request (a commit, an offset fetch, a heartbeat) goes out at
         * once instead of waiting for the previous one's ACK. librdkafka
         * 2.0.2 leaves Nagle on; later versions agree. */
        if (kp_kafka_conf_set(conf, "socket.nagle.disable", "true", errstr,
                              errstr_size))
                goto fail;
        if (c) {
                for (size_t i = 0; i < c->kafka.cnt; i++)
                        if (kp_kafka_conf_set(conf, c->kafka.keys[i],
                                              c->kafka.values[i], errstr,
                                              errstr_size))
                                goto fail;
        }
        return conf;
fail:
        rd_kafka_conf_destroy(conf);
        return NULL;
}

/* The value the user passed with -X for property @p name, under its name
 * or under librdkafka's alias of it, or NULL. */
static const char *user_value(const kp_app_conf_t *c, const char *name) {
        static const char *const aliases[][2] = {
            {"linger.ms", "queue.buffering.max.ms"},
            {"message.timeout.ms", "delivery.timeout.ms"},
            {"acks", "request.required.acks"},
            {"max.in.flight", "max.in.flight.requests.per.connection"},
        };
        if (!c)
                return NULL;
        const char *v = kp_conf_kv_get(&c->kafka, name);
        for (size_t i = 0; !v && i < sizeof(aliases) / sizeof(*aliases); i++) {
                if (!strcmp(name, aliases[i][0]))
                        v = kp_conf_kv_get(&c->kafka, aliases[i][1]);
                else if (!strcmp(name, aliases[i][1]))
                        v = kp_conf_kv_get(&c->kafka, aliases[i][0]);
        }
        return v;
}

rd_kafka_conf_t *kp_kafka_conf_build(const kp_app_conf_t *c,
                                     const char *client_id,
                                     const kp_kafka_prop_t *props, char *errstr,
                                     size_t errstr_size) {
        rd_kafka_conf_t *conf =
            kp_kafka_conf_new(c, NULL, client_id, errstr, errstr_size);
        if (!conf)
                return NULL;
        for (const kp_kafka_prop_t *p = props; p && p->name; p++) {
                if (!p->value)
                        continue;
                const char *user = user_value(c, p->name);
                if (p->kind == KP_PROP_DEFAULT && user)
                        continue; /* -X wins over a default */
                if (p->kind == KP_PROP_REQUIRE && user &&
                    strcmp(user, p->value))
                        KP_WARN(
                            "-X %s=%s ignored for %s: kpay requires "
                            "%s=%s there (docs/runtime.md)",
                            p->name,
                            kp_kafka_prop_is_secret(p->name) ? "********"
                                                             : user,
                            client_id ? client_id : "a client", p->name,
                            p->value);
                if (kp_kafka_conf_set(conf, p->name, p->value, errstr,
                                      errstr_size)) {
                        rd_kafka_conf_destroy(conf);
                        return NULL;
                }
        }
        return conf;
}

int kp_kafka_prop_is_secret(const char *name) {
        static const char *const needles[] = {"password",
                                              "secret",
                                              "sasl.jaas",
                                              "ssl.key",
                                              "ssl_key",
                                              "keystore",
                                              "oauthbearer.config",
                                              "sasl.oauthbearer.token",
                                              NULL};
        for (size_t i = 0; needles[i]; i++)
                if (strstr(name, needles[i]))
                        return 1;
        return 0;
}

json_t *kp_kafka_conf_json(rd_kafka_t *rk) {
        json_t *obj = json_object();
        size_t cnt  = 0;
        const char **kv =
            rd_kafka_conf_dump((rd_kafka_conf_t *)rd_kafka_conf(rk), &cnt);
        for (size_t i = 0; i + 1 < cnt; i += 2)
                json_object_set_new(
                    obj, kv[i],
                    json_string(kp_kafka_prop_is_secret(kv[i]) ? "********"
                                                               : kv[i + 1]));
        rd_kafka_conf_dump_free(kv, cnt);
        return obj;
}

kp_err_t kp_kafka_wait_ready(rd_kafka_t *rk, int timeout_ms) {
        int64_t deadline = kp_mono_ms() + timeout_ms;
        kp_backoff_t b;
        kp_backoff_init(&b, 100, 1000, timeout_ms);
        for (;;) {
                const struct rd_kafka_metadata *md = NULL;
                int64_t left                       = deadline - kp_mono_ms();
                if (left <= 0)
                        return KP_ERR_TIMED_OUT;
                rd_kafka_resp_err_t err = rd_kafka_metadata(
                    rk, 0, NULL, &md, (int)(left < 2000 ? left : 2000));
                if (!err) {
                        int brokers = md->broker_cnt;
                        rd_kafka_metadata_destroy(md);
                        if (brokers > 0)
                                return KP_OK;
                }
                KP_DEBUG("waiting for the cluster: %s", rd_kafka_err2str(err));
                /* A stop request ends the wait (the caller sees it). */
                if (kp_backoff_wait(&b, kp_app_running))
                        return KP_ERR_TIMED_OUT;
        }
}

/* ------------------------------------------------------------------------
 * One record, delivered or not (kpay-control's writes, audit records). */

typedef struct sync_delivery_s {
        atomic_int done;
        rd_kafka_resp_err_t err;
} sync_delivery_t;

void kp_kafka_sync_dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m,
                         void *opaque) {
        (void)rk;
        (void)opaque;
        sync_delivery_t *d = m->_private;
        if (!d)
                return;
        d->err = m->err;
        atomic_store(&d->done, 1);
}

kp_err_t kp_kafka_produce_sync(rd_kafka_t *rk, const char *topic,
                               int32_t partition, const void *key, size_t klen,
                               const void *val, size_t vlen,
                               rd_kafka_headers_t *hdrs, int timeout_ms) {
        sync_delivery_t d = {0};
        rd_kafka_resp_err_t err;
        if (hdrs)
                err = rd_kafka_producev(
                    rk, RD_KAFKA_V_TOPIC(topic),
                    RD_KAFKA_V_PARTITION(partition), RD_KAFKA_V_KEY(key, klen),
                    RD_KAFKA_V_VALUE((void *)val, vlen),
                    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                    RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_OPAQUE(&d),
                    RD_KAFKA_V_END);
        else
                err = rd_kafka_producev(
                    rk, RD_KAFKA_V_TOPIC(topic),
                    RD_KAFKA_V_PARTITION(partition), RD_KAFKA_V_KEY(key, klen),
                    RD_KAFKA_V_VALUE((void *)val, vlen),
                    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                    RD_KAFKA_V_OPAQUE(&d), RD_KAFKA_V_END);
        if (err) {
                /* The headers are ours again when producev fails. */
                if (hdrs)
                        rd_kafka_headers_destroy(hdrs);
                KP_ERROR("producing to %s: %s", topic, rd_kafka_err2str(err));
                return KP_ERR_KAFKA;
        }
        int64_t deadline = kp_mono_ms() + timeout_ms + 5000;
        while (!atomic_load(&d.done) && kp_mono_ms() < deadline)
                rd_kafka_poll(rk, 50);
        if (!atomic_load(&d.done)) {
                /* message.timeout.ms is below the deadline: not reached. */
                KP_ERROR("producing to %s: no delivery report", topic);
                rd_kafka_purge(
                    rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
                while (!atomic_load(&d.done))
                        rd_kafka_poll(rk, 50);
                return KP_ERR_TIMED_OUT;
        }
        if (d.err) {
                KP_ERROR("producing to %s: %s", topic, rd_kafka_err2str(d.err));
                return KP_ERR_KAFKA;
        }
        return KP_OK;
}
