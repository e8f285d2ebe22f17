/**
 * @file ops.h
 * @brief kpay-admin's operational commands as pure functions: what a
 *        dead letter's replay carries, which records belong to a payment,
 *        and how they are told apart (docs/ops.md). No Kafka connection.
 */
#ifndef KPAY_ADMIN_OPS_H
#define KPAY_ADMIN_OPS_H

#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <stddef.h>
#include <stdint.h>

/** The header that names the dead letter a record replays. */
#define OPS_REPLAY_HEADER "kpay-replay-of"

/** The audit action of one replayed dead letter. */
#define OPS_REPLAY_ACTION "dlq.replay"

/** The audit records of kpay-admin are keyed (and partitioned) by this. */
#define OPS_AUDIT_KEY "admin"

/**
 * @brief 1 if @p name is a header that kp_ctx_dead_letter() adds
 *        (kpay-error, kpay-error-detail, kpay-source-topic,
 *        kpay-source-partition, kpay-source-offset, kpay-service).
 */
int ops_is_dlq_header(const char *name);

/**
 * @brief The headers of the replay of the dead letter with @p letter's
 *        headers read at @p dlq_partition / @p dlq_offset: the letter's
 *        own (kpay-trace included) without the dead-letter headers, the
 *        kpay-hop and any earlier kpay-replay-of, then kpay-hop "admin"
 *        and kpay-replay-of "<partition>:<offset>".
 * @returns new headers (the caller owns them).
 */
rd_kafka_headers_t *ops_replay_headers(const rd_kafka_headers_t *letter,
                                       int32_t dlq_partition,
                                       int64_t dlq_offset);

/**
 * @brief The last value of header @p name as a string in @p buf (cut to
 *        fit); "" when absent. @returns @p buf.
 */
char *ops_header(const rd_kafka_headers_t *hdrs, const char *name, char *buf,
                 size_t size);

/**
 * @brief The payment id of a record: its "id" when @p val is a JSON object
 *        with a string "id" (a Payment, whatever its other faults), into
 *        @p buf. @returns 1 when found, else 0 (@p buf "").
 */
int ops_value_id(const void *val, size_t len, char *buf, size_t size);

/**
 * @brief 1 if the record (@p key, @p val) belongs to payment @p id: its
 *        key is the id, or its value has "id" equal to it, or it is an
 *        audit record whose "payment" is the id.
 */
int ops_record_of(const char *id, const void *key, size_t klen, const void *val,
                  size_t vlen);

/**
 * @brief The marker key of a dead letter: "<partition>:<offset>" in
 *        @p buf. @returns @p buf.
 */
char *ops_letter_key(char *buf, size_t size, int32_t partition, int64_t offset);

/**
 * @brief If @p val is the audit record of a replay (action dlq.replay),
 *        the marker key of the letter it replayed into @p buf.
 * @returns 1 if it is one, else 0.
 */
int ops_replay_marker(const void *val, size_t len, char *buf, size_t size);

/**
 * @brief One line summing up a record for `trace` and `dlq list`: the
 *        Payment's state (and reason), the account command, the dead
 *        letter's error, or the audit action and actor. @returns @p buf.
 */
char *ops_summary(const void *val, size_t len, const rd_kafka_headers_t *hdrs,
                  char *buf, size_t size);

#endif /* KPAY_ADMIN_OPS_H */
