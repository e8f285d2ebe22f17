/**
 * @file kp_control.h
 * @brief The control plane's records, shared by kpay-control (which
 *        writes them) and kpay-inflight (which obeys and reports them):
 *        the ControlStatus record on kpay.control.status and the "status"
 *        object a kpay-inflight instance publishes in its InstanceInfo
 *        (docs/control.md). Pure functions, any thread.
 */
#ifndef KPAY_KP_CONTROL_H
#define KPAY_KP_CONTROL_H

#include <stddef.h>
#include <stdint.h>

#include "kpay/kp_err.h"
#include "kpay/kp_money.h"

/** The one key of kpay.control.status (a compacted topic). */
#define KP_CONTROL_KEY "pipeline"

/** Longest actor name kept (longer ones are cut). */
#define KP_CONTROL_ACTOR_MAX 64

/** Largest accepted cluster-wide rate limit (payments per second). */
#define KP_CONTROL_RATE_MAX 1000000

/**
 * One ControlStatus record: the whole desired state of the pipeline, so
 * that the latest record alone (after compaction) says everything:
 * {"v":1,"version":N,"paused":bool,"rate_limit":N|null,
 *  "command":"pause"|"resume"|"rate-limit","actor":"...","ts":ms}.
 */
typedef struct kp_control_status_s {
        int64_t version;    /**< 1, 2, ...; 0: no record yet (running) */
        int paused;         /**< intake paused */
        int64_t rate_limit; /**< payments/s for the whole pipeline; 0: none */
        char command[16];   /**< the command that wrote this version */
        char actor[KP_CONTROL_ACTOR_MAX + 1]; /**< who sent it */
        int64_t ts;                           /**< wall-clock ms written */
} kp_control_status_t;

/** @brief The record as JSON (kp_malloc()ed). */
char *kp_control_status_to_json(const kp_control_status_t *st);

/**
 * @brief Parses a ControlStatus record (unknown fields are ignored, for
 *        forward compatibility).
 * @returns KP_OK, or KP_ERR_PARSE with a reason (not JSON, a field
 *          missing or of the wrong type, v other than 1, a version below
 *          1, a rate limit out of range).
 */
kp_err_t kp_control_status_from_json(const char *json, size_t len,
                                     kp_control_status_t *out, char *errstr,
                                     size_t errstr_size);

/**
 * What a kpay-inflight instance reports in the "status" object of its
 * InstanceInfo: {"control_version":N,"paused":bool,"rate_share":X,
 * "inflight_count":N,"inflight_amounts":{"USD":"N",...}}. The in-flight
 * totals are summed over the partitions it owns, from committed state
 * only; the amounts per currency, as decimal strings (kp_money.h).
 * Release with kp_control_report_clear().
 */
typedef struct kp_control_report_s {
        int64_t version;   /**< ControlStatus version applied; 0: none */
        int paused;        /**< its intake is paused */
        double rate_share; /**< its share of the rate limit; 0: none */
        int64_t inflight_count;
        kp_money_t inflight_amounts; /**< per currency */
} kp_control_report_t;

/** @brief Frees what @p r owns (its amounts); @p r is then empty. */
void kp_control_report_clear(kp_control_report_t *r);

/** @brief The report as a JSON object (kp_malloc()ed). */
char *kp_control_report_to_json(const kp_control_report_t *r);

/**
 * @brief Parses an InstanceInfo "status" object written by
 *        kp_control_report_to_json().
 * @param out overwritten (not cleared first); release it with
 *            kp_control_report_clear() whatever the result.
 * @returns KP_OK or KP_ERR_PARSE (NULL, not such an object).
 */
kp_err_t kp_control_report_from_json(const char *json,
                                     kp_control_report_t *out);

/**
 * @brief One instance's share of a cluster-wide limit of @p total records
 *        per second: total x owned / partition_count (the input's records
 *        are spread evenly over its partitions: keyed by payment id). An
 *        instance that owns nothing yet gets one partition's worth, so that
 *        a partition assigned before the next recomputation is never
 *        unlimited.
 * @returns records per second, or 0 (no limit) when @p total <= 0.
 */
double kp_control_rate_share(int64_t total, int owned, int32_t partition_count);

#endif /* KPAY_KP_CONTROL_H */
