/* kp_kafka.c: librdkafka configuration shared by every kpay client. */
#include "kpay/kp_kafka.h"

#include <stdio.h>

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

kp_err_t kp_kafka_wait_ready(rd_kafka_t *rk, int timeout_ms) {
        int64_t deadline = kp_mono_ms() + timeout_ms;
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
                kp_sleep_ms(100);
        }
}
