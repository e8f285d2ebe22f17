/**
 * @file kp_audit.h
 * @brief Audit records on kpay.ops.audit: one per accepted mutation
 *        (docs/ops.md, "Audit records").
 *
 * Every record is one compact JSON object keyed by the service that wrote
 * it, with the fields of kp_audit_rec_t first, in this order:
 *
 *     {"v":1,"ts":1700000000000,"service":"control","instance":"control-1",
 *      "actor":"alice","action":"pause","target":"pipeline",
 *      "before":{...},"after":{...},"trace":"...", <writer's own fields>}
 *
 * Writers: kpay-control (pause, resume, rate-limit, and its state changes),
 * kpay-account (FREEZE and UNFREEZE, in the transaction that applies them)
 * and kpay-admin (dead-letter replays, in the transaction that re-produces
 * the letter).
 */
#ifndef KPAY_KP_AUDIT_H
#define KPAY_KP_AUDIT_H

#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <stddef.h>
#include <stdint.h>

#include "kpay/kp_err.h"

/** Schema version of the audit record. */
#define KP_AUDIT_VERSION 1

/** Longest actor kept (longer ones are cut). */
#define KP_AUDIT_ACTOR_MAX 64

/** Longest trace id written (kpay-trace of the mutation). */
#define KP_AUDIT_TRACE_MAX 128

/** One audit record. Strings and JSON values are borrowed. */
typedef struct kp_audit_rec_s {
        const char *service;  /**< writer: "control", "account", "admin" */
        const char *instance; /**< its instance id, or NULL */
        const char *actor;    /**< who asked; NULL or "" -> "anonymous" */
        const char *action;   /**< "pause", "freeze", "dlq.replay", ... */
        const char *target;   /**< "pipeline", "account:alice", ... */
        const json_t *before; /**< state before, or NULL (JSON null) */
        const json_t *after;  /**< state after, or NULL (JSON null) */
        const char *trace;    /**< trace id, or NULL (JSON null) */
        int64_t ts;           /**< wall-clock ms */
} kp_audit_rec_t;

/**
 * @brief Writes @p raw into @p buf as an actor: every character outside
 *        [A-Za-z0-9._@:-] becomes '_' and it is cut to KP_AUDIT_ACTOR_MAX;
 *        @p fallback when @p raw is NULL or empty.
 * @locality any thread (pure)
 */
void kp_audit_actor(char *buf, size_t size, const char *raw,
                    const char *fallback);

/**
 * @brief A new random trace id (32 lowercase hex digits) in @p buf
 *        (at least 33 bytes). @locality any thread
 */
void kp_audit_trace_new(char *buf, size_t size);

/**
 * @brief Serializes @p r, then the members of @p extra (an object, or
 *        NULL) that do not collide with a standard field, in their order.
 * @returns a kp_malloc()ed string; *lenp its length when not NULL.
 * @locality any thread (pure)
 */
char *kp_audit_serialize(const kp_audit_rec_t *r, const json_t *extra,
                         size_t *lenp);

/**
 * @brief Produces @p r (kp_audit_serialize()) to @p topic, key
 *        r->service, with the headers kpay-hop (r->service) and kpay-trace
 *        (r->trace), and waits for its delivery (kp_kafka_produce_sync():
 *        @p rk must use kp_kafka_sync_dr_cb).
 * @returns KP_OK, KP_ERR_KAFKA or KP_ERR_TIMED_OUT.
 * @locality one thread at a time per producer
 */
kp_err_t kp_audit_write_sync(rd_kafka_t *rk, const char *topic,
                             const kp_audit_rec_t *r, const json_t *extra,
                             int timeout_ms);

#endif /* KPAY_KP_AUDIT_H */
