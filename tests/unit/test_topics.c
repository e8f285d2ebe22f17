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
#include "layouts.h"

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
        kp_topic_plan_all(&plan, "t.", 12, 3, admin_layouts);
        size_t stores = 0;
        for (const kp_proc_layout_t *const *l = admin_layouts; *l; l++)
                for (const char *const *st = (*l)->stores; *st; st++)
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
                } else if (!strcmp(r->name,
                                   "t.kpay-inflight-dedup-changelog")) {
                        /* Its keys expire: retention instead of
                         * tombstones, for the window plus a day. */
                        assert_string_equal(r->cleanup_policy,
                                            "compact,delete");
                        assert_string_equal(r->retention_ms, "691200000");
                        assert_true(r->expiring);
                        assert_int_equal(r->partitions, 12);
                        seen_compact++;
                } else if (strstr(r->name, "-changelog") ||
                           !strcmp(r->name, "t.kpay.metrics.windows")) {
                        assert_string_equal(r->cleanup_policy, "compact");
                        assert_null(r->retention_ms);
                        assert_false(r->expiring);
                        assert_int_equal(r->partitions, 12);
                        seen_compact++;
                } else {
                        assert_string_equal(r->cleanup_policy, "delete");
                        assert_int_equal(r->partitions, 12);
                }
                if (!strcmp(r->name, "t.kpay.dlq"))
                        assert_non_null(r->retention_ms);
        }
        assert_int_equal(seen_compact, 3 + stores);
        kp_topic_plan_clear(&plan);
        assert_int_equal(plan.cnt, 0);
        assert_true(kp_mem_live_allocations() == before);
}

/* The changelogs follow the topics, one per store of each layout in order,
 * named for the layout's service; a layout without stores adds none. */
static void test_plan_changelogs(void **state) {
        (void)state;
        static const kp_topic_id_t inputs[]     = {KP_TOPIC_INCOMING,
                                                   KP_TOPIC_NONE};
        static const char *const two[]          = {"a", "b", NULL};
        static const char *const none[]         = {NULL};
        static const kp_proc_layout_t x         = {"x", inputs, two};
        static const kp_proc_layout_t y         = {"y", inputs, none};
        static const kp_proc_layout_t z         = {"z", inputs, two};
        const kp_proc_layout_t *const layouts[] = {&x, &y, &z, NULL};
        kp_topic_plan_t plan                    = {0};

        kp_topic_plan_all(&plan, "p.", 6, 1, layouts);
        assert_int_equal(plan.cnt, KP_TOPIC__CNT + 4);
        assert_string_equal(plan.reqs[KP_TOPIC__CNT].name,
                            "p.kpay-x-a-changelog");
        assert_string_equal(plan.reqs[KP_TOPIC__CNT + 1].name,
                            "p.kpay-x-b-changelog");
        assert_string_equal(plan.reqs[KP_TOPIC__CNT + 2].name,
                            "p.kpay-z-a-changelog");
        assert_string_equal(plan.reqs[KP_TOPIC__CNT + 3].name,
                            "p.kpay-z-b-changelog");
        for (size_t i = KP_TOPIC__CNT; i < plan.cnt; i++) {
                assert_string_equal(plan.reqs[i].cleanup_policy, "compact");
                assert_int_equal(plan.reqs[i].partitions, 6);
                assert_null(plan.reqs[i].retention_ms);
        }
        kp_topic_plan_clear(&plan);

        kp_topic_plan_all(&plan, "p.", 6, 1, NULL);
        assert_int_equal(plan.cnt, KP_TOPIC__CNT);
        kp_topic_plan_clear(&plan);
}

/* kpay-admin creates the changelogs of the four processors that keep
 * stores, and of no other. */
static void test_admin_layouts(void **state) {
        (void)state;
        kp_topic_plan_t plan            = {0};
        static const char *const want[] = {
            "kpay-inflight-inflight-changelog",
            "kpay-inflight-dedup-changelog",
            "kpay-inflight-totals-changelog",
            "kpay-account-balances-changelog",
            "kpay-confirmed-totals-changelog",
            "kpay-confirmed-outcomes-changelog",
            "kpay-confirmed-expiry-changelog",
            "kpay-metrics-windows-changelog",
            "kpay-metrics-slowest-changelog",
        };
        const size_t n = sizeof(want) / sizeof(want[0]);

        kp_topic_plan_all(&plan, "", 12, 1, admin_layouts);
        assert_int_equal(plan.cnt, KP_TOPIC__CNT + n);
        for (size_t i = 0; i < n; i++)
                assert_string_equal(plan.reqs[KP_TOPIC__CNT + i].name, want[i]);
        kp_topic_plan_clear(&plan);
        /* The layouts' inputs name real topics. */
        for (const kp_proc_layout_t *const *l = admin_layouts; *l; l++) {
                assert_non_null((*l)->inputs);
                assert_true((*l)->inputs[0] != KP_TOPIC_NONE);
                for (const kp_topic_id_t *t = (*l)->inputs; *t != KP_TOPIC_NONE;
                     t++)
                        assert_non_null(kp_topic_spec(*t));
        }
}

/* kp_topic_id_of() maps kpay's topic names back to their ids. */
static void test_topic_id_of(void **state) {
        (void)state;
        for (int id = 0; id < KP_TOPIC__CNT; id++)
                assert_int_equal(kp_topic_id_of(kp_topic_spec(id)->name), id);
        assert_int_equal(kp_topic_id_of("test.in"), KP_TOPIC_NONE);
        assert_int_equal(kp_topic_id_of(""), KP_TOPIC_NONE);
        assert_int_equal(kp_topic_id_of(NULL), KP_TOPIC_NONE);
}

int main(void) {
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_names),
            cmocka_unit_test(test_name_valid),
            cmocka_unit_test(test_plan),
            cmocka_unit_test(test_plan_changelogs),
            cmocka_unit_test(test_admin_layouts),
            cmocka_unit_test(test_topic_id_of),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
