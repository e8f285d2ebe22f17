/* Integration test of the foundation against the real broker of the CTest
 * fixture: kpay-admin creates every topic with the right layout, is
 * idempotent, refuses topics that differ, and the broker gives us real
 * transactions (an aborted transaction is invisible to read_committed). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

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

int main(void) {
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_topics_created_then_checked),
            cmocka_unit_test(test_mismatch_is_an_error),
            cmocka_unit_test(test_transactions_read_committed),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
