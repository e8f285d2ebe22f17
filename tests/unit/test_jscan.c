/* Unit tests of kp_jscan: the hot path's simple-object reader reads what it
 * knows exactly as jansson does, and falls back on everything else. */
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "kpay/kp_jscan.h"

/* Reads all of @p json; 0 when the reader took it, -1 when it fell back.
 * The members it read are written to @p out as "depth key=value;". */
static int scan(const char *json, char *out, size_t out_size) {
        kp_jscan_t js;
        kp_jscan_member_t m;
        kp_jscan_res_t res;
        size_t n = 0;
        out[0]   = '\0';
        if (kp_jscan_begin(&js, json, strlen(json)))
                return -1;
        for (;;) {
                res = kp_jscan_next(&js, &m);
                if (res == KP_JSCAN_FALLBACK)
                        return -1;
                if (res == KP_JSCAN_END) {
                        if (js.depth == 0)
                                return 0;
                        n += (size_t)snprintf(out + n, out_size - n, "};");
                        continue;
                }
                n += (size_t)snprintf(out + n, out_size - n,
                                      "%d %.*s=", m.depth, (int)m.klen, m.key);
                switch (m.type) {
                case KP_JSCAN_NULL:
                        n += (size_t)snprintf(out + n, out_size - n, "null;");
                        break;
                case KP_JSCAN_TRUE:
                        n += (size_t)snprintf(out + n, out_size - n, "true;");
                        break;
                case KP_JSCAN_FALSE:
                        n += (size_t)snprintf(out + n, out_size - n, "false;");
                        break;
                case KP_JSCAN_STRING:
                        n += (size_t)snprintf(out + n, out_size - n, "'%.*s';",
                                              (int)m.len, m.s);
                        break;
                case KP_JSCAN_INT:
                        n += (size_t)snprintf(out + n, out_size - n, "%lld;",
                                              (long long)m.i);
                        break;
                case KP_JSCAN_OBJECT:
                        n += (size_t)snprintf(out + n, out_size - n, "{;");
                        break;
                }
        }
}

static void test_reads_simple_objects(void **state) {
        static const struct {
                const char *json, *want;
        } ok[] = {
            {"{}", ""},
            {" \t\r\n{ } \n", ""},
            {"{\"a\":1}", "1 a=1;"},
            {"{\"a\" : \"x y\" , \"b\":null,\"c\":true,\"d\":false}",
             "1 a='x y';1 b=null;1 c=true;1 d=false;"},
            {"{\"\":\"\"}", "1 ='';"},
            {"{\"n\":0,\"m\":-0,\"k\":-42,\"big\":999999999999999999}",
             "1 n=0;1 m=0;1 k=-42;1 big=999999999999999999;"},
            {"{\"neg\":-999999999999999999}", "1 neg=-999999999999999999;"},
            {"{\"o\":{\"USD\":\"10\",\"EUR\":\"-3\"},\"x\":1}",
             "1 o={;2 USD='10';2 EUR='-3';};1 x=1;"},
            {"{\"o\":{}}", "1 o={;};"},
            {"{\"s\":\"~!#$%&'()*+,-./:;<=>?@[]^_`{|}\"}",
             "1 s='~!#$%&'()*+,-./:;<=>?@[]^_`{|}';"},
        };
        char out[512];
        (void)state;
        for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
                if (scan(ok[i].json, out, sizeof(out)))
                        fail_msg("fell back on %s", ok[i].json);
                if (strcmp(out, ok[i].want))
                        fail_msg("%s read as %s, not %s", ok[i].json, out,
                                 ok[i].want);
                /* jansson takes every one of them. */
                json_error_t jerr;
                json_t *v = json_loads(ok[i].json, 0, &jerr);
                if (!v)
                        fail_msg("jansson refuses %s: %s", ok[i].json,
                                 jerr.text);
                json_decref(v);
        }
}

static void test_falls_back(void **state) {
        static const char *const fallback[] = {
            "",
            "   ",
            "[]",
            "1",
            "\"s\"",
            "null",
            "{",
            "{\"a\"",
            "{\"a\":",
            "{\"a\":1",
            "{\"a\":1,}",
            "{,\"a\":1}",
            "{\"a\" 1}",
            "{\"a\":1 \"b\":2}",
            "{a:1}",
            "{\"a\":1}x",
            "{\"a\":1}{}",
            "{\"a\":1.5}",
            "{\"a\":1e3}",
            "{\"a\":1E3}",
            "{\"a\":01}",
            "{\"a\":-}",
            "{\"a\":+1}",
            "{\"a\":1000000000000000000}", /* 19 digits */
            "{\"a\":9223372036854775808}",
            "{\"a\":[1]}",
            "{\"a\":\"\\n\"}",
            "{\"a\":\"\\u0041\"}",
            "{\"\\u0061\":1}",
            "{\"a\":\"\xc3\xa9\"}",
            "{\"a\":\"\x7f\"}",
            "{\"a\":\"tab\there\"}",
            "{\"a\":nul}",
            "{\"a\":tru}",
            "{\"a\":falsey}",
            "{\"a\":NULL}",
            "{\"o\":{\"p\":{}}}", /* deeper than KP_JSCAN_DEPTH_MAX */
            "{\"o\":{\"p\":1}",
            "{\"a\":1}}",
        };
        char out[512];
        (void)state;
        for (size_t i = 0; i < sizeof(fallback) / sizeof(fallback[0]); i++)
                if (scan(fallback[i], out, sizeof(out)) != -1)
                        fail_msg("took %s (as %s)", fallback[i], out);
}

/* A NUL byte inside the buffer is not JSON: the length counts. */
static void test_length_bounds_the_input(void **state) {
        static const char buf[] = "{\"a\":1}\0{";
        kp_jscan_t js;
        kp_jscan_member_t m;
        (void)state;
        assert_int_equal(kp_jscan_begin(&js, buf, sizeof(buf) - 1), 0);
        assert_int_equal(kp_jscan_next(&js, &m), KP_JSCAN_MEMBER);
        assert_int_equal(kp_jscan_next(&js, &m), KP_JSCAN_FALLBACK);
        assert_int_equal(kp_jscan_begin(&js, buf, 7), 0);
        assert_int_equal(kp_jscan_next(&js, &m), KP_JSCAN_MEMBER);
        assert_true(kp_jscan_key_is(&m, "a"));
        assert_false(kp_jscan_key_is(&m, "ab"));
        assert_int_equal(kp_jscan_next(&js, &m), KP_JSCAN_END);
        assert_int_equal(kp_jscan_next(&js, &m), KP_JSCAN_END);
        /* Cut short anywhere, it falls back. */
        for (size_t n = 0; n < 7; n++) {
                kp_jscan_res_t res = KP_JSCAN_MEMBER;
                if (kp_jscan_begin(&js, buf, n) == 0)
                        while ((res = kp_jscan_next(&js, &m)) ==
                               KP_JSCAN_MEMBER)
                                ;
                if (n > 0 && res != KP_JSCAN_FALLBACK)
                        fail_msg("took the first %zu bytes", n);
        }
        assert_int_equal(kp_jscan_begin(&js, NULL, 0), KP_JSCAN_FALLBACK);
}

int main(void) {
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_reads_simple_objects),
            cmocka_unit_test(test_falls_back),
            cmocka_unit_test(test_length_bounds_the_input),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
