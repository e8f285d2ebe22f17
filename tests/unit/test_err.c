/* Unit tests of kp_err: every code has a name and a description. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "kpay/kp_err.h"

static void test_table(void **state) {
        (void)state;
        assert_int_equal(KP_OK, 0);
        assert_string_equal(kp_err2name(KP_OK), "OK");
        assert_string_equal(kp_err2str(KP_OK), "Success");
        assert_string_equal(kp_err2name(KP_ERR_TOPIC_MISMATCH),
                            "ERR_TOPIC_MISMATCH");
#define CHECK(name, value, desc)                                               \
        assert_true(KP_##name <= 0);                                           \
        assert_string_equal(kp_err2str(KP_##name), desc);                      \
        assert_string_equal(kp_err2name(KP_##name), #name);
        KP_ERR_TABLE(CHECK)
#undef CHECK
}

static void test_unknown(void **state) {
        (void)state;
        assert_string_equal(kp_err2str((kp_err_t)-9999), "Unknown error");
        assert_string_equal(kp_err2name((kp_err_t)17), "ERR_UNKNOWN");
}

static void test_errstr_set(void **state) {
        char buf[8];
        (void)state;
        assert_int_equal(
            kp_errstr_set(KP_ERR_PARSE, buf, sizeof(buf), "bad %d", 42),
            KP_ERR_PARSE);
        assert_string_equal(buf, "bad 42");
        /* Truncated to the buffer; NULL and 0 are fine. */
        kp_errstr_set(KP_ERR_IO, buf, sizeof(buf), "%s", "far too long");
        assert_string_equal(buf, "far too");
        assert_int_equal(kp_errstr_set(KP_ERR_IO, NULL, 0, "x"), KP_ERR_IO);
}

int main(void) {
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_table),
            cmocka_unit_test(test_unknown),
            cmocka_unit_test(test_errstr_set),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
