/**
 * @file kp_buf.h
 * @brief A growing, NUL-terminated output buffer for text that is built
 *        piece by piece (the Prometheus text, kpay-metrics' windows).
 *        Allocation aborts on out-of-memory, like kp_mem. Zero-initialise
 *        it ({0}); take the string with kp_buf_take() or free it with
 *        kp_buf_clear(). Not thread-safe; any thread.
 */
#ifndef KPAY_KP_BUF_H
#define KPAY_KP_BUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct kp_buf_s {
        char *p;    /**< the text, NUL-terminated once anything was added */
        size_t len; /**< its length */
        size_t cap;
} kp_buf_t;

/** @brief Makes room for @p n more bytes (and the NUL). */
void kp_buf_reserve(kp_buf_t *b, size_t n);

/** @brief Appends @p n bytes of @p s. */
void kp_buf_add(kp_buf_t *b, const char *s, size_t n);

/** @brief Appends the string @p s. */
void kp_buf_puts(kp_buf_t *b, const char *s);

/** @brief Appends a formatted string. */
void kp_buf_printf(kp_buf_t *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/** @brief Appends @p v in decimal (faster than kp_buf_printf()). */
void kp_buf_int(kp_buf_t *b, int64_t v);

/** @brief Appends @p s as a JSON string: quoted, with '"', '\\' and
 *         control characters escaped as jansson escapes them (\n, \t ...
 *         or \u00XX; other bytes as they are). */
void kp_buf_json_str(kp_buf_t *b, const char *s);

/** @brief The string (kp_malloc()ed, "" when nothing was added), its
 *         length in *lenp; @p b is empty afterwards. */
char *kp_buf_take(kp_buf_t *b, size_t *lenp);

/** @brief Frees the text; @p b is empty afterwards. */
void kp_buf_clear(kp_buf_t *b);

#endif /* KPAY_KP_BUF_H */
