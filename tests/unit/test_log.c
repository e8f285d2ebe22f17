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

int main(void) {
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_line_format),
            cmocka_unit_test(test_levels),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
