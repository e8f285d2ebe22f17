/* Unit tests of kp_money: 128-bit decimal format and strict parse at the
 * limits, currency maps (sorted, separate per currency, deep copies), sums
 * far beyond int64 that stay exact, and strict JSON both ways. */
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kpay/kp_json.h"
#include "kpay/kp_mem.h"
#include "kpay/kp_money.h"

#define I128_MAX ((kp_i128_t)(((unsigned __int128)1 << 127) - 1))
#define I128_MIN (-I128_MAX - 1)

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

static void assert_format(kp_i128_t v, const char *expected) {
        char buf[KP_I128_DEC_SIZE];
        size_t n = kp_i128_format(v, buf);
        assert_string_equal(buf, expected);
        assert_int_equal(n, strlen(expected));
        kp_i128_t back = 1;
        assert_int_equal(kp_i128_parse(buf, n, &back), KP_OK);
        assert_true(back == v);
}

static void test_format_and_parse(void **state) {
        (void)state;
        assert_format(0, "0");
        assert_format(-1, "-1");
        assert_format(INT64_MAX, "9223372036854775807");
        assert_format(INT64_MIN, "-9223372036854775808");
        assert_format((kp_i128_t)INT64_MAX * 2, "18446744073709551614");
        assert_format(I128_MAX, "170141183460469231731687303715884105727");
        assert_format(I128_MIN, "-170141183460469231731687303715884105728");
        assert_int_equal(strlen("-170141183460469231731687303715884105728") + 1,
                         KP_I128_DEC_SIZE);

        static const char *bad[] = {
            "",
            "-",
            "-0",
            "00",
            "01",
            "+1",
            " 1",
            "1 ",
            "1.0",
            "1e3",
            "0x10",
            "170141183460469231731687303715884105728",
            "-170141183460469231731687303715884105729",
            "999999999999999999999999999999999999999999",
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                kp_i128_t v = 42;
                if (kp_i128_parse(bad[i], strlen(bad[i]), &v) != KP_ERR_PARSE)
                        fail_msg("\"%s\" parsed", bad[i]);
                assert_true(v == 42);
        }
        kp_i128_t v;
        assert_int_equal(kp_i128_parse(NULL, 0, &v), KP_ERR_PARSE);
        /* The length bounds the input: "12" of "123". */
        assert_int_equal(kp_i128_parse("123", 2, &v), KP_OK);
        assert_true(v == 12);
}

static void test_currency_valid(void **state) {
        (void)state;
        assert_true(kp_currency_valid("USD"));
        assert_true(kp_currency_valid("EUR"));
        assert_false(kp_currency_valid("usd"));
        assert_false(kp_currency_valid("US"));
        assert_false(kp_currency_valid("USDX"));
        assert_false(kp_currency_valid(""));
        assert_false(kp_currency_valid("U1D"));
        assert_false(kp_currency_valid(NULL));
}

static void test_map_per_currency(void **state) {
        (void)state;
        kp_money_t m, c;
        kp_money_init(&m);
        kp_money_init(&c);
        assert_true(kp_money_is_zero(&m));
        assert_int_equal(kp_money_add(&m, "USD", 1250), KP_OK);
        assert_int_equal(kp_money_add(&m, "EUR", -300), KP_OK);
        assert_int_equal(kp_money_add(&m, "JPY", 7), KP_OK);
        assert_int_equal(kp_money_add(&m, "USD", 50), KP_OK);
        /* Sorted, one entry per currency, never added across. */
        assert_int_equal(m.cnt, 3);
        assert_string_equal(m.e[0].currency, "EUR");
        assert_string_equal(m.e[1].currency, "JPY");
        assert_string_equal(m.e[2].currency, "USD");
        assert_true(kp_money_get(&m, "USD") == 1300);
        assert_true(kp_money_get(&m, "EUR") == -300);
        assert_true(kp_money_get(&m, "GBP") == 0);
        assert_false(kp_money_has(&m, "GBP"));
        assert_true(kp_money_has(&m, "JPY"));
        assert_int_equal(kp_money_add(&m, "usd", 1), KP_ERR_INVALID_ARG);
        assert_int_equal(kp_money_set(&m, "XXXX", 1), KP_ERR_INVALID_ARG);

        /* A deep copy: changing it leaves the original. */
        kp_money_copy(&c, &m);
        assert_true(kp_money_equal(&c, &m));
        assert_int_equal(kp_money_set(&c, "JPY", 0), KP_OK);
        assert_false(kp_money_equal(&c, &m));
        assert_true(kp_money_get(&m, "JPY") == 7);
        /* An entry at 0 equals no entry. */
        kp_money_t d;
        kp_money_init(&d);
        assert_int_equal(kp_money_set(&d, "USD", 1300), KP_OK);
        assert_int_equal(kp_money_set(&d, "EUR", -300), KP_OK);
        assert_true(kp_money_equal(&c, &d));
        assert_int_equal(kp_money_set(&c, "EUR", 0), KP_OK);
        assert_int_equal(kp_money_set(&c, "USD", 0), KP_OK);
        assert_true(kp_money_is_zero(&c));

        /* add_all: currency by currency. */
        assert_int_equal(kp_money_add_all(&d, &m), KP_OK);
        assert_true(kp_money_get(&d, "USD") == 2600);
        assert_true(kp_money_get(&d, "EUR") == -600);
        assert_true(kp_money_get(&d, "JPY") == 7);
        kp_money_clear(&m);
        kp_money_clear(&c);
        kp_money_clear(&d);
        kp_money_clear(NULL);
}

/* Sums of INT64_MAX amounts go far past int64 and stay exact; only the
 * 128-bit limit itself, unreachable by int64 sums, refuses. */
static void test_sums_beyond_int64(void **state) {
        (void)state;
        kp_money_t m, big;
        kp_money_init(&m);
        kp_money_init(&big);
        for (int i = 0; i < 1000; i++)
                assert_int_equal(kp_money_add(&m, "USD", INT64_MAX), KP_OK);
        assert_true(kp_money_get(&m, "USD") == (kp_i128_t)INT64_MAX * 1000);
        char buf[KP_I128_DEC_SIZE];
        kp_i128_format(kp_money_get(&m, "USD"), buf);
        assert_string_equal(buf, "9223372036854775807000");
        for (int i = 0; i < 1000; i++)
                assert_int_equal(kp_money_add(&m, "USD", -INT64_MAX), KP_OK);
        assert_true(kp_money_get(&m, "USD") == 0);

        assert_int_equal(kp_money_set(&m, "USD", I128_MAX), KP_OK);
        assert_int_equal(kp_money_add(&m, "USD", 1), KP_ERR_OVERFLOW);
        assert_true(kp_money_get(&m, "USD") == I128_MAX);
        assert_int_equal(kp_money_set(&big, "EUR", 5), KP_OK);
        assert_int_equal(kp_money_set(&big, "USD", 1), KP_OK);
        /* A failed add_all changes nothing, not even EUR. */
        assert_int_equal(kp_money_add_all(&m, &big), KP_ERR_OVERFLOW);
        assert_int_equal(m.cnt, 1);
        assert_true(kp_money_get(&m, "USD") == I128_MAX);
        kp_money_clear(&m);
        kp_money_clear(&big);
}

static char *dump(const kp_money_t *m, kp_money_json_t how) {
        return kp_json_dump(kp_money_to_json(m, how));
}

static void test_json(void **state) {
        (void)state;
        kp_money_t m, back;
        kp_money_init(&m);
        kp_money_init(&back);
        char *s = dump(&m, KP_MONEY_JSON_STRING);
        assert_string_equal(s, "{}");
        kp_free(s);
        assert_int_equal(kp_money_set(&m, "USD", (kp_i128_t)INT64_MAX * 3),
                         KP_OK);
        assert_int_equal(kp_money_set(&m, "EUR", -5), KP_OK);
        s = dump(&m, KP_MONEY_JSON_STRING);
        assert_string_equal(
            s, "{\"EUR\":\"-5\",\"USD\":\"27670116110564327421\"}");
        json_t *j = json_loads(s, 0, NULL);
        assert_int_equal(kp_money_from_json(j, KP_MONEY_JSON_STRING, &back),
                         KP_OK);
        assert_true(kp_money_equal(&m, &back));
        /* Strings are not integers and the other way round. */
        assert_int_equal(kp_money_from_json(j, KP_MONEY_JSON_INT64, &back),
                         KP_ERR_PARSE);
        json_decref(j);
        kp_free(s);

        assert_int_equal(kp_money_set(&m, "USD", INT64_MIN), KP_OK);
        s = dump(&m, KP_MONEY_JSON_INT64);
        assert_string_equal(s, "{\"EUR\":-5,\"USD\":-9223372036854775808}");
        j = json_loads(s, 0, NULL);
        assert_int_equal(kp_money_from_json(j, KP_MONEY_JSON_INT64, &back),
                         KP_OK);
        assert_true(kp_money_get(&back, "USD") == INT64_MIN);
        json_decref(j);
        kp_free(s);

        static const char *bad_str[] = {
            "[]",
            "{\"usd\":\"1\"}",
            "{\"USD\":1}",
            "{\"USD\":\"1.5\"}",
            "{\"USD\":\"01\"}",
            "{\"USD\":null}",
            "{\"USDX\":\"1\"}",
            "{\"USD\":\"1\",\"\":\"2\"}",
        };
        for (size_t i = 0; i < sizeof(bad_str) / sizeof(bad_str[0]); i++) {
                j = json_loads(bad_str[i], 0, NULL);
                assert_non_null(j);
                if (kp_money_from_json(j, KP_MONEY_JSON_STRING, &back) !=
                    KP_ERR_PARSE)
                        fail_msg("%s decoded", bad_str[i]);
                /* Unchanged on error. */
                assert_true(kp_money_get(&back, "USD") == INT64_MIN);
                json_decref(j);
        }
        assert_int_equal(kp_money_from_json(NULL, KP_MONEY_JSON_STRING, &back),
                         KP_ERR_PARSE);
        kp_money_clear(&m);
        kp_money_clear(&back);
}

/* A money field, or the one integer an older kpay wrote in its place. */
static void test_json_field(void **state) {
        (void)state;
        kp_money_t m;
        kp_money_init(&m);
        json_t *j =
            json_loads("{\"amounts\":{\"EUR\":\"3\"},\"amount\":9}", 0, NULL);
        assert_int_equal(kp_money_from_json_field(j, "amounts", "amount", &m),
                         KP_OK);
        assert_int_equal(m.cnt, 1);
        assert_true(kp_money_get(&m, "EUR") == 3); /* the new field wins */
        json_decref(j);
        j = json_loads("{\"amount\":-9}", 0, NULL);
        assert_int_equal(kp_money_from_json_field(j, "amounts", "amount", &m),
                         KP_OK);
        assert_int_equal(m.cnt, 1);
        assert_true(kp_money_get(&m, KP_MONEY_LEGACY_CURRENCY) == -9);
        json_decref(j);
        j = json_loads("{\"amount\":0}", 0, NULL);
        assert_int_equal(kp_money_from_json_field(j, "amounts", "amount", &m),
                         KP_OK);
        assert_int_equal(m.cnt, 0);
        json_decref(j);
        static const char *bad[] = {"{}", "{\"amount\":\"1\"}",
                                    "{\"amounts\":{\"USD\":1}}",
                                    "{\"amounts\":null,\"amount\":1}"};
        assert_int_equal(kp_money_set(&m, "JPY", 4), KP_OK);
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                j = json_loads(bad[i], 0, NULL);
                if (kp_money_from_json_field(j, "amounts", "amount", &m) !=
                    KP_ERR_PARSE)
                        fail_msg("%s decoded", bad[i]);
                assert_true(kp_money_get(&m, "JPY") == 4);
                json_decref(j);
        }
        kp_money_clear(&m);
}

int main(void) {
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_format_and_parse, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_currency_valid, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_map_per_currency, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_sums_beyond_int64, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_json, setup, teardown),
            cmocka_unit_test_setup_teardown(test_json_field, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
