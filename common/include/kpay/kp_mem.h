/**
 * @file kp_mem.h
 * @brief Allocation wrappers that abort on out-of-memory.
 *
 * Call sites carry no OOM branches: an allocation failure prints one line and
 * aborts the process, which a supervisor restarts (Kafka holds the truth).
 * The number of live allocations made through these wrappers is counted for
 * /metrics and for leak checks in tests.
 */
#ifndef KPAY_KP_MEM_H
#define KPAY_KP_MEM_H

#include <stddef.h>
#include <stdint.h>

/** @brief malloc() that aborts on failure. @locality any thread */
void *kp_malloc(size_t size);
/** @brief calloc() that aborts on failure (and on size overflow). */
void *kp_calloc(size_t nmemb, size_t size);
/** @brief realloc() that aborts on failure; kp_realloc(NULL, n) allocates. */
void *kp_realloc(void *ptr, size_t size);
/** @brief strdup() that aborts on failure; kp_strdup(NULL) returns NULL. */
char *kp_strdup(const char *s);
/** @brief strndup() that aborts on failure. */
char *kp_strndup(const char *s, size_t n);
/** @brief free() for memory from the wrappers above; NULL is a no-op. */
void kp_free(void *ptr);

/**
 * @brief printf into a newly allocated string (caller frees with kp_free).
 * @locality any thread
 */
char *kp_asprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/**
 * @brief Number of allocations made through kp_malloc() and friends that
 *        have not been freed with kp_free().
 * @locality any thread
 */
int64_t kp_mem_live_allocations(void);

#endif /* KPAY_KP_MEM_H */
