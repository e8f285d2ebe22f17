/**
 * @file kp_store.h
 * @brief Key-value state stores: one RocksDB instance per (store, partition),
 *        with a transactional in-memory overlay and a changelog checkpoint.
 *
 * The processing thread writes into the overlay (reads see their own
 * writes). After the Kafka transaction that carried the same writes to the
 * changelog has committed, kp_store_commit() applies the overlay together
 * with the new changelog checkpoint in one atomic RocksDB write batch; after
 * an abort, kp_store_rollback() drops it. So RocksDB never holds uncommitted
 * data, and a crash at any point is repaired by replaying the changelog from
 * the checkpoint.
 *
 * Restoring uses the same calls: replayed changelog records go through
 * kp_store_put() / kp_store_delete() and are committed in batches with the
 * changelog offset reached as the checkpoint.
 *
 * The checkpoint lives in a column family of its own ("kpay"), so user keys
 * can be any bytes and scans never see it.
 *
 * Every store of a process shares one block cache and one write-buffer
 * manager (kp_store_env_t), so memory stays bounded however many partitions
 * an instance owns.
 */
#ifndef KPAY_KP_STORE_H
#define KPAY_KP_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "kpay/kp_err.h"

typedef struct kp_store_env_s kp_store_env_t;
typedef struct kp_store_s kp_store_t;

/**
 * @brief The memory shared by every store of a process.
 * @param block_cache_bytes capacity of the shared LRU block cache.
 * @param write_buffer_bytes total memtable memory of all stores (a RocksDB
 *        WriteBufferManager charged to the block cache).
 * @locality main thread
 */
kp_store_env_t *kp_store_env_new(size_t block_cache_bytes,
                                 size_t write_buffer_bytes);

/** @brief Frees the env. Every store opened with it must be closed first. */
void kp_store_env_destroy(kp_store_env_t *env);

/** @brief Bytes currently held by the shared block cache (for /metrics). */
size_t kp_store_env_cache_usage(const kp_store_env_t *env);

/**
 * @brief Opens (creating if needed, with parent directories) the store at
 *        @p path.
 * @returns the store, or NULL with the reason in errstr.
 * @locality processing thread
 */
kp_store_t *kp_store_open(kp_store_env_t *env, const char *path, char *errstr,
                          size_t errstr_size);

/**
 * @brief Closes the store, dropping any overlay; the files stay for a fast
 *        return. NULL is a no-op.
 */
void kp_store_close(kp_store_t *st);

/**
 * @brief Deletes the store's files at @p path (it must not be open), so the
 *        next open starts empty. A missing directory is not an error.
 */
kp_err_t kp_store_wipe(const char *path, char *errstr, size_t errstr_size);

/**
 * @brief The changelog offset up to which RocksDB holds the state (the next
 *        changelog offset to replay), or -1 for a store that has none.
 */
int64_t kp_store_checkpoint(const kp_store_t *st);

/**
 * @brief Reads @p key: the overlay first, then RocksDB.
 * @param valp receives a kp_malloc()ed copy (the caller kp_free()s it); may
 *        be NULL to test for presence only.
 * @returns KP_OK, KP_ERR_NOT_FOUND (absent or deleted in the overlay), or
 *          KP_ERR_STORE.
 * @locality processing thread
 */
kp_err_t kp_store_get(kp_store_t *st, const void *key, size_t klen, void **valp,
                      size_t *vlenp);

/** @brief Writes @p key into the overlay (copied). @locality processing */
void kp_store_put(kp_store_t *st, const void *key, size_t klen, const void *val,
                  size_t vlen);

/** @brief Deletes @p key in the overlay (a tombstone). @locality processing */
void kp_store_delete(kp_store_t *st, const void *key, size_t klen);

/**
 * @brief Writes or (@p val NULL) deletes @p key in the overlay as local
 *        state: committed to RocksDB like the others, never visited by
 *        kp_store_overlay_foreach(), so it never reaches the changelog
 *        (an index the processor derives again on restore). A key written
 *        both ways in one transaction is not local. @locality processing
 */
void kp_store_write_local(kp_store_t *st, const void *key, size_t klen,
                          const void *val, size_t vlen);

/** @brief Number of keys written or deleted in the overlay. */
size_t kp_store_overlay_count(const kp_store_t *st);

/**
 * @brief Called for each key of the overlay, in no particular order, with
 *        @p val NULL for a deletion. Return non-zero to stop.
 */
typedef int(kp_store_overlay_cb)(const void *key, size_t klen, const void *val,
                                 size_t vlen, void *opaque);

/**
 * @brief Visits the overlay: the last write of each key since the last
 *        commit or rollback (the runtime writes these to the changelog
 *        just before the Kafka commit, once per key), local writes
 *        (kp_store_write_local()) excepted, and so are deletions of keys
 *        that RocksDB does not hold (written and deleted since the last
 *        commit, or never there): the changelog has nothing to delete.
 * @returns 0, or the first non-zero value returned by @p cb.
 * @locality processing thread
 */
int kp_store_overlay_foreach(const kp_store_t *st, kp_store_overlay_cb *cb,
                             void *opaque);

/**
 * @brief Applies the overlay and @p checkpoint to RocksDB in one atomic
 *        write batch, then empties the overlay. With an empty overlay only
 *        the checkpoint is written (if it changed).
 * @returns KP_OK or KP_ERR_STORE (the overlay is then kept).
 * @locality processing thread
 */
kp_err_t kp_store_commit(kp_store_t *st, int64_t checkpoint, char *errstr,
                         size_t errstr_size);

/** @brief Drops the overlay. @locality processing thread */
void kp_store_rollback(kp_store_t *st);

/**
 * @brief Reads @p key from RocksDB only (committed state).
 * @returns KP_OK, KP_ERR_NOT_FOUND or KP_ERR_STORE.
 * @locality any thread, concurrently with the processing thread (but not
 *           with kp_store_close())
 */
kp_err_t kp_store_get_committed(kp_store_t *st, const void *key, size_t klen,
                                void **valp, size_t *vlenp);

/**
 * @brief Called for each key of a scan, in key order; return non-zero to
 *        stop.
 */
typedef int(kp_store_scan_cb)(const void *key, size_t klen, const void *val,
                              size_t vlen, void *opaque);

/**
 * @brief Scans the committed keys greater than @p after (all keys when
 *        @p after is NULL) in bytewise order until @p cb returns non-zero.
 * @locality any thread, like kp_store_get_committed()
 */
kp_err_t kp_store_scan_committed(kp_store_t *st, const void *after,
                                 size_t after_len, kp_store_scan_cb *cb,
                                 void *opaque);

/** @brief RocksDB's estimate of the number of committed keys. */
uint64_t kp_store_estimate_keys(kp_store_t *st);

#endif /* KPAY_KP_STORE_H */
