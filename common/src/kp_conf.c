/* kp_conf.c: declarative configuration from file, environment and flags. */
#include "kpay/kp_conf.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <librdkafka/rdkafka.h>

#include "kpay/kp_mem.h"

#ifndef KPAY_VERSION
#define KPAY_VERSION "0.0.0-dev"
#endif
const char kp_version_str[] = KPAY_VERSION;

#define KP_CONF_MAX_TABLES 8

struct kp_conf_s {
        const char *prog;
        const char *summary;
        const char *usage_args;
        size_t table_cnt;
        const kp_conf_opt_t *tables[KP_CONF_MAX_TABLES];
        void *bases[KP_CONF_MAX_TABLES];
        int args_cnt;
        char **args;
};

/* The options every program has; their values are not stored in a table. */
static const char *builtin_help =
    "  -h, --help                 Print this help and exit.\n"
    "      --version              Print the version and exit.\n"
    "      --config=FILE          Read options from FILE (lines of "
    "name = value);\n"
    "                             env KPAY_CONFIG.\n";

kp_conf_t *kp_conf_new(const char *prog, const char *summary,
                       const char *usage_args) {
        kp_conf_t *conf  = kp_calloc(1, sizeof(*conf));
        conf->prog       = prog;
        conf->summary    = summary;
        conf->usage_args = usage_args;
        return conf;
}

void kp_conf_add_table(kp_conf_t *conf, const kp_conf_opt_t *opts, void *base) {
        if (conf->table_cnt == KP_CONF_MAX_TABLES)
                abort(); /* A programming error, not a runtime one. */
        conf->tables[conf->table_cnt] = opts;
        conf->bases[conf->table_cnt]  = base;
        conf->table_cnt++;
}

kp_err_t kp_parse_int64(const char *s, int64_t *valp) {
        char *end;
        if (!s || !*s || isspace((unsigned char)*s))
                return KP_ERR_INVALID_ARG;
        errno       = 0;
        long long v = strtoll(s, &end, 10);
        if (errno == ERANGE || *end != '\0')
                return KP_ERR_INVALID_ARG;
        *valp = (int64_t)v;
        return KP_OK;
}

const char *kp_conf_kv_get(const kp_conf_kv_t *kv, const char *key) {
        for (size_t i = kv->cnt; i > 0; i--)
                if (!strcmp(kv->keys[i - 1], key))
                        return kv->values[i - 1];
        return NULL;
}

static void kv_set(kp_conf_kv_t *kv, const char *key, size_t keylen,
                   const char *value) {
        for (size_t i = 0; i < kv->cnt; i++) {
                if (strlen(kv->keys[i]) == keylen &&
                    !strncmp(kv->keys[i], key, keylen)) {
                        kp_free(kv->values[i]);
                        kv->values[i] = kp_strdup(value);
                        return;
                }
        }
        kv->keys = kp_realloc(kv->keys, sizeof(*kv->keys) * (kv->cnt + 1));
        kv->values =
            kp_realloc(kv->values, sizeof(*kv->values) * (kv->cnt + 1));
        kv->keys[kv->cnt]   = kp_strndup(key, keylen);
        kv->values[kv->cnt] = kp_strdup(value);
        kv->cnt++;
}

void kp_conf_kv_set(kp_conf_kv_t *kv, const char *key, const char *value) {
        kv_set(kv, key, strlen(key), value);
}

void kp_conf_kv_clear(kp_conf_kv_t *kv) {
        for (size_t i = 0; i < kv->cnt; i++) {
                kp_free(kv->keys[i]);
                kp_free(kv->values[i]);
        }
        kp_free(kv->keys);
        kp_free(kv->values);
        memset(kv, 0, sizeof(*kv));
}

static const kp_conf_opt_t *find_opt(const kp_conf_t *conf, const char *name,
                                     size_t namelen, char short_name,
                                     void **basep) {
        for (size_t t = 0; t < conf->table_cnt; t++) {
                for (const kp_conf_opt_t *o = conf->tables[t]; o->name; o++) {
                        int match = short_name
                                        ? o->short_name == short_name
                                        : (strlen(o->name) == namelen &&
                                           !strncmp(o->name, name, namelen));
                        if (match) {
                                *basep = conf->bases[t];
                                return o;
                        }
                }
        }
        return NULL;
}

/* Applies one textual value to an option. For KP_CONF_KV the value is one
 * "key=value" pair. */
static kp_err_t apply(const kp_conf_opt_t *o, void *base, const char *value,
                      const char *source, char *errstr, size_t errstr_size) {
        char *field = (char *)base + o->offset;
        switch (o->type) {
        case KP_CONF_STR: {
                char **sp = (char **)(void *)field;
                kp_free(*sp);
                *sp = kp_strdup(value);
                return KP_OK;
        }
        case KP_CONF_INT: {
                int64_t v;
                if (kp_parse_int64(value, &v) != KP_OK) {
                        snprintf(errstr, errstr_size,
                                 "%s: --%s expects an integer, not \"%s\"",
                                 source, o->name, value);
                        return KP_ERR_CONFIG;
                }
                if (v < o->min || v > o->max) {
                        snprintf(errstr, errstr_size,
                                 "%s: --%s must be between %" PRId64
                                 " and %" PRId64 ", not %" PRId64,
                                 source, o->name, o->min, o->max, v);
                        return KP_ERR_CONFIG;
                }
                *(int64_t *)(void *)field = v;
                return KP_OK;
        }
        case KP_CONF_BOOL: {
                int v;
                if (!strcmp(value, "true") || !strcmp(value, "1") ||
                    !strcmp(value, "yes") || !strcmp(value, "on"))
                        v = 1;
                else if (!strcmp(value, "false") || !strcmp(value, "0") ||
                         !strcmp(value, "no") || !strcmp(value, "off"))
                        v = 0;
                else {
                        snprintf(errstr, errstr_size,
                                 "%s: --%s expects true or false, not \"%s\"",
                                 source, o->name, value);
                        return KP_ERR_CONFIG;
                }
                *(int *)(void *)field = v;
                return KP_OK;
        }
        case KP_CONF_KV: {
                const char *eq = strchr(value, '=');
                if (!eq || eq == value) {
                        snprintf(errstr, errstr_size,
                                 "%s: --%s expects key=value, not \"%s\"",
                                 source, o->name, value);
                        return KP_ERR_CONFIG;
                }
                kv_set((kp_conf_kv_t *)(void *)field, value,
                       (size_t)(eq - value), eq + 1);
                return KP_OK;
        }
        }
        return KP_ERR_CONFIG;
}

kp_err_t kp_conf_set(kp_conf_t *conf, const char *name, const char *value,
                     char *errstr, size_t errstr_size) {
        void *base;
        const kp_conf_opt_t *o = find_opt(conf, name, strlen(name), 0, &base);
        if (!o) {
                snprintf(errstr, errstr_size, "unknown option \"%s\"", name);
                return KP_ERR_NOT_FOUND;
        }
        return apply(o, base, value, "config", errstr, errstr_size);
}

static char *trim(char *s) {
        while (isspace((unsigned char)*s))
                s++;
        char *e = s + strlen(s);
        while (e > s && isspace((unsigned char)e[-1]))
                *--e = '\0';
        return s;
}

static kp_err_t load_file(kp_conf_t *conf, const char *path, char *errstr,
                          size_t errstr_size) {
        FILE *fp = fopen(path, "r");
        if (!fp) {
                snprintf(errstr, errstr_size, "cannot open config file %s: %s",
                         path, strerror(errno));
                return KP_ERR_CONFIG;
        }
        char line[4096];
        int lineno   = 0;
        kp_err_t err = KP_OK;
        while (err == KP_OK && fgets(line, sizeof(line), fp)) {
                lineno++;
                char *s = trim(line);
                if (!*s || *s == '#')
                        continue;
                char *eq = strchr(s, '=');
                if (!eq) {
                        snprintf(errstr, errstr_size,
                                 "%s:%d: expected name = value", path, lineno);
                        err = KP_ERR_CONFIG;
                        break;
                }
                *eq         = '\0';
                char *name  = trim(s);
                char *value = trim(eq + 1);
                char src[300];
                void *base;
                snprintf(src, sizeof(src), "%s:%d", path, lineno);
                const kp_conf_opt_t *o =
                    find_opt(conf, name, strlen(name), 0, &base);
                if (!o) {
                        snprintf(errstr, errstr_size, "%s: unknown option %s",
                                 src, name);
                        err = KP_ERR_CONFIG;
                        break;
                }
                err = apply(o, base, value, src, errstr, errstr_size);
        }
        if (err == KP_OK && ferror(fp)) {
                snprintf(errstr, errstr_size, "reading %s: %s", path,
                         strerror(errno));
                err = KP_ERR_CONFIG;
        }
        fclose(fp);
        return err;
}

/* KPAY_BOOTSTRAP_SERVERS for "bootstrap-servers". */
static void env_name(const char *name, char *buf, size_t size) {
        size_t of = (size_t)snprintf(buf, size, "KPAY_");
        for (; *name && of + 1 < size; name++)
                buf[of++] = *name == '-' ? '_' : (char)toupper(*name);
        buf[of] = '\0';
}

static kp_err_t load_env(kp_conf_t *conf, char *errstr, size_t errstr_size) {
        for (size_t t = 0; t < conf->table_cnt; t++) {
                for (const kp_conf_opt_t *o = conf->tables[t]; o->name; o++) {
                        char name[128];
                        env_name(o->name, name, sizeof(name));
                        const char *v = getenv(name);
                        if (!v)
                                continue;
                        kp_err_t err;
                        if (o->type != KP_CONF_KV) {
                                err = apply(o, conf->bases[t], v, name, errstr,
                                            errstr_size);
                                if (err)
                                        return err;
                                continue;
                        }
                        /* Lists: pairs separated by ';' or newlines. */
                        char *copy = kp_strdup(v), *save = NULL;
                        err = KP_OK;
                        for (char *p = strtok_r(copy, ";\n", &save); p && !err;
                             p       = strtok_r(NULL, ";\n", &save)) {
                                p = trim(p);
                                if (*p)
                                        err = apply(o, conf->bases[t], p, name,
                                                    errstr, errstr_size);
                        }
                        kp_free(copy);
                        if (err)
                                return err;
                }
        }
        return KP_OK;
}

static void version(const kp_conf_t *conf) {
        /* The librdkafka the binary runs with (docs/development.md). */
        printf("%s %s (librdkafka %s)\n", conf->prog, kp_version_str,
               rd_kafka_version_str());
}

/* Applies every table's defaults. */
static kp_err_t load_defaults(kp_conf_t *conf, char *errstr,
                              size_t errstr_size) {
        kp_err_t err;
        for (size_t t = 0; t < conf->table_cnt; t++)
                for (const kp_conf_opt_t *o = conf->tables[t]; o->name; o++)
                        if (o->defval &&
                            (err = apply(o, conf->bases[t], o->defval,
                                         "default", errstr, errstr_size)))
                                return err;
        return KP_OK;
}

/* --help, --help-markdown and --version win over everything, even bad
 * options: 1 when one of them was served. */
static int served_info_flag(const kp_conf_t *conf, int argc, char **argv) {
        for (int i = 1; i < argc; i++) {
                if (!strcmp(argv[i], "--"))
                        break;
                if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
                        kp_conf_print_help(conf, stdout);
                        return 1;
                }
                if (!strcmp(argv[i], "--help-markdown")) {
                        kp_conf_print_markdown(conf, stdout);
                        return 1;
                }
                if (!strcmp(argv[i], "--version")) {
                        version(conf);
                        return 1;
                }
        }
        return 0;
}

/* The file: the last --config on the command line, else KPAY_CONFIG. */
static const char *config_file(int argc, char **argv) {
        const char *file = getenv("KPAY_CONFIG");
        for (int i = 1; i < argc; i++) {
                if (!strcmp(argv[i], "--"))
                        break;
                if (!strcmp(argv[i], "--config") && i + 1 < argc)
                        file = argv[++i];
                else if (!strncmp(argv[i], "--config=", 9))
                        file = argv[i] + 9;
        }
        return file;
}

static void add_arg(kp_conf_t *conf, char *arg) {
        conf->args = kp_realloc(
            conf->args, sizeof(*conf->args) * (size_t)(conf->args_cnt + 1));
        conf->args[conf->args_cnt++] = arg;
}

/* Resolves long flag @p arg ("--name", "--name=value", "--no-name"):
 * *optp and *basep, and *valuep when the flag carries its value. Sets
 * *skipp for --config (loaded before the flags). */
static kp_err_t long_flag(kp_conf_t *conf, const char *arg,
                          const kp_conf_opt_t **optp, void **basep,
                          const char **valuep, int *skipp, char *errstr,
                          size_t errstr_size) {
        const char *name = arg + 2;
        const char *eq   = strchr(name, '=');
        size_t len       = eq ? (size_t)(eq - name) : strlen(name);
        if (len == 6 && !strncmp(name, "config", 6)) {
                *skipp = eq ? 1 : 2;
                return KP_OK;
        }
        const kp_conf_opt_t *o = find_opt(conf, name, len, 0, basep);
        int negated            = 0;
        if (!o && len > 3 && !strncmp(name, "no-", 3)) {
                o = find_opt(conf, name + 3, len - 3, 0, basep);
                if (o && o->type != KP_CONF_BOOL)
                        o = NULL;
                negated = 1;
        }
        if (!o) {
                snprintf(errstr, errstr_size,
                         "unknown option --%.*s (see --help)", (int)len, name);
                return KP_ERR_CONFIG;
        }
        if (eq)
                *valuep = eq + 1;
        else if (o->type == KP_CONF_BOOL)
                *valuep = negated ? "false" : "true";
        *optp = o;
        return KP_OK;
}

/* Applies the command line's flags; collects the other arguments. */
static kp_err_t load_flags(kp_conf_t *conf, int argc, char **argv, char *errstr,
                           size_t errstr_size) {
        for (int i = 1; i < argc; i++) {
                const char *arg = argv[i], *value = NULL;
                const kp_conf_opt_t *o = NULL;
                void *base             = NULL;
                char flag[140];
                int skip     = 0;
                kp_err_t err = KP_OK;

                if (!strcmp(arg, "--")) {
                        for (i++; i < argc; i++)
                                add_arg(conf, argv[i]);
                        break;
                }
                if (arg[0] != '-' || arg[1] == '\0') {
                        add_arg(conf, argv[i]);
                        continue;
                }
                if (arg[1] == '-') {
                        err = long_flag(conf, arg, &o, &base, &value, &skip,
                                        errstr, errstr_size);
                        if (err)
                                return err;
                        if (skip) {
                                i += skip - 1; /* --config FILE: loaded */
                                continue;
                        }
                        snprintf(flag, sizeof(flag), "--%s", o->name);
                } else {
                        o = find_opt(conf, NULL, 0, arg[1], &base);
                        if (!o) {
                                snprintf(errstr, errstr_size,
                                         "unknown option -%c (see --help)",
                                         arg[1]);
                                return KP_ERR_CONFIG;
                        }
                        if (arg[2])
                                value = arg + 2;
                        else if (o->type == KP_CONF_BOOL)
                                value = "true";
                        snprintf(flag, sizeof(flag), "-%c", o->short_name);
                }
                if (!value) {
                        if (i + 1 >= argc) {
                                snprintf(errstr, errstr_size,
                                         "%s needs a value", flag);
                                return KP_ERR_CONFIG;
                        }
                        value = argv[++i];
                }
                if ((err = apply(o, base, value, flag, errstr, errstr_size)))
                        return err;
        }
        return KP_OK;
}

kp_err_t kp_conf_load(kp_conf_t *conf, int argc, char **argv, int *exitp,
                      char *errstr, size_t errstr_size) {
        kp_err_t err;
        *exitp = -1;
        if ((err = load_defaults(conf, errstr, errstr_size)))
                return err;
        if (served_info_flag(conf, argc, argv)) {
                *exitp = 0;
                return KP_OK;
        }
        const char *file = config_file(argc, argv);
        if (file && *file && (err = load_file(conf, file, errstr, errstr_size)))
                return err;
        if ((err = load_env(conf, errstr, errstr_size)))
                return err;
        return load_flags(conf, argc, argv, errstr, errstr_size);
}

char **kp_conf_args(const kp_conf_t *conf, int *cntp) {
        *cntp = conf->args_cnt;
        return conf->args;
}

static const char *type_metavar(const kp_conf_opt_t *o) {
        if (o->metavar)
                return o->metavar;
        switch (o->type) {
        case KP_CONF_STR:
                return "STR";
        case KP_CONF_INT:
                return "N";
        case KP_CONF_KV:
                return "KEY=VALUE";
        case KP_CONF_BOOL:
                return NULL;
        }
        return NULL;
}

void kp_conf_print_help(const kp_conf_t *conf, FILE *fp) {
        fprintf(fp, "Usage: %s [OPTIONS]%s%s\n%s\n\nOptions:\n", conf->prog,
                conf->usage_args ? " " : "",
                conf->usage_args ? conf->usage_args : "", conf->summary);
        for (size_t t = 0; t < conf->table_cnt; t++) {
                for (const kp_conf_opt_t *o = conf->tables[t]; o->name; o++) {
                        char lhs[128], env[128];
                        const char *mv = type_metavar(o);
                        if (o->short_name)
                                snprintf(lhs, sizeof(lhs), "-%c, --%s%s%s",
                                         o->short_name, o->name, mv ? "=" : "",
                                         mv ? mv : "");
                        else
                                snprintf(lhs, sizeof(lhs), "    --%s%s%s",
                                         o->name, mv ? "=" : "", mv ? mv : "");
                        env_name(o->name, env, sizeof(env));
                        fprintf(fp, "  %-26s %s\n", lhs, o->desc);
                        fprintf(fp, "  %-26s default: %s; env %s%s\n", "",
                                o->defval && *o->defval ? o->defval : "none",
                                env, o->type == KP_CONF_KV ? " (a;b)" : "");
                }
        }
        fputs(builtin_help, fp);
}

void kp_conf_print_markdown(const kp_conf_t *conf, FILE *fp) {
        fprintf(fp, "| option | environment | default | description |\n");
        fprintf(fp, "|---|---|---|---|\n");
        for (size_t t = 0; t < conf->table_cnt; t++) {
                for (const kp_conf_opt_t *o = conf->tables[t]; o->name; o++) {
                        char env[128];
                        const char *mv = type_metavar(o);
                        env_name(o->name, env, sizeof(env));
                        fprintf(fp, "| ");
                        if (o->short_name)
                                fprintf(fp, "`-%c`, ", o->short_name);
                        fprintf(fp, "`--%s%s%s` | `%s` | %s%s%s | %s |\n",
                                o->name, mv ? "=" : "", mv ? mv : "", env,
                                o->defval && *o->defval ? "`" : "",
                                o->defval && *o->defval ? o->defval : "none",
                                o->defval && *o->defval ? "`" : "", o->desc);
                }
        }
}

void kp_conf_destroy(kp_conf_t *conf) {
        if (!conf)
                return;
        for (size_t t = 0; t < conf->table_cnt; t++) {
                for (const kp_conf_opt_t *o = conf->tables[t]; o->name; o++) {
                        char *field = (char *)conf->bases[t] + o->offset;
                        if (o->type == KP_CONF_STR) {
                                kp_free(*(char **)(void *)field);
                                *(char **)(void *)field = NULL;
                        } else if (o->type == KP_CONF_KV) {
                                kp_conf_kv_clear((kp_conf_kv_t *)(void *)field);
                        }
                }
        }
        kp_free(conf->args);
        kp_free(conf);
}

kp_err_t kp_conf_read_secret(const char *file, const char *env,
                             const char *what, char **secretp, char *errstr,
                             size_t errstr_size) {
        char buf[4096];
        *secretp = NULL;
        if (file) {
                FILE *f = fopen(file, "r");
                if (!f) {
                        snprintf(errstr, errstr_size, "%s: %s: %s", what, file,
                                 strerror(errno));
                        return KP_ERR_CONFIG;
                }
                size_t n = fread(buf, 1, sizeof(buf) - 1, f);
                fclose(f);
                buf[n] = '\0';
        } else {
                const char *v = env ? getenv(env) : NULL;
                if (!v)
                        return KP_OK;
                snprintf(buf, sizeof(buf), "%s", v);
        }
        char *s = buf, *e = buf + strlen(buf);
        while (*s && isspace((unsigned char)*s))
                s++;
        while (e > s && isspace((unsigned char)e[-1]))
                *--e = '\0';
        if (!*s) {
                snprintf(errstr, errstr_size, "%s is empty (%s)", what,
                         file ? file : env);
                return KP_ERR_CONFIG;
        }
        *secretp = kp_strdup(s);
        return KP_OK;
}

/* ------------------------------------------------------------------------
 * Java-style properties files (kp_conf_props_parse(), the format of
 * --kafka-config). */

/* A growing string. */
typedef struct props_buf_s {
        char *s;
        size_t len, size;
} props_buf_t;

static void pb_put(props_buf_t *b, char c) {
        if (b->len + 2 > b->size) {
                b->size = b->size ? b->size * 2 : 64;
                b->s    = kp_realloc(b->s, b->size);
        }
        b->s[b->len++] = c;
        b->s[b->len]   = '\0';
}

static int props_blank(char c) {
        return c == ' ' || c == '\t' || c == '\f';
}

/* Appends code point @p cp as UTF-8. */
static void pb_put_utf8(props_buf_t *b, unsigned cp) {
        if (cp < 0x80) {
                pb_put(b, (char)cp);
        } else if (cp < 0x800) {
                pb_put(b, (char)(0xc0 | (cp >> 6)));
                pb_put(b, (char)(0x80 | (cp & 0x3f)));
        } else {
                pb_put(b, (char)(0xe0 | (cp >> 12)));
                pb_put(b, (char)(0x80 | ((cp >> 6) & 0x3f)));
                pb_put(b, (char)(0x80 | (cp & 0x3f)));
        }
}

/* One logical line (continuations joined, their leading blanks dropped),
 * still escaped: the text between *posp and the end of the line. Returns
 * the number of physical lines it took, 0 at the end of the text. Line
 * ends are LF, CRLF or CR. */
static int props_logical_line(const char *text, size_t len, size_t *posp,
                              props_buf_t *out) {
        size_t pos = *posp;
        int lines  = 0;
        out->len   = 0;
        if (out->s)
                out->s[0] = '\0';
        if (pos >= len)
                return 0;
        for (;;) {
                /* Leading blanks of every physical line are dropped. */
                while (pos < len && props_blank(text[pos]))
                        pos++;
                size_t start = pos;
                while (pos < len && text[pos] != '\n' && text[pos] != '\r')
                        pos++;
                size_t end = pos;
                if (pos < len && text[pos] == '\r')
                        pos++;
                if (pos < len && text[pos] == '\n' &&
                    (pos == end || text[pos - 1] == '\r'))
                        pos++;
                lines++;
                /* An odd number of trailing backslashes continues the
                 * line (a comment line never continues). */
                size_t bs = 0;
                while (end - bs > start && text[end - bs - 1] == '\\')
                        bs++;
                int comment = out->len == 0 && start < end &&
                              (text[start] == '#' || text[start] == '!');
                int cont = !comment && (bs % 2) == 1;
                for (size_t i = start; i < end - (cont ? 1 : 0); i++)
                        pb_put(out, text[i]);
                if (!cont || pos >= len)
                        break;
        }
        *posp = pos;
        return lines;
}

/* Unescapes one key or value from @p s up to a stop: for a key the first
 * unescaped '=', ':' or blank; for a value the end. Writes into @p out;
 * sets *endp past what it read. Unescaped trailing blanks of a value are
 * dropped. Returns 0, or -1 with a reason. */
static int props_unescape(const char *s, int key, props_buf_t *out,
                          const char **endp, const char **whyp) {
        size_t keep = 0; /* length without the unescaped trailing blanks */
        out->len    = 0;
        if (out->s)
                out->s[0] = '\0';
        while (*s) {
                char c = *s;
                if (key && (c == '=' || c == ':' || props_blank(c)))
                        break;
                s++;
                if (c != '\\') {
                        pb_put(out, c);
                        if (!props_blank(c))
                                keep = out->len;
                        continue;
                }
                c = *s;
                if (!c)
                        break; /* a lone backslash at the very end */
                s++;
                switch (c) {
                case 't':
                        pb_put(out, '\t');
                        break;
                case 'n':
                        pb_put(out, '\n');
                        break;
                case 'r':
                        pb_put(out, '\r');
                        break;
                case 'f':
                        pb_put(out, '\f');
                        break;
                case 'u': {
                        unsigned cp = 0;
                        for (int i = 0; i < 4; i++, s++) {
                                if (!isxdigit((unsigned char)*s)) {
                                        *whyp =
                                            "a \\u escape needs four "
                                            "hexadecimal digits";
                                        return -1;
                                }
                                cp = cp * 16 +
                                     (unsigned)(isdigit((unsigned char)*s)
                                                    ? *s - '0'
                                                    : (tolower(
                                                           (unsigned char)*s) -
                                                       'a' + 10));
                        }
                        if (cp == 0) {
                                *whyp = "\\u0000: a NUL cannot be a value";
                                return -1;
                        }
                        pb_put_utf8(out, cp);
                        break;
                }
                default:
                        pb_put(out, c);
                }
                keep = out->len;
        }
        if (!key && out->len > keep) {
                out->len         = keep;
                out->s[out->len] = '\0';
        }
        *endp = s;
        return 0;
}

kp_err_t kp_conf_props_parse(const char *text, size_t len, const char *name,
                             kp_conf_prop_cb_t *cb, void *opaque, char *errstr,
                             size_t errstr_size) {
        props_buf_t line = {0}, key = {0}, value = {0};
        size_t pos   = 0;
        int lineno   = 1, n;
        kp_err_t err = KP_OK;
        if (memchr(text, '\0', len)) {
                /* Its line, for the message. */
                const char *nul = memchr(text, '\0', len);
                for (const char *p = text; p < nul; p++)
                        if (*p == '\n' || (*p == '\r' && p[1] != '\n'))
                                lineno++;
                kp_errstr_set(KP_ERR_PARSE, errstr, errstr_size,
                              "%s:%d: a NUL byte (not a text file?)", name,
                              lineno);
                return KP_ERR_PARSE;
        }
        for (; (n = props_logical_line(text, len, &pos, &line)) > 0;
             lineno += n) {
                const char *s = line.s ? line.s : "", *rest, *why = NULL;
                if (!*s || *s == '#' || *s == '!')
                        continue;
                if (props_unescape(s, 1, &key, &rest, &why)) {
                        err = KP_ERR_PARSE;
                        kp_errstr_set(err, errstr, errstr_size, "%s:%d: %s",
                                      name, lineno, why);
                        break;
                }
                if (!key.len) {
                        err = KP_ERR_PARSE;
                        kp_errstr_set(err, errstr, errstr_size,
                                      "%s:%d: a property with no name "
                                      "(expected key=value)",
                                      name, lineno);
                        break;
                }
                int sep = 0;
                while (props_blank(*rest))
                        rest++;
                if (*rest == '=' || *rest == ':') {
                        sep = 1;
                        rest++;
                        while (props_blank(*rest))
                                rest++;
                }
                if (!sep && !*rest) {
                        err = KP_ERR_PARSE;
                        kp_errstr_set(err, errstr, errstr_size,
                                      "%s:%d: %s has no value (expected "
                                      "key=value or key: value)",
                                      name, lineno, key.s);
                        break;
                }
                if (props_unescape(rest, 0, &value, &rest, &why)) {
                        err = KP_ERR_PARSE;
                        kp_errstr_set(err, errstr, errstr_size, "%s:%d: %s: %s",
                                      name, lineno, key.s, why);
                        break;
                }
                if ((err = cb(key.s, value.s ? value.s : "", lineno, opaque,
                              errstr, errstr_size)))
                        break;
        }
        kp_free(line.s);
        kp_free(key.s);
        kp_free(value.s);
        return err;
}

kp_err_t kp_conf_props_load(const char *path, kp_conf_prop_cb_t *cb,
                            void *opaque, char *errstr, size_t errstr_size) {
        enum { MAX = 1 << 20 };
        FILE *fp = fopen(path, "rb");
        if (!fp)
                return kp_errstr_set(KP_ERR_IO, errstr, errstr_size,
                                     "cannot open %s: %s", path,
                                     strerror(errno));
        char *text = kp_malloc(MAX + 1);
        size_t len = fread(text, 1, MAX + 1, fp);
        kp_err_t err;
        if (ferror(fp))
                err = kp_errstr_set(KP_ERR_IO, errstr, errstr_size,
                                    "reading %s: %s", path, strerror(errno));
        else if (len > MAX)
                err = kp_errstr_set(KP_ERR_IO, errstr, errstr_size,
                                    "%s: larger than 1 MiB", path);
        else
                err = kp_conf_props_parse(text, len, path, cb, opaque, errstr,
                                          errstr_size);
        fclose(fp);
        kp_free(text);
        return err;
}
