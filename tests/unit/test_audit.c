/* Unit tests of kp_audit: the record's fields and order, the actor, the
 * trace id; and the optional actor of account commands (kp_payment). */
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kpay/kp_audit.h"
#include "kpay/kp_mem.h"
#include "kpay/kp_payment.h"

static void test_record(void **state) {
        (void)state;
        json_t *before   = json_pack("{s:b}", "frozen", 0);
        json_t *after    = json_pack("{s:b}", "frozen", 1);
        json_t *extra    = json_pack("{s:s, s:s, s:i}", "account", "alice",
                                     "actor", "smuggled", "n", 3);
        kp_audit_rec_t r = {.service  = "account",
                            .instance = "account-1",
                            .actor    = "ops bob",
                            .action   = "freeze",
                            .target   = "account:alice",
                            .before   = before,
                            .after    = after,
                            .trace    = "t-1",
                            .ts       = 1700000000000};
        size_t len;
        char *s = kp_audit_serialize(&r, extra, &len);
        assert_int_equal(strlen(s), len);
        assert_string_equal(
            s,
            "{\"v\":1,\"ts\":1700000000000,\"service\":\"account\","
            "\"instance\":\"account-1\",\"actor\":\"ops_bob\","
            "\"action\":\"freeze\",\"target\":\"account:alice\","
            "\"before\":{\"frozen\":false},\"after\":{\"frozen\":true},"
            "\"trace\":\"t-1\",\"account\":\"alice\",\"n\":3}");
        kp_free(s);
        /* No actor, no before/after, no trace: "anonymous" and nulls. */
        kp_audit_rec_t bare = {.service = "admin", .action = "x", .ts = 1};
        s                   = kp_audit_serialize(&bare, NULL, NULL);
        assert_non_null(strstr(s, "\"actor\":\"anonymous\""));
        assert_non_null(strstr(s, "\"before\":null,\"after\":null"));
        assert_non_null(strstr(s, "\"trace\":null"));
        assert_non_null(strstr(s, "\"instance\":null"));
        kp_free(s);
        json_decref(before);
        json_decref(after);
        json_decref(extra);
}

static void test_actor_and_trace(void **state) {
        (void)state;
        char buf[KP_AUDIT_ACTOR_MAX + 1], big[200], t1[40], t2[40];
        kp_audit_actor(buf, sizeof(buf), NULL, "anonymous");
        assert_string_equal(buf, "anonymous");
        kp_audit_actor(buf, sizeof(buf), "a\"b<c>@d.e:f-g_h", "x");
        assert_string_equal(buf, "a_b_c_@d.e:f-g_h");
        memset(big, 'z', sizeof(big) - 1);
        big[sizeof(big) - 1] = '\0';
        kp_audit_actor(buf, sizeof(buf), big, "x");
        assert_int_equal(strlen(buf), KP_AUDIT_ACTOR_MAX);
        kp_audit_trace_new(t1, sizeof(t1));
        kp_audit_trace_new(t2, sizeof(t2));
        assert_int_equal(strlen(t1), 32);
        assert_string_not_equal(t1, t2);
        assert_int_equal(strspn(t1, "0123456789abcdef"), 32);
}

static void test_command_actor(void **state) {
        (void)state;
        kp_account_cmd_t cmd;
        char detail[256];
        const char *with =
            "{\"v\":1,\"command\":\"FREEZE\",\"account\":"
            "\"alice\",\"id\":\"c1\",\"created_ms\":5,"
            "\"actor\":\"web user\"}";
        assert_int_equal(kp_account_cmd_parse(with, strlen(with), &cmd, detail,
                                              sizeof(detail)),
                         KP_PAY_E_OK);
        assert_string_equal(cmd.actor, "web_user");
        size_t len;
        char *s = kp_account_cmd_serialize(&cmd, &len);
        assert_string_equal(s,
                            "{\"v\":1,\"command\":\"FREEZE\",\"account\":"
                            "\"alice\",\"id\":\"c1\",\"created_ms\":5,"
                            "\"actor\":\"web_user\"}");
        kp_free(s);
        /* Without one (older producers): parsed, and written as before. */
        const char *without =
            "{\"v\":1,\"command\":\"UNFREEZE\",\"account\":"
            "\"alice\",\"id\":null,\"created_ms\":0}";
        assert_int_equal(kp_account_cmd_parse(without, strlen(without), &cmd,
                                              detail, sizeof(detail)),
                         KP_PAY_E_OK);
        assert_string_equal(cmd.actor, "");
        s = kp_account_cmd_serialize(&cmd, &len);
        assert_string_equal(s, without);
        kp_free(s);
        /* null is absent; another type is refused. */
        const char *nul =
            "{\"v\":1,\"command\":\"FREEZE\",\"account\":\"a\","
            "\"actor\":null}";
        assert_int_equal(kp_account_cmd_parse(nul, strlen(nul), &cmd, detail,
                                              sizeof(detail)),
                         KP_PAY_E_OK);
        const char *num =
            "{\"v\":1,\"command\":\"FREEZE\",\"account\":\"a\","
            "\"actor\":7}";
        assert_int_equal(kp_account_cmd_parse(num, strlen(num), &cmd, detail,
                                              sizeof(detail)),
                         KP_PAY_E_WRONG_TYPE);
        assert_non_null(strstr(detail, "actor"));
}

int main(void) {
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_record),
            cmocka_unit_test(test_actor_and_trace),
            cmocka_unit_test(test_command_actor),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
