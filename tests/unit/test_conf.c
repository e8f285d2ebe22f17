/* Unit tests of kp_conf: defaults, file, environment and flags, in order of
 * precedence, and every kind of bad input. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "kpay/kp_conf.h"
#include "kpay/kp_mem.h"

typedef struct tconf_s {
        char *name;
        int64_t count;
        int flag;
        kp_conf_kv_t props;
} tconf_t;

#define O(f) offsetof(tconf_t, f)
static const kp_conf_opt_t topts[] = {
    {"name", 'n', KP_CONF_STR, O(name), "dflt", 0, 0, NULL, "A name."},
    {"count", 'c', KP_CONF_INT, O(count), "5", 1, 100, NULL, "A count."},
    {"flag", 0, KP_CONF_BOOL, O(flag), "false", 0, 0, NULL, "A flag."},
    {"prop", 'X', KP_CONF_KV, O(props), NULL, 0, 0, NULL, "Properties."},
    {NULL},
};

static int setup(void **state) {
        (void)state;
        unsetenv("KPAY_NAME");
        unsetenv("KPAY_COUNT");
        unsetenv("KPAY_FLAG");
        unsetenv("KPAY_PROP");
        unsetenv("KPAY_CONFIG");
        return 0;
}

/* Loads argv (NULL-terminated) into *tc; returns the error. */
static kp_err_t load(tconf_t *tc, kp_conf_t **confp, int *exitp, char *errstr,
                     size_t errstr_size, const char **argv) {
        int argc = 0;
        while (argv[argc])
                argc++;
        memset(tc, 0, sizeof(*tc));
        *confp = kp_conf_new("test", "A test program.", NULL);
        kp_conf_add_table(*confp, topts, tc);
        return kp_conf_load(*confp, argc, (char **)argv, exitp, errstr,
                            errstr_size);
}

static void test_defaults(void **state) {
        (void)state;
        tconf_t tc;
        kp_conf_t *conf;
        int ex;
        char err[256];
        const char *argv[] = {"test", NULL};
        assert_int_equal(load(&tc, &conf, &ex, err, sizeof(err), argv), KP_OK);
        assert_int_equal(ex, -1);
        assert_string_equal(tc.name, "dflt");
        assert_int_equal(tc.count, 5);
        assert_int_equal(tc.flag, 0);
        assert_int_equal(tc.props.cnt, 0);
        kp_conf_destroy(conf);
}

static void test_flags_all_forms(void **state) {
        (void)state;
        tconf_t tc;
        kp_conf_t *conf;
        int ex, n;
        char err[256];
        const char *argv[] = {
            "test", "--name=alpha", "-c",  "7",    "--flag", "-Xa=1",   "-X",
            "b=2",  "--prop",       "a=3", "rest", "--",     "--count", NULL};
        assert_int_equal(load(&tc, &conf, &ex, err, sizeof(err), argv), KP_OK);
        assert_string_equal(tc.name, "alpha");
        assert_int_equal(tc.count, 7);
        assert_int_equal(tc.flag, 1);
        /* A repeated key keeps the last value, in its first position. */
        assert_int_equal(tc.props.cnt, 2);
        assert_string_equal(kp_conf_kv_get(&tc.props, "a"), "3");
        assert_string_equal(kp_conf_kv_get(&tc.props, "b"), "2");
        assert_null(kp_conf_kv_get(&tc.props, "c"));
        char **args = kp_conf_args(conf, &n);
        assert_int_equal(n, 2);
        assert_string_equal(args[0], "rest");
        assert_string_equal(args[1], "--count");
        kp_conf_destroy(conf);
}

static void test_precedence(void **state) {
        (void)state;
        tconf_t tc;
        kp_conf_t *conf;
        int ex;
        char err[256];
        char path[] = "/tmp/kpay-test-conf-XXXXXX";
        int fd      = mkstemp(path);
        assert_true(fd >= 0);
        const char *text =
            "# comment\n\n name = fromfile \ncount=9\n"
            "flag = true\nprop = x=file\n";
        assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
        close(fd);

        /* File only. */
        setenv("KPAY_CONFIG", path, 1);
        const char *argv1[] = {"test", NULL};
        assert_int_equal(load(&tc, &conf, &ex, err, sizeof(err), argv1), KP_OK);
        assert_string_equal(tc.name, "fromfile");
        assert_int_equal(tc.count, 9);
        assert_int_equal(tc.flag, 1);
        assert_string_equal(kp_conf_kv_get(&tc.props, "x"), "file");
        kp_conf_destroy(conf);

        /* The environment beats the file; flags beat the environment. */
        setenv("KPAY_NAME", "fromenv", 1);
        setenv("KPAY_COUNT", "11", 1);
        setenv("KPAY_PROP", "x=env;y=env2", 1);
        const char *argv2[] = {"test", "--count", "12", NULL};
        assert_int_equal(load(&tc, &conf, &ex, err, sizeof(err), argv2), KP_OK);
        assert_string_equal(tc.name, "fromenv");
        assert_int_equal(tc.count, 12);
        assert_string_equal(kp_conf_kv_get(&tc.props, "x"), "env");
        assert_string_equal(kp_conf_kv_get(&tc.props, "y"), "env2");
        kp_conf_destroy(conf);

        /* --config on the command line beats KPAY_CONFIG. */
        unsetenv("KPAY_NAME");
        unsetenv("KPAY_COUNT");
        unsetenv("KPAY_PROP");
        setenv("KPAY_CONFIG", "/nonexistent/kpay.conf", 1);
        const char *argv3[] = {"test", "--config", path, NULL};
        assert_int_equal(load(&tc, &conf, &ex, err, sizeof(err), argv3), KP_OK);
        assert_string_equal(tc.name, "fromfile");
        kp_conf_destroy(conf);
        unlink(path);
        setup(NULL);
}

static void expect_error(const char **argv, const char *needle) {
        tconf_t tc;
        kp_conf_t *conf;
        int ex;
        char err[256] = "";
        assert_int_equal(load(&tc, &conf, &ex, err, sizeof(err), argv),
                         KP_ERR_CONFIG);
        if (!strstr(err, needle))
                fail_msg("error \"%s\" does not mention \"%s\"", err, needle);
        kp_conf_destroy(conf);
}

static void test_errors(void **state) {
        (void)state;
        const char *a1[] = {"test", "--count=abc", NULL};
        expect_error(a1, "expects an integer");
        const char *a2[] = {"test", "--count=101", NULL};
        expect_error(a2, "between 1 and 100");
        const char *a3[] = {"test", "--count=0", NULL};
        expect_error(a3, "between 1 and 100");
        const char *a4[] = {"test", "--count=99999999999999999999", NULL};
        expect_error(a4, "expects an integer");
        const char *a5[] = {"test", "--nope", NULL};
        expect_error(a5, "unknown option --nope");
        const char *a6[] = {"test", "-z", NULL};
        expect_error(a6, "unknown option -z");
        const char *a7[] = {"test", "--name", NULL};
        expect_error(a7, "--name needs a value");
        const char *a8[] = {"test", "-X", "novalue", NULL};
        expect_error(a8, "expects key=value");
        const char *a9[] = {"test", "--flag=maybe", NULL};
        expect_error(a9, "expects true or false");
        const char *a10[] = {"test", "--config=/nonexistent/x.conf", NULL};
        expect_error(a10, "cannot open config file");
        const char *a11[] = {"test", "--count=12x", NULL};
        expect_error(a11, "expects an integer");
        const char *a12[] = {"test", "--no-name", NULL};
        expect_error(a12, "unknown option --no-name");
        setenv("KPAY_COUNT", "-3", 1);
        const char *a13[] = {"test", NULL};
        expect_error(a13, "KPAY_COUNT");
        unsetenv("KPAY_COUNT");
}

static void test_file_errors(void **state) {
        (void)state;
        char path[] = "/tmp/kpay-test-conf-XXXXXX";
        int fd      = mkstemp(path);
        assert_true(fd >= 0);
        const char *text = "name = ok\nbogus line\n";
        assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
        close(fd);
        char arg[64];
        snprintf(arg, sizeof(arg), "--config=%s", path);
        const char *a1[] = {"test", arg, NULL};
        expect_error(a1, ":2: expected name = value");
        fd = open(path, O_WRONLY | O_TRUNC);
        assert_true(fd >= 0);
        text = "unknown = 1\n";
        assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
        close(fd);
        expect_error(a1, ":1: unknown option unknown");
        unlink(path);
}

static void test_help_and_version(void **state) {
        (void)state;
        tconf_t tc;
        kp_conf_t *conf;
        int ex;
        char err[256];
        /* --help wins even over a bad option before it. */
        const char *argv[] = {"test", "--count=abc", "--help", NULL};
        FILE *saved        = stdout;
        stdout             = fopen("/dev/null", "w");
        assert_non_null(stdout);
        assert_int_equal(load(&tc, &conf, &ex, err, sizeof(err), argv), KP_OK);
        assert_int_equal(ex, 0);
        kp_conf_destroy(conf);
        const char *argv2[] = {"test", "--version", NULL};
        assert_int_equal(load(&tc, &conf, &ex, err, sizeof(err), argv2), KP_OK);
        assert_int_equal(ex, 0);
        fclose(stdout);
        stdout = saved;

        /* The help text is generated from the table. */
        char *buf  = NULL;
        size_t len = 0;
        FILE *fp   = open_memstream(&buf, &len);
        kp_conf_print_help(conf, fp);
        fclose(fp);
        assert_non_null(strstr(buf, "-n, --name=STR"));
        assert_non_null(strstr(buf, "default: 5; env KPAY_COUNT"));
        assert_non_null(strstr(buf, "-X, --prop=KEY=VALUE"));
        assert_non_null(strstr(buf, "--help"));
        free(buf);
        kp_conf_destroy(conf);
}

static void test_parse_int64(void **state) {
        (void)state;
        int64_t v;
        assert_int_equal(kp_parse_int64("9223372036854775807", &v), KP_OK);
        assert_true(v == INT64_MAX);
        assert_int_equal(kp_parse_int64("-9223372036854775808", &v), KP_OK);
        assert_true(v == INT64_MIN);
        assert_int_equal(kp_parse_int64("9223372036854775808", &v),
                         KP_ERR_INVALID_ARG);
        assert_int_equal(kp_parse_int64("", &v), KP_ERR_INVALID_ARG);
        assert_int_equal(kp_parse_int64(" 1", &v), KP_ERR_INVALID_ARG);
        assert_int_equal(kp_parse_int64("1.5", &v), KP_ERR_INVALID_ARG);
        assert_int_equal(kp_parse_int64(NULL, &v), KP_ERR_INVALID_ARG);
}

static void test_no_leaks(void **state) {
        (void)state;
        int64_t before = kp_mem_live_allocations();
        test_flags_all_forms(NULL);
        test_errors(NULL);
        assert_true(kp_mem_live_allocations() == before);
}

/* ------------------------------------------------------------------------
 * Java-style properties (kp_conf_props_parse(), --kafka-config). */

/* Collects "key=value|" per property, and the line numbers. */
typedef struct props_out_s {
        char text[1024];
        int lines[32];
        int cnt;
        int stop_at; /* the callback fails on this property (1-based) */
} props_out_t;

static kp_err_t collect(const char *key, const char *value, int line,
                        void *opaque, char *errstr, size_t errstr_size) {
        props_out_t *o = opaque;
        if (o->cnt < 32)
                o->lines[o->cnt] = line;
        o->cnt++;
        if (o->stop_at && o->cnt == o->stop_at) {
                snprintf(errstr, errstr_size, "stopped at %s", key);
                return KP_ERR_CONFIG;
        }
        size_t len = strlen(o->text);
        snprintf(o->text + len, sizeof(o->text) - len, "%s=%s|", key, value);
        return KP_OK;
}

static kp_err_t parse(const char *text, props_out_t *o, char *err,
                      size_t errsz) {
        memset(o, 0, sizeof(*o));
        err[0] = '\0';
        return kp_conf_props_parse(text, strlen(text), "f.properties", collect,
                                   o, err, errsz);
}

static void test_props_forms(void **state) {
        (void)state;
        props_out_t o;
        char err[256];
        const char *text =
            "# a comment\n"
            "! another comment\n"
            "\n"
            "   \t\n"
            "security.protocol=SASL_SSL\n"
            "sasl.mechanisms: SCRAM-SHA-512\n"
            "  sasl.username   =   kpay  \n"
            "spaced value\n"
            "\tindented.key\t:\tv\n"
            "empty.value=\n"
            "   # an indented comment\n"
            "last=1";
        assert_int_equal(parse(text, &o, err, sizeof(err)), KP_OK);
        assert_string_equal(o.text,
                            "security.protocol=SASL_SSL|"
                            "sasl.mechanisms=SCRAM-SHA-512|"
                            "sasl.username=kpay|"
                            "spaced=value|"
                            "indented.key=v|"
                            "empty.value=|"
                            "last=1|");
        int want[] = {5, 6, 7, 8, 9, 10, 12};
        assert_int_equal(o.cnt, 7);
        for (int i = 0; i < 7; i++)
                assert_int_equal(o.lines[i], want[i]);

        /* The first '=' or ':' separates; later ones are the value's. */
        assert_int_equal(
            parse("a=b=c\nurl: http://x:1/=\n", &o, err, sizeof(err)), KP_OK);
        assert_string_equal(o.text, "a=b=c|url=http://x:1/=|");
        /* "key = : v": one separator, the rest is the value. */
        assert_int_equal(parse("k = : v\n", &o, err, sizeof(err)), KP_OK);
        assert_string_equal(o.text, "k=: v|");
        /* A repeated key is passed again (the caller keeps the last). */
        assert_int_equal(parse("k=1\nk=2\n", &o, err, sizeof(err)), KP_OK);
        assert_string_equal(o.text, "k=1|k=2|");
        /* Empty text, only comments: nothing. */
        assert_int_equal(parse("", &o, err, sizeof(err)), KP_OK);
        assert_int_equal(parse("#x\n\n!y", &o, err, sizeof(err)), KP_OK);
        assert_int_equal(o.cnt, 0);
}

static void test_props_line_ends_and_continuations(void **state) {
        (void)state;
        props_out_t o;
        char err[256];
        /* CRLF, CR and LF line ends, and line numbers across all three. */
        assert_int_equal(
            parse("a=1\r\nb=2\rc=3\nd=4\r\n", &o, err, sizeof(err)), KP_OK);
        assert_string_equal(o.text, "a=1|b=2|c=3|d=4|");
        assert_int_equal(o.lines[3], 4);
        /* A trailing odd backslash continues the line; the next line's
         * leading blanks are dropped; an even count does not continue. */
        assert_int_equal(parse("list=a,\\\n    b,\\\r\n\tc\n"
                               "even=x\\\\\n"
                               "next=1\n",
                               &o, err, sizeof(err)),
                         KP_OK);
        assert_string_equal(o.text, "list=a,b,c|even=x\\|next=1|");
        assert_int_equal(o.lines[0], 1);
        assert_int_equal(o.lines[1], 4);
        assert_int_equal(o.lines[2], 5);
        /* A comment never continues; a continuation at the end of the
         * text just ends. */
        assert_int_equal(parse("# c \\\nk=v\nend=\\", &o, err, sizeof(err)),
                         KP_OK);
        assert_string_equal(o.text, "k=v|end=|");
        assert_int_equal(o.lines[0], 2);
}

static void test_props_escapes(void **state) {
        (void)state;
        props_out_t o;
        char err[256];
        assert_int_equal(parse("key\\ with\\=odd\\:chars = v\n"
                               "tabs=a\\tb\\nc\\rd\\fe\n"
                               "uni=\\u00e9\\u20AC\\u0041\n"
                               "other=\\#\\!\\\\\\q\n"
                               "keep.space=pw\\ \n"
                               "trailing=pw  \t \n",
                               &o, err, sizeof(err)),
                         KP_OK);
        assert_string_equal(o.text,
                            "key with=odd:chars=v|"
                            "tabs=a\tb\nc\rd\fe|"
                            "uni=\xc3\xa9\xe2\x82\xac"
                            "A|"
                            "other=#!\\q|"
                            "keep.space=pw |"
                            "trailing=pw|");
}

static void test_props_bad_lines(void **state) {
        (void)state;
        props_out_t o;
        char err[256];
        /* A key with no separator and no value. */
        assert_int_equal(parse("ok=1\n\nsecretvalue\n", &o, err, sizeof(err)),
                         KP_ERR_PARSE);
        assert_string_equal(err,
                            "f.properties:3: secretvalue has no value "
                            "(expected key=value or key: value)");
        assert_int_equal(o.cnt, 1);
        /* No key. */
        assert_int_equal(parse("a=1\n=hunter2\n", &o, err, sizeof(err)),
                         KP_ERR_PARSE);
        assert_non_null(strstr(err, "f.properties:2: a property with no name"));
        assert_null(strstr(err, "hunter2"));
        assert_int_equal(parse(": v\n", &o, err, sizeof(err)), KP_ERR_PARSE);
        assert_non_null(strstr(err, "f.properties:1:"));
        /* Bad \u escapes: short, not hex, NUL. The value is never quoted. */
        assert_int_equal(
            parse("a=1\nsasl.password=hunter\\u12\n", &o, err, sizeof(err)),
            KP_ERR_PARSE);
        assert_string_equal(err,
                            "f.properties:2: sasl.password: a \\u "
                            "escape needs four hexadecimal digits");
        assert_int_equal(parse("k=\\uzzzz\n", &o, err, sizeof(err)),
                         KP_ERR_PARSE);
        assert_int_equal(parse("k\\u0000=v\n", &o, err, sizeof(err)),
                         KP_ERR_PARSE);
        assert_non_null(strstr(err, "NUL"));
        /* The line number of a bad line after a continuation. */
        assert_int_equal(parse("a=1,\\\n 2\nbad\n", &o, err, sizeof(err)),
                         KP_ERR_PARSE);
        assert_non_null(strstr(err, "f.properties:3:"));
        /* A NUL byte in the text. */
        const char nul[] = "a=1\nb=\0x\n";
        memset(&o, 0, sizeof(o));
        assert_int_equal(kp_conf_props_parse(nul, sizeof(nul) - 1, "n", collect,
                                             &o, err, sizeof(err)),
                         KP_ERR_PARSE);
        assert_string_equal(err, "n:2: a NUL byte (not a text file?)");
        assert_int_equal(o.cnt, 0);
        /* The callback's error stops the parse and is returned. */
        memset(&o, 0, sizeof(o));
        o.stop_at         = 2;
        const char *three = "a=1\nb=2\nc=3\n";
        assert_int_equal(kp_conf_props_parse(three, strlen(three), "s", collect,
                                             &o, err, sizeof(err)),
                         KP_ERR_CONFIG);
        assert_string_equal(err, "stopped at b");
        assert_int_equal(o.cnt, 2);
}

static void test_props_file(void **state) {
        (void)state;
        props_out_t o;
        char err[256], path[] = "/tmp/kpay-test-props-XXXXXX";
        int fd = mkstemp(path);
        assert_true(fd >= 0);
        const char *text = "# kafka\nsecurity.protocol = SASL_SSL\n";
        assert_int_equal(write(fd, text, strlen(text)), (int)strlen(text));
        close(fd);
        memset(&o, 0, sizeof(o));
        assert_int_equal(
            kp_conf_props_load(path, collect, &o, err, sizeof(err)), KP_OK);
        assert_string_equal(o.text, "security.protocol=SASL_SSL|");
        assert_int_equal(o.lines[0], 2);
        unlink(path);
        assert_int_equal(
            kp_conf_props_load(path, collect, &o, err, sizeof(err)), KP_ERR_IO);
        assert_non_null(strstr(err, "cannot open /tmp/kpay-test-props-"));
}

int main(void) {
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup(test_defaults, setup),
            cmocka_unit_test_setup(test_flags_all_forms, setup),
            cmocka_unit_test_setup(test_precedence, setup),
            cmocka_unit_test_setup(test_errors, setup),
            cmocka_unit_test_setup(test_file_errors, setup),
            cmocka_unit_test_setup(test_help_and_version, setup),
            cmocka_unit_test(test_parse_int64),
            cmocka_unit_test_setup(test_no_leaks, setup),
            cmocka_unit_test(test_props_forms),
            cmocka_unit_test(test_props_line_ends_and_continuations),
            cmocka_unit_test(test_props_escapes),
            cmocka_unit_test(test_props_bad_lines),
            cmocka_unit_test(test_props_file),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
