/* Unit tests of kp_topics and the topic plan of kp_admin. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "kpay/kp_admin.h"
#include "kpay/kp_mem.h"
#include "kpay/kp_topics.h"

static void test_names(void **state) {
        (void)state;
        char buf[256];
        assert_string_equal(kp_topic_name(buf, sizeof(buf), "", KP_TOPIC_DLQ),
                            "kpay.dlq");
        assert_string_equal(
            kp_topic_name(buf, sizeof(buf), NULL, KP_TOPIC_INCOMING),
            "kpay.payments.incoming");
        assert_string_equal(
            kp_topic_name(buf, sizeof(buf), "blue.", KP_TOPIC_COMPLETE),
            "blue.kpay.payments.complete");
        assert_string_equal(
            kp_changelog_name(buf, sizeof(buf), "blue.", "account", "balances"),
            "blue.kpay-account-balances-changelog");
        assert_null(kp_topic_spec(KP_TOPIC__CNT));
}

static void test_name_valid(void **state) {
        (void)state;
        char longname[300];
        assert_true(kp_topic_name_valid("kpay.payments.incoming"));
        assert_true(kp_topic_name_valid("a-b_c.D9"));
        assert_false(kp_topic_name_valid(""));
        assert_false(kp_topic_name_valid("."));
        assert_false(kp_topic_name_valid(".."));
        assert_false(kp_topic_name_valid("has space"));
        assert_false(kp_topic_name_valid("slash/no"));
        memset(longname, 'a', 250);
        longname[250] = '\0';
        assert_false(kp_topic_name_valid(longname));
        longname[249] = '\0';
        assert_true(kp_topic_name_valid(longname));
}

static void test_plan(void **state) {
        (void)state;
        int64_t before       = kp_mem_live_allocations();
        kp_topic_plan_t plan = {0};
        kp_topic_plan_all(&plan, "t.", 12, 3);
        size_t stores = 0;
        while (kp_known_stores[stores].service)
                stores++;
        assert_int_equal(plan.cnt, KP_TOPIC__CNT + stores);
        int seen_compact = 0;
        for (size_t i = 0; i < plan.cnt; i++) {
                const kp_topic_req_t *r = &plan.reqs[i];
                assert_true(kp_topic_name_valid(r->name));
                assert_int_equal(strncmp(r->name, "t.", 2), 0);
                assert_int_equal(r->replication_factor, 3);
                if (!strcmp(r->name, "t.kpay.metadata") ||
                    !strcmp(r->name, "t.kpay.control.status")) {
                        assert_string_equal(r->cleanup_policy, "compact");
                        assert_int_equal(r->partitions, 1);
                        seen_compact++;
                } else if (strstr(r->name, "-changelog")) {
                        assert_string_equal(r->cleanup_policy, "compact");
                        assert_int_equal(r->partitions, 12);
                        seen_compact++;
                } else {
                        assert_string_equal(r->cleanup_policy, "delete");
                        assert_int_equal(r->partitions, 12);
                }
                if (!strcmp(r->name, "t.kpay.dlq"))
                        assert_non_null(r->retention_ms);
        }
        assert_int_equal(seen_compact, 2 + stores);
        kp_topic_plan_clear(&plan);
        assert_int_equal(plan.cnt, 0);
        assert_true(kp_mem_live_allocations() == before);
}

int main(void) {
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_names),
            cmocka_unit_test(test_name_valid),
            cmocka_unit_test(test_plan),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
