/* kp_kafka.c: librdkafka configuration shared by every kpay client. */
#include "kpay/kp_kafka.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "kpay/kp_app.h"
#include "kpay/kp_conf.h"
#include "kpay/kp_log.h"
#include "kpay/kp_mem.h"
#include "kpay/kp_time.h"

kp_err_t kp_kafka_conf_set(rd_kafka_conf_t *conf, const char *name,
                           const char *value, char *errstr,
                           size_t errstr_size) {
        char rderr[256];
        rd_kafka_conf_res_t res =
            rd_kafka_conf_set(conf, name, value, rderr, sizeof(rderr));
        if (res != RD_KAFKA_CONF_OK) {
                /* librdkafka's reason may quote the value: not that of a
                 * secret. */
                if (kp_kafka_prop_is_secret(name))
                        snprintf(errstr, errstr_size, "Kafka property %s: %s",
                                 name,
                                 value && *value && strstr(rderr, value)
                                     ? (res == RD_KAFKA_CONF_UNKNOWN
                                            ? "no such configuration property"
                                            : "invalid value")
                                     : rderr);
                else
                        snprintf(errstr, errstr_size,
                                 "Kafka property %s=%s: %s", name, value,
                                 rderr);
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
        rd_kafka_conf_set_log_cb(conf, kp_kafka_log_cb);
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
                if (p->kind != KP_PROP_REQUIRE && user)
                        continue; /* -X wins over a default */
                if (p->kind == KP_PROP_DEFAULT_IF_KNOWN) {
                        char why[256];
                        rd_kafka_conf_res_t r = rd_kafka_conf_set(
                            conf, p->name, p->value, why, sizeof(why));
                        if (r == RD_KAFKA_CONF_UNKNOWN)
                                continue; /* not this librdkafka's */
                        if (r != RD_KAFKA_CONF_OK) {
                                snprintf(errstr, errstr_size,
                                         "Kafka property %s: %s", p->name, why);
                                rd_kafka_conf_destroy(conf);
                                return NULL;
                        }
                        continue;
                }
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
                if (kp_kafka_auth_failure(NULL, 0))
                        return KP_ERR_AUTH;
                rd_kafka_resp_err_t err = rd_kafka_metadata(
                    rk, 0, NULL, &md, (int)(left < 1000 ? left : 1000));
                if (!err) {
                        int brokers = md->broker_cnt;
                        rd_kafka_metadata_destroy(md);
                        if (brokers > 0) {
                                kp_kafka_mark_ready();
                                return KP_OK;
                        }
                }
                if (kp_kafka_auth_failure(NULL, 0))
                        return KP_ERR_AUTH;
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

kp_err_t kp_kafka_wait_ready_reason(rd_kafka_t *rk, const char *bootstrap,
                                    int timeout_ms, char *errstr,
                                    size_t errstr_size) {
        kp_err_t err = kp_kafka_wait_ready(rk, timeout_ms);
        if (err && !kp_kafka_auth_failure(errstr, errstr_size))
                kp_errstr_set(err, errstr, errstr_size,
                              "no Kafka broker answered at %s within %d ms",
                              bootstrap ? bootstrap : "?", timeout_ms);
        return err;
}

/* ------------------------------------------------------------------------
 * Authentication failures at startup (kp_kafka_auth_failure()). */

static atomic_int kafka_ready; /* the cluster accepted this process */
static atomic_int auth_failed; /* ... or refused it first */
static pthread_mutex_t auth_lock = PTHREAD_MUTEX_INITIALIZER;
static char auth_reason[700];

void kp_kafka_mark_ready(void) {
        atomic_store(&kafka_ready, 1);
}

int kp_kafka_auth_failure(char *buf, size_t size) {
        if (atomic_load(&kafka_ready) || !atomic_load(&auth_failed))
                return 0;
        if (buf && size) {
                pthread_mutex_lock(&auth_lock);
                snprintf(buf, size, "%s", auth_reason);
                pthread_mutex_unlock(&auth_lock);
        }
        return 1;
}

/* What kind of failure librdkafka's broker-failure line @p buf reports:
 * "SASL", "TLS" or NULL. librdkafka (2.10-2.14) words them so: "SASL
 * authentication error: ..." (wrong user or password), "SASL <MECH>
 * mechanism handshake failed: ..." (a mechanism the broker does not
 * offer), "SSL handshake failed: ... certificate verify failed ..." and
 * "... certificate verify failed (after N ms in state SSL_HANDSHAKE)".
 * What librdkafka itself failed at ("Local: Broker transport failure"
 * while authenticating: a broker going away) and a handshake cut short
 * without a word about the certificate are not refusals: retried. */
static const char *auth_failure_kind(const char *fac, const char *buf) {
        /* FAIL: the broker thread's line; ERROR: the same failure served
         * from the client's queue by a poll (no error callback set). */
        if (strcmp(fac, "FAIL") && strcmp(fac, "ERROR"))
                return NULL;
        if ((strstr(buf, "SASL authentication error") ||
             strstr(buf, "mechanism handshake failed")) &&
            !strstr(buf, "Local: "))
                return "SASL";
        if ((strstr(buf, "SSL handshake failed") ||
             strstr(buf, "in state SSL_HANDSHAKE")) &&
            strstr(buf, "certificate"))
                return "TLS";
        return NULL;
}

void kp_kafka_log_cb(const rd_kafka_t *rk, int level, const char *fac,
                     const char *buf) {
        const char *kind =
            level <= LOG_ERR ? auth_failure_kind(fac, buf) : NULL;
        if (kind && !atomic_load(&kafka_ready)) {
                /* "[thrd:...]: " is librdkafka's thread, not news. */
                const char *msg = buf;
                if (!strncmp(msg, "[thrd:", 6) && strstr(msg, "]: "))
                        msg = strstr(msg, "]: ") + 3;
                pthread_mutex_lock(&auth_lock);
                if (!atomic_load(&auth_failed))
                        snprintf(
                            auth_reason, sizeof(auth_reason),
                            !strcmp(kind, "SASL")
                                ? "Kafka refused this client's SASL "
                                  "credentials: %.450s; check sasl.mechanisms, "
                                  "sasl.username and sasl.password "
                                  "(--kafka-config, KPAY_KAFKA_SASL_PASSWORD "
                                  "or --kafka-password-file; "
                                  "docs/security.md)"
                                : "Kafka TLS handshake failed: %.450s; "
                                  "check security.protocol and "
                                  "ssl.ca.location (--kafka-config; "
                                  "docs/security.md)",
                            msg);
                atomic_store(&auth_failed, 1);
                pthread_mutex_unlock(&auth_lock);
                level = LOG_DEBUG; /* the caller's error line says it */
        } else if (atomic_load(&auth_failed) && !atomic_load(&kafka_ready) &&
                   !strcmp(fac, "ERROR") && strstr(buf, "brokers are down")) {
                level = LOG_DEBUG;
        }
        kp_log_rdkafka_cb(rk, level, fac, buf);
}

/* ------------------------------------------------------------------------
 * --kafka-config and the SASL password (kp_kafka_config_apply()). */

typedef struct file_props_s {
        const char *path;
        kp_conf_kv_t kv;
} file_props_t;

/* A librdkafka name for the Java client's properties that have none. */
static const char *java_hint(const char *key) {
        static const char *const hints[][2] = {
            {"sasl.jaas.config", "use sasl.username and sasl.password"},
            {"ssl.truststore.location", "use ssl.ca.location with a PEM file"},
            {"ssl.truststore.password", "use ssl.ca.location with a PEM file"},
            {"ssl.truststore.type", "use ssl.ca.location with a PEM file"},
        };
        for (size_t i = 0; i < sizeof(hints) / sizeof(*hints); i++)
                if (!strcmp(key, hints[i][0]))
                        return hints[i][1];
        return NULL;
}

/* One property of the file: checked against librdkafka, then kept. */
static kp_err_t file_prop(const char *key, const char *value, int line,
                          void *opaque, char *errstr, size_t errstr_size) {
        file_props_t *fp = opaque;
        if (!strcmp(key, "bootstrap.servers") ||
            !strcmp(key, "metadata.broker.list"))
                return kp_errstr_set(
                    KP_ERR_CONFIG, errstr, errstr_size,
                    "%s:%d: %s: give the brokers with --bootstrap-servers "
                    "(env KPAY_BOOTSTRAP_SERVERS), not in --kafka-config",
                    fp->path, line, key);
        if (!strcmp(key, "client.id"))
                return kp_errstr_set(KP_ERR_CONFIG, errstr, errstr_size,
                                     "%s:%d: client.id: kpay names each "
                                     "client itself (-X overrides it)",
                                     fp->path, line);
        rd_kafka_conf_t *scratch = rd_kafka_conf_new();
        char why[300];
        kp_err_t err = kp_kafka_conf_set(scratch, key, value, why, sizeof(why));
        rd_kafka_conf_destroy(scratch);
        if (err) {
                const char *hint = java_hint(key);
                return kp_errstr_set(KP_ERR_CONFIG, errstr, errstr_size,
                                     "%s:%d: %s%s%s%s", fp->path, line, why,
                                     hint ? " (a Java client property: " : "",
                                     hint ? hint : "", hint ? ")" : "");
        }
        kp_conf_kv_set(&fp->kv, key, value);
        return KP_OK;
}

/* The password of KPAY_KAFKA_SASL_PASSWORD or of the first line of
 * @p path (its line end dropped): a new string, or NULL with a reason
 * (or none when neither is given: *errstr stays ""). */
static char *sasl_password(const char *path, char *errstr, size_t errstr_size) {
        const char *env = getenv("KPAY_KAFKA_SASL_PASSWORD");
        if (env && *env && path && *path) {
                kp_errstr_set(KP_ERR_CONFIG, errstr, errstr_size,
                              "both KPAY_KAFKA_SASL_PASSWORD and "
                              "--kafka-password-file are set: give one");
                return NULL;
        }
        if (env && *env)
                return kp_strdup(env);
        if (!path || !*path)
                return NULL;
        FILE *f = fopen(path, "r");
        if (!f) {
                kp_errstr_set(KP_ERR_CONFIG, errstr, errstr_size,
                              "--kafka-password-file: cannot open %s: %s", path,
                              strerror(errno));
                return NULL;
        }
        char line[1024];
        char *pw = NULL;
        if (fgets(line, sizeof(line), f)) {
                size_t n = strcspn(line, "\r\n");
                line[n]  = '\0';
                if (n)
                        pw = kp_strdup(line);
        }
        int bad = ferror(f);
        fclose(f);
        if (!pw)
                kp_errstr_set(KP_ERR_CONFIG, errstr, errstr_size,
                              "--kafka-password-file %s: %s", path,
                              bad ? "read error"
                                  : "the first line is empty (it holds the "
                                    "password)");
        return pw;
}

kp_err_t kp_kafka_config_apply(kp_app_conf_t *c, char *errstr,
                               size_t errstr_size) {
        file_props_t fp = {.path = c->kafka_config};
        if (errstr_size)
                *errstr = '\0';
        if (c->kafka_config && *c->kafka_config) {
                char why[600];
                kp_err_t err = kp_conf_props_load(c->kafka_config, file_prop,
                                                  &fp, why, sizeof(why));
                if (err) {
                        kp_conf_kv_clear(&fp.kv);
                        return kp_errstr_set(KP_ERR_CONFIG, errstr, errstr_size,
                                             "--kafka-config %s", why);
                }
        }
        char *pw = sasl_password(c->kafka_password_file, errstr, errstr_size);
        if (!pw && errstr_size && *errstr) {
                kp_conf_kv_clear(&fp.kv);
                return KP_ERR_CONFIG;
        }
        if (pw) {
                kp_conf_kv_set(&fp.kv, "sasl.password", pw);
                memset(pw, 0, strlen(pw));
                kp_free(pw);
        }
        /* -X last: it wins. */
        for (size_t i = 0; i < c->kafka.cnt; i++)
                kp_conf_kv_set(&fp.kv, c->kafka.keys[i], c->kafka.values[i]);
        kp_conf_kv_clear(&c->kafka);
        c->kafka = fp.kv;
        return KP_OK;
}
