/**
 * @file kp_expiry.h
 * @brief Bounded retention of store entries: an expiry index whose keys
 *        sort by time, walked oldest first from punctuate() (the mechanism
 *        of kpay-inflight's dedup store, shared with kpay-confirmed's
 *        outcomes; docs/runtime.md, "Retention").
 *
 * An entry for id I recorded at time T gets an index key
 * `<prefix><16 lowercase hex digits of T>:<I>` (value "1": never empty,
 * since an empty value is a tombstone on the changelog). The keys of one
 * prefix sort by T, so a punctuator deletes everything older than a
 * cutoff by scanning from the prefix and stopping at the first younger
 * key, at most a bounded number per run. Index and entries are ordinary
 * store keys: their deletions go through the transaction and the
 * changelog like any write, unless the run is local: an index kept as
 * local state (kp_ctx_write_local()) beside entries whose changelog drops
 * old records by retention (kpay-inflight's dedup store).
 */
#ifndef KPAY_KP_EXPIRY_H
#define KPAY_KP_EXPIRY_H

#include <stddef.h>
#include <stdint.h>

#include "kpay/kp_err.h"
#include "kpay/kp_proc.h"

/** Room for an index key of an id of up to @p idmax bytes, prefix of up
 *  to 2 bytes, with its NUL. */
#define KP_EXPIRY_KEY_SIZE(idmax) (2 + 16 + 1 + (idmax) + 1)

/**
 * @brief Writes the index key `<prefix><16 hex of ms>:<id>` into @p buf.
 * @returns its length, or 0 when @p ms is negative or it does not fit
 *          @p size.
 * @locality any thread
 */
size_t kp_expiry_key(char *buf, size_t size, const char *prefix, int64_t ms,
                     const char *id);

/**
 * @brief Parses an index key of @p prefix.
 * @returns 1 with the time and the id (pointing into @p key, not
 *          NUL-terminated) set; 0 when @p key does not start with
 *          @p prefix (past the index); -1 when it does but is malformed.
 * @locality any thread
 */
int kp_expiry_key_parse(const void *key, size_t klen, const char *prefix,
                        int64_t *msp, const char **idp, size_t *idlenp);

/**
 * @brief The oldest time still retained: @p now_ms - @p retention_ms,
 *        saturating. An entry recorded before it has expired.
 * @locality any thread
 */
int64_t kp_expiry_cutoff(int64_t now_ms, int64_t retention_ms);

/**
 * @brief Called for each expired index entry before its index key is
 *        deleted: delete the entry it stands for (unless it was recorded
 *        again later, which a newer index key then covers).
 * @returns KP_OK, or an error that stops the run.
 * @locality processing thread (punctuate())
 */
typedef kp_err_t(kp_expiry_cb)(kp_ctx_t *ctx, const char *id, size_t idlen,
                               int64_t ms, void *opaque);

/**
 * @brief Deletes the expired entries of one partition, oldest first: walks
 *        the index keys of @p prefix in store @p store (committed keys,
 *        kp_ctx_scan()) while their time is below @p cutoff, calling
 *        @p cb and deleting the index key, at most @p max per call. A
 *        malformed index key is deleted (logged). With @p local the index
 *        key is deleted locally (kp_ctx_write_local(): no tombstone on
 *        the changelog), for an index that is itself local state; @p cb
 *        then deletes its entry locally too.
 * @param deletedp receives the number of index keys deleted (may be NULL).
 * @returns KP_OK or the first error (of the scan, @p cb or a delete).
 * @locality processing thread (punctuate())
 */
kp_err_t kp_expiry_run(kp_ctx_t *ctx, int store, const char *prefix,
                       int64_t cutoff, int64_t max, int local, kp_expiry_cb *cb,
                       void *opaque, int64_t *deletedp);

#endif /* KPAY_KP_EXPIRY_H */
