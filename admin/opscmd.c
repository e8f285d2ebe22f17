/* opscmd.c: kpay-admin trace, dlq list and dlq replay (docs/ops.md). The
 * decisions are ops.c's; this is the Kafka glue. */
#include "opscmd.h"

#include <inttypes.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kpay/kp_admin.h"
#include "kpay/kp_audit.h"
#include "kpay/kp_discovery.h"
#include "kpay/kp_json.h"
#include "kpay/kp_kafka.h"
#include "kpay/kp_mem.h"
#include "kpay/kp_time.h"
#include "kpay/kp_topics.h"
#include "ops.h"

/* Replays per transaction. */
#define REPLAY_BATCH 100
/* Records produced before the payment was created are not its own: the
 * scans of the account-keyed topics start this long before created_ms
 * (clock skew between producers). */
#define TRACE_SKEW_MS (10 * 60 * 1000)

rd_kafka_t *opscmd_client(const kp_app_conf_t *c, const char *client_id,
                          const kp_kafka_prop_t *props) {
        static const kp_kafka_prop_t none[] = {{NULL}};
        char errstr[512];
        rd_kafka_conf_t *conf = kp_kafka_conf_build(
            c, client_id, props ? props : none, errstr, sizeof(errstr));
        if (!conf) {
                fprintf(stderr, "kpay-admin: %s\n", errstr);
                return NULL;
        }
        rd_kafka_t *rk =
            rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
        if (!rk) {
                rd_kafka_conf_destroy(conf);
                fprintf(stderr,
                        "kpay-admin: cannot create a Kafka client: %s\n",
                        errstr);
        }
        return rk;
}

/* One record found, kept for printing. */
typedef struct found_s {
        char *topic;
        int32_t partition;
        int64_t offset, ts;
        char *key;
        char *value;
        size_t value_len;
        rd_kafka_headers_t *hdrs;
} found_t;

typedef struct found_list_s {
        found_t *v;
        size_t cnt;
} found_list_t;

static void found_add(found_list_t *l, const rd_kafka_message_t *m) {
        rd_kafka_headers_t *h = NULL;
        l->v                  = kp_realloc(l->v, sizeof(*l->v) * (l->cnt + 1));
        found_t *f            = &l->v[l->cnt++];
        memset(f, 0, sizeof(*f));
        f->topic     = kp_strdup(rd_kafka_topic_name(m->rkt));
        f->partition = m->partition;
        f->offset    = m->offset;
        f->ts        = rd_kafka_message_timestamp(m, NULL);
        f->key =
            m->key ? kp_asprintf("%.*s", (int)m->key_len, (const char *)m->key)
                   : NULL;
        if (m->payload) {
                f->value = kp_malloc(m->len + 1);
                memcpy(f->value, m->payload, m->len);
                f->value[m->len] = '\0';
                f->value_len     = m->len;
        }
        if (!rd_kafka_message_headers(m, &h) && h)
                f->hdrs = rd_kafka_headers_copy(h);
}

static void found_clear(found_list_t *l) {
        for (size_t i = 0; i < l->cnt; i++) {
                kp_free(l->v[i].topic);
                kp_free(l->v[i].key);
                kp_free(l->v[i].value);
                if (l->v[i].hdrs)
                        rd_kafka_headers_destroy(l->v[i].hdrs);
        }
        kp_free(l->v);
        l->v   = NULL;
        l->cnt = 0;
}

static char *fmt_ts(char *buf, size_t size, int64_t ms) {
        time_t s = (time_t)(ms / 1000);
        struct tm tm;
        gmtime_r(&s, &tm);
        snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
                 (tm.tm_year + 1900) % 10000, (tm.tm_mon + 1) % 100,
                 tm.tm_mday % 100, tm.tm_hour % 100, tm.tm_min % 100,
                 tm.tm_sec % 100, (int)(ms % 1000 + 1000) % 1000);
        return buf;
}

/* The record as one JSON object: where it is, its headers, its value
 * (parsed when it is JSON, else a string). */
static json_t *found_json(const found_t *f) {
        json_error_t jerr;
        json_t *hdrs = json_object();
        const char *name;
        const void *val;
        size_t len;
        for (size_t i = 0;
             f->hdrs && !rd_kafka_header_get_all(f->hdrs, i, &name, &val, &len);
             i++) {
                json_t *s = json_stringn(val ? val : "", val ? len : 0);
                kp_json_set(hdrs, name, s ? s : json_string("(binary)"));
        }
        json_t *v = f->value ? json_loadb(f->value, f->value_len, 0, &jerr)
                             : json_null();
        if (!v)
                v = json_stringn(f->value, f->value_len);
        json_t *o = json_object();
        kp_json_set(o, "ts", json_integer((json_int_t)f->ts));
        kp_json_set(o, "topic", json_string(f->topic));
        kp_json_set(o, "partition", json_integer(f->partition));
        kp_json_set(o, "offset", json_integer((json_int_t)f->offset));
        kp_json_set(o, "key", f->key ? json_string(f->key) : json_null());
        kp_json_set(o, "headers", hdrs);
        kp_json_set(o, "value", v ? v : json_string("(binary)"));
        return o;
}

static void found_print(const found_t *f, int as_json) {
        if (as_json) {
                char *s = kp_json_dump(found_json(f));
                printf("%s\n", s);
                kp_free(s);
                return;
        }
        char ts[64], hop[64], trace[KP_AUDIT_TRACE_MAX + 1], sum[600];
        printf("%s %s[%d]@%" PRId64 " hop=%s trace=%s key=%s %s\n",
               fmt_ts(ts, sizeof(ts), f->ts), f->topic, (int)f->partition,
               f->offset,
               ops_header(f->hdrs, "kpay-hop", hop, sizeof(hop))[0] ? hop : "-",
               ops_header(f->hdrs, "kpay-trace", trace, sizeof(trace))[0]
                   ? trace
                   : "-",
               f->key ? f->key : "-",
               ops_summary(f->value, f->value_len, f->hdrs, sum, sizeof(sum)));
}

/* ------------------------------------------------------------------------
 * trace */

typedef struct trace_ctx_s {
        const char *id;
        found_list_t found;
} trace_ctx_t;

static int trace_cb(const rd_kafka_message_t *m, void *opaque) {
        trace_ctx_t *t = opaque;
        if (ops_record_of(t->id, m->key, m->key_len, m->payload, m->len))
                found_add(&t->found, m);
        return 0;
}

static int found_cmp(const void *a, const void *b) {
        const found_t *x = a, *y = b;
        if (x->ts != y->ts)
                return x->ts < y->ts ? -1 : 1;
        int c = strcmp(x->topic, y->topic);
        if (c)
                return c;
        if (x->partition != y->partition)
                return x->partition < y->partition ? -1 : 1;
        return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* Adds @p p to @p parts (no duplicates). */
static void part_add(int32_t *parts, size_t *cnt, int32_t p) {
        for (size_t i = 0; i < *cnt; i++)
                if (parts[i] == p)
                        return;
        parts[(*cnt)++] = p;
}

/* Scans @p parts of topic @p id for the payment; adds to the totals. */
static int trace_scan(const kp_app_conf_t *c, const opscmd_opts_t *o,
                      trace_ctx_t *t, kp_topic_id_t id, const int32_t *parts,
                      size_t cnt, int64_t since, int64_t *scanned,
                      int *truncated) {
        char topic[256], errstr[512];
        int64_t n = 0;
        int trunc = 0;
        kp_topic_name(topic, sizeof(topic), c->topic_prefix, id);
        kp_admin_scan_t s = {.topic             = topic,
                             .partitions        = parts,
                             .partition_cnt     = cnt,
                             .since_ms          = since,
                             .max_per_partition = o->max_scan,
                             .timeout_ms        = o->timeout_ms};
        kp_err_t err = kp_admin_scan(c, &s, trace_cb, t, &n, &trunc, errstr,
                                     sizeof(errstr));
        *scanned += n;
        *truncated |= trunc;
        if (err) {
                fprintf(stderr, "kpay-admin: %s\n", errstr);
                return 1;
        }
        return 0;
}

/* The payment's accounts and creation time, from any record found. */
static void trace_learn(const found_list_t *l, char *from, char *to,
                        size_t size, int64_t *created) {
        for (size_t i = 0; i < l->cnt; i++) {
                json_error_t jerr;
                json_t *j =
                    l->v[i].value
                        ? json_loadb(l->v[i].value, l->v[i].value_len, 0, &jerr)
                        : NULL;
                const char *f  = json_string_value(json_object_get(j, "from"));
                const char *tt = json_string_value(json_object_get(j, "to"));
                json_t *cr     = json_object_get(j, "created_ms");
                if (f && !from[0])
                        snprintf(from, size, "%s", f);
                if (tt && !to[0])
                        snprintf(to, size, "%s", tt);
                if (json_is_integer(cr) && json_integer_value(cr) > 0 &&
                    (!*created || json_integer_value(cr) < *created))
                        *created = json_integer_value(cr);
                if (l->v[i].ts > 0 && (!*created || l->v[i].ts < *created))
                        *created = l->v[i].ts;
                json_decref(j);
        }
}

static int cmd_trace(const kp_app_conf_t *c, const opscmd_opts_t *o,
                     const char *id) {
        char topic[256], from[128] = "", to[128] = "";
        trace_ctx_t t   = {.id = id};
        int64_t scanned = 0, created = 0;
        int truncated = 0, rc = 0;
        rd_kafka_t *rk = opscmd_client(c, "kpay-admin", NULL);
        if (!rk)
                return 1;
        int32_t n[KP_TOPIC__CNT];
        static const kp_topic_id_t used[] = {
            KP_TOPIC_INCOMING,  KP_TOPIC_INFLIGHT, KP_TOPIC_COMPLETE,
            KP_TOPIC_CONFIRMED, KP_TOPIC_DLQ,      KP_TOPIC_OPS_AUDIT};
        for (size_t i = 0; i < sizeof(used) / sizeof(used[0]); i++) {
                kp_topic_name(topic, sizeof(topic), c->topic_prefix, used[i]);
                n[used[i]] = kp_admin_partition_count(rk, topic, o->timeout_ms);
                if (n[used[i]] <= 0) {
                        fprintf(stderr,
                                "kpay-admin: topic %s does not exist or the "
                                "cluster does not answer\n",
                                topic);
                        rd_kafka_destroy(rk);
                        return 1;
                }
        }
        rd_kafka_destroy(rk);
        size_t idlen = strlen(id);
        /* 1. The payment-keyed topics: the id's partition only (kpay
         *    re-routes a payment there whatever its producer did). */
        int32_t p;
        p = kp_partition_for_key(id, idlen, n[KP_TOPIC_INCOMING]);
        rc |= trace_scan(c, o, &t, KP_TOPIC_INCOMING, &p, 1, o->since_ms,
                         &scanned, &truncated);
        /* kpay-account writes the outcome to origin_partition, which is
         * the id's partition of incoming. */
        p = kp_partition_for_key(id, idlen, n[KP_TOPIC_COMPLETE]);
        rc |= trace_scan(c, o, &t, KP_TOPIC_COMPLETE, &p, 1, o->since_ms,
                         &scanned, &truncated);
        p = kp_partition_for_key(id, idlen, n[KP_TOPIC_CONFIRMED]);
        rc |= trace_scan(c, o, &t, KP_TOPIC_CONFIRMED, &p, 1, o->since_ms,
                         &scanned, &truncated);
        trace_learn(&t.found, from, to, sizeof(from), &created);
        int64_t since = o->since_ms;
        if (created > TRACE_SKEW_MS && created - TRACE_SKEW_MS > since)
                since = created - TRACE_SKEW_MS;
        /* 2. The account-keyed topic: the partitions of its accounts. */
        int32_t parts[3];
        size_t cnt = 0;
        if (from[0])
                part_add(parts, &cnt,
                         kp_partition_for_key(from, strlen(from),
                                              n[KP_TOPIC_INFLIGHT]));
        if (to[0])
                part_add(
                    parts, &cnt,
                    kp_partition_for_key(to, strlen(to), n[KP_TOPIC_INFLIGHT]));
        if (cnt)
                rc |= trace_scan(c, o, &t, KP_TOPIC_INFLIGHT, parts, cnt, since,
                                 &scanned, &truncated);
        /* 3. The DLQ, keyed by the original key: the id's and the
         *    accounts' partitions. */
        cnt = 0;
        part_add(parts, &cnt, kp_partition_for_key(id, idlen, n[KP_TOPIC_DLQ]));
        if (from[0])
                part_add(
                    parts, &cnt,
                    kp_partition_for_key(from, strlen(from), n[KP_TOPIC_DLQ]));
        if (to[0])
                part_add(parts, &cnt,
                         kp_partition_for_key(to, strlen(to), n[KP_TOPIC_DLQ]));
        rc |= trace_scan(c, o, &t, KP_TOPIC_DLQ, parts, cnt, since, &scanned,
                         &truncated);
        /* 4. The audit records of replays: kpay-admin's partition. */
        p = kp_partition_for_key(OPS_AUDIT_KEY, strlen(OPS_AUDIT_KEY),
                                 n[KP_TOPIC_OPS_AUDIT]);
        rc |= trace_scan(c, o, &t, KP_TOPIC_OPS_AUDIT, &p, 1, since, &scanned,
                         &truncated);

        if (t.found.cnt) /* qsort() wants a non-NULL base */
                qsort(t.found.v, t.found.cnt, sizeof(*t.found.v), found_cmp);
        for (size_t i = 0; i < t.found.cnt; i++)
                found_print(&t.found.v[i], o->json);
        fprintf(stderr,
                "kpay-admin: %zu records of payment %s (%" PRId64
                " records read)%s\n",
                t.found.cnt, id, scanned,
                truncated ? "; the scan was bounded by --max-scan: some "
                            "partition was not read to its end"
                          : "");
        int found = t.found.cnt > 0;
        found_clear(&t.found);
        if (rc)
                return 1;
        return found ? 0 : 3;
}

/* ------------------------------------------------------------------------
 * dlq list / replay */

typedef struct dlq_ctx_s {
        const opscmd_opts_t *o;
        found_list_t letters;
        json_t *replayed; /* marker key -> true */
} dlq_ctx_t;

static int dlq_cb(const rd_kafka_message_t *m, void *opaque) {
        dlq_ctx_t *d          = opaque;
        rd_kafka_headers_t *h = NULL;
        char err[64], svc[64];
        rd_kafka_message_headers(m, &h);
        ops_header(h, "kpay-error", err, sizeof(err));
        ops_header(h, "kpay-service", svc, sizeof(svc));
        if ((d->o->error && strcmp(d->o->error, err)) ||
            (d->o->service && strcmp(d->o->service, svc)))
                return 0;
        found_add(&d->letters, m);
        return 0;
}

static int marker_cb(const rd_kafka_message_t *m, void *opaque) {
        dlq_ctx_t *d = opaque;
        char key[64];
        if (ops_replay_marker(m->payload, m->len, key, sizeof(key)))
                kp_json_set(d->replayed, key, json_true());
        return 0;
}

/* Reads the replay markers (kpay-admin's audit partition) into
 * d->replayed. */
static int read_markers(const kp_app_conf_t *c, dlq_ctx_t *d, int32_t nparts,
                        int timeout_ms) {
        char topic[256], errstr[512];
        kp_topic_name(topic, sizeof(topic), c->topic_prefix,
                      KP_TOPIC_OPS_AUDIT);
        int32_t p =
            kp_partition_for_key(OPS_AUDIT_KEY, strlen(OPS_AUDIT_KEY), nparts);
        kp_admin_scan_t s = {.topic         = topic,
                             .partitions    = &p,
                             .partition_cnt = 1,
                             .timeout_ms    = timeout_ms};
        if (kp_admin_scan(c, &s, marker_cb, d, NULL, NULL, errstr,
                          sizeof(errstr))) {
                fprintf(stderr, "kpay-admin: the replay markers: %s\n", errstr);
                return 1;
        }
        return 0;
}

static int read_letters(const kp_app_conf_t *c, dlq_ctx_t *d) {
        char topic[256], errstr[512];
        int truncated = 0;
        kp_topic_name(topic, sizeof(topic), c->topic_prefix, KP_TOPIC_DLQ);
        kp_admin_scan_t s = {.topic             = topic,
                             .since_ms          = d->o->since_ms,
                             .max_per_partition = d->o->max_scan,
                             .timeout_ms        = d->o->timeout_ms};
        if (kp_admin_scan(c, &s, dlq_cb, d, NULL, &truncated, errstr,
                          sizeof(errstr))) {
                fprintf(stderr, "kpay-admin: %s\n", errstr);
                return 1;
        }
        if (truncated)
                fprintf(stderr,
                        "kpay-admin: the scan was bounded by "
                        "--max-scan: some partition of the DLQ was "
                        "not read to its end\n");
        if (d->letters.cnt) /* qsort() wants a non-NULL base */
                qsort(d->letters.v, d->letters.cnt, sizeof(*d->letters.v),
                      found_cmp);
        return 0;
}

static int letter_replayed(const dlq_ctx_t *d, const found_t *f) {
        char key[64];
        ops_letter_key(key, sizeof(key), f->partition, f->offset);
        return json_object_get(d->replayed, key) != NULL;
}

static int cmd_dlq_list(const kp_app_conf_t *c, const opscmd_opts_t *o) {
        char topic[256];
        dlq_ctx_t d    = {.o = o, .replayed = json_object()};
        rd_kafka_t *rk = opscmd_client(c, "kpay-admin", NULL);
        kp_topic_name(topic, sizeof(topic), c->topic_prefix,
                      KP_TOPIC_OPS_AUDIT);
        int32_t na =
            rk ? kp_admin_partition_count(rk, topic, o->timeout_ms) : -1;
        if (rk)
                rd_kafka_destroy(rk);
        int rc =
            na <= 0
                ? (fprintf(stderr, "kpay-admin: %s is not there\n", topic), 1)
                : read_markers(c, &d, na, o->timeout_ms);
        if (!rc)
                rc = read_letters(c, &d);
        for (size_t i = 0; !rc && i < d.letters.cnt; i++) {
                found_t *f = &d.letters.v[i];
                if (o->json) {
                        json_t *j = found_json(f);
                        kp_json_set(j, "replayed",
                                    json_boolean(letter_replayed(&d, f)));
                        char *s = kp_json_dump(j);
                        printf("%s\n", s);
                        kp_free(s);
                        continue;
                }
                char ts[64], svc[64], st[256], sp[16], so[32], sum[600];
                printf(
                    "%s dlq[%d]@%" PRId64
                    " service=%s source=%s[%s]@%s key=%s replayed=%s "
                    "%s\n",
                    fmt_ts(ts, sizeof(ts), f->ts), (int)f->partition, f->offset,
                    ops_header(f->hdrs, "kpay-service", svc, sizeof(svc)),
                    ops_header(f->hdrs, "kpay-source-topic", st, sizeof(st)),
                    ops_header(f->hdrs, "kpay-source-partition", sp,
                               sizeof(sp)),
                    ops_header(f->hdrs, "kpay-source-offset", so, sizeof(so)),
                    f->key ? f->key : "-",
                    letter_replayed(&d, f) ? "yes" : "no",
                    ops_summary(f->value, f->value_len, f->hdrs, sum,
                                sizeof(sum)));
        }
        if (!rc)
                fprintf(stderr, "kpay-admin: %zu dead letters\n",
                        d.letters.cnt);
        found_clear(&d.letters);
        json_decref(d.replayed);
        return rc;
}

/* The transactional producer of replays: one transactional.id per
 * deployment, so that a second run (or a restart after a crash) fences the
 * first and aborts what it left open before anything is read. */
static rd_kafka_t *replay_producer(const kp_app_conf_t *c, int timeout_ms) {
        char tid[300];
        snprintf(tid, sizeof(tid), "%skpay-admin-dlq-replay",
                 c->topic_prefix ? c->topic_prefix : "");
        const kp_kafka_prop_t props[] = {
            {"transactional.id", tid, KP_PROP_REQUIRE},
            {"enable.idempotence", "true", KP_PROP_REQUIRE},
            {"acks", "all", KP_PROP_REQUIRE},
            {"partitioner", "murmur2_random", KP_PROP_REQUIRE},
            /* A crashed run must not hold the readers of the source topics
             * (read_committed) for long. */
            {"transaction.timeout.ms", "60000", KP_PROP_DEFAULT},
            {"message.timeout.ms", "30000", KP_PROP_DEFAULT},
            {NULL},
        };
        rd_kafka_t *rk = opscmd_client(c, "kpay-admin-replay", props);
        if (!rk)
                return NULL;
        rd_kafka_error_t *e = rd_kafka_init_transactions(rk, timeout_ms);
        if (e) {
                fprintf(stderr, "kpay-admin: init_transactions: %s\n",
                        rd_kafka_error_string(e));
                rd_kafka_error_destroy(e);
                rd_kafka_destroy(rk);
                return NULL;
        }
        return rk;
}

/* Produces the replay of @p f and its audit record (the marker) in the
 * open transaction. */
static int replay_one(rd_kafka_t *rk, const kp_app_conf_t *c,
                      const opscmd_opts_t *o, const found_t *f,
                      const char *dlq_topic, int32_t audit_part,
                      const char *actor) {
        char st[256], sp[16], so[32], err[64], svc[64], audit_topic[256],
            trace[KP_AUDIT_TRACE_MAX + 1], pid[KP_AUDIT_TRACE_MAX + 1],
            target[320];
        (void)o;
        ops_header(f->hdrs, "kpay-source-topic", st, sizeof(st));
        ops_header(f->hdrs, "kpay-source-partition", sp, sizeof(sp));
        ops_header(f->hdrs, "kpay-source-offset", so, sizeof(so));
        ops_header(f->hdrs, "kpay-error", err, sizeof(err));
        ops_header(f->hdrs, "kpay-service", svc, sizeof(svc));
        ops_header(f->hdrs, "kpay-trace", trace, sizeof(trace));
        if (!st[0]) {
                fprintf(stderr,
                        "kpay-admin: dlq[%d]@%" PRId64
                        " has no kpay-source-topic: skipped\n",
                        (int)f->partition, f->offset);
                return 0;
        }
        char *end;
        long part = strtol(sp, &end, 10);
        int32_t partition =
            sp[0] && !*end && part >= 0 ? (int32_t)part : RD_KAFKA_PARTITION_UA;
        rd_kafka_headers_t *h =
            ops_replay_headers(f->hdrs, f->partition, f->offset);
        rd_kafka_resp_err_t e = rd_kafka_producev(
            rk, RD_KAFKA_V_TOPIC(st), RD_KAFKA_V_PARTITION(partition),
            RD_KAFKA_V_KEY(f->key, f->key ? strlen(f->key) : 0),
            RD_KAFKA_V_VALUE(f->value, f->value_len),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(h),
            RD_KAFKA_V_END);
        if (e) {
                rd_kafka_headers_destroy(h);
                fprintf(stderr, "kpay-admin: replaying to %s: %s\n", st,
                        rd_kafka_err2str(e));
                return 1;
        }
        int has_id = ops_value_id(f->value, f->value_len, pid, sizeof(pid));
        snprintf(target, sizeof(target), "%s:%d:%" PRId64, dlq_topic,
                 (int)f->partition, f->offset);
        json_t *before = json_pack("{s:s, s:s, s:s}", "state", "dead_letter",
                                   "error", err, "service", svc);
        json_t *after  = json_pack(
             "{s:s, s:s, s:o}", "state", "replayed", "topic", st, "partition",
            partition >= 0 ? json_integer(partition) : json_null());
        json_t *extra = json_pack(
            "{s:o, s:{s:i, s:I}, s:{s:s, s:s, s:s}, s:s, s:o}", "payment",
            has_id ? json_string(pid) : json_null(), "dlq", "partition",
            (int)f->partition, "offset", (json_int_t)f->offset, "source",
            "topic", st, "partition", sp, "offset", so, "error", err, "key",
            f->key ? json_string(f->key) : json_null());
        kp_audit_rec_t ar = {.service  = "admin",
                             .instance = NULL,
                             .actor    = actor,
                             .action   = OPS_REPLAY_ACTION,
                             .target   = target,
                             .before   = before,
                             .after    = after,
                             .trace    = trace[0] ? trace : NULL,
                             .ts       = kp_wall_ms()};
        size_t len;
        char *val = kp_audit_serialize(&ar, extra, &len);
        json_decref(before);
        json_decref(after);
        json_decref(extra);
        kp_topic_name(audit_topic, sizeof(audit_topic), c->topic_prefix,
                      KP_TOPIC_OPS_AUDIT);
        e = rd_kafka_producev(
            rk, RD_KAFKA_V_TOPIC(audit_topic), RD_KAFKA_V_PARTITION(audit_part),
            RD_KAFKA_V_KEY(OPS_AUDIT_KEY, strlen(OPS_AUDIT_KEY)),
            RD_KAFKA_V_VALUE(val, len),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_HEADER("kpay-hop", "admin", -1),
            RD_KAFKA_V_HEADER("kpay-trace", trace[0] ? trace : pid, -1),
            RD_KAFKA_V_END);
        kp_free(val);
        if (e) {
                fprintf(stderr, "kpay-admin: the audit record: %s\n",
                        rd_kafka_err2str(e));
                return 1;
        }
        return 0;
}

static int txn_fail(rd_kafka_t *rk, const char *what, rd_kafka_error_t *e) {
        fprintf(stderr, "kpay-admin: %s: %s\n", what, rd_kafka_error_string(e));
        int abortable = rd_kafka_error_txn_requires_abort(e);
        rd_kafka_error_destroy(e);
        if (abortable) {
                rd_kafka_error_t *a = rd_kafka_abort_transaction(rk, -1);
                if (a)
                        rd_kafka_error_destroy(a);
        }
        return 1;
}

static int cmd_dlq_replay(const kp_app_conf_t *c, const opscmd_opts_t *o) {
        char topic[256], dlq_topic[256], actor[KP_AUDIT_ACTOR_MAX + 1];
        if (!o->error || !*o->error) {
                fprintf(stderr, "kpay-admin: dlq replay needs --error CODE\n");
                return 2;
        }
        kp_audit_actor(actor, sizeof(actor),
                       o->actor ? o->actor : getenv("USER"), "anonymous");
        kp_topic_name(dlq_topic, sizeof(dlq_topic), c->topic_prefix,
                      KP_TOPIC_DLQ);
        kp_topic_name(topic, sizeof(topic), c->topic_prefix,
                      KP_TOPIC_OPS_AUDIT);
        /* First fence any other run (and abort what a crashed one left
         * open), then read the markers: every replay committed before is
         * visible then, and none can commit after. */
        rd_kafka_t *rk = o->dry_run ? NULL : replay_producer(c, o->timeout_ms);
        rd_kafka_t *meta = rk;
        if (!rk) {
                if (!o->dry_run)
                        return 1;
                if (!(meta = opscmd_client(c, "kpay-admin", NULL)))
                        return 1;
        }
        int32_t na = kp_admin_partition_count(meta, topic, o->timeout_ms);
        if (!rk)
                rd_kafka_destroy(meta);
        if (na <= 0) {
                fprintf(stderr, "kpay-admin: %s is not there\n", topic);
                if (rk)
                        rd_kafka_destroy(rk);
                return 1;
        }
        int32_t audit_part =
            kp_partition_for_key(OPS_AUDIT_KEY, strlen(OPS_AUDIT_KEY), na);
        dlq_ctx_t d = {.o = o, .replayed = json_object()};
        int rc      = read_markers(c, &d, na, o->timeout_ms);
        if (!rc)
                rc = read_letters(c, &d);
        size_t done = 0, already = 0, refailed = 0, in_txn = 0;
        for (size_t i = 0; !rc && i < d.letters.cnt; i++) {
                found_t *f = &d.letters.v[i];
                char rep[48];
                if (letter_replayed(&d, f)) {
                        already++;
                        continue;
                }
                if (ops_header(f->hdrs, OPS_REPLAY_HEADER, rep,
                               sizeof(rep))[0] &&
                    !o->again) {
                        refailed++;
                        continue;
                }
                if (o->dry_run) {
                        char sum[600];
                        printf("would replay dlq[%d]@%" PRId64 " %s\n",
                               (int)f->partition, f->offset,
                               ops_summary(f->value, f->value_len, f->hdrs, sum,
                                           sizeof(sum)));
                        done++;
                        continue;
                }
                if (!in_txn) {
                        rd_kafka_error_t *e = rd_kafka_begin_transaction(rk);
                        if (e) {
                                rc = txn_fail(rk, "begin_transaction", e);
                                break;
                        }
                }
                if (replay_one(rk, c, o, f, dlq_topic, audit_part, actor)) {
                        rd_kafka_error_t *a =
                            rd_kafka_abort_transaction(rk, -1);
                        if (a)
                                rd_kafka_error_destroy(a);
                        rc = 1;
                        break;
                }
                printf("replayed dlq[%d]@%" PRId64 "\n", (int)f->partition,
                       f->offset);
                in_txn++;
                if (in_txn == REPLAY_BATCH || i + 1 == d.letters.cnt) {
                        rd_kafka_error_t *e =
                            rd_kafka_commit_transaction(rk, -1);
                        if (e) {
                                rc = txn_fail(rk, "commit_transaction", e);
                                break;
                        }
                        done += in_txn;
                        in_txn = 0;
                }
        }
        if (!rc && in_txn) {
                rd_kafka_error_t *e = rd_kafka_commit_transaction(rk, -1);
                if (e)
                        rc = txn_fail(rk, "commit_transaction", e);
                else
                        done += in_txn;
        }
        fprintf(stderr,
                "kpay-admin: %s %zu dead letters (error %s); %zu replayed "
                "before; %zu failed replays skipped%s\n",
                o->dry_run ? "would replay" : "replayed", done, o->error,
                already, refailed,
                refailed && !o->again ? " (--again includes them)" : "");
        if (rk)
                rd_kafka_destroy(rk);
        found_clear(&d.letters);
        json_decref(d.replayed);
        return rc;
}

int opscmd_main(const kp_app_conf_t *c, const opscmd_opts_t *o, int nargs,
                char **args) {
        if (!strcmp(args[0], "trace")) {
                if (nargs != 2 || !*args[1]) {
                        fprintf(stderr,
                                "kpay-admin: usage: trace PAYMENT-ID\n");
                        return 2;
                }
                return cmd_trace(c, o, args[1]);
        }
        if (nargs == 2 && !strcmp(args[1], "list"))
                return cmd_dlq_list(c, o);
        if (nargs == 2 && !strcmp(args[1], "replay"))
                return cmd_dlq_replay(c, o);
        fprintf(stderr,
                "kpay-admin: usage: dlq list [--error CODE] [--service "
                "S] | dlq replay --error CODE [--dry-run]\n");
        return 2;
}
