/* kp_audit.c: audit records on kpay.ops.audit (docs/ops.md). */
#include "kpay/kp_audit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "kpay/kp_json.h"
#include "kpay/kp_kafka.h"
#include "kpay/kp_log.h"
#include "kpay/kp_mem.h"
#include "kpay/kp_time.h"

/* The standard fields, in the order they are written. */
static const char *const std_fields[] = {
    "v",      "ts",     "service", "instance", "actor", "action",
    "target", "before", "after",   "trace",    NULL};

void kp_audit_actor(char *buf, size_t size, const char *raw,
                    const char *fallback) {
        if (!size)
                return;
        if (!raw || !*raw) {
                snprintf(buf, size, "%s", fallback ? fallback : "anonymous");
                return;
        }
        size_t n = 0;
        for (; raw[n] && n < KP_AUDIT_ACTOR_MAX && n + 1 < size; n++) {
                char c = raw[n];
                int ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                         (c >= '0' && c <= '9') || strchr("._@:-", c);
                buf[n] = ok ? c : '_';
        }
        buf[n] = '\0';
}

void kp_audit_trace_new(char *buf, size_t size) {
        unsigned char rnd[16];
        ssize_t got = getrandom(rnd, sizeof(rnd), 0);
        if (got != (ssize_t)sizeof(rnd)) {
                /* No entropy source: time and pid still make it unique
                 * enough for a trace id (it is not a secret). */
                uint64_t a = (uint64_t)kp_wall_ms(), b = (uint64_t)getpid();
                memcpy(rnd, &a, 8);
                memcpy(rnd + 8, &b, 8);
        }
        size_t of = 0;
        for (size_t i = 0; i < sizeof(rnd) && of + 2 < size; i++)
                of += (size_t)snprintf(buf + of, size - of, "%02x", rnd[i]);
        if (size)
                buf[of < size ? of : size - 1] = '\0';
}

static json_t *str_or_null(const char *s) {
        return s ? json_string(s) : json_null();
}

char *kp_audit_serialize(const kp_audit_rec_t *r, const json_t *extra,
                         size_t *lenp) {
        char actor[KP_AUDIT_ACTOR_MAX + 1], trace[KP_AUDIT_TRACE_MAX + 1];
        kp_audit_actor(actor, sizeof(actor), r->actor, "anonymous");
        json_t *o = json_object();
        if (!o) {
                KP_FATAL("out of memory building JSON");
                abort();
        }
        kp_json_set(o, "v", json_integer(KP_AUDIT_VERSION));
        kp_json_set(o, "ts", json_integer((json_int_t)r->ts));
        kp_json_set(o, "service", str_or_null(r->service));
        kp_json_set(o, "instance", str_or_null(r->instance));
        kp_json_set(o, "actor", json_string(actor));
        kp_json_set(o, "action", str_or_null(r->action));
        kp_json_set(o, "target", str_or_null(r->target));
        kp_json_set(o, "before",
                    r->before ? json_deep_copy(r->before) : json_null());
        kp_json_set(o, "after",
                    r->after ? json_deep_copy(r->after) : json_null());
        if (r->trace) {
                snprintf(trace, sizeof(trace), "%s", r->trace);
                /* A trace of invalid UTF-8 would make json_string fail. */
                json_t *t = json_string(trace);
                kp_json_set(o, "trace", t ? t : json_string("invalid"));
        } else {
                kp_json_set(o, "trace", json_null());
        }
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)extra, k, v) {
                int std = 0;
                for (const char *const *f = std_fields; *f && !std; f++)
                        std = !strcmp(*f, k);
                if (!std)
                        kp_json_set(o, k, json_deep_copy(v));
        }
        char *s = kp_json_dump(o);
        if (lenp)
                *lenp = strlen(s);
        return s;
}

kp_err_t kp_audit_write_sync(rd_kafka_t *rk, const char *topic,
                             const kp_audit_rec_t *r, const json_t *extra,
                             int timeout_ms) {
        size_t len;
        char *val                = kp_audit_serialize(r, extra, &len);
        rd_kafka_headers_t *hdrs = rd_kafka_headers_new(2);
        rd_kafka_header_add(hdrs, "kpay-hop", -1, r->service, -1);
        if (r->trace)
                rd_kafka_header_add(hdrs, "kpay-trace", -1, r->trace, -1);
        kp_err_t err = kp_kafka_produce_sync(rk, topic, RD_KAFKA_PARTITION_UA,
                                             r->service, strlen(r->service),
                                             val, len, hdrs, timeout_ms);
        kp_free(val);
        return err;
}
