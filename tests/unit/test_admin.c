/* Unit tests of kpay-admin's operational logic (admin/ops.c): the headers
 * of a replay, which records belong to a payment, the replay markers and
 * the one-line summaries. */
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ops.h"

static void test_replay_headers(void **state) {
        (void)state;
        rd_kafka_headers_t *letter = rd_kafka_headers_new(8);
        rd_kafka_header_add(letter, "kpay-trace", -1, "t-9", -1);
        rd_kafka_header_add(letter, "kpay-hop", -1, "inflight", -1);
        rd_kafka_header_add(letter, "kpay-error", -1, "not_json", -1);
        rd_kafka_header_add(letter, "kpay-error-detail", -1, "x", -1);
        rd_kafka_header_add(letter, "kpay-source-topic", -1, "in", -1);
        rd_kafka_header_add(letter, "kpay-source-partition", -1, "3", -1);
        rd_kafka_header_add(letter, "kpay-source-offset", -1, "17", -1);
        rd_kafka_header_add(letter, "kpay-service", -1, "inflight", -1);
        rd_kafka_header_add(letter, OPS_REPLAY_HEADER, -1, "1:2", -1);
        rd_kafka_header_add(letter, "client-tag", -1, "keep me", -1);
        rd_kafka_headers_t *h = ops_replay_headers(letter, 4, 99);
        char buf[64];
        assert_string_equal(ops_header(h, "kpay-trace", buf, sizeof(buf)),
                            "t-9");
        assert_string_equal(ops_header(h, "client-tag", buf, sizeof(buf)),
                            "keep me");
        assert_string_equal(ops_header(h, "kpay-hop", buf, sizeof(buf)),
                            "admin");
        assert_string_equal(ops_header(h, OPS_REPLAY_HEADER, buf, sizeof(buf)),
                            "4:99");
        assert_string_equal(ops_header(h, "kpay-error", buf, sizeof(buf)), "");
        assert_string_equal(
            ops_header(h, "kpay-source-offset", buf, sizeof(buf)), "");
        /* One of each: the old replay-of and hop are gone. */
        assert_int_equal(rd_kafka_header_cnt(h), 4);
        rd_kafka_headers_destroy(h);
        rd_kafka_headers_destroy(letter);
        h = ops_replay_headers(NULL, 0, 0);
        assert_int_equal(rd_kafka_header_cnt(h), 2);
        rd_kafka_headers_destroy(h);
}

static void test_record_of(void **state) {
        (void)state;
        const char *pay =
            "{\"v\":1,\"id\":\"p-1\",\"from\":\"a\",\"to\":\"b\"}";
        const char *other = "{\"v\":1,\"id\":\"p-10\"}";
        const char *audit = "{\"action\":\"dlq.replay\",\"payment\":\"p-1\"}";
        assert_true(ops_record_of("p-1", "p-1", 3, "garbage", 7));
        assert_true(ops_record_of("p-1", "a", 1, pay, strlen(pay)));
        assert_false(ops_record_of("p-1", "a", 1, other, strlen(other)));
        assert_true(ops_record_of("p-1", "admin", 5, audit, strlen(audit)));
        assert_false(ops_record_of("p-1", "p-12", 4, "not json p-1", 12));
        assert_false(ops_record_of("p-1", NULL, 0, NULL, 0));
        char id[32];
        assert_true(ops_value_id(pay, strlen(pay), id, sizeof(id)));
        assert_string_equal(id, "p-1");
        assert_false(ops_value_id("[1]", 3, id, sizeof(id)));
        assert_string_equal(id, "");
}

static void test_markers(void **state) {
        (void)state;
        char key[64];
        const char *rec =
            "{\"action\":\"dlq.replay\",\"dlq\":{\"partition\":"
            "3,\"offset\":41}}";
        assert_true(ops_replay_marker(rec, strlen(rec), key, sizeof(key)));
        assert_string_equal(key, "3:41");
        assert_string_equal(ops_letter_key(key, sizeof(key), 3, 41), "3:41");
        const char *cmd =
            "{\"action\":\"pause\",\"dlq\":{\"partition\":3,"
            "\"offset\":41}}";
        assert_false(ops_replay_marker(cmd, strlen(cmd), key, sizeof(key)));
        assert_false(ops_replay_marker("nope", 4, key, sizeof(key)));
        const char *bad =
            "{\"action\":\"dlq.replay\",\"dlq\":{\"partition\":"
            "\"3\",\"offset\":41}}";
        assert_false(ops_replay_marker(bad, strlen(bad), key, sizeof(key)));
}

static void test_summary(void **state) {
        (void)state;
        char buf[300];
        const char *rej =
            "{\"id\":\"p\",\"state\":\"REJECTED\",\"reason\":"
            "\"account_frozen\",\"from\":\"a\",\"to\":\"b\"}";
        assert_string_equal(
            ops_summary(rej, strlen(rej), NULL, buf, sizeof(buf)),
            "REJECTED reason=account_frozen a -> b");
        rd_kafka_headers_t *h = rd_kafka_headers_new(4);
        rd_kafka_header_add(h, "kpay-error", -1, "not_json", -1);
        rd_kafka_header_add(h, "kpay-error-detail", -1, "bad", -1);
        rd_kafka_header_add(h, OPS_REPLAY_HEADER, -1, "2:5", -1);
        assert_string_equal(
            ops_summary("xx", 2, h, buf, sizeof(buf)),
            "DEAD LETTER error=not_json detail=\"bad\" (2 bytes, not a JSON "
            "object) replay-of=2:5");
        rd_kafka_headers_destroy(h);
        const char *aud =
            "{\"action\":\"freeze\",\"actor\":\"bob\",\"target\":"
            "\"account:a\"}";
        assert_string_equal(
            ops_summary(aud, strlen(aud), NULL, buf, sizeof(buf)),
            "AUDIT freeze by bob target=account:a");
        /* A tiny buffer is cut, never overrun. */
        char tiny[8];
        ops_summary(rej, strlen(rej), NULL, tiny, sizeof(tiny));
        assert_int_equal(strlen(tiny), 7);
}

int main(void) {
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_replay_headers),
            cmocka_unit_test(test_record_of),
            cmocka_unit_test(test_markers),
            cmocka_unit_test(test_summary),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
