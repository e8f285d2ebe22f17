/* Unit tests of kp_log: levels, and one well-formed logfmt line per event. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "kpay/kp_log.h"

static int evaluated;

static int side_effect(void) {
        evaluated++;
        return 1;
}

/* Runs @p fn with stderr redirected to a file and returns what it wrote. */
static char *capture(void (*fn)(void)) {
        char path[] = "/tmp/kpay-test-log-XXXXXX";
        int fd      = mkstemp(path);
        assert_true(fd >= 0);
        int saved = dup(STDERR_FILENO);
        assert_true(saved >= 0);
        assert_true(dup2(fd, STDERR_FILENO) >= 0);
        fn();
        assert_true(dup2(saved, STDERR_FILENO) >= 0);
        close(saved);
        off_t len = lseek(fd, 0, SEEK_END);
        char *buf = calloc(1, (size_t)len + 1);
        assert_non_null(buf);
        assert_int_equal(pread(fd, buf, (size_t)len, 0), len);
        close(fd);
        unlink(path);
        return buf;
}

static void log_some(void) {
        kp_log_set_service("kpay-test");
        kp_log_set_level(KP_LOG_INFO);
        KP_INFO("hello \"world\"\nsecond line %d", 42);
        KP_DEBUG("skipped %d", side_effect());
}

static void test_line_format(void **state) {
        (void)state;
        evaluated = 0;
        char *out = capture(log_some);
        assert_non_null(strstr(out,
                               " level=info service=kpay-test "
                               "msg=\"hello \\\"world\\\"\\nsecond line "
                               "42\"\n"));
        assert_int_equal(strncmp(out, "ts=", 3), 0);
        /* One event, one line; the debug line was skipped unevaluated. */
        assert_int_equal(strchr(out, '\n') - out + 1, (long)strlen(out));
        assert_int_equal(evaluated, 0);
        free(out);
}

static void test_levels(void **state) {
        (void)state;
        kp_log_level_t l;
        assert_int_equal(kp_log_level_parse("debug", &l), KP_OK);
        assert_int_equal(l, KP_LOG_DEBUG);
        assert_int_equal(kp_log_level_parse("WARN", &l), KP_OK);
        assert_int_equal(l, KP_LOG_WARN);
        assert_int_equal(kp_log_level_parse("warning", &l), KP_OK);
        assert_int_equal(kp_log_level_parse("verbose", &l), KP_ERR_INVALID_ARG);
        assert_string_equal(kp_log_level_name(KP_LOG_ERROR), "error");
        assert_string_equal(kp_log_level_name((kp_log_level_t)99), "unknown");
}

/* The repeat limit's clock, moved by the tests. */
static int64_t fake_now;
static int64_t fake_clock(void) {
        return fake_now;
}

static size_t count_of(const char *hay, const char *needle) {
        size_t n = 0;
        for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
                n++;
        return n;
}

static void log_storm(void) {
        kp_log_set_clock(fake_clock);
        kp_log_set_repeat_limit(5, 10000);
        fake_now = 1000;
        /* 1,239 identical lines in one window, one other line between. */
        for (int i = 0; i < 1239; i++) {
                KP_WARN("end offsets of t [0]: Local: Unknown partition");
                if (i == 100)
                        KP_WARN("another line");
        }
        /* The same text at another level is another line. */
        KP_ERROR("end offsets of t [0]: Local: Unknown partition");
        /* The window ends: the count comes out with the next line. */
        fake_now += 10000;
        KP_INFO("later");
        /* A new window: written again, up to the burst. */
        KP_WARN("end offsets of t [0]: Local: Unknown partition");
        for (int i = 0; i < 7; i++)
                KP_WARN("end offsets of t [0]: Local: Unknown partition");
        /* Flushed on exit even when no later line comes. */
        kp_log_flush(1);
        kp_log_set_repeat_limit(5, 10000);
        kp_log_set_clock(NULL);
}

static void test_repeat_limit(void **state) {
        (void)state;
        char *out = capture(log_storm);
        /* 5 written in the first window, 5 in the second (which had 8). */
        assert_int_equal(count_of(out,
                                  "level=warn service=kpay-test "
                                  "msg=\"end offsets"),
                         10);
        assert_int_equal(count_of(out,
                                  "level=error service=kpay-test "
                                  "msg=\"end offsets"),
                         1);
        assert_int_equal(count_of(out, "msg=\"another line\""), 1);
        assert_non_null(
            strstr(out,
                   "level=warn service=kpay-test msg=\"... 1,234 "
                   "identical lines suppressed: end offsets of t [0]: "
                   "Local: Unknown partition\"\n"));
        assert_non_null(strstr(out,
                               "msg=\"... 3 identical lines "
                               "suppressed: end offsets"));
        /* The first window's count precedes the line that ended it. */
        const char *sum   = strstr(out, "... 1,234 identical");
        const char *later = strstr(out, "msg=\"later\"");
        assert_non_null(later);
        assert_true(sum < later);
        assert_int_equal(count_of(out, "identical lines suppressed"), 2);
        free(out);
}

static void test_fmt_count(void **state) {
        (void)state;
        char buf[32];
        assert_string_equal(kp_log_fmt_count(buf, sizeof(buf), 0), "0");
        assert_string_equal(kp_log_fmt_count(buf, sizeof(buf), 999), "999");
        assert_string_equal(kp_log_fmt_count(buf, sizeof(buf), 1234), "1,234");
        assert_string_equal(kp_log_fmt_count(buf, sizeof(buf), 1234567),
                            "1,234,567");
        assert_string_equal(kp_log_fmt_count(buf, sizeof(buf), -1234),
                            "-1,234");
        assert_string_equal(kp_log_fmt_count(buf, 4, 1234567), "1,2");
}

int main(void) {
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_line_format),
            cmocka_unit_test(test_levels),
            cmocka_unit_test(test_repeat_limit),
            cmocka_unit_test(test_fmt_count),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
