/* kp_topics.c: the topic table of DESIGN.md §2. */
#include "kpay/kp_topics.h"

#include <stdio.h>
#include <string.h>

/* Retention of the dead-letter topic: 30 days, so an operator back from a
 * long weekend still finds every failed record. */
#define KP_DLQ_RETENTION_MS   "2592000000"
#define KP_AUDIT_RETENTION_MS "7776000000" /* 90 days */

static const kp_topic_spec_t topic_specs[KP_TOPIC__CNT] = {
    [KP_TOPIC_INCOMING]  = {"kpay.payments.incoming", 0, "delete", NULL},
    [KP_TOPIC_INFLIGHT]  = {"kpay.payments.inflight", 0, "delete", NULL},
    [KP_TOPIC_COMPLETE]  = {"kpay.payments.complete", 0, "delete", NULL},
    [KP_TOPIC_CONFIRMED] = {"kpay.payments.confirmed", 0, "delete", NULL},
    /* One key ("pipeline"), read whole by every instance: one partition. */
    [KP_TOPIC_CONTROL_STATUS] = {"kpay.control.status", 1, "compact", NULL},
    /* A handful of keys (one per instance), read whole by every reader. */
    [KP_TOPIC_METADATA]  = {"kpay.metadata", 1, "compact", NULL},
    [KP_TOPIC_DLQ]       = {"kpay.dlq", 0, "delete", KP_DLQ_RETENTION_MS},
    [KP_TOPIC_OPS_LOG]   = {"kpay.ops.log", 0, "delete", NULL},
    [KP_TOPIC_OPS_AUDIT] = {"kpay.ops.audit", 0, "delete",
                            KP_AUDIT_RETENTION_MS},
    /* kpay-metrics' final windows, one key per (size, start, partition):
     * the latest value of a window is what counts, and kpay-metrics
     * tombstones a window when it expires from its store. */
    [KP_TOPIC_METRICS_WINDOWS] = {"kpay.metrics.windows", 0, "compact", NULL},
};

const kp_topic_spec_t *kp_topic_spec(kp_topic_id_t id) {
        if ((int)id < 0 || id >= KP_TOPIC__CNT)
                return NULL;
        return &topic_specs[id];
}

kp_topic_id_t kp_topic_id_of(const char *name) {
        for (int id = 0; name && id < KP_TOPIC__CNT; id++)
                if (!strcmp(topic_specs[id].name, name))
                        return (kp_topic_id_t)id;
        return KP_TOPIC_NONE;
}

char *kp_topic_name(char *buf, size_t size, const char *prefix,
                    kp_topic_id_t id) {
        const kp_topic_spec_t *spec = kp_topic_spec(id);
        snprintf(buf, size, "%s%s", prefix ? prefix : "",
                 spec ? spec->name : "");
        return buf;
}

char *kp_changelog_name(char *buf, size_t size, const char *prefix,
                        const char *service, const char *store) {
        snprintf(buf, size, "%skpay-%s-%s-changelog", prefix ? prefix : "",
                 service, store);
        return buf;
}

int kp_topic_name_valid(const char *name) {
        size_t len = strlen(name);
        if (len == 0 || len > 249 || !strcmp(name, ".") || !strcmp(name, ".."))
                return 0;
        for (const char *p = name; *p; p++) {
                char c = *p;
                if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                      (c >= '0' && c <= '9') || c == '.' || c == '_' ||
                      c == '-'))
                        return 0;
        }
        return 1;
}
