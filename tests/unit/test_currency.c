/* Unit tests of kp_currency: the ISO 4217 table (sorted, the exponents
 * that matter, codes without a minor unit absent) and the exact decimal
 * conversion at its limits: what is accepted, what would round, what is
 * malformed and what overflows int64. */
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "kpay/kp_currency.h"
#include "kpay/kp_money.h"

static void test_table(void **state) {
        (void)state;
        assert_int_equal(kp_currency_exponent("USD"), 2);
        assert_int_equal(kp_currency_exponent("EUR"), 2);
        assert_int_equal(kp_currency_exponent("JPY"), 0);
        assert_int_equal(kp_currency_exponent("KRW"), 0);
        assert_int_equal(kp_currency_exponent("BHD"), 3);
        assert_int_equal(kp_currency_exponent("KWD"), 3);
        assert_int_equal(kp_currency_exponent("TND"), 3);
        assert_int_equal(kp_currency_exponent("CLF"), 4);
        assert_int_equal(kp_currency_exponent("UYW"), 4);
        assert_int_equal(kp_currency_exponent("CLP"), 0);
        assert_int_equal(kp_currency_exponent("ZWG"), 2);
        assert_int_equal(kp_currency_exponent("XCG"), 2);
        /* Not codes, withdrawn codes, codes without a minor unit. */
        static const char *absent[] = {"usd", "US",  "USDX", "",
                                       "XXX", "XAU", "XTS",  "HRK",
                                       "ZWL", "AAA", "ZZZ"};
        for (size_t i = 0; i < sizeof(absent) / sizeof(absent[0]); i++)
                assert_int_equal(kp_currency_exponent(absent[i]), -1);
        assert_int_equal(kp_currency_exponent(NULL), -1);

        /* Sorted, unique, valid codes, exponents in range: the binary
         * search finds every row. */
        size_t n = kp_currency_count();
        assert_true(n > 150);
        for (size_t i = 0; i < n; i++) {
                const kp_currency_info_t *c = kp_currency_at(i);
                assert_non_null(c);
                assert_true(kp_currency_valid(c->code));
                assert_in_range(c->exponent, 0, KP_CURRENCY_EXPONENT_MAX);
                if (i)
                        assert_true(
                            strcmp(kp_currency_at(i - 1)->code, c->code) < 0);
                assert_int_equal(kp_currency_exponent(c->code), c->exponent);
        }
        assert_null(kp_currency_at(n));

        json_t *o = kp_currency_table_json();
        assert_int_equal(json_object_size(o), n);
        assert_int_equal(json_integer_value(json_object_get(o, "USD")), 2);
        assert_int_equal(json_integer_value(json_object_get(o, "JPY")), 0);
        assert_int_equal(json_integer_value(json_object_get(o, "BHD")), 3);
        assert_int_equal(json_integer_value(json_object_get(o, "CLF")), 4);
        json_decref(o);
}

static void assert_parse(const char *s, int exponent, int64_t expected) {
        int64_t v = -1;
        assert_int_equal(kp_amount_parse(s, strlen(s), exponent, &v), KP_OK);
        assert_true(v == expected);
}

static void assert_refused(const char *s, size_t len, int exponent,
                           kp_err_t expected) {
        int64_t v = 77;
        assert_int_equal(kp_amount_parse(s, len, exponent, &v), expected);
        assert_true(v == 77); /* untouched */
}

static void test_parse(void **state) {
        (void)state;
        assert_parse("12.34", 2, 1234);
        assert_parse("12.3", 2, 1230);
        assert_parse("12", 2, 1200);
        assert_parse("0.05", 2, 5);
        assert_parse("0.5", 2, 50);
        assert_parse("0", 2, 0);
        assert_parse("0.00", 2, 0);
        assert_parse("100", 0, 100);
        assert_parse("1.234", 3, 1234);
        assert_parse("0.001", 3, 1);
        assert_parse("1.0001", 4, 10001);
        /* The limits: INT64_MAX minor units, in each exponent. */
        assert_parse("9223372036854775807", 0, INT64_MAX);
        assert_parse("92233720368547758.07", 2, INT64_MAX);
        assert_parse("922337203685477.5807", 4, INT64_MAX);
        assert_parse("92233720368547758", 2, INT64_C(9223372036854775800));
}

static void test_parse_refused(void **state) {
        (void)state;
        /* Would round: more fraction digits than the exponent. */
        static const struct {
                const char *s;
                int exponent;
        } rounding[] = {
            {"12.345", 2}, {"12.340", 2},  {"100.0", 0},
            {"1.2345", 3}, {"0.00001", 4}, {"0.001", 2},
        };
        for (size_t i = 0; i < sizeof(rounding) / sizeof(rounding[0]); i++)
                assert_refused(rounding[i].s, strlen(rounding[i].s),
                               rounding[i].exponent, KP_ERR_PARSE);

        /* Malformed: signs, exponents, whitespace, empty parts, leading
         * zeros, other separators, anything after the number. */
        static const char *bad[] = {
            "",    "-1",    "+1",   "-0",  "1e2",   "1E2",  " 1",
            "1 ",  "1. 5",  ".5",   "5.",  ".",     "1..2", "1.2.3",
            "01",  "00",    "00.5", "1,5", "1,000", "0x10", "12a",
            "a12", "1_000", "١٢",   "Inf", "NaN",   "1.-2", "1.+2",
            "\t1", "1\n",   "--1",  "1-",  "1.2e1", "0.",   "\"1\"",
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                assert_refused(bad[i], strlen(bad[i]), 2, KP_ERR_PARSE);
        /* An embedded NUL is not the end of the string. */
        assert_refused(
            "12\0"
            "5",
            4, 2, KP_ERR_PARSE);
        assert_refused("12.3\0", 5, 2, KP_ERR_PARSE);
        assert_refused(NULL, 0, 2, KP_ERR_PARSE);

        /* Overflow of int64, at each exponent. */
        assert_refused("9223372036854775808", 19, 0, KP_ERR_OVERFLOW);
        assert_refused("92233720368547758.08", 20, 2, KP_ERR_OVERFLOW);
        assert_refused("92233720368547759", 17, 2, KP_ERR_OVERFLOW);
        assert_refused("922337203685477.5808", 20, 4, KP_ERR_OVERFLOW);
        assert_refused("99999999999999999999999999999", 29, 0, KP_ERR_OVERFLOW);

        /* An exponent outside the table's. */
        assert_refused("1", 1, -1, KP_ERR_INVALID_ARG);
        assert_refused("1", 1, KP_CURRENCY_EXPONENT_MAX + 1,
                       KP_ERR_INVALID_ARG);
}

static void assert_format(int64_t v, int exponent, const char *expected) {
        char buf[KP_AMOUNT_DEC_SIZE];
        size_t n = kp_amount_format(v, exponent, buf);
        assert_string_equal(buf, expected);
        assert_int_equal(n, strlen(expected));
        if (v >= 0) {
                int64_t back = -1;
                assert_int_equal(kp_amount_parse(buf, n, exponent, &back),
                                 KP_OK);
                assert_true(back == v);
        }
}

static void test_format(void **state) {
        char buf[KP_AMOUNT_DEC_SIZE];
        (void)state;
        assert_format(1234, 2, "12.34");
        assert_format(1200, 2, "12.00");
        assert_format(5, 2, "0.05");
        assert_format(0, 2, "0.00");
        assert_format(0, 0, "0");
        assert_format(100, 0, "100");
        assert_format(1234, 3, "1.234");
        assert_format(1, 4, "0.0001");
        assert_format(-5, 2, "-0.05");
        assert_format(-1234, 0, "-1234");
        assert_format(INT64_MAX, 0, "9223372036854775807");
        assert_format(INT64_MAX, 2, "92233720368547758.07");
        assert_format(INT64_MAX, 4, "922337203685477.5807");
        assert_format(INT64_MIN, 4, "-922337203685477.5808");
        assert_int_equal(
            strlen("-922337203685477.5808") + 1 <= KP_AMOUNT_DEC_SIZE, 1);
        assert_int_equal(strlen("-0.0001") + 1 <= KP_AMOUNT_DEC_SIZE, 1);
        assert_int_equal(kp_amount_format(1, 5, buf), 0);
        assert_string_equal(buf, "");
        assert_int_equal(kp_amount_format(1, -1, buf), 0);
}

/* Every value of a sweep survives format -> parse at every exponent. */
static void test_round_trip(void **state) {
        (void)state;
        char buf[KP_AMOUNT_DEC_SIZE];
        for (int e = 0; e <= KP_CURRENCY_EXPONENT_MAX; e++) {
                for (int64_t v = 0; v < 20000; v += 7) {
                        int64_t back = -1;
                        size_t n     = kp_amount_format(v, e, buf);
                        assert_int_equal(kp_amount_parse(buf, n, e, &back),
                                         KP_OK);
                        assert_true(back == v);
                }
                for (int64_t v = INT64_MAX; v > INT64_MAX - 1000; v--) {
                        int64_t back = -1;
                        size_t n     = kp_amount_format(v, e, buf);
                        assert_int_equal(kp_amount_parse(buf, n, e, &back),
                                         KP_OK);
                        assert_true(back == v);
                }
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_table),         cmocka_unit_test(test_parse),
            cmocka_unit_test(test_parse_refused), cmocka_unit_test(test_format),
            cmocka_unit_test(test_round_trip),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
