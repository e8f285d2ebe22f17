/* Fuzz target: the configuration parser (kp_conf_load). The input is a
 * config file (the bytes before the first NUL, given with --config) and
 * command-line arguments (the NUL-separated rest), over a table with an
 * option of every type. Loading either fails with a reason or gives
 * values inside the table's bounds. The whole input is also parsed as a
 * Java-style properties file (kp_conf_props_parse(), --kafka-config):
 * an error names its line, and each property written back escaped parses
 * to itself. */
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz.h"
#include "kpay/kp_conf.h"
#include "kpay/kp_log.h"
#include "kpay/kp_mem.h"

typedef struct opts_s {
        char *name;
        int64_t count;
        int flag;
        kp_conf_kv_t kv;
} opts_t;

#define O(f) offsetof(opts_t, f)
static const kp_conf_opt_t table[] = {
    {"name", 'n', KP_CONF_STR, O(name), "dflt", 0, 0, "STR", "A string."},
    {"count", 'c', KP_CONF_INT, O(count), "5", -10, 1000, "N", "A number."},
    {"flag", 'f', KP_CONF_BOOL, O(flag), "false", 0, 0, NULL, "A flag."},
    {"kafka", 'X', KP_CONF_KV, O(kv), NULL, 0, 0, "K=V", "Pairs."},
    {NULL},
};

static char path[64];

/* Java-style properties (kp_conf_props_parse(), --kafka-config): every
 * property parsed has a key, and written back escaped it parses to the
 * same key and value. */
static void escape(const char *s, char *out, size_t *lenp) {
        size_t n = *lenp;
        for (; *s; s++) {
                char c = *s, e = 0;
                switch (c) {
                case '\n':
                        e = 'n';
                        break;
                case '\r':
                        e = 'r';
                        break;
                case '\t':
                        e = 't';
                        break;
                case '\f':
                        e = 'f';
                        break;
                case '\\':
                case '=':
                case ':':
                case ' ':
                case '#':
                case '!':
                        e = c;
                        break;
                }
                if (e) {
                        out[n++] = '\\';
                        out[n++] = e;
                } else {
                        out[n++] = c;
                }
        }
        *lenp = n;
}

typedef struct round_s {
        const char *key, *value;
        int seen;
} round_t;

static kp_err_t same_prop(const char *key, const char *value, int line,
                          void *opaque, char *errstr, size_t errstr_size) {
        round_t *r = opaque;
        (void)errstr;
        (void)errstr_size;
        FUZZ_CHECK(line == 1 && !r->seen, "written back: line %d, %d before",
                   line, r->seen);
        FUZZ_CHECK(!strcmp(key, r->key) && !strcmp(value, r->value),
                   "written back: [%s]=[%s], not [%s]=[%s]", key, value, r->key,
                   r->value);
        r->seen++;
        return KP_OK;
}

static kp_err_t check_prop(const char *key, const char *value, int line,
                           void *opaque, char *errstr, size_t errstr_size) {
        (void)opaque;
        (void)errstr;
        (void)errstr_size;
        FUZZ_CHECK(*key && value && line >= 1, "property at line %d", line);
        size_t klen = strlen(key), vlen = strlen(value);
        char *text = kp_malloc(2 * (klen + vlen) + 3);
        size_t n   = 0;
        escape(key, text, &n);
        text[n++] = '=';
        escape(value, text, &n);
        text[n++] = '\n';
        round_t r = {key, value, 0};
        char why[256];
        kp_err_t err = kp_conf_props_parse(text, n, "again", same_prop, &r, why,
                                           sizeof(why));
        FUZZ_CHECK(err == KP_OK && r.seen == 1, "written back: %s",
                   err ? why : "no property");
        kp_free(text);
        return KP_OK;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
        (void)argc;
        (void)argv;
        kp_log_set_level(KP_LOG_FATAL);
        /* Only the input decides: no KPAY_* setting from the environment. */
        unsetenv("KPAY_CONFIG");
        unsetenv("KPAY_NAME");
        unsetenv("KPAY_COUNT");
        unsetenv("KPAY_FLAG");
        unsetenv("KPAY_KAFKA");
        /* --help and --version print to stdout. */
        if (!freopen("/dev/null", "w", stdout))
                abort();
        snprintf(path, sizeof(path), "/tmp/kpay-fuzz-conf-XXXXXX");
        int fd = mkstemp(path);
        FUZZ_CHECK(fd >= 0, "mkstemp");
        close(fd);
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        const uint8_t *nul = memchr(data, '\0', size);
        size_t flen        = nul ? (size_t)(nul - data) : size;
        int fd             = open(path, O_WRONLY | O_TRUNC);
        FUZZ_CHECK(fd >= 0, "open %s", path);
        FUZZ_CHECK(write(fd, data, flen) == (ssize_t)flen, "write");
        close(fd);

        /* argv: prog --config FILE, then the NUL-separated arguments. */
        char *copy = kp_malloc(size + 1);
        memcpy(copy, data, size);
        copy[size] = '\0';
        char *argv[64];
        int argc     = 0;
        argv[argc++] = "fuzz";
        argv[argc++] = "--config";
        argv[argc++] = path;
        if (nul) {
                char *p = copy + flen + 1, *end = copy + size;
                while (p <= end && argc < 63) {
                        argv[argc++] = p;
                        p += strlen(p) + 1;
                }
        }
        argv[argc] = NULL;

        opts_t o     = {0};
        kp_conf_t *c = kp_conf_new("fuzz", "The fuzz target.", "[ARG...]");
        kp_conf_add_table(c, table, &o);
        int exitp = 0;
        char errstr[512];
        errstr[0] = '\0';
        kp_err_t err =
            kp_conf_load(c, argc, argv, &exitp, errstr, sizeof(errstr));
        if (err == KP_OK && exitp < 0) {
                FUZZ_CHECK(o.name, "no string value");
                FUZZ_CHECK(o.count >= -10 && o.count <= 1000,
                           "count %lld out of bounds", (long long)o.count);
                FUZZ_CHECK(o.flag == 0 || o.flag == 1, "flag %d", o.flag);
                for (size_t i = 0; i < o.kv.cnt; i++)
                        FUZZ_CHECK(o.kv.keys[i] && o.kv.values[i] &&
                                       kp_conf_kv_get(&o.kv, o.kv.keys[i]),
                                   "pair %zu", i);
                int n;
                char **args = kp_conf_args(c, &n);
                FUZZ_CHECK(n >= 0 && n < argc, "%d arguments", n);
                for (int i = 0; i < n; i++)
                        FUZZ_CHECK(args[i], "argument %d", i);
        } else if (err != KP_OK) {
                FUZZ_CHECK(errstr[0], "an error without a reason");
        }
        kp_conf_destroy(c);

        /* The whole input as a properties file. */
        char why[512];
        why[0] = '\0';
        err = kp_conf_props_parse((const char *)data, size, "fuzz.properties",
                                  check_prop, NULL, why, sizeof(why));
        if (err)
                FUZZ_CHECK(!strncmp(why, "fuzz.properties:", 16),
                           "a properties error without its line: %s", why);

        /* kp_parse_int64: what parses prints back as the same number. */
        int64_t v;
        if (kp_parse_int64(copy, &v) == KP_OK) {
                char buf[32];
                int64_t w;
                snprintf(buf, sizeof(buf), "%lld", (long long)v);
                FUZZ_CHECK(kp_parse_int64(buf, &w) == KP_OK && w == v,
                           "%s -> %lld", copy, (long long)v);
        }
        kp_free(copy);
        return 0;
}
