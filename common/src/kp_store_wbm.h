/**
 * @file kp_store_wbm.h
 * @brief Private to kp_store.c: what RocksDB 7.8's C API lacks, reached
 *        through a tiny C++ shim (kp_store_wbm.cc): a WriteBufferManager,
 *        and an info logger that writes kpay log lines.
 */
#ifndef KPAY_KP_STORE_WBM_H
#define KPAY_KP_STORE_WBM_H

#include <stddef.h>

#include <rocksdb/c.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kp_store_wbm_s kp_store_wbm_t;

/**
 * @brief Creates a write buffer manager that bounds the memtables of every
 *        DB it is set on to @p write_buffer_bytes in total and charges their
 *        memory to @p cache (which it keeps a reference to).
 * @returns the manager, or NULL with the reason in errstr.
 */
kp_store_wbm_t *kp_store_wbm_new(size_t write_buffer_bytes,
                                 rocksdb_cache_t *cache, char *errstr,
                                 size_t errstr_size);

/**
 * @brief Sets @p wbm as the write buffer manager of @p opts (which keeps a
 *        reference: @p wbm may be destroyed before DBs opened with @p opts).
 * @returns 0, or -1 with the reason in errstr.
 */
int kp_store_wbm_set(rocksdb_options_t *opts, kp_store_wbm_t *wbm, char *errstr,
                     size_t errstr_size);

/** The levels the shim's logger writes RocksDB's lines at. */
typedef enum kp_store_log_level_e {
        KP_STORE_LOG_ERROR,
        KP_STORE_LOG_WARN,
        KP_STORE_LOG_DEBUG,
} kp_store_log_level_t;

/** @brief Implemented by kp_store.c: whether kpay logs @p level now. */
int kp_store_log_enabled(kp_store_log_level_t level);

/** @brief Implemented by kp_store.c: writes one line of @p store's
 *  RocksDB log. @locality any thread (RocksDB's background threads log) */
void kp_store_log(kp_store_log_level_t level, const char *store,
                  const char *line);

/**
 * @brief Gives @p opts, for the store at @p path, a RocksDB logger that
 *        writes RocksDB's warnings and errors as kpay log lines naming the
 *        store (and the rest at debug) instead of a LOG file in the
 *        store's directory.
 * @returns 0, or -1 with the reason in errstr.
 */
int kp_store_logger_set(rocksdb_options_t *opts, const char *path, char *errstr,
                        size_t errstr_size);

/** @brief Drops this reference to the manager. NULL is a no-op. */
void kp_store_wbm_destroy(kp_store_wbm_t *wbm);

#ifdef __cplusplus
}
#endif

#endif /* KPAY_KP_STORE_WBM_H */
