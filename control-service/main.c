/* kpay-control: the control plane (docs/control.md). A kp_service daemon
 * with no stream processing of its own: its REST API (GET
 * /api/v1/control, POST .../pause and .../resume, PUT .../rate-limit,
 * /openapi.json) writes ControlStatus records to kpay.control.status and
 * audit records to kpay.ops.audit, and it computes the pipeline's state
 * (RUNNING, PAUSED, DRAINED) from what the kpay-inflight instances report
 * in their InstanceInfo. The decisions are control.c's pure functions;
 * this file is the Kafka and HTTP glue. */
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control.h"
#include "kpay/kp_control.h"
#include "kpay/kp_discovery.h"
#include "kpay/kp_follower.h"
#include "kpay/kp_kafka.h"
#include "kpay/kp_log.h"
#include "kpay/kp_mem.h"
#include "kpay/kp_service.h"
#include "kpay/kp_time.h"
#include "kpay/kp_topics.h"

/* How long a mutation waits for the status topic and the broker. */
#define CONTROL_IO_TIMEOUT_MS 10000
/* How often the state is recomputed for metrics and the audit trail. */
#define CONTROL_STATE_EVERY_MS 250

typedef struct control_conf_s {
        char *token_file;
        int64_t instance_timeout_ms;
} control_conf_t;

static control_conf_t cconf;

#define CCONF(f) offsetof(control_conf_t, f)
static const kp_conf_opt_t control_opts[] = {
    {"token-file", 0, KP_CONF_STR, CCONF(token_file), NULL, 0, 0, "FILE",
     "File holding the bearer token that mutating calls must present "
     "(Authorization: Bearer <token>); else the environment variable "
     "KPAY_CONTROL_TOKEN; with neither, mutations are open."},
    {"instance-timeout-ms", 0, KP_CONF_INT, CCONF(instance_timeout_ms), "15000",
     1000, 3600000, "MS",
     "A kpay-inflight instance whose InstanceInfo is older than this is "
     "dead (three of its heartbeats is a good value)."},
    {NULL},
};

/* Everything the handlers and the tick share. */
typedef struct control_app_s {
        kp_service_t *svc;
        char *token; /* NULL: mutations are open */
        char status_topic[256], audit_topic[256];
        kp_follower_t *status; /* kpay.control.status, table by key */
        kp_discovery_t *disc;
        rd_kafka_t *producer;
        pthread_mutex_t write_lock; /* one writer at a time */
        /* HTTP handlers hold it for reading while they use the clients;
         * fini() takes it for writing and sets closed before freeing. */
        pthread_rwlock_t life_lock;
        int closed;
        _Atomic int last_state; /* control_state_t, for the audit trail */
        int64_t next_state_ms;

        kp_gauge_t *m_state[3], *m_version, *m_paused_s, *m_inflight;
        kp_gauge_t *m_applied;
        kp_counter_t *m_mutations, *m_refused;
} control_app_t;

/* ------------------------------------------------------------------------
 * Reading: the current status and the instances. */

/* The latest ControlStatus (version 0 when there is none yet).
 * @returns KP_OK, or KP_ERR_PARSE when the latest record does not parse:
 *          then nobody may write the next version from a guess. */
static kp_err_t current_status(control_app_t *a, kp_control_status_t *st) {
        char *val = NULL, errstr[256];
        size_t len;
        memset(st, 0, sizeof(*st));
        if (kp_follower_get(a->status, KP_CONTROL_KEY, strlen(KP_CONTROL_KEY),
                            &val, &len) != KP_OK)
                return KP_OK;
        kp_err_t err =
            kp_control_status_from_json(val, len, st, errstr, sizeof(errstr));
        if (err)
                KP_WARN("the latest ControlStatus is unreadable: %s", errstr);
        kp_free(val);
        return err;
}

/* The live kpay-inflight instances, each with its parsed report. */
static size_t gather(control_app_t *a, kp_instance_info_t **infosp,
                     control_instance_t **instp) {
        size_t cnt = kp_discovery_instances(a->disc, "inflight", infosp);
        control_instance_t *in =
            kp_calloc(cnt ? cnt : 1, sizeof(control_instance_t));
        for (size_t i = 0; i < cnt; i++) {
                in[i].info = &(*infosp)[i];
                in[i].has_report =
                    kp_control_report_from_json((*infosp)[i].status,
                                                &in[i].report) == KP_OK;
        }
        *instp = in;
        return cnt;
}

static json_t *instance_json(const control_instance_t *in) {
        json_t *parts = json_array();
        for (size_t j = 0; j < in->info->partition_cnt; j++)
                json_array_append_new(parts,
                                      json_integer(in->info->partitions[j]));
        const kp_control_report_t *r = &in->report;
        return json_pack(
            "{s:s, s:s?, s:s?, s:o, s:b, s:o, s:o, s:o, s:o, s:o}", "instance",
            in->info->instance, "endpoint", in->info->endpoint, "state",
            in->info->state, "partitions", parts, "applied", in->applied,
            "control_version",
            in->has_report ? json_integer(r->version) : json_null(), "paused",
            in->has_report ? json_boolean(r->paused) : json_null(),
            "rate_share",
            in->has_report ? json_real(r->rate_share) : json_null(),
            "inflight_count",
            in->has_report ? json_integer(r->inflight_count) : json_null(),
            "inflight_amounts",
            in->has_report
                ? kp_money_to_json(&r->inflight_amounts, KP_MONEY_JSON_STRING)
                : json_null());
}

/* The body of GET /api/v1/control; *viewp gets the computed view. */
static json_t *control_json(control_app_t *a, control_view_t *viewp) {
        kp_control_status_t st;
        kp_instance_info_t *infos;
        control_instance_t *in;
        current_status(a, &st);
        size_t cnt       = gather(a, &infos, &in);
        control_view_t v = control_compute(&st, in, cnt);
        kp_money_t amounts;
        kp_money_init(&amounts);
        json_t *jamounts =
            control_inflight_amounts(in, cnt, &amounts)
                ? json_null() /* unknown rather than wrong */
                : kp_money_to_json(&amounts, KP_MONEY_JSON_STRING);
        kp_money_clear(&amounts);
        json_t *list = json_array();
        for (size_t i = 0; i < cnt; i++)
                json_array_append_new(list, instance_json(&in[i]));
        json_t *last =
            st.version ? json_pack("{s:s, s:s, s:I}", "command", st.command,
                                   "actor", st.actor, "ts", (json_int_t)st.ts)
                       : json_null();
        json_t *j = json_pack(
            "{s:s, s:I, s:b, s:o, s:o, s:{s:I, s:o}, s:I, s:I, s:b, s:o}",
            "state", control_state2str(v.state), "version",
            (json_int_t)st.version, "paused", st.paused, "rate_limit",
            st.rate_limit ? json_integer(st.rate_limit) : json_null(),
            "last_change", last, "inflight", "count",
            (json_int_t)v.inflight_count, "amounts", jamounts, "instance_count",
            (json_int_t)v.instances, "applied_count", (json_int_t)v.applied,
            "partitions_covered", v.covered, "instances", list);
        for (size_t i = 0; i < cnt; i++)
                kp_control_report_clear(&in[i].report);
        kp_free(in);
        kp_instance_info_list_free(infos, cnt);
        if (viewp)
                *viewp = v;
        return j;
}

/* ------------------------------------------------------------------------
 * Writing: one record, delivered or not. */

typedef struct delivery_s {
        atomic_int done;
        rd_kafka_resp_err_t err;
} delivery_t;

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
        (void)rk;
        (void)opaque;
        delivery_t *d = m->_private;
        if (!d)
                return;
        d->err = m->err;
        atomic_store(&d->done, 1);
}

/* Produces one record and waits for its delivery report. Callers hold
 * write_lock, so that only one thread polls the producer. */
static kp_err_t produce_sync(control_app_t *a, const char *topic,
                             const char *key, const char *value) {
        delivery_t d = {0};
        rd_kafka_resp_err_t err =
            rd_kafka_producev(a->producer, RD_KAFKA_V_TOPIC(topic),
                              RD_KAFKA_V_KEY(key, strlen(key)),
                              RD_KAFKA_V_VALUE((void *)value, strlen(value)),
                              RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                              RD_KAFKA_V_OPAQUE(&d), RD_KAFKA_V_END);
        if (err) {
                KP_ERROR("producing to %s: %s", topic, rd_kafka_err2str(err));
                return KP_ERR_KAFKA;
        }
        int64_t deadline = kp_mono_ms() + CONTROL_IO_TIMEOUT_MS + 5000;
        while (!atomic_load(&d.done) && kp_mono_ms() < deadline)
                rd_kafka_poll(a->producer, 50);
        if (!atomic_load(&d.done)) {
                /* message.timeout.ms is below the deadline: not reached. */
                KP_ERROR("producing to %s: no delivery report", topic);
                rd_kafka_purge(a->producer, RD_KAFKA_PURGE_F_QUEUE |
                                                RD_KAFKA_PURGE_F_INFLIGHT);
                while (!atomic_load(&d.done))
                        rd_kafka_poll(a->producer, 50);
                return KP_ERR_TIMED_OUT;
        }
        if (d.err) {
                KP_ERROR("producing to %s: %s", topic, rd_kafka_err2str(d.err));
                return KP_ERR_KAFKA;
        }
        return KP_OK;
}

/* An audit record on kpay.ops.audit (key "control"); takes @p rec. */
static kp_err_t audit(control_app_t *a, json_t *rec) {
        json_object_set_new(rec, "v", json_integer(1));
        json_object_set_new(rec, "ts", json_integer(kp_wall_ms()));
        json_object_set_new(rec, "service", json_string("control"));
        json_object_set_new(rec, "instance",
                            json_string(kp_service_instance(a->svc)));
        char *s = json_dumps(rec, JSON_COMPACT);
        json_decref(rec);
        if (!s)
                return KP_ERR_INVALID_ARG;
        kp_err_t err = produce_sync(a, a->audit_topic, "control", s);
        free(s);
        return err;
}

/* Writes the next version for @p r (write_lock held): reads the current
 * status first, then checks that the record read back is this one (another
 * controller writing at the same moment is a conflict: KP_ERR_STATE). */
static kp_err_t write_command(control_app_t *a, const control_request_t *r,
                              const char *actor, kp_control_status_t *next) {
        kp_control_status_t cur, back;
        if (kp_follower_sync(a->status, CONTROL_IO_TIMEOUT_MS))
                return KP_ERR_TIMED_OUT;
        if (current_status(a, &cur))
                return KP_ERR_PARSE;
        control_next(&cur, r, actor, kp_wall_ms(), next);
        char *json   = kp_control_status_to_json(next);
        kp_err_t err = produce_sync(a, a->status_topic, KP_CONTROL_KEY, json);
        kp_free(json);
        if (err)
                return err;
        KP_INFO("version %" PRId64 ": %s by %s (paused %d, rate limit %" PRId64
                ")",
                next->version, next->command, actor, next->paused,
                next->rate_limit);
        kp_counter_add(a->m_mutations, 1);
        json_t *rec = json_pack(
            "{s:s, s:s, s:s, s:I, s:b, s:o, s:s}", "event", "command",
            "command", next->command, "actor", actor, "version",
            (json_int_t)next->version, "paused", next->paused, "rate_limit",
            next->rate_limit ? json_integer(next->rate_limit) : json_null(),
            "reason", r->reason);
        if (audit(a, rec))
                return KP_ERR_IO;
        if (kp_follower_sync(a->status, CONTROL_IO_TIMEOUT_MS))
                return KP_ERR_TIMED_OUT;
        current_status(a, &back);
        if (back.version != next->version || back.ts != next->ts ||
            strcmp(back.actor, next->actor) ||
            strcmp(back.command, next->command))
                return KP_ERR_STATE;
        return KP_OK;
}

/* A refused call: counted, logged at debug, never audited. */
static void refuse(control_app_t *a, kp_http_resp_t *resp, int status,
                   const char *code, const char *msg) {
        kp_counter_add(a->m_refused, 1);
        KP_DEBUG("refused (%d %s): %s", status, code, msg);
        kp_http_resp_error(resp, status, code, "%s", msg);
}

static void mutate(control_app_t *a, control_cmd_t cmd,
                   const kp_http_req_t *req, kp_http_resp_t *resp) {
        char errstr[256], actor[KP_CONTROL_ACTOR_MAX + 1];
        int code = control_authorize(a->token,
                                     kp_http_req_header(req, "Authorization"));
        if (code) {
                refuse(a, resp, code,
                       code == 401 ? "unauthorized" : "forbidden",
                       code == 401 ? "this call needs Authorization: Bearer "
                                     "<token>"
                                   : "wrong token");
                return;
        }
        size_t len       = 0;
        const char *body = kp_http_req_body(req, &len);
        if (len > CONTROL_BODY_MAX) {
                refuse(a, resp, 413, "payload_too_large",
                       "the body is larger than 4096 bytes");
                return;
        }
        control_request_t r;
        kp_err_t err =
            control_parse_request(cmd, body, len, &r, errstr, sizeof(errstr));
        if (err) {
                refuse(a, resp, 400,
                       err == KP_ERR_PARSE ? "invalid_json" : "bad_request",
                       errstr);
                return;
        }
        control_actor(actor, sizeof(actor),
                      kp_http_req_header(req, "X-KPay-Actor"),
                      a->token != NULL);
        kp_control_status_t next = {0};
        pthread_mutex_lock(&a->write_lock);
        err = write_command(a, &r, actor, &next);
        pthread_mutex_unlock(&a->write_lock);
        if (err == KP_ERR_STATE)
                kp_http_resp_error(resp, 409, "conflict",
                                   "another controller wrote version %" PRId64
                                   " at the same time; read the status and "
                                   "retry",
                                   next.version);
        else if (err == KP_ERR_IO)
                kp_http_resp_error(resp, 500, "audit_failed",
                                   "version %" PRId64
                                   " was written but its audit record was not",
                                   next.version);
        else if (err)
                kp_http_resp_error(resp, 503, "unavailable",
                                   "kpay.control.status could not be read or "
                                   "written: %s",
                                   kp_err2str(err));
        else
                kp_http_resp_json(resp, 200, control_json(a, NULL));
}

/* Runs one call unless the daemon is shutting down (503 then). A GET
 * passes @p get, a mutation its command. */
static void serve(control_app_t *a, int get, control_cmd_t cmd,
                  const kp_http_req_t *req, kp_http_resp_t *resp) {
        pthread_rwlock_rdlock(&a->life_lock);
        if (a->closed)
                kp_http_resp_error(resp, 503, "stopping",
                                   "kpay-control is shutting down");
        else if (get)
                kp_http_resp_json(resp, 200, control_json(a, NULL));
        else
                mutate(a, cmd, req, resp);
        pthread_rwlock_unlock(&a->life_lock);
}

static void h_pause(const kp_http_req_t *req, const char *rest,
                    kp_http_resp_t *resp, void *opaque) {
        (void)rest;
        serve(opaque, 0, CONTROL_CMD_PAUSE, req, resp);
}

static void h_resume(const kp_http_req_t *req, const char *rest,
                     kp_http_resp_t *resp, void *opaque) {
        (void)rest;
        serve(opaque, 0, CONTROL_CMD_RESUME, req, resp);
}

static void h_rate(const kp_http_req_t *req, const char *rest,
                   kp_http_resp_t *resp, void *opaque) {
        (void)rest;
        serve(opaque, 0, CONTROL_CMD_RATE_LIMIT, req, resp);
}

static void h_get(const kp_http_req_t *req, const char *rest,
                  kp_http_resp_t *resp, void *opaque) {
        (void)rest;
        serve(opaque, 1, CONTROL_CMD_PAUSE, req, resp);
}

static void h_openapi(const kp_http_req_t *req, const char *rest,
                      kp_http_resp_t *resp, void *opaque) {
        (void)req;
        (void)rest;
        (void)opaque;
        const char *doc = control_openapi_json();
        kp_http_resp_text(resp, 200, "application/json", doc, strlen(doc));
}

/* ------------------------------------------------------------------------
 * The state: metrics, and an audit record on every change. */

static void update_metrics(control_app_t *a, json_t *j,
                           const control_view_t *v) {
        kp_metrics_t *m = kp_service_metrics(a->svc);
        for (int s = 0; s < 3; s++)
                kp_gauge_set(a->m_state[s], (int)v->state == s);
        kp_gauge_set(a->m_version,
                     (double)json_integer_value(json_object_get(j, "version")));
        kp_gauge_set(a->m_inflight, (double)v->inflight_count);
        kp_gauge_set(a->m_applied, (double)v->applied);
        json_t *last = json_object_get(j, "last_change");
        double since =
            json_is_true(json_object_get(j, "paused"))
                ? (double)(kp_wall_ms() -
                           json_integer_value(json_object_get(last, "ts"))) /
                      1000.0
                : 0;
        kp_gauge_set(a->m_paused_s, since < 0 ? 0 : since);
        size_t i;
        json_t *in;
        json_array_foreach(json_object_get(j, "instances"), i, in) {
                char labels[200], esc[160];
                const char *id =
                    json_string_value(json_object_get(in, "instance"));
                snprintf(labels, sizeof(labels), "instance=\"%s\"",
                         kp_metrics_escape_label(esc, sizeof(esc), id));
                kp_gauge_set(
                    kp_metrics_gauge(m, "kpay_control_instance_version_applied",
                                     "The ControlStatus version each live "
                                     "kpay-inflight instance has applied.",
                                     labels),
                    (double)json_integer_value(
                        json_object_get(in, "control_version")));
        }
}

static void tick(kp_service_t *svc, int64_t now_ms, void *opaque) {
        control_app_t *a = opaque;
        (void)svc;
        if (now_ms < a->next_state_ms)
                return;
        a->next_state_ms = now_ms + CONTROL_STATE_EVERY_MS;
        control_view_t v;
        json_t *j = control_json(a, &v);
        update_metrics(a, j, &v);
        int prev = atomic_load(&a->last_state);
        if (prev != (int)v.state &&
            pthread_mutex_trylock(&a->write_lock) == 0) {
                if (prev >= 0) {
                        KP_INFO("state %s -> %s",
                                control_state2str((control_state_t)prev),
                                control_state2str(v.state));
                        json_t *rec = json_pack(
                            "{s:s, s:s, s:s, s:O, s:O}", "event", "state",
                            "from", control_state2str((control_state_t)prev),
                            "to", control_state2str(v.state), "version",
                            json_object_get(j, "version"), "inflight",
                            json_object_get(j, "inflight"));
                        if (audit(a, rec))
                                KP_WARN("the state change was not audited");
                }
                atomic_store(&a->last_state, (int)v.state);
                pthread_mutex_unlock(&a->write_lock);
        }
        json_decref(j);
}

/* ------------------------------------------------------------------------
 * Start-up. */

static rd_kafka_t *producer_new(control_app_t *a, char *errstr,
                                size_t errstr_size) {
        static const kp_kafka_prop_t props[] = {
            {"enable.idempotence", "true", KP_PROP_REQUIRE},
            {"acks", "all", KP_PROP_REQUIRE},
            {"message.timeout.ms", "10000", KP_PROP_DEFAULT},
            {"linger.ms", "0", KP_PROP_DEFAULT},
            {NULL},
        };
        char cid[300];
        snprintf(cid, sizeof(cid), "kpay-control-%s",
                 kp_service_instance(a->svc));
        rd_kafka_conf_t *conf = kp_kafka_conf_build(
            kp_service_app_conf(a->svc), cid, props, errstr, errstr_size);
        if (!conf)
                return NULL;
        rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
        rd_kafka_t *rk =
            rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, errstr_size);
        if (!rk)
                rd_kafka_conf_destroy(conf);
        return rk;
}

static void register_metrics(control_app_t *a) {
        kp_metrics_t *m = kp_service_metrics(a->svc);
        for (int s = 0; s < 3; s++) {
                char labels[64];
                snprintf(labels, sizeof(labels), "state=\"%s\"",
                         control_state2str((control_state_t)s));
                a->m_state[s] = kp_metrics_gauge(
                    m, "kpay_control_state",
                    "1 for the pipeline's current control state.", labels);
        }
        a->m_version =
            kp_metrics_gauge(m, "kpay_control_version",
                             "The latest ControlStatus version.", NULL);
        a->m_paused_s = kp_metrics_gauge(
            m, "kpay_control_paused_seconds",
            "How long the pipeline has been paused (0 while running).", NULL);
        a->m_inflight = kp_metrics_gauge(
            m, "kpay_control_inflight_count",
            "Payments in flight, summed over the live kpay-inflight "
            "instances.",
            NULL);
        a->m_applied = kp_metrics_gauge(
            m, "kpay_control_instances_applied",
            "Live kpay-inflight instances that have applied the latest "
            "version.",
            NULL);
        a->m_mutations =
            kp_metrics_counter(m, "kpay_control_mutations_total",
                               "ControlStatus versions written.", NULL);
        a->m_refused = kp_metrics_counter(
            m, "kpay_control_refused_total",
            "Mutating calls refused (401, 403, 400, 413).", NULL);
}

static kp_err_t start_clients(control_app_t *a, char *errstr,
                              size_t errstr_size) {
        const kp_app_conf_t *c = kp_service_app_conf(a->svc);
        char cid[300];
        snprintf(cid, sizeof(cid), "kpay-control-%s-status",
                 kp_service_instance(a->svc));
        kp_follower_conf_t fc = {.topic      = a->status_topic,
                                 .client_id  = cid,
                                 .log_name   = "control",
                                 .keep_table = 1,
                                 .threaded   = 1};
        if (!(a->status = kp_follower_new(c, &fc, errstr, errstr_size)))
                return KP_ERR_KAFKA;
        if (!(a->disc = kp_discovery_new(c, cconf.instance_timeout_ms, errstr,
                                         errstr_size)))
                return KP_ERR_KAFKA;
        if (!(a->producer = producer_new(a, errstr, errstr_size)))
                return KP_ERR_KAFKA;
        kp_service_add_client(a->svc, "producer", a->producer);
        return KP_OK;
}

static kp_err_t init(kp_service_t *svc, void *opaque) {
        control_app_t *a = opaque;
        char errstr[512];
        a->svc = svc;
        atomic_store(&a->last_state, -1);
        pthread_mutex_init(&a->write_lock, NULL);
        pthread_rwlock_init(&a->life_lock, NULL);
        kp_topic_name(a->status_topic, sizeof(a->status_topic),
                      kp_service_prefix(svc), KP_TOPIC_CONTROL_STATUS);
        kp_topic_name(a->audit_topic, sizeof(a->audit_topic),
                      kp_service_prefix(svc), KP_TOPIC_OPS_AUDIT);
        kp_err_t err = kp_conf_read_secret(
            cconf.token_file, "KPAY_CONTROL_TOKEN", "the control token",
            &a->token, errstr, sizeof(errstr));
        if (!err)
                err = start_clients(a, errstr, sizeof(errstr));
        if (err) {
                KP_ERROR("%s", errstr);
                return err;
        }
        if (!a->token)
                KP_WARN(
                    "no --token-file or KPAY_CONTROL_TOKEN: anyone who "
                    "reaches this port can pause the pipeline");
        register_metrics(a);
        kp_service_route(svc, "GET", "/api/v1/control", h_get, a);
        kp_service_route(svc, "POST", "/api/v1/control/pause", h_pause, a);
        kp_service_route(svc, "POST", "/api/v1/control/resume", h_resume, a);
        kp_service_route(svc, "PUT", "/api/v1/control/rate-limit", h_rate, a);
        kp_service_route(svc, "GET", "/openapi.json", h_openapi, a);
        return KP_OK;
}

static void fini(kp_service_t *svc, void *opaque) {
        control_app_t *a = opaque;
        pthread_rwlock_wrlock(&a->life_lock);
        a->closed = 1;
        pthread_rwlock_unlock(&a->life_lock);
        if (a->producer) {
                kp_service_add_client(svc, "producer", NULL);
                rd_kafka_flush(a->producer,
                               (int)kp_service_shutdown_left_ms(svc));
                rd_kafka_destroy(a->producer);
        }
        kp_discovery_destroy(a->disc);
        kp_follower_destroy(a->status);
        kp_free(a->token);
        pthread_mutex_destroy(&a->write_lock);
        pthread_rwlock_destroy(&a->life_lock);
}

int main(int argc, char **argv) {
        static control_app_t a;
        static const kp_conf_section_t sections[] = {{control_opts, &cconf},
                                                     {NULL, NULL}};
        static const kp_service_def_t def         = {
                    .name    = "kpay-control",
                    .service = "control",
                    .summary =
                        "Control plane: pause, resume, drain and rate limit "
                                "over REST.",
                    .sections = sections,
                    .init     = init,
                    .tick     = tick,
                    .fini     = fini,
                    .opaque   = &a,
        };
        return kp_service_main(&def, argc, argv);
}
