/* gate.c: kpay-inflight's control-plane gate (gate.h). The follower thread
 * only records the latest ControlStatus; the processing thread applies it
 * in tick(), just before the runtime applies flow control, so that "applied
 * version V" in the report means no incoming record is processed against
 * an older version from then on. */
#include "gate.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "inflight.h"
#include "kpay/kp_control.h"
#include "kpay/kp_follower.h"
#include "kpay/kp_log.h"
#include "kpay/kp_mem.h"
#include "kpay/kp_metrics.h"
#include "kpay/kp_topics.h"

/* How long init() waits to read kpay.control.status. */
#define GATE_SYNC_TIMEOUT_MS 30000
/* How often the report is refreshed while paused (the drain is watched). */
#define GATE_REPORT_PAUSED_MS 250
/* ... and otherwise (the heartbeat publishes it). */
#define GATE_REPORT_RUNNING_MS 1000

struct gate_s {
        kp_follower_t *follower;
        pthread_mutex_t lock;
        kp_control_status_t want; /* the latest record read (lock) */

        /* Processing thread only. */
        kp_control_status_t applied;
        int owned;
        int32_t pcount;
        int64_t epoch; /* kp_proc_assignment_epoch() of the last report */
        double share;
        kp_control_report_t last; /* last report published */
        int reported;             /* a report was set at least once */
        int64_t next_report_ms;
        int64_t paused_since_ms; /* 0 while running */
        kp_gauge_t *m_version, *m_paused, *m_share;
        kp_counter_t *m_paused_ms;
};

/* Follower thread: keep the latest record (offset order, like compaction:
 * if two controllers ever wrote the same version, the later one wins here
 * and in kpay-control alike). */
static void on_status(const kp_follower_record_t *rec, void *opaque) {
        gate_t *g = opaque;
        char errstr[256];
        kp_control_status_t st;
        if (!rec->key || rec->key_len != strlen(KP_CONTROL_KEY) ||
            memcmp(rec->key, KP_CONTROL_KEY, rec->key_len) || !rec->value)
                return;
        if (kp_control_status_from_json(rec->value, rec->value_len, &st, errstr,
                                        sizeof(errstr))) {
                KP_WARN("kpay.control.status @%" PRId64 ": %s (ignored)",
                        rec->offset, errstr);
                return;
        }
        pthread_mutex_lock(&g->lock);
        g->want = st;
        pthread_mutex_unlock(&g->lock);
}

static void register_metrics(gate_t *g, kp_metrics_t *m) {
        g->m_version = kp_metrics_gauge(
            m, "kpay_control_version_applied",
            "The kpay.control.status version this instance has applied.", NULL);
        g->m_paused = kp_metrics_gauge(
            m, "kpay_control_paused",
            "1 while this instance's intake is paused by the control plane.",
            NULL);
        g->m_share = kp_metrics_gauge(
            m, "kpay_control_rate_share",
            "This instance's share of the pipeline's rate limit (payments "
            "per second; 0: no limit).",
            NULL);
        g->m_paused_ms = kp_metrics_counter(
            m, "kpay_control_paused_milliseconds_total",
            "Time this instance's intake has spent paused by the control "
            "plane.",
            NULL);
}

/* Applies the wanted status with the share of the partitions owned now. */
static void apply(gate_t *g, kp_proc_t *proc, const kp_control_status_t *st,
                  int owned, int32_t pcount) {
        double share = kp_control_rate_share(st->rate_limit, owned, pcount);
        kp_err_t err = kp_proc_pause_input(proc, KP_TOPIC_INCOMING, st->paused);
        if (!err)
                err = kp_proc_rate_limit_input(proc, KP_TOPIC_INCOMING, share);
        if (err) /* a programming error: incoming is always an input */
                KP_ERROR("control: applying version %" PRId64 ": %s",
                         st->version, kp_err2str(err));
        if (st->version != g->applied.version || share != g->share)
                KP_INFO("control: version %" PRId64
                        " (%s by %s): intake %s, "
                        "rate share %.1f/s of %" PRId64
                        "/s (%d of %d "
                        "partitions)",
                        st->version, st->command[0] ? st->command : "none",
                        st->actor[0] ? st->actor : "-",
                        st->paused ? "paused" : "running", share,
                        st->rate_limit, owned, (int)pcount);
        g->applied = *st;
        g->owned   = owned;
        g->pcount  = pcount;
        g->share   = share;
        kp_gauge_set(g->m_version, (double)st->version);
        kp_gauge_set(g->m_paused, st->paused);
        kp_gauge_set(g->m_share, share);
}

gate_t *gate_new(kp_proc_t *proc, char *errstr, size_t errstr_size) {
        kp_service_t *svc = kp_proc_service(proc);
        char topic[256], client[300];
        kp_topic_name(topic, sizeof(topic), kp_service_prefix(svc),
                      KP_TOPIC_CONTROL_STATUS);
        snprintf(client, sizeof(client), "kpay-inflight-%s-control",
                 kp_service_instance(svc));
        gate_t *g = kp_calloc(1, sizeof(*g));
        pthread_mutex_init(&g->lock, NULL);
        register_metrics(g, kp_proc_metrics(proc));
        kp_follower_conf_t fc = {.topic     = topic,
                                 .client_id = client,
                                 .log_name  = "control",
                                 .threaded  = 1,
                                 .on_record = on_status,
                                 .opaque    = g};
        g->follower =
            kp_follower_new(kp_service_app_conf(svc), &fc, errstr, errstr_size);
        if (!g->follower) {
                gate_destroy(g);
                return NULL;
        }
        if (kp_follower_sync(g->follower, GATE_SYNC_TIMEOUT_MS)) {
                snprintf(errstr, errstr_size,
                         "could not read %s within %d ms: not starting "
                         "without knowing whether the pipeline is paused",
                         topic, GATE_SYNC_TIMEOUT_MS);
                gate_destroy(g);
                return NULL;
        }
        pthread_mutex_lock(&g->lock);
        kp_control_status_t st = g->want;
        pthread_mutex_unlock(&g->lock);
        apply(g, proc, &st, 0, 0);
        return g;
}

/* The sum of the committed in-flight totals of the owned partitions. */
typedef struct totals_sum_s {
        kp_control_report_t *r;
        int bad; /* a value did not decode: the sum is unknown */
} totals_sum_t;

static void add_totals(int32_t partition, const void *val, size_t vlen,
                       void *opaque) {
        totals_sum_t *s = opaque;
        inflight_record_t t;
        if (!val)
                return; /* no totals yet: nothing in flight there */
        inflight_record_init(&t);
        if (inflight_totals_decode(val, vlen, &t)) {
                KP_WARN("control: totals of partition %d do not decode",
                        (int)partition);
                s->bad = 1;
                return;
        }
        /* Per currency, never across; checked, never wrapping. */
        if (__builtin_add_overflow(s->r->inflight_count, t.inflight_count,
                                   &s->r->inflight_count) ||
            kp_money_add_all(&s->r->inflight_amounts, &t.inflight_amounts)) {
                KP_WARN("control: the in-flight totals overflow");
                s->bad = 1;
        }
        inflight_record_clear(&t);
}

/* Builds the report; publishes it at once when it changed. */
static void report(gate_t *g, kp_proc_t *proc, int64_t now_ms, int force) {
        kp_control_report_t r = {.version    = g->applied.version,
                                 .paused     = g->applied.paused,
                                 .rate_share = g->share};
        totals_sum_t sum      = {.r = &r};
        if (kp_proc_foreach_committed(
                proc, INFLIGHT_ST_TOTALS, INFLIGHT_TOTALS_KEY,
                strlen(INFLIGHT_TOTALS_KEY), add_totals, &sum) < 0 ||
            sum.bad) {
                /* A partial sum could make kpay-control see a drain that
                 * has not happened: report nothing until it can be read. */
                KP_WARN(
                    "control: the in-flight totals cannot be read; no "
                    "report");
                kp_service_set_status(kp_proc_service(proc), NULL);
                g->reported       = 0;
                g->next_report_ms = now_ms + GATE_REPORT_PAUSED_MS;
                kp_control_report_clear(&r);
                return;
        }
        int changed =
            r.version != g->last.version || r.paused != g->last.paused ||
            r.rate_share != g->last.rate_share ||
            r.inflight_count != g->last.inflight_count ||
            !kp_money_equal(&r.inflight_amounts, &g->last.inflight_amounts);
        g->next_report_ms =
            now_ms + (g->applied.paused ? GATE_REPORT_PAUSED_MS
                                        : GATE_REPORT_RUNNING_MS);
        if (!changed && !force && g->reported) {
                kp_control_report_clear(&r);
                return;
        }
        char *json = kp_control_report_to_json(&r);
        kp_service_set_status(kp_proc_service(proc), json);
        kp_free(json);
        kp_control_report_clear(&g->last);
        g->last     = r; /* takes over r's amounts */
        g->reported = 1;
        if (force || g->applied.paused)
                kp_service_announce(kp_proc_service(proc));
}

void gate_tick(gate_t *g, kp_proc_t *proc, int64_t now_ms) {
        pthread_mutex_lock(&g->lock);
        kp_control_status_t want = g->want;
        pthread_mutex_unlock(&g->lock);
        int owned      = kp_proc_owned_partitions(proc);
        int32_t pcount = kp_proc_partition_count(proc);
        /* The whole record, not just its version: two controllers may
         * write the same version, and the later record is the status. */
        int changed = want.version != g->applied.version ||
                      want.paused != g->applied.paused ||
                      want.rate_limit != g->applied.rate_limit ||
                      want.ts != g->applied.ts ||
                      strcmp(want.actor, g->applied.actor) ||
                      strcmp(want.command, g->applied.command) ||
                      owned != g->owned || pcount != g->pcount;
        /* A rebalance withdrew the report: publish it again at once. */
        int64_t epoch  = kp_proc_assignment_epoch(proc);
        int rebalanced = epoch != g->epoch;
        g->epoch       = epoch;
        if (changed) {
                int pausing = want.paused && !g->applied.paused;
                apply(g, proc, &want, owned, pcount);
                /* Payments accepted in the open transaction are in flight
                 * but not yet in the committed totals the report sums:
                 * commit them before reporting the pause as applied (no
                 * incoming record is processed before the runtime pauses
                 * the input, right after this tick). */
                if (pausing && kp_proc_commit(proc) != KP_OK)
                        KP_WARN(
                            "control: the commit before the pause report "
                            "failed; the aborted input is rewound");
        }
        if (g->applied.paused) {
                if (g->paused_since_ms)
                        kp_counter_add(g->m_paused_ms,
                                       now_ms - g->paused_since_ms);
                g->paused_since_ms = now_ms;
        } else {
                g->paused_since_ms = 0;
        }
        if (changed || rebalanced || now_ms >= g->next_report_ms)
                report(g, proc, now_ms, changed || rebalanced);
}

void gate_destroy(gate_t *g) {
        if (!g)
                return;
        kp_follower_destroy(g->follower);
        pthread_mutex_destroy(&g->lock);
        kp_control_report_clear(&g->last);
        kp_free(g);
}
