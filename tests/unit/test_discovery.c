/* Unit tests of kp_discovery: Kafka's murmur2 partitioning, InstanceInfo
 * JSON, and the follower's life cycle without a broker. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "kpay/kp_discovery.h"
#include "kpay/kp_log.h"
#include "kpay/kp_mem.h"

static int64_t mem_start;

static int setup(void **state) {
        (void)state;
        mem_start = kp_mem_live_allocations();
        return 0;
}

static int teardown(void **state) {
        (void)state;
        assert_int_equal(kp_mem_live_allocations(), mem_start);
        return 0;
}

/* Kafka's UtilsTest.testMurmur2, as signed 32-bit values. */
static void test_murmur2_vectors(void **state) {
        (void)state;
        static const struct {
                const char *key;
                int32_t hash;
        } cases[] = {
            {"21", -973932308},
            {"foobar", -790332482},
            {"a-little-bit-long-string", -985981536},
            {"a-little-bit-longer-string", -1486304829},
            {"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971},
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
                assert_int_equal(
                    (int32_t)kp_murmur2(cases[i].key, strlen(cases[i].key)),
                    cases[i].hash);
        const unsigned char abc[] = {'a', 'b', 'c'};
        assert_int_equal((int32_t)kp_murmur2(abc, sizeof(abc)), 479470107);
}

static void test_partition_edges(void **state) {
        (void)state;
        assert_int_equal(kp_partition_for_key("k", 1, 0), -1);
        assert_int_equal(kp_partition_for_key("k", 1, -3), -1);
        assert_int_equal(kp_partition_for_key("k", 1, 1), 0);
        /* "21" hashes negative: the sign bit is masked, not negated. */
        uint32_t h = kp_murmur2("21", 2);
        assert_int_equal(kp_partition_for_key("21", 2, 12),
                         (int32_t)((h & 0x7fffffff) % 12));
        assert_int_equal(kp_partition_for_key("21", 2, INT32_MAX),
                         (int32_t)((h & 0x7fffffff) % INT32_MAX));
}

/* A deterministic generator for test keys (xorshift32). */
static uint32_t rng_next(uint32_t *s) {
        uint32_t x = *s;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        return *s = x;
}

/* kp_partition_for_key() must agree with librdkafka's own murmur2
 * partitioner, which is what kpay's producers use. */
static void test_partition_matches_librdkafka(void **state) {
        (void)state;
        char errstr[512];
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        assert_int_equal(
            rd_kafka_conf_set(conf, "bootstrap.servers", "127.0.0.1:1", errstr,
                              sizeof(errstr)),
            RD_KAFKA_CONF_OK);
        /* No broker listens there: keep its connection errors quiet. */
        assert_int_equal(
            rd_kafka_conf_set(conf, "log_level", "0", errstr, sizeof(errstr)),
            RD_KAFKA_CONF_OK);
        rd_kafka_t *rk =
            rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
        assert_non_null(rk);
        rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, "kp-disc-test", NULL);
        assert_non_null(rkt);

        static const int32_t cnts[] = {1, 2, 3, 7, 12, 13, 64, 1000, 65537};
        uint32_t seed               = 0x12345678;
        unsigned char key[64];
        size_t checked = 0;
        for (int i = 0; i < 4000; i++) {
                /* Every tail length, binary bytes, and printable ids. */
                size_t len = (size_t)(i % 48);
                for (size_t j = 0; j < len; j++)
                        key[j] = (unsigned char)rng_next(&seed);
                if (i % 3 == 0)
                        len = (size_t)snprintf((char *)key, sizeof(key),
                                               "account-%d", i);
                for (size_t c = 0; c < sizeof(cnts) / sizeof(cnts[0]); c++) {
                        int32_t want = rd_kafka_msg_partitioner_murmur2(
                            rkt, key, len, cnts[c], NULL, NULL);
                        assert_int_equal(
                            kp_partition_for_key(key, len, cnts[c]), want);
                        checked++;
                }
        }
        assert_int_equal(checked, 4000 * (sizeof(cnts) / sizeof(cnts[0])));

        rd_kafka_topic_destroy(rkt);
        rd_kafka_destroy(rk);
}

static char *stores_full[]      = {"balances", "frozen"};
static int32_t parts_full[]     = {0, 3, 11};
static int32_t restoring_full[] = {3};
static const char json_full[] =
    "{\"service\":\"account\",\"instance\":\"account-1\","
    "\"endpoint\":\"10.0.0.1:8080\",\"state\":\"RUNNING\","
    "\"stores\":[\"balances\",\"frozen\"],\"partitions\":[0,3,11],"
    "\"restoring\":[3],\"partition_count\":12,\"ts\":1700000000123}";

static kp_instance_info_t info_full(void) {
        kp_instance_info_t info = {
            .service         = "account",
            .instance        = "account-1",
            .endpoint        = "10.0.0.1:8080",
            .state           = "RUNNING",
            .stores          = stores_full,
            .store_cnt       = 2,
            .partitions      = parts_full,
            .partition_cnt   = 3,
            .restoring       = restoring_full,
            .restoring_cnt   = 1,
            .partition_count = 12,
            .ts              = 1700000000123LL,
        };
        return info;
}

static void assert_info_equal(const kp_instance_info_t *a,
                              const kp_instance_info_t *b) {
        assert_string_equal(a->service, b->service);
        assert_string_equal(a->instance, b->instance);
        if (a->endpoint || b->endpoint)
                assert_string_equal(a->endpoint, b->endpoint);
        if (a->state || b->state)
                assert_string_equal(a->state, b->state);
        assert_int_equal(a->store_cnt, b->store_cnt);
        for (size_t i = 0; i < a->store_cnt; i++)
                assert_string_equal(a->stores[i], b->stores[i]);
        assert_int_equal(a->partition_cnt, b->partition_cnt);
        for (size_t i = 0; i < a->partition_cnt; i++)
                assert_int_equal(a->partitions[i], b->partitions[i]);
        assert_int_equal(a->restoring_cnt, b->restoring_cnt);
        for (size_t i = 0; i < a->restoring_cnt; i++)
                assert_int_equal(a->restoring[i], b->restoring[i]);
        assert_int_equal(a->partition_count, b->partition_count);
        assert_int_equal(a->ts, b->ts);
}

static void test_info_round_trip(void **state) {
        (void)state;
        char errstr[256];
        kp_instance_info_t in = info_full(), out;

        char *json = kp_instance_info_to_json(&in);
        assert_non_null(json);
        assert_string_equal(json, json_full);
        assert_int_equal(kp_instance_info_from_json(json, strlen(json), &out,
                                                    errstr, sizeof(errstr)),
                         KP_OK);
        assert_info_equal(&in, &out);
        kp_instance_info_clear(&out);
        assert_null(out.service);
        assert_null(out.stores);
        assert_int_equal(out.store_cnt, 0);
        kp_free(json);

        /* Empty lists, no endpoint or state yet, negative ts. */
        kp_instance_info_t empty = {
            .service = "web", .instance = "w/1 \"q\"", .ts = -5};
        json = kp_instance_info_to_json(&empty);
        assert_string_equal(
            json,
            "{\"service\":\"web\",\"instance\":\"w/1 "
            "\\\"q\\\"\",\"endpoint\":null,\"state\":null,"
            "\"stores\":[],\"partitions\":[],"
            "\"restoring\":[],\"partition_count\":0,\"ts\":-5}");
        assert_int_equal(kp_instance_info_from_json(json, strlen(json), &out,
                                                    errstr, sizeof(errstr)),
                         KP_OK);
        assert_info_equal(&empty, &out);
        assert_null(out.endpoint);
        assert_null(out.state);
        assert_null(out.stores);
        assert_null(out.partitions);
        kp_instance_info_clear(&out);
        kp_free(json);
}

/* A daemon's "status" object goes out and comes back as compact JSON; a
 * status that is not an object is dropped on parse (the instance stays),
 * skipped on write. */
static void test_info_status(void **state) {
        (void)state;
        char errstr[256];
        kp_instance_info_t in = {.service  = "inflight",
                                 .instance = "i1",
                                 .status   = "{ \"version\": 3, \"x\":[1]}"},
                           out;
        char *json = kp_instance_info_to_json(&in);
        assert_non_null(strstr(json, "\"status\":{\"version\":3,\"x\":[1]}"));
        assert_int_equal(kp_instance_info_from_json(json, strlen(json), &out,
                                                    errstr, sizeof(errstr)),
                         KP_OK);
        assert_string_equal(out.status, "{\"version\":3,\"x\":[1]}");
        kp_instance_info_t copy;
        kp_instance_info_copy(&copy, &out);
        assert_string_equal(copy.status, out.status);
        kp_instance_info_clear(&copy);
        kp_instance_info_clear(&out);
        kp_free(json);

        in.status = "[1]";
        json      = kp_instance_info_to_json(&in);
        assert_null(strstr(json, "status"));
        kp_free(json);
        const char *bad =
            "{\"service\":\"s\",\"instance\":\"i\","
            "\"status\":5}";
        assert_int_equal(kp_instance_info_from_json(bad, strlen(bad), &out,
                                                    errstr, sizeof(errstr)),
                         KP_OK);
        assert_string_equal(out.instance, "i");
        assert_null(out.status);
        kp_instance_info_clear(&out);
}

static void test_info_parse_lenient_parts(void **state) {
        (void)state;
        char errstr[256];
        kp_instance_info_t out;

        /* Unknown fields are ignored; absent optional fields take their
         * zero values; partitions come out ascending without duplicates;
         * the length bounds the input (no NUL needed). */
        const char json[] =
            "{\"v\":2,\"service\":\"account\",\"instance\":\"a-2\","
            "\"extra\":{\"x\":[1,2]},\"partitions\":[7,1,7,4],"
            "\"partition_count\":8}GARBAGE";
        size_t len = strlen(json) - strlen("GARBAGE");
        assert_int_equal(
            kp_instance_info_from_json(json, len, &out, errstr, sizeof(errstr)),
            KP_OK);
        assert_string_equal(out.service, "account");
        assert_string_equal(out.instance, "a-2");
        assert_null(out.endpoint);
        assert_int_equal(out.store_cnt, 0);
        assert_int_equal(out.partition_cnt, 3);
        assert_int_equal(out.partitions[0], 1);
        assert_int_equal(out.partitions[1], 4);
        assert_int_equal(out.partitions[2], 7);
        assert_int_equal(out.partition_count, 8);
        assert_int_equal(out.ts, 0);
        kp_instance_info_clear(&out);

        /* A string that is not UTF-8 still gives valid JSON. */
        kp_instance_info_t bad = {.service  = "svc",
                                  .instance = "i\xff\xc3(x\xe2\x82\xac"};
        char *s                = kp_instance_info_to_json(&bad);
        assert_non_null(s);
        assert_int_equal(kp_instance_info_from_json(s, strlen(s), &out, errstr,
                                                    sizeof(errstr)),
                         KP_OK);
        assert_string_equal(out.instance,
                            "i?"
                            "?(x\xe2\x82\xac");
        kp_instance_info_clear(&out);
        kp_free(s);
}

static void test_info_malformed(void **state) {
        (void)state;
        static const struct {
                const char *json;
                const char *reason; /* a part of the error message */
        } cases[] = {
            {"", "not valid JSON"},
            {"{\"service\":\"a\",", "not valid JSON"},
            {"{\"service\":\"a\",\"instance\":\"b\"} x", "not valid JSON"},
            {"[1,2]", "expected a JSON object"},
            {"\"account\"", "expected a JSON object"},
            {"{\"instance\":\"b\"}", "\"service\""},
            {"{\"service\":\"a\"}", "\"instance\""},
            {"{\"service\":7,\"instance\":\"b\"}", "\"service\""},
            {"{\"service\":\"\",\"instance\":\"b\"}", "\"service\""},
            {"{\"service\":\"a\",\"instance\":null}", "\"instance\""},
            {"{\"service\":\"a\",\"instance\":\"b\",\"endpoint\":80}",
             "\"endpoint\""},
            {"{\"service\":\"a\",\"instance\":\"b\",\"state\":true}",
             "\"state\""},
            {"{\"service\":\"a\",\"instance\":\"b\",\"stores\":\"x\"}",
             "\"stores\""},
            {"{\"service\":\"a\",\"instance\":\"b\",\"stores\":[\"x\",1]}",
             "\"stores\"[1]"},
            {"{\"service\":\"a\",\"instance\":\"b\",\"partitions\":{}}",
             "\"partitions\""},
            {"{\"service\":\"a\",\"instance\":\"b\",\"partition_count\":12,"
             "\"partitions\":[1,2.5]}",
             "\"partitions\"[1]"},
            {"{\"service\":\"a\",\"instance\":\"b\",\"partition_count\":12,"
             "\"partitions\":[\"3\"]}",
             "\"partitions\"[0]"},
            {"{\"service\":\"a\",\"instance\":\"b\",\"partition_count\":12,"
             "\"partitions\":[2147483648]}",
             "\"partitions\"[0]"},
            {"{\"service\":\"a\",\"instance\":\"b\",\"partition_count\":12,"
             "\"partitions\":[-1]}",
             "\"partitions\"[0]"},
            {"{\"service\":\"a\",\"instance\":\"b\",\"partition_count\":12,"
             "\"partitions\":[0,12]}",
             "\"partitions\"[1]"},
            {"{\"service\":\"a\",\"instance\":\"b\",\"partition_count\":12,"
             "\"partitions\":[1],\"restoring\":[1,12]}",
             "\"restoring\"[1]"},
            {"{\"service\":\"a\",\"instance\":\"b\",\"restoring\":3}",
             "\"restoring\""},
            {"{\"service\":\"a\",\"instance\":\"b\",\"partition_count\":"
             "\"12\"}",
             "\"partition_count\""},
            {"{\"service\":\"a\",\"instance\":\"b\","
             "\"partition_count\":4294967296}",
             "\"partition_count\""},
            {"{\"service\":\"a\",\"instance\":\"b\",\"ts\":1.5}", "\"ts\""},
            {"{\"service\":\"a\",\"instance\":\"b\",\"ts\":\"now\"}", "\"ts\""},
            {"{\"service\":\"a\",\"service\":\"a\",\"instance\":\"b\"}",
             "duplicate"},
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                char errstr[256] = "";
                kp_instance_info_t out;
                memset(&out, 0xab, sizeof(out));
                kp_err_t err = kp_instance_info_from_json(
                    cases[i].json, strlen(cases[i].json), &out, errstr,
                    sizeof(errstr));
                if (err != KP_ERR_PARSE || !strstr(errstr, cases[i].reason))
                        fail_msg(
                            "case %zu (%s): err %d, reason \"%s\", "
                            "expected one naming %s",
                            i, cases[i].json, err, errstr, cases[i].reason);
                /* Nothing half-parsed is left behind. */
                assert_null(out.service);
                assert_null(out.instance);
                assert_null(out.stores);
                assert_null(out.partitions);
                kp_instance_info_clear(&out);
        }

        char errstr[256];
        kp_instance_info_t out;
        assert_int_equal(
            kp_instance_info_from_json(NULL, 0, &out, errstr, sizeof(errstr)),
            KP_ERR_PARSE);
}

static void test_info_copy_owns(void **state) {
        (void)state;
        kp_instance_info_t in = info_full(), copy, empty = {0}, ecopy;

        kp_instance_info_copy(&copy, &in);
        assert_info_equal(&in, &copy);
        assert_ptr_not_equal(copy.service, in.service);
        assert_ptr_not_equal(copy.stores, in.stores);
        assert_ptr_not_equal(copy.stores[0], in.stores[0]);
        assert_ptr_not_equal(copy.partitions, in.partitions);

        assert_true(kp_instance_info_owns(&copy, 0));
        assert_true(kp_instance_info_owns(&copy, 3));
        assert_true(kp_instance_info_owns(&copy, 11));
        assert_false(kp_instance_info_owns(&copy, 1));
        assert_false(kp_instance_info_owns(&copy, 12));
        assert_false(kp_instance_info_owns(&copy, -1));
        kp_instance_info_clear(&copy);
        kp_instance_info_clear(NULL);

        kp_instance_info_copy(&ecopy, &empty);
        assert_null(ecopy.service);
        assert_null(ecopy.stores);
        assert_null(ecopy.partitions);
        assert_false(kp_instance_info_owns(&ecopy, 0));
        kp_instance_info_clear(&ecopy);

        /* A list as kp_discovery_instances() returns it. */
        kp_instance_info_t *list = kp_calloc(2, sizeof(*list));
        kp_instance_info_copy(&list[0], &in);
        kp_instance_info_copy(&list[1], &in);
        kp_instance_info_list_free(list, 2);
        kp_instance_info_list_free(NULL, 0);
}

/* The follower's life cycle with no broker to talk to: it starts, knows
 * nothing, times out syncing, and shuts down cleanly. */
static void test_follower_without_broker(void **state) {
        (void)state;
        char errstr[512];
        char *keys[]    = {"log_level", "socket.connection.setup.timeout.ms"};
        char *values[]  = {"0", "1000"};
        kp_app_conf_t c = {0};
        c.bootstrap_servers = "127.0.0.1:1";
        c.topic_prefix      = "unit.";
        c.kafka.cnt         = 2;
        c.kafka.keys        = keys;
        c.kafka.values      = values;
        int old_level       = kp_log_level_current;

        assert_null(kp_discovery_new(&c, 0, errstr, sizeof(errstr)));
        assert_non_null(strstr(errstr, "dead_after_ms"));

        char *badkeys[]   = {"no.such.property"};
        char *badvalues[] = {"1"};
        kp_app_conf_t bad = c;
        bad.kafka.cnt     = 1;
        bad.kafka.keys    = badkeys;
        bad.kafka.values  = badvalues;
        assert_null(kp_discovery_new(&bad, 1000, errstr, sizeof(errstr)));
        assert_non_null(strstr(errstr, "no.such.property"));

        kp_log_set_level(KP_LOG_ERROR);
        kp_discovery_t *d = kp_discovery_new(&c, 3000, errstr, sizeof(errstr));
        assert_non_null(d);
        assert_int_equal(kp_discovery_sync(d, 300), KP_ERR_TIMED_OUT);

        kp_instance_info_t *list = (void *)1;
        assert_int_equal(kp_discovery_instances(d, NULL, &list), 0);
        assert_null(list);
        assert_int_equal(kp_discovery_instances(d, "account", &list), 0);

        kp_instance_info_t out;
        int32_t partition = 99;
        assert_int_equal(kp_discovery_owner(d, "account", "balances", "alice",
                                            5, &out, &partition),
                         KP_ERR_NOT_FOUND);
        assert_int_equal(partition, -1);
        assert_null(out.service);
        assert_int_equal(
            kp_discovery_owner(d, NULL, "balances", "alice", 5, &out, NULL),
            KP_ERR_INVALID_ARG);

        kp_discovery_destroy(d);
        kp_discovery_destroy(NULL);
        kp_log_set_level((kp_log_level_t)old_level);
}

int main(void) {
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_murmur2_vectors, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_partition_edges, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_partition_matches_librdkafka,
                                            setup, teardown),
            cmocka_unit_test(test_info_status),
            cmocka_unit_test_setup_teardown(test_info_round_trip, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_info_parse_lenient_parts,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(test_info_malformed, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_info_copy_owns, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_follower_without_broker, setup,
                                            teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
