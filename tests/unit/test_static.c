/* Unit tests of kpay-web's static path checks (web-tier/static_path.c):
 * traversal in every spelling is refused, the UI's own files pass, types,
 * the inside-the-directory test after realpath() (symlinks out), ETags. */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "static_path.h"

static void test_accepted(void **state) {
        (void)state;
        const char *ok[] = {"index.html",
                            "docs.html",
                            "assets/app.js",
                            "assets/vendor/uPlot.esm.js",
                            "assets/vendor/swagger-ui-bundle.js",
                            "assets/vendor/swagger-ui.css",
                            "assets/vendor/uPlot-LICENSE.txt",
                            "a.b.c.JS",
                            "x_y-z.json"};
        for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
                const char *why = web_static_check(ok[i]);
                if (why)
                        fail_msg("%s refused: %s", ok[i], why);
        }
}

static void test_refused(void **state) {
        (void)state;
        char longp[WEB_STATIC_PATH_MAX + 8];
        memset(longp, 'a', sizeof(longp));
        memcpy(longp + sizeof(longp) - 4, ".js", 4);
        /* kp_http has decoded %2e%2e, %2f and %5c by the time a path gets
         * here: they arrive as "..", "/" and "\\". */
        const char *bad[] = {"",
                             "/etc/passwd",
                             "/index.html",
                             "..",
                             "../index.html",
                             "../../etc/passwd",
                             "assets/../../etc/passwd.js",
                             "assets/..",
                             "assets/./app.js",
                             "./index.html",
                             ".env",
                             "assets/.hidden.js",
                             "assets//app.js",
                             "assets/",
                             "assets\\..\\x.js",
                             "..\\x.js",
                             "%2e%2e/x.js",
                             "assets%2f..%2fx.js",
                             "a%00.js",
                             "a\x01.js",
                             "caf\xc3\xa9.js",
                             "a b.js",
                             "a?.js",
                             "a:b.js",
                             "x.exe",
                             "Makefile",
                             "assets/vendor",
                             ".js",
                             "a/b/c/d/e.js",
                             longp};
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                if (!web_static_check(bad[i]))
                        fail_msg("\"%s\" accepted", bad[i]);
        assert_null(web_static_check("a/b/c/d.js")); /* 4 segments: ok */
        assert_non_null(web_static_check(NULL));
}

static void test_types(void **state) {
        (void)state;
        assert_string_equal(web_static_type("index.html"),
                            "text/html; charset=utf-8");
        assert_string_equal(web_static_type("assets/app.js"),
                            "text/javascript; charset=utf-8");
        assert_string_equal(web_static_type("x.CSS"),
                            "text/css; charset=utf-8");
        assert_string_equal(web_static_type("a.json"), "application/json");
        assert_string_equal(web_static_type("a.png"), "image/png");
        assert_null(web_static_type("a.html/x"));
        assert_null(web_static_type("README"));
        assert_null(web_static_type("dir.js/README"));
        assert_string_equal(web_static_cache_control("index.html"), "no-cache");
        assert_string_equal(web_static_cache_control("assets/app.js"),
                            "public, max-age=300");
}

static void test_inside(void **state) {
        (void)state;
        assert_true(web_static_inside("/b/ui", "/b/ui/index.html"));
        assert_true(web_static_inside("/b/ui/", "/b/ui/assets/a.js"));
        assert_true(web_static_inside("/b/ui", "/b/ui"));
        assert_false(web_static_inside("/b/ui", "/b/uix/a.js"));
        assert_false(web_static_inside("/b/ui", "/b/u"));
        assert_false(web_static_inside("/b/ui", "/etc/passwd"));
        assert_true(web_static_inside("/", "/etc/passwd"));

        /* With realpath(), as static.c resolves: a symlink in the
         * directory to a file outside it resolves outside. */
        char dir[] = "/tmp/kpay-test-static-XXXXXX";
        assert_non_null(mkdtemp(dir));
        char root[PATH_MAX], p[PATH_MAX + 64], real[PATH_MAX];
        assert_non_null(realpath(dir, root));
        snprintf(p, sizeof(p), "%s/in.js", root);
        FILE *f = fopen(p, "w");
        assert_non_null(f);
        fputs("x", f);
        fclose(f);
        snprintf(p, sizeof(p), "%s/link-in.js", root);
        assert_int_equal(symlink("in.js", p), 0);
        snprintf(p, sizeof(p), "%s/link-out.js", root);
        assert_int_equal(symlink("/etc/hostname", p), 0);
        snprintf(p, sizeof(p), "%s/link-in.js", root);
        assert_non_null(realpath(p, real));
        assert_true(web_static_inside(root, real));
        snprintf(p, sizeof(p), "%s/link-out.js", root);
        if (realpath(p, real))
                assert_false(web_static_inside(root, real));
        const char *names[] = {"in.js", "link-in.js", "link-out.js"};
        for (size_t i = 0; i < 3; i++) {
                snprintf(p, sizeof(p), "%s/%s", root, names[i]);
                unlink(p);
        }
        assert_int_equal(rmdir(root), 0);
}

static void test_etag(void **state) {
        (void)state;
        char e[80], e2[80];
        web_static_etag(e, sizeof(e), 42, 1000, 1234567890123LL);
        assert_string_equal(e, "\"2a-3e8-11f71fb04cb\"");
        web_static_etag(e2, sizeof(e2), 42, 1001, 1234567890123LL);
        assert_string_not_equal(e, e2);
        assert_true(web_static_etag_match(e, e));
        char list[200];
        snprintf(list, sizeof(list), "\"zz\", W/%s", e);
        assert_true(web_static_etag_match(list, e));
        assert_true(web_static_etag_match("*", e));
        assert_false(web_static_etag_match(NULL, e));
        assert_false(web_static_etag_match("", e));
        assert_false(web_static_etag_match(e2, e));
        assert_false(web_static_etag_match("\"2a-3e8\"", e));
}

int main(void) {
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_accepted), cmocka_unit_test(test_refused),
            cmocka_unit_test(test_types),    cmocka_unit_test(test_inside),
            cmocka_unit_test(test_etag),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
