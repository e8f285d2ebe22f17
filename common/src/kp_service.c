/* kp_service.c: what every daemon has (kp_service.h): HTTP with health,
 * readiness, metrics and config, the InstanceInfo announcer, the lifecycle
 * state machine, and the service daemon skeleton. */
#include "kpay/kp_service.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kpay/kp_kafka.h"
#include "kpay/kp_log.h"
#include "kpay/kp_mem.h"
#include "kpay/kp_opslog.h"
#include "kpay/kp_time.h"
#include "kpay/kp_topics.h"

#define SCONF(f) offsetof(kp_service_conf_t, f)
static const kp_conf_opt_t service_opts[] = {
    {"heartbeat-ms", 0, KP_CONF_INT, SCONF(heartbeat_ms), "5000", 100, 3600000,
     NULL, "Interval of the InstanceInfo heartbeat on kpay.metadata."},
    {"http-threads", 0, KP_CONF_INT, SCONF(http_threads), "2", 1, 64, NULL,
     "HTTP worker threads."},
    {"shutdown-timeout-ms", 0, KP_CONF_INT, SCONF(shutdown_timeout_ms), "10000",
     100, 600000, NULL,
     "Bound of the exit after SIGTERM/SIGINT or a failure: the last commit, "
     "the InstanceInfo tombstone (or FAILED record) and leaving the group "
     "share it, and a process still running at its end exits 1."},
    {"stall-timeout-ms", 0, KP_CONF_INT, SCONF(stall_timeout_ms), "60000", 0,
     86400000, NULL,
     "/healthz answers 503 \"stalled\" when records are waiting and the "
     "processing loop made no progress for this long (0: never); keep it "
     "well above statistics.interval.ms (5 s), the age of the lag it sees."},
    {"ops-log", 0, KP_CONF_BOOL, SCONF(ops_log), "false", 0, 0, NULL,
     "Also write every WARN-and-above log line as a JSON record to "
     "kpay.ops.log (keyed by service; lines are dropped, and counted, "
     "rather than ever blocking or failing the daemon)."},
    {NULL},
};

const kp_conf_opt_t *kp_service_conf_table(void) {
        return service_opts;
}

/* At most this many Kafka clients are listed on /v1/config. */
#define SVC_MAX_CLIENTS 8

struct kp_service_s {
        kp_app_t *app;
        const kp_app_conf_t *conf;
        kp_service_conf_t sconf;
        char *service;
        char *prefix;
        char metadata_topic[256];
        char *info_key; /* "<service>/<instance>" */
        char *endpoint;

        kp_http_t *http;
        int http_started;
        kp_opslog_t *opslog; /* --ops-log, or NULL */
        rd_kafka_t *announcer;
        int tombstoned; /* the tombstone is out: announce nothing more */
        kp_service_info_cb *info_cb;
        void *info_opaque;
        int64_t next_heartbeat_ms;
        pthread_mutex_t status_lock; /* status, set from any thread */
        char *status;       /* the daemon's "status" object (JSON) or NULL */
        int32_t *restoring; /* partitions still restoring, under status_lock */
        size_t restoring_cnt;

        _Atomic int state;           /* kp_svc_state_t; read by HTTP threads */
        _Atomic int64_t progress_ms; /* the watchdog's: last progress */
        _Atomic int64_t waiting;     /* records waiting, as last seen */
        _Atomic int64_t shutdown_deadline_ms; /* 0 until the shutdown */
        kp_metrics_t *metrics;
        kp_gauge_t *m_state[KP_SVC__CNT];

        pthread_mutex_t clients_lock; /* the client table, for /v1/config */
        const char *client_role[SVC_MAX_CLIENTS];
        rd_kafka_t *client[SVC_MAX_CLIENTS];
};

/* ------------------------------------------------------------------------
 * The lifecycle. */

static const char *const state_names[KP_SVC__CNT] = {
#define KP__SVC_NAME(name) #name,
    KP_SVC_STATE_TABLE(KP__SVC_NAME)
#undef KP__SVC_NAME
};

const char *kp_svc_state2str(kp_svc_state_t state) {
        if ((int)state < 0 || state >= KP_SVC__CNT)
                return "UNKNOWN";
        return state_names[state];
}

int kp_svc_state_transition_valid(kp_svc_state_t from, kp_svc_state_t to) {
        /* allowed[from] is a bit set of the states reachable from it. */
#define B(s) (1u << KP_SVC_##s)
        static const unsigned allowed[KP_SVC__CNT] = {
            [KP_SVC_STARTING] =
                B(RESTORING) | B(RUNNING) | B(STOPPING) | B(FAILED),
            [KP_SVC_RESTORING] = B(RUNNING) | B(STOPPING) | B(FAILED),
            [KP_SVC_RUNNING]   = B(RESTORING) | B(STOPPING) | B(FAILED),
            [KP_SVC_STOPPING]  = B(FAILED),
            [KP_SVC_FAILED]    = 0,
        };
#undef B
        if ((int)from < 0 || from >= KP_SVC__CNT || (int)to < 0 ||
            to >= KP_SVC__CNT)
                return 0;
        return (allowed[from] >> to) & 1u;
}

kp_svc_state_t kp_service_state(const kp_service_t *svc) {
        return (kp_svc_state_t)atomic_load(&svc->state);
}

kp_err_t kp_service_set_state(kp_service_t *svc, kp_svc_state_t to) {
        kp_svc_state_t from = kp_service_state(svc);
        if (from == to)
                return KP_OK;
        if (!kp_svc_state_transition_valid(from, to)) {
                KP_ERROR("illegal lifecycle transition %s -> %s refused",
                         kp_svc_state2str(from), kp_svc_state2str(to));
                return KP_ERR_STATE;
        }
        atomic_store(&svc->state, (int)to);
        kp_gauge_set(svc->m_state[from], 0);
        kp_gauge_set(svc->m_state[to], 1);
        KP_INFO("state %s -> %s", kp_svc_state2str(from), kp_svc_state2str(to));
        if (svc->announcer)
                kp_service_announce(svc);
        return KP_OK;
}

/* ------------------------------------------------------------------------
 * Discovery: InstanceInfo on kpay.metadata. */

static void publish(kp_service_t *svc, int tombstone) {
        char *json = NULL;
        if (!tombstone) {
                kp_instance_info_t info = {0};
                if (svc->info_cb)
                        svc->info_cb(&info, svc->info_opaque);
                info.service  = svc->service;
                info.instance = svc->conf->instance_id;
                info.endpoint = svc->endpoint;
                info.state    = (char *)kp_svc_state2str(kp_service_state(svc));
                info.ts       = kp_wall_ms();
                pthread_mutex_lock(&svc->status_lock);
                info.status        = svc->status;
                info.restoring     = svc->restoring;
                info.restoring_cnt = svc->restoring_cnt;
                json               = kp_instance_info_to_json(&info);
                pthread_mutex_unlock(&svc->status_lock);
        }
        rd_kafka_resp_err_t err = rd_kafka_producev(
            svc->announcer, RD_KAFKA_V_TOPIC(svc->metadata_topic),
            RD_KAFKA_V_KEY(svc->info_key, strlen(svc->info_key)),
            RD_KAFKA_V_VALUE(json, json ? strlen(json) : 0),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
        if (err)
                KP_WARN("publishing InstanceInfo: %s", rd_kafka_err2str(err));
        kp_free(json);
}

void kp_service_set_status(kp_service_t *svc, const char *json_object) {
        char *copy = kp_strdup(json_object);
        pthread_mutex_lock(&svc->status_lock);
        char *old   = svc->status;
        svc->status = copy;
        pthread_mutex_unlock(&svc->status_lock);
        kp_free(old);
}

void kp_service_set_restoring(kp_service_t *svc, const int32_t *partitions,
                              size_t cnt) {
        int32_t *copy = NULL;
        if (cnt) {
                copy = kp_calloc(cnt, sizeof(*copy));
                memcpy(copy, partitions, cnt * sizeof(*copy));
        }
        pthread_mutex_lock(&svc->status_lock);
        int32_t *old       = svc->restoring;
        svc->restoring     = copy;
        svc->restoring_cnt = cnt;
        pthread_mutex_unlock(&svc->status_lock);
        kp_free(old);
}

void kp_service_announce(kp_service_t *svc) {
        if (!svc->announcer || svc->tombstoned)
                return;
        publish(svc, 0);
        svc->next_heartbeat_ms = kp_mono_ms() + svc->sconf.heartbeat_ms;
}

void kp_service_poll(kp_service_t *svc) {
        if (!svc->announcer)
                return;
        rd_kafka_poll(svc->announcer, 0);
        if (kp_mono_ms() >= svc->next_heartbeat_ms)
                kp_service_announce(svc);
}

/* The steps of the exit keep this much of the bound (a fifth, at most a
 * second) for what follows the slow ones: destroying the clients, closing
 * the stores. The guard waits for the whole bound. */
static int64_t shutdown_reserve_ms(const kp_service_t *svc) {
        int64_t r = svc->sconf.shutdown_timeout_ms / 5;
        return r < 1000 ? r : 1000;
}

int64_t kp_service_shutdown_left_ms(const kp_service_t *svc) {
        int64_t deadline = atomic_load(&svc->shutdown_deadline_ms);
        if (!deadline)
                return svc->sconf.shutdown_timeout_ms -
                       shutdown_reserve_ms(svc);
        int64_t left = deadline - shutdown_reserve_ms(svc) - kp_mono_ms();
        return left > 0 ? left : 0;
}

/* The exit guard (kp_service_arm_exit_guard()): process-wide, so that it
 * never touches a service that may be gone. */
static _Atomic int64_t guard_timeout_ms; /* 0: not armed */
static _Atomic int64_t stop_seen_ms;     /* when the guard saw the stop */

/* Waits for the stop (a signal, or a failure), then for the bound, and
 * ends the process if it is still there. */
static void *exit_guard(void *arg) {
        (void)arg;
        while (kp_app_running())
                kp_sleep_ms(50);
        int64_t seen = kp_mono_ms(), expect = 0;
        if (!atomic_compare_exchange_strong(&stop_seen_ms, &expect, seen))
                seen = expect;
        /* It fires a little before the bound (a twentieth, at most 250
         * ms): ending a process with large mappings takes a moment, and
         * the process must be gone by the bound. */
        int64_t timeout = atomic_load(&guard_timeout_ms), left;
        int64_t early   = timeout / 20 < 250 ? timeout / 20 : 250;
        while ((left = seen + timeout - early - kp_mono_ms()) > 0)
                kp_sleep_ms(left < 100 ? left : 100);
        KP_ERROR("exit did not finish within --shutdown-timeout-ms %" PRId64
                 "; exiting with status 1 (what was not committed is "
                 "processed again after the restart)",
                 timeout);
        kp_log_flush(1);
        _exit(1);
        return NULL;
}

void kp_service_arm_exit_guard(const kp_service_t *svc) {
        int64_t none = 0;
        if (!atomic_compare_exchange_strong(&guard_timeout_ms, &none,
                                            svc->sconf.shutdown_timeout_ms))
                return;
        pthread_t t;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        int r = pthread_create(&t, &attr, exit_guard, NULL);
        pthread_attr_destroy(&attr);
        if (r)
                KP_WARN(
                    "exit guard: %s; the exit is bounded only by its "
                    "steps",
                    strerror(r));
}

void kp_service_begin_shutdown(kp_service_t *svc) {
        if (atomic_load(&svc->shutdown_deadline_ms))
                return;
        /* The bound runs from the stop request when the guard saw it (the
         * loop may have been inside a blocking call). */
        int64_t start = atomic_load(&stop_seen_ms);
        if (!start || kp_app_running())
                start = kp_mono_ms();
        int64_t none = 0;
        atomic_compare_exchange_strong(&svc->shutdown_deadline_ms, &none,
                                       start + svc->sconf.shutdown_timeout_ms);
}

/* Delivers what the announcer holds, within what is left of the shutdown
 * bound. */
static void flush_announcer(kp_service_t *svc) {
        if (!rd_kafka_outq_len(svc->announcer))
                return;
        if (kp_kafka_auth_failure(NULL, 0)) {
                /* Nothing gets through a cluster that refuses the
                 * credentials: drop what is queued (its reports served). */
                rd_kafka_purge(svc->announcer, RD_KAFKA_PURGE_F_QUEUE |
                                                   RD_KAFKA_PURGE_F_INFLIGHT);
                rd_kafka_poll(svc->announcer, 0);
                return;
        }
        rd_kafka_resp_err_t err = rd_kafka_flush(
            svc->announcer, (int)kp_service_shutdown_left_ms(svc));
        if (err)
                KP_WARN("flushing InstanceInfo on exit: %s",
                        rd_kafka_err2str(err));
}

void kp_service_stop(kp_service_t *svc) {
        kp_service_begin_shutdown(svc);
        kp_svc_state_t st = kp_service_state(svc);
        if (st != KP_SVC_FAILED)
                kp_service_set_state(svc, KP_SVC_STOPPING);
        if (!svc->announcer || svc->tombstoned)
                return;
        publish(svc, 1);
        svc->tombstoned = 1;
        flush_announcer(svc);
}

/* ------------------------------------------------------------------------
 * HTTP: health, readiness, metrics, configuration. */

void kp_service_progress(kp_service_t *svc) {
        atomic_store(&svc->progress_ms, kp_mono_ms());
}

void kp_service_set_waiting(kp_service_t *svc, int64_t records) {
        atomic_store(&svc->waiting, records > 0 ? records : 0);
}

/* GET /healthz: 200 while the process runs, unless records are waiting
 * and the processing loop has made no progress for --stall-timeout-ms
 * (a wedged loop that still answers HTTP): 503 "stalled", with why. */
static void h_healthz(const kp_http_req_t *req, const char *rest,
                      kp_http_resp_t *resp, void *opaque) {
        kp_service_t *svc = opaque;
        (void)req;
        (void)rest;
        const char *state = kp_svc_state2str(kp_service_state(svc));
        int64_t waiting   = atomic_load(&svc->waiting);
        int64_t idle      = kp_mono_ms() - atomic_load(&svc->progress_ms);
        if (svc->sconf.stall_timeout_ms > 0 && waiting > 0 &&
            idle > svc->sconf.stall_timeout_ms) {
                char reason[160];
                snprintf(reason, sizeof(reason),
                         "no progress for %" PRId64 " ms while %" PRId64
                         " records wait (--stall-timeout-ms %" PRId64 ")",
                         idle, waiting, svc->sconf.stall_timeout_ms);
                kp_http_resp_json(
                    resp, 503,
                    json_pack("{s:s, s:s, s:s, s:s, s:s}", "status", "stalled",
                              "reason", reason, "service", svc->service,
                              "instance", svc->conf->instance_id, "state",
                              state));
                return;
        }
        kp_http_resp_json(resp, 200,
                          json_pack("{s:s, s:s, s:s, s:s}", "status", "ok",
                                    "service", svc->service, "instance",
                                    svc->conf->instance_id, "state", state));
}

static void h_readyz(const kp_http_req_t *req, const char *rest,
                     kp_http_resp_t *resp, void *opaque) {
        kp_service_t *svc = opaque;
        (void)req;
        (void)rest;
        kp_svc_state_t st                            = kp_service_state(svc);
        static const char *const status[KP_SVC__CNT] = {
            [KP_SVC_STARTING]  = "starting",
            [KP_SVC_RESTORING] = "restoring",
            [KP_SVC_RUNNING]   = "ready",
            [KP_SVC_STOPPING]  = "stopping",
            [KP_SVC_FAILED]    = "failed"};
        json_t *restoring = json_array();
        pthread_mutex_lock(&svc->status_lock);
        for (size_t i = 0; i < svc->restoring_cnt; i++)
                json_array_append_new(restoring,
                                      json_integer(svc->restoring[i]));
        size_t n = svc->restoring_cnt;
        pthread_mutex_unlock(&svc->status_lock);
        /* Not ready while any partition is still restoring, so that a
         * rolling restart waits for it. */
        int ready = st == KP_SVC_RUNNING && !n;
        kp_http_resp_json(
            resp, ready ? 200 : 503,
            json_pack("{s:s, s:o}", "status",
                      n && st == KP_SVC_RUNNING ? "restoring" : status[st],
                      "restoring", restoring));
}

static void h_metrics(const kp_http_req_t *req, const char *rest,
                      kp_http_resp_t *resp, void *opaque) {
        kp_service_t *svc = opaque;
        (void)req;
        (void)rest;
        size_t len;
        char *text         = kp_metrics_render(svc->metrics, &len);
        resp->status       = 200;
        resp->body         = text;
        resp->body_len     = len;
        resp->content_type = "text/plain; version=0.0.4; charset=utf-8";
}

/* GET /v1/config: every Kafka client's effective properties, secrets
 * masked, so an operator (and a test) can see what -X really changed. */
static void h_config(const kp_http_req_t *req, const char *rest,
                     kp_http_resp_t *resp, void *opaque) {
        kp_service_t *svc = opaque;
        (void)req;
        (void)rest;
        json_t *clients = json_object();
        pthread_mutex_lock(&svc->clients_lock);
        for (int i = 0; i < SVC_MAX_CLIENTS; i++)
                if (svc->client[i])
                        json_object_set_new(clients, svc->client_role[i],
                                            kp_kafka_conf_json(svc->client[i]));
        pthread_mutex_unlock(&svc->clients_lock);
        kp_http_resp_json(
            resp, 200,
            json_pack("{s:s, s:s, s:o}", "service", svc->service, "instance",
                      svc->conf->instance_id, "kafka", clients));
}

void kp_service_add_client(kp_service_t *svc, const char *role,
                           rd_kafka_t *rk) {
        pthread_mutex_lock(&svc->clients_lock);
        int slot = -1;
        for (int i = 0; i < SVC_MAX_CLIENTS; i++) {
                if (svc->client_role[i] && !strcmp(svc->client_role[i], role)) {
                        slot = i;
                        break;
                }
                if (slot < 0 && !svc->client_role[i])
                        slot = i;
        }
        if (slot >= 0) {
                svc->client_role[slot] = rk ? role : NULL;
                svc->client[slot]      = rk;
        } else {
                KP_WARN("more than %d Kafka clients: %s not on /v1/config",
                        SVC_MAX_CLIENTS, role);
        }
        pthread_mutex_unlock(&svc->clients_lock);
}

/* ------------------------------------------------------------------------
 * Construction. */

static void register_metrics(kp_service_t *svc) {
        char labels[64];
        for (int s = 0; s < KP_SVC__CNT; s++) {
                snprintf(labels, sizeof(labels), "state=\"%s\"",
                         state_names[s]);
                svc->m_state[s] = kp_metrics_gauge(
                    svc->metrics, "kpay_service_state",
                    "1 for the lifecycle state this instance is in.", labels);
        }
        kp_gauge_set(svc->m_state[KP_SVC_STARTING], 1);
}

kp_service_t *kp_service_new(kp_app_t *app, const kp_service_conf_t *sconf,
                             const char *service, char *errstr,
                             size_t errstr_size) {
        const kp_app_conf_t *c = kp_app_conf(app);
        if (!service || !*service || !c->instance_id || !c->listen) {
                snprintf(errstr, errstr_size,
                         "a service needs a name, --instance-id and --listen");
                return NULL;
        }
        kp_service_t *svc = kp_calloc(1, sizeof(*svc));
        svc->app          = app;
        svc->conf         = c;
        svc->sconf        = *sconf;
        svc->service      = kp_strdup(service);
        svc->prefix       = kp_strdup(c->topic_prefix ? c->topic_prefix : "");
        svc->info_key     = kp_asprintf("%s/%s", service, c->instance_id);
        kp_topic_name(svc->metadata_topic, sizeof(svc->metadata_topic),
                      svc->prefix, KP_TOPIC_METADATA);
        if (c->advertise && *c->advertise)
                svc->endpoint = kp_strdup(c->advertise);
        atomic_store(&svc->state, KP_SVC_STARTING);
        atomic_store(&svc->progress_ms, kp_mono_ms());
        int r;
        if ((r = pthread_mutex_init(&svc->clients_lock, NULL)) ||
            (r = pthread_mutex_init(&svc->status_lock, NULL))) {
                /* Only out of memory makes a default mutex fail: abort, as
                 * the allocation wrappers do (kp_mem.h). */
                KP_FATAL("pthread_mutex_init: %s", strerror(r));
                abort();
        }
        svc->metrics = kp_metrics_new();
        register_metrics(svc);
        if (sconf->ops_log) {
                char oerr[512];
                svc->opslog = kp_opslog_start(c, service, c->instance_id,
                                              svc->metrics, oerr, sizeof(oerr));
                if (!svc->opslog)
                        KP_WARN("--ops-log: %s; log lines stay on stderr only",
                                oerr);
        }
        svc->http = kp_http_new(c->listen, (int)sconf->http_threads, errstr,
                                errstr_size);
        if (!svc->http) {
                kp_service_destroy(svc);
                return NULL;
        }
        kp_http_route(svc->http, "GET", "/healthz", h_healthz, svc);
        kp_http_route(svc->http, "GET", "/readyz", h_readyz, svc);
        kp_http_route(svc->http, "GET", "/metrics", h_metrics, svc);
        kp_http_route(svc->http, "GET", "/v1/config", h_config, svc);
        return svc;
}

void kp_service_halt_http(kp_service_t *svc) {
        kp_http_destroy(svc->http);
        svc->http = NULL;
}

void kp_service_route(kp_service_t *svc, const char *method, const char *path,
                      kp_http_handler_t *handler, void *opaque) {
        kp_http_route(svc->http, method, path, handler, opaque);
}

kp_http_t *kp_service_http(kp_service_t *svc) {
        return svc->http;
}

void kp_service_set_info_cb(kp_service_t *svc, kp_service_info_cb *cb,
                            void *opaque) {
        svc->info_cb     = cb;
        svc->info_opaque = opaque;
}

/* The endpoint when --advertise is not given: --listen's host (127.0.0.1
 * for a wildcard) with the port actually bound. */
static char *listen_endpoint(const char *listen, int port) {
        const char *colon = strrchr(listen, ':');
        int hlen          = colon ? (int)(colon - listen) : 0;
        const char *host  = listen;
        if (hlen == 0 || (hlen == 7 && !strncmp(host, "0.0.0.0", 7))) {
                host = "127.0.0.1";
                hlen = 9;
        }
        return kp_asprintf("%.*s:%d", hlen, host, port);
}

/* A delivered InstanceInfo: the cluster accepts this process's
 * credentials (kp_kafka_mark_ready()). @locality the thread polling the
 * announcer */
static void announcer_dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m,
                            void *opaque) {
        (void)rk;
        (void)opaque;
        if (!m->err)
                kp_kafka_mark_ready();
}

kp_err_t kp_service_start(kp_service_t *svc, char *errstr, size_t errstr_size) {
        kp_err_t err = kp_http_start(svc->http, errstr, errstr_size);
        if (err)
                return err;
        svc->http_started = 1;
        if (!svc->endpoint)
                svc->endpoint =
                    listen_endpoint(svc->conf->listen, kp_http_port(svc->http));
        char cid[300];
        snprintf(cid, sizeof(cid), "kpay-%s-%s-announcer", svc->service,
                 svc->conf->instance_id);
        static const kp_kafka_prop_t props[] = {
            /* One InstanceInfo stream per instance, in order, no
             * duplicates. */
            {"enable.idempotence", "true", KP_PROP_REQUIRE},
            {"linger.ms", "5", KP_PROP_DEFAULT},
            {NULL},
        };
        rd_kafka_conf_t *conf =
            kp_kafka_conf_build(svc->conf, cid, props, errstr, errstr_size);
        if (!conf)
                return KP_ERR_CONFIG;
        rd_kafka_conf_set_dr_msg_cb(conf, announcer_dr_cb);
        char rderr[512];
        svc->announcer =
            rd_kafka_new(RD_KAFKA_PRODUCER, conf, rderr, sizeof(rderr));
        if (!svc->announcer) {
                rd_kafka_conf_destroy(conf);
                snprintf(errstr, errstr_size, "the announcer: %s", rderr);
                return KP_ERR_CONFIG;
        }
        kp_service_add_client(svc, "announcer", svc->announcer);
        kp_service_announce(svc);
        return KP_OK;
}

void kp_service_destroy(kp_service_t *svc) {
        if (!svc)
                return;
        /* HTTP first: no handler may run once anything below is gone. */
        kp_service_halt_http(svc);
        if (svc->announcer) {
                /* A FAILED (or STARTING) record must reach the topic: it is
                 * what readers see of this instance until it returns;
                 * within the shutdown bound. */
                kp_service_begin_shutdown(svc);
                flush_announcer(svc);
                rd_kafka_destroy(svc->announcer);
        }
        /* Last: the lines of the shutdown reach kpay.ops.log too, within
         * a short bound (the daemon's exit never waits on it for long). */
        kp_opslog_stop(svc->opslog, 2000);
        kp_metrics_destroy(svc->metrics);
        pthread_mutex_destroy(&svc->clients_lock);
        pthread_mutex_destroy(&svc->status_lock);
        kp_free(svc->status);
        kp_free(svc->restoring);
        kp_free(svc->service);
        kp_free(svc->prefix);
        kp_free(svc->info_key);
        kp_free(svc->endpoint);
        kp_free(svc);
}

kp_metrics_t *kp_service_metrics(kp_service_t *svc) {
        return svc->metrics;
}

const kp_app_conf_t *kp_service_app_conf(const kp_service_t *svc) {
        return svc->conf;
}

const char *kp_service_name(const kp_service_t *svc) {
        return svc->service;
}

const char *kp_service_instance(const kp_service_t *svc) {
        return svc->conf->instance_id;
}

const char *kp_service_prefix(const kp_service_t *svc) {
        return svc->prefix;
}

const char *kp_service_endpoint(const kp_service_t *svc) {
        return svc->endpoint;
}

int64_t kp_service_shutdown_timeout_ms(const kp_service_t *svc) {
        return svc->sconf.shutdown_timeout_ms;
}

/* ------------------------------------------------------------------------
 * The service daemon skeleton. */

/* Runs a started service until a signal: RUNNING, tick(), heartbeat.
 * @returns 0, or 1 when the cluster refused the credentials before it ever
 *          accepted them (fatal at startup: docs/security.md). */
static int service_loop(kp_service_t *svc, const kp_service_def_t *def) {
        char why[700];
        while (kp_app_running()) {
                kp_service_poll(svc);
                if (kp_kafka_auth_failure(why, sizeof(why))) {
                        KP_ERROR("%s", why);
                        kp_service_set_state(svc, KP_SVC_FAILED);
                        return 1;
                }
                if (def->tick)
                        def->tick(svc, kp_wall_ms(), def->opaque);
                kp_sleep_ms(100);
        }
        return 0;
}

int kp_service_main(const kp_service_def_t *def, int argc, char **argv) {
        kp_service_conf_t sconf;
        char errstr[512];
        int rc;
        const kp_conf_section_t runtime[] = {{service_opts, &sconf}, {NULL}};
        const kp_app_def_t adef           = {
                      .name             = def->name,
                      .summary          = def->summary,
                      .groups           = KP_APP_CLIENT | KP_APP_SERVICE,
                      .sections         = def->sections,
                      .runtime_sections = runtime,
        };
        kp_app_t *app = kp_app_new(&adef, argc, argv, &rc);
        if (!app)
                return rc;
        kp_service_t *svc =
            kp_service_new(app, &sconf, def->service, errstr, sizeof(errstr));
        if (!svc) {
                fprintf(stderr, "%s: %s\n", def->name, errstr);
                kp_app_destroy(app);
                return 2;
        }
        rc           = 1;
        kp_err_t err = def->init ? def->init(svc, def->opaque) : KP_OK;
        if (err)
                fprintf(stderr, "%s: initialization failed: %s\n", def->name,
                        kp_err2str(err));
        else if ((err = kp_service_start(svc, errstr, sizeof(errstr))))
                fprintf(stderr, "%s: %s\n", def->name, errstr);
        if (!err) {
                KP_INFO("started: HTTP on %s", kp_service_endpoint(svc));
                kp_service_arm_exit_guard(svc);
                kp_service_set_state(svc, KP_SVC_RUNNING);
                rc = service_loop(svc, def);
                kp_service_begin_shutdown(svc);
                kp_service_stop(svc);
        }
        kp_service_halt_http(svc);
        if (def->fini)
                def->fini(svc, def->opaque);
        kp_service_destroy(svc);
        kp_app_destroy(app);
        return rc;
}
