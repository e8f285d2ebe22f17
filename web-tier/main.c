/* kpay-web: the web tier (docs/api.md). A kp_service daemon: its public
 * REST API under /api/v1 (api.c; payments.c for /payments and
 * /currencies), the UI and Swagger UI (static.c) and /openapi.json. It finds
 * every processor instance through kpay.metadata and fans its queries out
 * to their HTTP endpoints (kp_fanout) with one deadline,
 * --request-timeout-ms. This file is the daemon: options, clients, the
 * router of the web_route() templates, the shared helpers of web.h. */
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control.h"
#include "kpay/kp_kafka.h"
#include "kpay/kp_log.h"
#include "kpay/kp_mem.h"
#include "kpay/kp_service.h"
#include "kpay/kp_time.h"
#include "kpay/kp_topics.h"
#include "web.h"
#include "web_api.h"

static web_conf_t wconf;

#define WCONF(f) offsetof(web_conf_t, f)
static const kp_conf_opt_t web_opts[] = {
    {"ui-dir", 0, KP_CONF_STR, WCONF(ui_dir), NULL, 0, 0, "DIR",
     "Directory of the UI files served at / and /assets/ (default: the "
     "build's web-tier UI directory)."},
    {"request-timeout-ms", 0, KP_CONF_INT, WCONF(request_timeout_ms), "1000",
     10, 60000, "MS",
     "Deadline of a query to the processor instances: an instance that has "
     "not answered by then counts as missing (\"partial\": true)."},
    {"max-body-bytes", 0, KP_CONF_INT, WCONF(max_body_bytes), "65536", 256,
     16777216, "BYTES", "Request bodies larger than this get 413 too_large."},
    {"token-file", 0, KP_CONF_STR, WCONF(token_file), NULL, 0, 0, "FILE",
     "File holding the bearer token that mutating calls must present "
     "(Authorization: Bearer <token>); else the environment variable "
     "KPAY_WEB_TOKEN; with neither, mutations are open."},
    {"control-url", 0, KP_CONF_STR, WCONF(control_url), NULL, 0, 0, "URL",
     "kpay-control's base URL (http://HOST:PORT); default: a live "
     "kpay-control instance found in kpay.metadata."},
    {"instance-timeout-ms", 0, KP_CONF_INT, WCONF(instance_timeout_ms), "15000",
     1000, 3600000, "MS",
     "An instance whose InstanceInfo is older than this is dead (three of "
     "its heartbeats is a good value)."},
    {NULL},
};

/* ------------------------------------------------------------------------
 * Start-up. */

static rd_kafka_t *producer_new(web_t *w, char *errstr, size_t errstr_size) {
        static const kp_kafka_prop_t props[] = {
            {"enable.idempotence", "true", KP_PROP_REQUIRE},
            {"acks", "all", KP_PROP_REQUIRE},
            /* Keys land where the Java client would put them, which is
             * where the processors look for them. */
            {"partitioner", "murmur2_random", KP_PROP_DEFAULT},
            {"message.timeout.ms", "10000", KP_PROP_DEFAULT},
            {"linger.ms", "1", KP_PROP_DEFAULT},
            {NULL},
        };
        char cid[300];
        snprintf(cid, sizeof(cid), "kpay-web-%s", kp_service_instance(w->svc));
        rd_kafka_conf_t *conf = kp_kafka_conf_build(
            kp_service_app_conf(w->svc), cid, props, errstr, errstr_size);
        if (!conf)
                return NULL;
        rd_kafka_conf_set_dr_msg_cb(conf, web_dr_cb);
        rd_kafka_conf_set_opaque(conf, w);
        rd_kafka_t *rk =
            rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, errstr_size);
        if (!rk)
                rd_kafka_conf_destroy(conf);
        return rk;
}

static kp_err_t init(kp_service_t *svc, void *opaque) {
        web_t *w = opaque;
        char errstr[512];
        static web_priv_t priv;
        w->svc    = svc;
        w->conf   = &wconf;
        w->priv   = &priv;
        w->prefix = kp_service_prefix(svc);
        pthread_mutex_init(&priv.dr_lock, NULL);
        pthread_cond_init(&priv.dr_cond, NULL);
        kp_topic_name(w->topic_incoming, sizeof(w->topic_incoming), w->prefix,
                      KP_TOPIC_INCOMING);
        kp_topic_name(w->topic_inflight, sizeof(w->topic_inflight), w->prefix,
                      KP_TOPIC_INFLIGHT);
        kp_topic_name(w->topic_dlq, sizeof(w->topic_dlq), w->prefix,
                      KP_TOPIC_DLQ);
        kp_err_t err = kp_conf_read_secret(wconf.token_file, "KPAY_WEB_TOKEN",
                                           "the web token", &w->token, errstr,
                                           sizeof(errstr));
        char hp[256], base[256];
        if (!err && wconf.control_url &&
            kp_http_split_url(wconf.control_url, hp, sizeof(hp), base,
                              sizeof(base))) {
                snprintf(errstr, sizeof(errstr),
                         "--control-url %s: expected http://HOST:PORT[/BASE]",
                         wconf.control_url);
                err = KP_ERR_CONFIG;
        }
        if (!err && !(w->disc = kp_discovery_new(kp_service_app_conf(svc),
                                                 wconf.instance_timeout_ms,
                                                 errstr, sizeof(errstr))))
                err = KP_ERR_KAFKA;
        if (!err && !(w->producer = producer_new(w, errstr, sizeof(errstr))))
                err = KP_ERR_KAFKA;
        if (err) {
                KP_ERROR("%s", errstr);
                return err;
        }
        kp_service_add_client(svc, "producer", w->producer);
        int r = pthread_create(&priv.poller, NULL, web_poller_main, w);
        if (r) {
                KP_ERROR("cannot start the producer's poller: %s", strerror(r));
                return KP_ERR_IO;
        }
        priv.poller_started = 1;
        if (!w->token)
                KP_WARN(
                    "no --token-file or KPAY_WEB_TOKEN: anyone who "
                    "reaches this port can freeze accounts and submit "
                    "payments");
        kp_http_opts_t ho = {
            .body_max              = (size_t)wconf.max_body_bytes,
            .too_large_code        = "too_large",
            .thread_per_connection = 1,
            .max_connections       = 256,
        };
        kp_http_set_opts(kp_service_http(svc), &ho);
        web_register_routes(w);
        /* kp_http routes for the templates: a template's literal part (up
         * to its first parameter) as an exact or a prefix route, each once,
         * so that the runtime's own routes keep their 404 and 405. A path
         * whose templates all take one method is registered for that method
         * only: the UI's GET "/" is a prefix of every path, and for any
         * method it would turn POST /healthz into a 404 instead of 405. */
        for (size_t i = 0; i < w->route_cnt; i++) {
                char *p            = web_route_http_path(w->routes[i].tmpl);
                const char *method = w->routes[i].method;
                int dup            = 0;
                for (size_t j = 0; j < w->route_cnt && !dup; j++) {
                        char *q  = web_route_http_path(w->routes[j].tmpl);
                        int same = !strcmp(p, q);
                        kp_free(q);
                        if (!same)
                                continue;
                        if (j < i)
                                dup = 1;
                        else if (method &&
                                 (!w->routes[j].method ||
                                  strcmp(method, w->routes[j].method)))
                                method = NULL;
                }
                if (!dup)
                        kp_service_route(svc, method, p, web_h_dispatch, w);
                kp_free(p);
        }
        return KP_OK;
}

static void tick(kp_service_t *svc, int64_t now_ms, void *opaque) {
        (void)svc;
        web_api_tick(opaque, now_ms);
}

static void fini(kp_service_t *svc, void *opaque) {
        web_t *w      = opaque;
        web_priv_t *p = w->priv;
        atomic_store(&w->stopping, 1);
        /* No handler runs past this: the streams see stopping and end. */
        kp_service_halt_http(svc);
        for (size_t i = w->fini_cnt; i-- > 0;)
                w->finis[i].cb(w, w->finis[i].opaque);
        web_api_fini(w);
        if (w->producer) {
                kp_service_add_client(svc, "producer", NULL);
                rd_kafka_flush(w->producer,
                               (int)kp_service_shutdown_left_ms(svc));
                if (p->poller_started) {
                        atomic_store(&p->poller_stop, 1);
                        pthread_join(p->poller, NULL);
                }
                rd_kafka_destroy(w->producer);
        }
        kp_discovery_destroy(w->disc);
        kp_free(w->token);
        for (size_t i = 0; i < w->route_cnt; i++) {
                kp_free(w->routes[i].method);
                kp_free(w->routes[i].tmpl);
        }
        kp_free(w->routes);
        pthread_cond_destroy(&p->dr_cond);
        pthread_mutex_destroy(&p->dr_lock);
}

int main(int argc, char **argv) {
        static web_t w;
        static const kp_conf_section_t sections[] = {{web_opts, &wconf},
                                                     {NULL, NULL}};
        static const kp_service_def_t def         = {
                    .name    = "kpay-web",
                    .service = "web",
                    .summary =
                        "Web tier: UI, public REST API, OpenAPI and "
                                "query fan-out.",
                    .sections = sections,
                    .init     = init,
                    .tick     = tick,
                    .fini     = fini,
                    .opaque   = &w,
        };
        return kp_service_main(&def, argc, argv);
}
