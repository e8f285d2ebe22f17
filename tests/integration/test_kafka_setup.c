/* Integration test of the foundation against the real broker of the CTest
 * fixture: kpay-admin creates every topic with the right layout, is
 * idempotent, refuses topics that differ, and the broker gives us real
 * transactions (an aborted transaction is invisible to read_committed).
 * It also checks kpay's librdkafka build's ProduceRequests carrying
 * several partitions (produce.request.max.partitions, docs/runtime.md):
 * fewer requests, every record exactly once and in order, and a
 * partition's own error failing only that partition's records. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "it_util.h"
#include "kpay/kp_admin.h"
#include "kpay/kp_topics.h"
#include "layouts.h"

#define TIMEOUT_MS 30000

static int run_admin_topics(const char *prefix, char **outp) {
        return it_admin_run_topics(prefix, 12, outp);
}

static void test_topics_created_then_checked(void **state) {
        (void)state;
        char prefix[64], errstr[512], cleanup[64];
        char *out = NULL;
        it_unique_prefix(prefix, sizeof(prefix), "setup");

        int rc = run_admin_topics(prefix, &out);
        if (rc != 0)
                fail_msg("kpay-admin topics exited %d:\n%s", rc, out);
        kp_topic_plan_t plan = {0};
        kp_topic_plan_all(&plan, prefix, 12, 1, admin_layouts);
        for (size_t i = 0; i < plan.cnt; i++) {
                char line[300];
                snprintf(line, sizeof(line), "created %s\n", plan.reqs[i].name);
                if (!strstr(out, line))
                        fail_msg("no \"%s\" in:\n%s", line, out);
        }
        free(out);

        /* A second run creates nothing and accepts every topic. */
        rc = run_admin_topics(prefix, &out);
        if (rc != 0)
                fail_msg("second kpay-admin topics exited %d:\n%s", rc, out);
        assert_null(strstr(out, "created"));
        for (size_t i = 0; i < plan.cnt; i++) {
                char line[300];
                snprintf(line, sizeof(line), "ok      %s (", plan.reqs[i].name);
                if (!strstr(out, line))
                        fail_msg("no \"%s\" in:\n%s", line, out);
        }
        free(out);

        /* What the broker holds, read back independently of kpay-admin. */
        rd_kafka_t *rk = it_client(RD_KAFKA_PRODUCER, NULL);
        int compacted  = 0;
        for (size_t i = 0; i < plan.cnt; i++) {
                const kp_topic_req_t *r = &plan.reqs[i];
                int parts               = -1;
                kp_err_t err            = kp_admin_describe_topic(
                               rk, r->name, TIMEOUT_MS, &parts, cleanup, sizeof(cleanup),
                               errstr, sizeof(errstr));
                if (err)
                        fail_msg("describe %s: %s", r->name, errstr);
                int is_changelog = strstr(r->name, "-changelog") != NULL;
                int single       = strstr(r->name, "kpay.metadata") ||
                             strstr(r->name, "kpay.control.status");
                assert_int_equal(parts, single ? 1 : 12);
                int windows = strstr(r->name, "kpay.metrics.windows") != NULL;
                if (is_changelog || single || windows) {
                        /* A store whose keys expire (kpay-inflight's
                         * dedup) drops them by retention. */
                        assert_string_equal(cleanup, r->expiring
                                                         ? "compact,delete"
                                                         : "compact");
                        compacted++;
                } else {
                        assert_string_equal(cleanup, "delete");
                }
        }
        /* Both single-partition topics, kpay.metrics.windows and every
         * changelog: the plan holds
         * the topics, then one changelog per store of admin_layouts (which
         * unit.topics checks). */
        assert_true(plan.cnt > KP_TOPIC__CNT);
        assert_int_equal(compacted, 3 + (int)(plan.cnt - KP_TOPIC__CNT));
        rd_kafka_destroy(rk);
        kp_topic_plan_clear(&plan);
}

static void test_mismatch_is_an_error(void **state) {
        (void)state;
        char prefix[64], name1[256], name2[256], errstr[512];
        char *out = NULL;
        it_unique_prefix(prefix, sizeof(prefix), "mismatch");
        kp_topic_name(name1, sizeof(name1), prefix, KP_TOPIC_INCOMING);
        kp_topic_name(name2, sizeof(name2), prefix, KP_TOPIC_METADATA);

        /* Someone made these two differently before kpay got to them. */
        rd_kafka_t *rk       = it_client(RD_KAFKA_PRODUCER, NULL);
        kp_topic_plan_t plan = {0};
        kp_topic_plan_add(&plan, name1, 3, 1, "delete", NULL);
        kp_topic_plan_add(&plan, name2, 1, 1, "delete", NULL);
        /* A dedup changelog that would drop ids inside the window. */
        char name3[256];
        kp_changelog_name(name3, sizeof(name3), prefix, "inflight", "dedup");
        kp_topic_plan_add(&plan, name3, 12, 1, "compact,delete", "1000");
        if (kp_admin_ensure_topics(rk, &plan, TIMEOUT_MS, NULL, errstr,
                                   sizeof(errstr)))
                fail_msg("pre-creating topics: %s", errstr);
        kp_topic_plan_clear(&plan);
        rd_kafka_destroy(rk);

        int rc = run_admin_topics(prefix, &out);
        assert_int_equal(rc, 1);
        char want1[400], want2[400], want3[400];
        snprintf(want1, sizeof(want1), "%s has 3 partitions, kpay expects 12",
                 name1);
        snprintf(want2, sizeof(want2),
                 "%s has cleanup.policy=delete, kpay expects compact", name2);
        snprintf(want3, sizeof(want3),
                 "%s has retention.ms=1000, kpay needs at least 691200000",
                 name3);
        if (!strstr(out, want1) || !strstr(out, want2) || !strstr(out, want3))
                fail_msg("expected \"%s\", \"%s\" and \"%s\" in:\n%s", want1,
                         want2, want3, out);
        free(out);
}

/* Reads partition 0 of @p topic from the start to its end offset and returns
 * the values as one string "v1,v2,...". */
static char *read_all(const char *topic, const char *isolation) {
        const char *props[] = {"group.id",
                               "kpay-it-reader",
                               "isolation.level",
                               isolation,
                               "enable.auto.commit",
                               "false",
                               "enable.partition.eof",
                               "false",
                               NULL};
        rd_kafka_t *rk      = it_client(RD_KAFKA_CONSUMER, props);
        int64_t lo, hi;
        rd_kafka_resp_err_t err = rd_kafka_query_watermark_offsets(
            rk, topic, 0, &lo, &hi, TIMEOUT_MS);
        assert_int_equal(err, 0);
        rd_kafka_topic_partition_list_t *parts =
            rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(parts, topic, 0)->offset =
            RD_KAFKA_OFFSET_BEGINNING;
        assert_int_equal(rd_kafka_assign(rk, parts), 0);

        size_t cap = 4096, len = 0;
        char *acc = calloc(1, cap);
        assert_non_null(acc);
        int64_t deadline = it_now_ms() + TIMEOUT_MS;
        /* Done when the position reaches the end offset: under
         * read_committed the last offsets are transaction markers that are
         * never delivered, so waiting for a message at hi-1 would hang. */
        for (;;) {
                assert_int_equal(rd_kafka_position(rk, parts), 0);
                if (parts->elems[0].offset >= hi)
                        break;
                if (it_now_ms() > deadline)
                        fail_msg(
                            "reading %s: position %lld never reached "
                            "end offset %lld",
                            topic, (long long)parts->elems[0].offset,
                            (long long)hi);
                rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
                if (!m)
                        continue;
                if (m->err) {
                        fail_msg("consume %s: %s", topic,
                                 rd_kafka_message_errstr(m));
                }
                assert_true(len + m->len + 2 < cap);
                if (len)
                        acc[len++] = ',';
                memcpy(acc + len, m->payload, m->len);
                len += m->len;
                rd_kafka_message_destroy(m);
        }
        rd_kafka_topic_partition_list_destroy(parts);
        rd_kafka_consumer_close(rk);
        rd_kafka_destroy(rk);
        return acc;
}

static void produce_n(rd_kafka_t *rk, const char *topic, const char *what,
                      int n) {
        for (int i = 0; i < n; i++) {
                char v[64];
                snprintf(v, sizeof(v), "%s-%d", what, i);
                rd_kafka_resp_err_t err = rd_kafka_producev(
                    rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(0),
                    RD_KAFKA_V_VALUE(v, strlen(v)),
                    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
                assert_int_equal(err, 0);
        }
        assert_int_equal(rd_kafka_flush(rk, TIMEOUT_MS), 0);
}

static void check_txn(rd_kafka_error_t *error, const char *what) {
        if (error) {
                fail_msg("%s: %s", what, rd_kafka_error_string(error));
        }
}

static void test_transactions_read_committed(void **state) {
        (void)state;
        char prefix[64], topic[256], errstr[512], txnid[128];
        it_unique_prefix(prefix, sizeof(prefix), "txn");
        snprintf(topic, sizeof(topic), "%stxn", prefix);
        snprintf(txnid, sizeof(txnid), "%sproducer", prefix);

        rd_kafka_t *admin    = it_client(RD_KAFKA_PRODUCER, NULL);
        kp_topic_plan_t plan = {0};
        kp_topic_plan_add(&plan, topic, 1, 1, "delete", NULL);
        if (kp_admin_ensure_topics(admin, &plan, TIMEOUT_MS, NULL, errstr,
                                   sizeof(errstr)))
                fail_msg("creating %s: %s", topic, errstr);
        kp_topic_plan_clear(&plan);
        rd_kafka_destroy(admin);

        const char *props[] = {"transactional.id", txnid, NULL};
        rd_kafka_t *rk      = it_client(RD_KAFKA_PRODUCER, props);
        check_txn(rd_kafka_init_transactions(rk, TIMEOUT_MS), "init");

        check_txn(rd_kafka_begin_transaction(rk), "begin 1");
        produce_n(rk, topic, "aborted", 5);
        check_txn(rd_kafka_abort_transaction(rk, -1), "abort");

        check_txn(rd_kafka_begin_transaction(rk), "begin 2");
        produce_n(rk, topic, "committed", 5);
        check_txn(rd_kafka_commit_transaction(rk, -1), "commit");
        rd_kafka_destroy(rk);

        char *committed = read_all(topic, "read_committed");
        assert_string_equal(committed,
                            "committed-0,committed-1,committed-2,"
                            "committed-3,committed-4");
        free(committed);

        /* The aborted records did reach the log: a read_uncommitted reader
         * sees all ten, so the filtering above is the broker's doing. */
        char *all = read_all(topic, "read_uncommitted");
        assert_string_equal(all,
                            "aborted-0,aborted-1,aborted-2,aborted-3,"
                            "aborted-4,committed-0,committed-1,"
                            "committed-2,committed-3,committed-4");
        free(all);
}

/* ---- ProduceRequests carrying several partitions ---------------------- */

#define MP_TOPICS     3
#define MP_PARTITIONS 12
#define MP_TXNS       5
#define MP_PER_TXN    2 /* records per partition and transaction */

/* 1 when this librdkafka has kpay's produce.request.max.partitions. */
static int have_multi_partition_produce(void) {
        char errstr[256];
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        rd_kafka_conf_res_t r =
            rd_kafka_conf_set(conf, "produce.request.max.partitions", "2",
                              errstr, sizeof(errstr));
        rd_kafka_conf_destroy(conf);
        return r == RD_KAFKA_CONF_OK;
}

/* The statistics of a producer: how many callbacks came, and the Produce
 * requests its brokers had sent by the last one. */
typedef struct mp_stats_s {
        int calls;
        long long produce_reqs;
} mp_stats_t;

static int mp_stats_cb(rd_kafka_t *rk, char *json, size_t len, void *opaque) {
        (void)rk;
        mp_stats_t *st = opaque;
        json_error_t jerr;
        json_t *root = json_loadb(json, len, 0, &jerr);
        if (!root)
                return 0;
        long long sum = 0;
        const char *name;
        json_t *b;
        json_object_foreach(json_object_get(root, "brokers"), name, b) {
                (void)name;
                sum += json_integer_value(
                    json_object_get(json_object_get(b, "req"), "Produce"));
        }
        json_decref(root);
        st->produce_reqs = sum;
        st->calls++;
        return 0;
}

/* Serves the producer until two more statistics callbacks came: the
 * second one counts everything sent before this call. */
static long long mp_produce_requests(rd_kafka_t *rk, mp_stats_t *st) {
        int want         = st->calls + 2;
        int64_t deadline = it_now_ms() + TIMEOUT_MS;
        while (st->calls < want) {
                if (it_now_ms() > deadline)
                        fail_msg("no statistics from the producer in %d ms",
                                 TIMEOUT_MS);
                rd_kafka_poll(rk, 100);
        }
        return st->produce_reqs;
}

/* A producer of @p props whose statistics go to @p st (and, with @p dr,
 * whose delivery reports go to mp_dr_cb()). */
static void mp_dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque);
static rd_kafka_t *mp_producer(const char *const *props, mp_stats_t *st,
                               int dr) {
        char errstr[512];
        rd_kafka_conf_t *conf = it_client_conf(props);
        rd_kafka_conf_set_stats_cb(conf, mp_stats_cb);
        if (dr)
                rd_kafka_conf_set_dr_msg_cb(conf, mp_dr_cb);
        rd_kafka_conf_set_opaque(conf, st);
        rd_kafka_t *rk =
            rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
        if (!rk)
                fail_msg("rd_kafka_new: %s", errstr);
        return rk;
}

/* Runs MP_TXNS transactions, each writing MP_PER_TXN records to every
 * partition of @p topics, with produce.request.max.partitions=@p maxparts;
 * checks that read_committed readers get each partition's records exactly
 * once and in order; returns the Produce requests sent. */
static long long mp_run_transactions(const char *prefix, const char *maxparts) {
        char topics[MP_TOPICS][256], txnid[256];
        const char *names[MP_TOPICS + 1];
        for (int t = 0; t < MP_TOPICS; t++) {
                snprintf(topics[t], sizeof(topics[t]), "%smp%s-%d", prefix,
                         maxparts, t);
                names[t] = topics[t];
        }
        names[MP_TOPICS] = NULL;
        it_create_topics(names, MP_PARTITIONS, 0);
        snprintf(txnid, sizeof(txnid), "%smp%s", prefix, maxparts);

        mp_stats_t st       = {0};
        const char *props[] = {"transactional.id", txnid,
                               "produce.request.max.partitions", maxparts,
                               /* Only the commit's flush sends: */
                               "linger.ms", "10000", "statistics.interval.ms",
                               "100", NULL};
        rd_kafka_t *rk      = mp_producer(props, &st, 0);
        check_txn(rd_kafka_init_transactions(rk, TIMEOUT_MS), "init");
        long long before = mp_produce_requests(rk, &st);

        for (int x = 0; x < MP_TXNS; x++) {
                check_txn(rd_kafka_begin_transaction(rk), "begin");
                for (int i = 0; i < MP_PER_TXN; i++)
                        for (int t = 0; t < MP_TOPICS; t++)
                                for (int p = 0; p < MP_PARTITIONS; p++) {
                                        char v[64];
                                        snprintf(v, sizeof(v), "%d",
                                                 x * MP_PER_TXN + i);
                                        rd_kafka_resp_err_t err =
                                            rd_kafka_producev(
                                                rk, RD_KAFKA_V_TOPIC(topics[t]),
                                                RD_KAFKA_V_PARTITION(p),
                                                RD_KAFKA_V_VALUE(v, strlen(v)),
                                                RD_KAFKA_V_MSGFLAGS(
                                                    RD_KAFKA_MSG_F_COPY),
                                                RD_KAFKA_V_END);
                                        assert_int_equal(err, 0);
                                }
                check_txn(rd_kafka_commit_transaction(rk, TIMEOUT_MS),
                          "commit");
        }
        long long reqs = mp_produce_requests(rk, &st) - before;
        rd_kafka_destroy(rk);

        for (int t = 0; t < MP_TOPICS; t++) {
                it_rec_t *recs = NULL;
                size_t n = it_read_all(topics[t], "read_committed", &recs);
                assert_int_equal(n, MP_PARTITIONS * MP_TXNS * MP_PER_TXN);
                int next[MP_PARTITIONS] = {0};
                for (size_t i = 0; i < n; i++) {
                        int32_t p = recs[i].partition;
                        assert_true(p >= 0 && p < MP_PARTITIONS);
                        assert_non_null(recs[i].value);
                        char want[32];
                        snprintf(want, sizeof(want), "%d", next[p]++);
                        if (strcmp(recs[i].value, want))
                                fail_msg("%s [%d] offset %lld: %s, expected %s",
                                         topics[t], p,
                                         (long long)recs[i].offset,
                                         recs[i].value, want);
                }
                for (int p = 0; p < MP_PARTITIONS; p++)
                        assert_int_equal(next[p], MP_TXNS * MP_PER_TXN);
                it_free_recs(recs, n);
        }
        return reqs;
}

static void test_multi_partition_transactions(void **state) {
        (void)state;
        if (!have_multi_partition_produce())
                skip(); /* a librdkafka other than kpay's build */
        char prefix[64];
        it_unique_prefix(prefix, sizeof(prefix), "mp");
        long long one  = mp_run_transactions(prefix, "1");
        long long many = mp_run_transactions(prefix, "1000");
        print_message(
            "Produce requests for %d transactions over %d "
            "partitions: %lld one partition each, %lld several\n",
            MP_TXNS, MP_TOPICS * MP_PARTITIONS, one, many);
        /* One partition per request: a request per partition and commit. */
        assert_true(one >= MP_TXNS * MP_TOPICS * MP_PARTITIONS);
        /* Several: the partitions whose batches are ready together (all
         * of a commit's, once the transaction has registered them) travel
         * in one request. */
        assert_true(many * 4 <= one);
}

/* The delivery reports of mp_partial_error's producer. */
typedef struct mp_drs_s {
        int ok, too_large, other;
} mp_drs_t;

static void mp_dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m,
                     void *opaque) {
        (void)rk;
        (void)opaque;
        mp_drs_t *d = m->_private; /* the message's opaque */
        if (!m->err)
                d->ok++;
        else if (m->err == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE)
                d->too_large++;
        else
                d->other++;
}

/* A request carrying several partitions where the broker refuses one of
 * them (a record larger than that topic's max.message.bytes): only that
 * partition's record fails, the others are written. */
static void test_multi_partition_partial_error(void **state) {
        (void)state;
        if (!have_multi_partition_produce())
                skip();
        char prefix[64], ok_topic[256], small_topic[256], errstr[512];
        it_unique_prefix(prefix, sizeof(prefix), "mperr");
        snprintf(ok_topic, sizeof(ok_topic), "%sok", prefix);
        snprintf(small_topic, sizeof(small_topic), "%ssmall", prefix);
        const char *names[] = {ok_topic, NULL};
        it_create_topics(names, 4, 0);

        rd_kafka_t *admin = it_client(RD_KAFKA_PRODUCER, NULL);
        rd_kafka_NewTopic_t *nt =
            rd_kafka_NewTopic_new(small_topic, 1, 1, errstr, sizeof(errstr));
        assert_non_null(nt);
        assert_int_equal(
            rd_kafka_NewTopic_set_config(nt, "max.message.bytes", "1000"), 0);
        rd_kafka_queue_t *q = rd_kafka_queue_new(admin);
        rd_kafka_CreateTopics(admin, &nt, 1, NULL, q);
        rd_kafka_event_t *ev = rd_kafka_queue_poll(q, TIMEOUT_MS);
        assert_non_null(ev);
        size_t cnt;
        const rd_kafka_topic_result_t **res =
            rd_kafka_CreateTopics_result_topics(
                rd_kafka_event_CreateTopics_result(ev), &cnt);
        assert_int_equal(cnt, 1);
        if (rd_kafka_topic_result_error(res[0]))
                fail_msg("creating %s: %s", small_topic,
                         rd_kafka_topic_result_error_string(res[0]));
        rd_kafka_event_destroy(ev);
        rd_kafka_queue_destroy(q);
        rd_kafka_NewTopic_destroy(nt);
        rd_kafka_destroy(admin);

        mp_stats_t st       = {0};
        mp_drs_t drs        = {0};
        const char *props[] = {
            "produce.request.max.partitions", "1000", "linger.ms", "10000",
            "statistics.interval.ms", "100",
            /* a permanent error would be fatal to an
             * idempotent producer */
            "enable.idempotence", "false", "acks", "all", NULL};
        rd_kafka_t *rk = mp_producer(props, &st, 1);
        static char big[4000];
        memset(big, 'x', sizeof(big));
        /* A record to each partition first, flushed: the new topics'
         * leaders are known and loaded (a partition that answers
         * NOT_LEADER just after its creation is retried in requests of
         * its own, which a busy machine made 13). */
        for (int p = 0; p < 5; p++) {
                /* (RD_KAFKA_V_TOPIC() takes no conditional expression) */
                const char *wtopic = ok_topic;
                int32_t wpart      = p;
                if (p == 4) {
                        wtopic = small_topic;
                        wpart  = 0;
                }
                assert_int_equal(
                    rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(wtopic),
                                      RD_KAFKA_V_PARTITION(wpart),
                                      RD_KAFKA_V_VALUE("w", 1),
                                      RD_KAFKA_V_OPAQUE(&drs), RD_KAFKA_V_END),
                    0);
        }
        assert_int_equal(rd_kafka_flush(rk, TIMEOUT_MS), 0);
        assert_int_equal(drs.ok, 5);
        drs.ok           = 0;
        long long before = mp_produce_requests(rk, &st);
        for (int p = 0; p < 4; p++)
                for (int i = 0; i < 3; i++) {
                        char v[16];
                        snprintf(v, sizeof(v), "%d-%d", p, i);
                        assert_int_equal(
                            rd_kafka_producev(
                                rk, RD_KAFKA_V_TOPIC(ok_topic),
                                RD_KAFKA_V_PARTITION(p),
                                RD_KAFKA_V_VALUE(v, strlen(v)),
                                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                RD_KAFKA_V_OPAQUE(&drs), RD_KAFKA_V_END),
                            0);
                }
        assert_int_equal(
            rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(small_topic),
                              RD_KAFKA_V_PARTITION(0),
                              RD_KAFKA_V_VALUE(big, sizeof(big)),
                              RD_KAFKA_V_OPAQUE(&drs), RD_KAFKA_V_END),
            0);
        assert_int_equal(rd_kafka_flush(rk, TIMEOUT_MS), 0);
        long long reqs = mp_produce_requests(rk, &st) - before;
        rd_kafka_destroy(rk);

        print_message(
            "partial error: %d delivered, %d too large, %d other, "
            "in %lld Produce request(s)\n",
            drs.ok, drs.too_large, drs.other, reqs);
        assert_int_equal(drs.ok, 12);
        assert_int_equal(drs.too_large, 1);
        assert_int_equal(drs.other, 0);
        /* The five partitions went together (a request each would be 5). */
        assert_true(reqs < 5);

        it_rec_t *recs = NULL;
        size_t n       = it_read_all(ok_topic, "read_uncommitted", &recs);
        assert_int_equal(n, 12 + 4);
        it_free_recs(recs, n);
        n = it_read_all(small_topic, "read_uncommitted", &recs);
        assert_int_equal(n, 1); /* the warm-up record only */
        it_free_recs(recs, n);
}

int main(void) {
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_topics_created_then_checked),
            cmocka_unit_test(test_mismatch_is_an_error),
            cmocka_unit_test(test_transactions_read_committed),
            cmocka_unit_test(test_multi_partition_transactions),
            cmocka_unit_test(test_multi_partition_partial_error),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
