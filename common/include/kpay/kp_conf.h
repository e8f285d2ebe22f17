/**
 * @file kp_conf.h
 * @brief Declarative configuration: one option table per daemon.
 *
 * A daemon describes its options once, as a table of kp_conf_opt_t rows that
 * point (by offset) into a plain struct. kp_conf_load() fills the struct from,
 * in increasing precedence: the defaults in the table, an optional file
 * (`--config FILE` or KPAY_CONFIG), the environment (KPAY_<NAME>, dashes as
 * underscores) and the command line. `--help` is generated from the same
 * tables, as is the option reference in docs/.
 */
#ifndef KPAY_KP_CONF_H
#define KPAY_KP_CONF_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "kpay/kp_err.h"

typedef enum kp_conf_type_e {
        KP_CONF_STR,  /**< char *, owned by the config (kp_conf_destroy) */
        KP_CONF_INT,  /**< int64_t, checked against min/max */
        KP_CONF_BOOL, /**< int, 0 or 1 */
        KP_CONF_KV,   /**< kp_conf_kv_t: repeated key=value pairs */
} kp_conf_type_t;

/** A list of key=value pairs, such as the librdkafka properties of -X. */
typedef struct kp_conf_kv_s {
        size_t cnt;
        char **keys;
        char **values;
} kp_conf_kv_t;

/** One option. Tables end with a row whose name is NULL. */
typedef struct kp_conf_opt_s {
        const char *name; /**< long flag without "--"; also the file key */
        char short_name;  /**< single-letter flag, or 0 */
        kp_conf_type_t type;
        size_t offset;       /**< offsetof() the field in the table's struct */
        const char *defval;  /**< default as text, or NULL for none */
        int64_t min, max;    /**< bounds for KP_CONF_INT */
        const char *metavar; /**< value placeholder in --help ("HOST:PORT") */
        const char *desc;    /**< one sentence for --help */
} kp_conf_opt_t;

/**
 * One option table and the struct its offsets point into. A binary's
 * options are a list of sections ending with {NULL, NULL}: its own, then
 * the runtime's (kp_service's, kp_proc's).
 */
typedef struct kp_conf_section_s {
        const kp_conf_opt_t *opts;
        void *base;
} kp_conf_section_t;

typedef struct kp_conf_s kp_conf_t;

/**
 * @brief A new, empty configuration for program @p prog.
 * @param summary one line printed under the usage line of --help.
 * @param usage_args what follows the options in the usage line, or NULL.
 */
kp_conf_t *kp_conf_new(const char *prog, const char *summary,
                       const char *usage_args);

/**
 * @brief Adds a table of options whose fields live in @p base.
 *        Neither is copied: both must outlive the configuration.
 */
void kp_conf_add_table(kp_conf_t *conf, const kp_conf_opt_t *opts, void *base);

/**
 * @brief Fills every table's struct from defaults, file, environment and
 *        command line.
 *
 * `--help` prints the generated help to stdout, `--help-markdown` the option
 * reference as a Markdown table (docs/options.md is made from it) and
 * `--version` the version; each sets *exitp to 0 and return KP_OK: the caller
 * then exits with *exitp. Otherwise *exitp is -1. Arguments that are not
 * options are collected and available through kp_conf_args().
 *
 * @returns KP_OK, or KP_ERR_CONFIG with a one-line reason in errstr.
 */
kp_err_t kp_conf_load(kp_conf_t *conf, int argc, char **argv, int *exitp,
                      char *errstr, size_t errstr_size);

/** @brief The non-option arguments left by kp_conf_load(). */
char **kp_conf_args(const kp_conf_t *conf, int *cntp);

/**
 * @brief Sets one option from text, as a flag would.
 * @returns KP_OK, KP_ERR_NOT_FOUND for an unknown name, or KP_ERR_CONFIG
 *          for a bad value (reason in errstr).
 */
kp_err_t kp_conf_set(kp_conf_t *conf, const char *name, const char *value,
                     char *errstr, size_t errstr_size);

/** @brief Writes the --help text to @p fp. */
void kp_conf_print_help(const kp_conf_t *conf, FILE *fp);

/** @brief Writes the option reference as a Markdown table to @p fp. */
void kp_conf_print_markdown(const kp_conf_t *conf, FILE *fp);

/**
 * @brief Frees the configuration and every string and list it allocated in
 *        the tables' structs. NULL is a no-op.
 */
void kp_conf_destroy(kp_conf_t *conf);

/** @brief Looks up @p key in @p kv. @returns the value or NULL. */
const char *kp_conf_kv_get(const kp_conf_kv_t *kv, const char *key);

/** @brief Sets @p key to @p value in @p kv (replacing an earlier value in
 *         place, else appending); both are copied. */
void kp_conf_kv_set(kp_conf_kv_t *kv, const char *key, const char *value);

/** @brief Frees every pair of @p kv and empties it. */
void kp_conf_kv_clear(kp_conf_kv_t *kv);

/**
 * @brief Called by kp_conf_props_parse() for each property, in file order.
 * @param line the line the property starts on (1-based).
 * @returns KP_OK to go on; anything else stops the parse and is returned
 *          (the callback writes the reason into errstr).
 */
typedef kp_err_t(kp_conf_prop_cb_t)(const char *key, const char *value,
                                    int line, void *opaque, char *errstr,
                                    size_t errstr_size);

/**
 * @brief Parses a Java-style properties text (java.util.Properties, as
 *        the Kafka tools' client.properties files are written).
 *
 * Lines end with LF, CRLF or CR. Blank lines, and lines whose first
 * non-blank character is `#` or `!`, are skipped. A property is
 * `key=value`, `key: value` or `key value`; blanks (space, tab, form feed)
 * around the key and the separator are dropped, and so, unlike Java, are
 * unescaped blanks at the end of the value (write `\ ` to keep one). A
 * line ending with an odd number of backslashes continues on the next one
 * (whose leading blanks are dropped). Escapes in keys and values: `\t`,
 * `\n`, `\r`, `\f`, `\uXXXX` (UTF-8 out), and a backslash before any
 * other character stands for that character (`\\`, `\=`, `\:`, `\#`,
 * `\ `). Bad lines (no separator or no value, an empty key, a bad
 * `\u` escape, a NUL) are errors "NAME:LINE: reason"; the reason never
 * quotes the line, which may hold a secret. A repeated key is passed again
 * (the caller's set keeps the last).
 *
 * @param name what errors call the text (the file's path).
 * @returns KP_OK, KP_ERR_PARSE for a bad line, or what @p cb returned.
 * @locality any thread
 */
kp_err_t kp_conf_props_parse(const char *text, size_t len, const char *name,
                             kp_conf_prop_cb_t *cb, void *opaque, char *errstr,
                             size_t errstr_size);

/**
 * @brief kp_conf_props_parse() of the file at @p path (at most 1 MiB).
 * @returns KP_OK, KP_ERR_IO when it cannot be read (reason in errstr), or
 *          what the parse returned.
 */
kp_err_t kp_conf_props_load(const char *path, kp_conf_prop_cb_t *cb,
                            void *opaque, char *errstr, size_t errstr_size);

/**
 * @brief Parses a decimal int64 with no trailing garbage and no overflow.
 * @returns KP_OK or KP_ERR_INVALID_ARG.
 */
kp_err_t kp_parse_int64(const char *s, int64_t *valp);

/**
 * @brief Reads a secret (a bearer token): the contents of @p file, else
 *        the environment variable @p env, with surrounding whitespace
 *        removed. Neither set: *secretp is NULL and KP_OK.
 * @param what names the secret in errors ("the control token").
 * @returns KP_OK with *secretp kp_malloc()ed (or NULL), or KP_ERR_CONFIG
 *          with a reason (the file cannot be read, the secret is empty).
 *          The secret itself never appears in errstr.
 */
kp_err_t kp_conf_read_secret(const char *file, const char *env,
                             const char *what, char **secretp, char *errstr,
                             size_t errstr_size);

/** The version string of every kpay binary. */
extern const char kp_version_str[];

#endif /* KPAY_KP_CONF_H */
