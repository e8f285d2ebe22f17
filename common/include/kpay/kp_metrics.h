/**
 * @file kp_metrics.h
 * @brief A metrics registry rendered in the Prometheus text format (0.0.4).
 *
 * Metrics are registered once (any thread, under the registry's lock) and
 * updated lock-free from any thread. A family (one name) may hold several
 * label sets; HELP and TYPE are printed once per family.
 */
#ifndef KPAY_KP_METRICS_H
#define KPAY_KP_METRICS_H

#include <stddef.h>
#include <stdint.h>

typedef struct kp_metrics_s kp_metrics_t;
typedef struct kp_counter_s kp_counter_t;
typedef struct kp_gauge_s kp_gauge_t;
typedef struct kp_histogram_s kp_histogram_t;

/** @brief A new, empty registry. */
kp_metrics_t *kp_metrics_new(void);

/** @brief Frees the registry and every metric in it. NULL is a no-op. */
void kp_metrics_destroy(kp_metrics_t *m);

/**
 * @brief Registers (or finds, if the same name and labels exist) a counter.
 * @param name a Prometheus metric name ("kpay_records_in_total").
 * @param help one line, used when the family is first registered.
 * @param labels a rendered label list without braces
 *        ("topic=\"kpay.dlq\",partition=\"3\""), or NULL for none. Label
 *        values are escaped by the caller with kp_metrics_escape_label().
 * @returns the counter, owned by the registry.
 * @locality any thread
 */
kp_counter_t *kp_metrics_counter(kp_metrics_t *m, const char *name,
                                 const char *help, const char *labels);

/** @brief Adds @p v (>= 0) to a counter. @locality any thread */
void kp_counter_add(kp_counter_t *c, int64_t v);

/** @brief A counter's value. @locality any thread */
int64_t kp_counter_get(const kp_counter_t *c);

/** @brief Registers (or finds) a gauge. Same parameters as counters. */
kp_gauge_t *kp_metrics_gauge(kp_metrics_t *m, const char *name,
                             const char *help, const char *labels);

/** @brief Sets a gauge. @locality any thread */
void kp_gauge_set(kp_gauge_t *g, double v);

/** @brief Adds @p v (may be negative) to a gauge. @locality any thread */
void kp_gauge_add(kp_gauge_t *g, double v);

/** @brief A gauge's value. @locality any thread */
double kp_gauge_get(const kp_gauge_t *g);

/**
 * @brief Removes a gauge (a store that closed, say); the pointer is invalid
 *        afterwards. @locality any thread
 */
void kp_metrics_remove_gauge(kp_metrics_t *m, kp_gauge_t *g);

/**
 * @brief Registers (or finds) a histogram with the given upper bounds
 *        (ascending, +Inf is implicit; copied).
 */
kp_histogram_t *kp_metrics_histogram(kp_metrics_t *m, const char *name,
                                     const char *help, const char *labels,
                                     const double *bounds, size_t bound_cnt);

/** @brief Records one observation. @locality any thread */
void kp_histogram_observe(kp_histogram_t *h, double v);

/** @brief The number of observations so far. */
uint64_t kp_histogram_count(const kp_histogram_t *h);

/**
 * @brief Renders every metric in the Prometheus text exposition format.
 * @returns a kp_malloc()ed, NUL-terminated string; *lenp its length.
 * @locality any thread
 */
char *kp_metrics_render(kp_metrics_t *m, size_t *lenp);

/**
 * @brief Escapes a label value (backslash, double quote, newline) into
 *        @p buf. @returns @p buf.
 */
char *kp_metrics_escape_label(char *buf, size_t size, const char *value);

#endif /* KPAY_KP_METRICS_H */
