/* kp_store.c: key-value state stores on RocksDB, with a transactional
 * in-memory overlay and a changelog checkpoint (see kp_store.h).
 *
 * Layout of a store's RocksDB instance:
 *   - column family "default": the user keys, bytewise ordered;
 *   - column family "kpay": the key "checkpoint", whose value is the
 *     changelog offset as 8 bytes big-endian (two's complement), so it needs
 *     no parsing and -1 round-trips like any other value.
 *
 * The overlay is an open-addressing hash table (linear probing, power-of-two
 * capacity, at most 70% full) of key -> value or tombstone. Entries are only
 * ever added or overwritten until the whole table is emptied by a commit or
 * a rollback, so probing needs no deletion markers. Each entry owns one
 * allocation holding the key bytes followed by the value bytes. */
#include "kpay/kp_store.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <rocksdb/c.h>

#include "kp_store_wbm.h"
#include "kpay/kp_log.h"
#include "kpay/kp_mem.h"

#define KP_STORE_CF_META        "kpay"
#define KP_STORE_CHECKPOINT_KEY "checkpoint"
#define KP_STORE_WRITE_BUFFER   (8u * 1024 * 1024)
#define KP_STORE_MAX_WRITE_BUF  2
#define KP_STORE_BLOOM_BITS     10.0
/* A memtable grows in blocks of this size (RocksDB's default is an eighth
 * of the write buffer, 1 MiB here): an instance has two memtables per
 * store and partition (36 stores x 2 for kpay-inflight on 12 partitions),
 * and each holds at least one block once written, so 1 MiB blocks alone
 * made tens of MiB of RSS and kept the write buffer manager flushing. */
#define KP_STORE_ARENA_BLOCK (64u * 1024)
/* Every file a store writes (its WAL, MANIFEST and new tables) goes
 * through a buffer that starts at min(64 KiB, this) and grows up to this
 * (RocksDB's default is 1 MiB); a larger append is written straight
 * through. 36 stores x (WAL + MANIFEST) at 64 KiB and more was ~7 MiB of
 * kpay-inflight's heap at full speed; 16 KiB holds several commits' batches
 * of one store and partition. */
#define KP_STORE_FILE_BUFFER (16u * 1024)
#define KP_STORE_OV_MIN_CAP  64
/* After a commit or rollback, a table larger than this is freed rather than
 * cleared, so one huge batch does not pin its memory for the store's life. */
#define KP_STORE_OV_KEEP_CAP 4096

struct kp_store_env_s {
        rocksdb_cache_t *cache;
        kp_store_wbm_t *wbm;
};

typedef struct kp_store_slot_s {
        char *buf; /* key bytes then value bytes; NULL: empty slot */
        size_t klen;
        size_t vlen;
        uint64_t hash;
        int tombstone;
        int local; /* kp_store_write_local() only: not for the changelog */
} kp_store_slot_t;

struct kp_store_s {
        rocksdb_t *db;
        rocksdb_column_family_handle_t *cf_data; /* "default": user keys */
        rocksdb_column_family_handle_t *cf_meta; /* "kpay": the checkpoint */
        rocksdb_readoptions_t *ropts;            /* shared, read-only */
        rocksdb_writeoptions_t *wopts;
        char *path;
        /* Written by the processing thread only; atomic so that other
         * threads (metrics) may read it too. */
        _Atomic int64_t checkpoint;

        kp_store_slot_t *slots; /* the overlay; NULL until first needed */
        size_t cap;             /* number of slots, a power of two */
        size_t count;           /* used slots */
};


static void set_err(char *errstr, size_t errstr_size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *errstr, size_t errstr_size, const char *fmt, ...) {
        va_list ap;
        if (!errstr || !errstr_size)
                return;
        va_start(ap, fmt);
        vsnprintf(errstr, errstr_size, fmt, ap);
        va_end(ap);
}


/*
 * The overlay.
 */

/* A 64-bit hash in the style of MurmurHash64A: 8 bytes per step. */
static uint64_t hash_bytes(const void *data, size_t len) {
        const unsigned char *p = data;
        const uint64_t m       = 0xc6a4a7935bd1e995ULL;
        uint64_t h             = 0x9e3779b97f4a7c15ULL ^ ((uint64_t)len * m);
        uint64_t k;

        for (; len >= 8; p += 8, len -= 8) {
                memcpy(&k, p, 8);
                k *= m;
                k ^= k >> 47;
                k *= m;
                h ^= k;
                h *= m;
        }
        if (len) {
                k = 0;
                memcpy(&k, p, len);
                h ^= k;
                h *= m;
        }
        h ^= h >> 47;
        h *= m;
        h ^= h >> 47;
        return h;
}

/* The slot holding @p key, or the empty slot where it would go. The table
 * must exist (cap > 0) and have a free slot. */
static kp_store_slot_t *ov_probe(const kp_store_t *st, const void *key,
                                 size_t klen, uint64_t hash) {
        size_t mask = st->cap - 1;
        size_t i    = (size_t)hash & mask;

        for (;; i = (i + 1) & mask) {
                kp_store_slot_t *s = &st->slots[i];
                if (!s->buf)
                        return s;
                if (s->hash == hash && s->klen == klen &&
                    (klen == 0 || !memcmp(s->buf, key, klen)))
                        return s;
        }
}

static const kp_store_slot_t *ov_lookup(const kp_store_t *st, const void *key,
                                        size_t klen) {
        const kp_store_slot_t *s;

        if (!st->count)
                return NULL;
        s = ov_probe(st, key, klen, hash_bytes(key, klen));
        return s->buf ? s : NULL;
}

static void ov_grow(kp_store_t *st) {
        size_t ncap          = st->cap ? st->cap * 2 : KP_STORE_OV_MIN_CAP;
        kp_store_slot_t *old = st->slots;
        size_t ocap          = st->cap;
        size_t i;

        st->slots = kp_calloc(ncap, sizeof(*st->slots));
        st->cap   = ncap;
        for (i = 0; i < ocap; i++) {
                size_t j;
                if (!old[i].buf)
                        continue;
                /* Keys are distinct: the first empty slot is the place. */
                for (j = (size_t)old[i].hash & (ncap - 1); st->slots[j].buf;
                     j = (j + 1) & (ncap - 1))
                        ;
                st->slots[j] = old[i];
        }
        kp_free(old);
}

/* Writes a value (@p tombstone 0) or a tombstone into the overlay; a
 * @p local write stays local only if every write of the key was. */
static void ov_set(kp_store_t *st, const void *key, size_t klen,
                   const void *val, size_t vlen, int tombstone, int local) {
        uint64_t hash = hash_bytes(key, klen);
        kp_store_slot_t *s;

        /* Keep the table at most 70% full. */
        if (!st->cap || (st->count + 1) * 10 > st->cap * 7)
                ov_grow(st);

        s = ov_probe(st, key, klen, hash);
        if (s->buf) {
                s->buf   = kp_realloc(s->buf, klen + vlen);
                s->local = s->local && local;
        } else {
                s->local = local;
                s->buf   = kp_malloc(klen + vlen);
                s->klen  = klen;
                s->hash  = hash;
                if (klen)
                        memcpy(s->buf, key, klen);
                st->count++;
        }
        if (vlen)
                memcpy(s->buf + klen, val, vlen);
        s->vlen      = vlen;
        s->tombstone = tombstone;
}

static void ov_clear(kp_store_t *st) {
        size_t i;

        for (i = 0; i < st->cap && st->count; i++) {
                if (st->slots[i].buf) {
                        kp_free(st->slots[i].buf);
                        st->slots[i].buf = NULL;
                        st->count--;
                }
        }
        st->count = 0;
        if (st->cap > KP_STORE_OV_KEEP_CAP) {
                kp_free(st->slots);
                st->slots = NULL;
                st->cap   = 0;
        }
}


/*
 * Helpers.
 */

static void encode_checkpoint(int64_t v, unsigned char out[8]) {
        uint64_t u = (uint64_t)v;
        int i;

        for (i = 7; i >= 0; i--) {
                out[i] = (unsigned char)(u & 0xff);
                u >>= 8;
        }
}

static int64_t decode_checkpoint(const unsigned char in[8]) {
        uint64_t u = 0;
        int i;

        for (i = 0; i < 8; i++)
                u = (u << 8) | in[i];
        return (int64_t)u;
}

/* Hands a kp_malloc()ed copy of @p src to the caller's optional outputs. */
static void copy_out(const void *src, size_t len, void **valp, size_t *vlenp) {
        if (valp) {
                void *p = kp_malloc(len);
                if (len)
                        memcpy(p, src, len);
                *valp = p;
        }
        if (vlenp)
                *vlenp = len;
}

static void clear_out(void **valp, size_t *vlenp) {
        if (valp)
                *valp = NULL;
        if (vlenp)
                *vlenp = 0;
}

/* mkdir -p */
static int mkdir_parents(const char *path, char *errstr, size_t errstr_size) {
        char *copy = kp_strdup(path);
        char *p    = copy;
        int ret    = 0;

        for (;;) {
                char saved;
                while (*p == '/')
                        p++;
                while (*p && *p != '/')
                        p++;
                saved = *p;
                *p    = '\0';
                if (mkdir(copy, 0755) == -1 && errno != EEXIST) {
                        set_err(errstr, errstr_size, "mkdir %s: %s", copy,
                                strerror(errno));
                        ret = -1;
                        break;
                }
                *p = saved;
                if (!saved)
                        break;
        }
        kp_free(copy);
        return ret;
}

/* rm -rf; ENOENT anywhere is success (something else removed it). */
static int remove_tree(const char *path, char *errstr, size_t errstr_size) {
        struct stat sb;
        DIR *dir;
        struct dirent *de;
        int ret = 0;

        if (lstat(path, &sb) == -1) {
                if (errno == ENOENT)
                        return 0;
                set_err(errstr, errstr_size, "stat %s: %s", path,
                        strerror(errno));
                return -1;
        }
        if (!S_ISDIR(sb.st_mode)) {
                if (unlink(path) == -1 && errno != ENOENT) {
                        set_err(errstr, errstr_size, "unlink %s: %s", path,
                                strerror(errno));
                        return -1;
                }
                return 0;
        }

        if (!(dir = opendir(path))) {
                if (errno == ENOENT)
                        return 0;
                set_err(errstr, errstr_size, "opendir %s: %s", path,
                        strerror(errno));
                return -1;
        }
        while (ret == 0) {
                char *child;
                errno = 0;
                if (!(de = readdir(dir))) {
                        if (errno) {
                                set_err(errstr, errstr_size, "readdir %s: %s",
                                        path, strerror(errno));
                                ret = -1;
                        }
                        break;
                }
                if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
                        continue;
                child = kp_asprintf("%s/%s", path, de->d_name);
                ret   = remove_tree(child, errstr, errstr_size);
                kp_free(child);
        }
        closedir(dir);
        if (ret == 0 && rmdir(path) == -1 && errno != ENOENT) {
                set_err(errstr, errstr_size, "rmdir %s: %s", path,
                        strerror(errno));
                ret = -1;
        }
        return ret;
}

static kp_log_level_t store_log_level(kp_store_log_level_t level) {
        switch (level) {
        case KP_STORE_LOG_ERROR:
                return KP_LOG_ERROR;
        case KP_STORE_LOG_WARN:
                return KP_LOG_WARN;
        default:
                return KP_LOG_DEBUG;
        }
}

int kp_store_log_enabled(kp_store_log_level_t level) {
        return (int)store_log_level(level) <= kp_log_level_current;
}

void kp_store_log(kp_store_log_level_t level, const char *store,
                  const char *line) {
        KP_LOG(store_log_level(level), "rocksdb: %s: %s", store, line);
}

/* The options of a store's DB and of both its column families. */
static rocksdb_options_t *store_options(kp_store_env_t *env, char *errstr,
                                        size_t errstr_size) {
        rocksdb_options_t *opts = rocksdb_options_create();
        rocksdb_block_based_table_options_t *tbl;

        rocksdb_options_set_create_if_missing(opts, 1);
        rocksdb_options_set_create_missing_column_families(opts, 1);
        /* Modest memtables per store: the write buffer manager bounds the
         * total over all stores. */
        rocksdb_options_set_write_buffer_size(opts, KP_STORE_WRITE_BUFFER);
        rocksdb_options_set_max_write_buffer_number(opts,
                                                    KP_STORE_MAX_WRITE_BUF);
        rocksdb_options_set_arena_block_size(opts, KP_STORE_ARENA_BLOCK);
        rocksdb_options_set_writable_file_max_buffer_size(opts,
                                                          KP_STORE_FILE_BUFFER);

        tbl = rocksdb_block_based_options_create();
        rocksdb_block_based_options_set_block_cache(tbl, env->cache);
        /* The table options take ownership of the filter policy. */
        rocksdb_block_based_options_set_filter_policy(
            tbl, rocksdb_filterpolicy_create_bloom(KP_STORE_BLOOM_BITS));
        /* Index and filter blocks are charged to the shared cache too, so
         * that it bounds them (L0's stay pinned, as they are hot). */
        rocksdb_block_based_options_set_cache_index_and_filter_blocks(tbl, 1);
        rocksdb_block_based_options_set_pin_l0_filter_and_index_blocks_in_cache(
            tbl, 1);
        rocksdb_options_set_block_based_table_factory(opts, tbl);
        rocksdb_block_based_options_destroy(tbl);

        if (kp_store_wbm_set(opts, env->wbm, errstr, errstr_size) == -1) {
                rocksdb_options_destroy(opts);
                return NULL;
        }
        return opts;
}

/* Reads the checkpoint at open. */
static kp_err_t read_checkpoint(kp_store_t *st, int64_t *cpp, char *errstr,
                                size_t errstr_size) {
        char *err = NULL;
        rocksdb_pinnableslice_t *ps;
        const char *v;
        size_t vlen;

        ps = rocksdb_get_pinned_cf(st->db, st->ropts, st->cf_meta,
                                   KP_STORE_CHECKPOINT_KEY,
                                   strlen(KP_STORE_CHECKPOINT_KEY), &err);
        if (err) {
                set_err(errstr, errstr_size, "%s: reading the checkpoint: %s",
                        st->path, err);
                rocksdb_free(err);
                return KP_ERR_STORE;
        }
        if (!ps) {
                *cpp = -1;
                return KP_OK;
        }
        v = rocksdb_pinnableslice_value(ps, &vlen);
        if (vlen != 8) {
                set_err(errstr, errstr_size,
                        "%s: malformed checkpoint (%zu bytes, expected 8)",
                        st->path, vlen);
                rocksdb_pinnableslice_destroy(ps);
                return KP_ERR_STORE;
        }
        *cpp = decode_checkpoint((const unsigned char *)v);
        rocksdb_pinnableslice_destroy(ps);
        return KP_OK;
}


/*
 * The env.
 */

kp_store_env_t *kp_store_env_new(size_t block_cache_bytes,
                                 size_t write_buffer_bytes) {
        kp_store_env_t *env = kp_calloc(1, sizeof(*env));
        char errstr[256];

        env->cache = rocksdb_cache_create_lru(block_cache_bytes);
        env->wbm   = kp_store_wbm_new(write_buffer_bytes, env->cache, errstr,
                                      sizeof(errstr));
        if (!env->wbm) {
                /* Only an allocation can fail here: treat it like kp_mem's
                 * out-of-memory, which aborts. */
                KP_FATAL("state store env: %s", errstr);
                abort();
        }
        return env;
}

void kp_store_env_destroy(kp_store_env_t *env) {
        if (!env)
                return;
        /* Open DBs hold their own references to the cache and the write
         * buffer manager; these are only the env's. */
        kp_store_wbm_destroy(env->wbm);
        rocksdb_cache_destroy(env->cache);
        kp_free(env);
}

size_t kp_store_env_cache_usage(const kp_store_env_t *env) {
        return env ? rocksdb_cache_get_usage(env->cache) : 0;
}


/*
 * Stores.
 */

kp_store_t *kp_store_open(kp_store_env_t *env, const char *path, char *errstr,
                          size_t errstr_size) {
        const char *cf_names[2]                = {"default", KP_STORE_CF_META};
        rocksdb_column_family_handle_t *cfs[2] = {NULL, NULL};
        const rocksdb_options_t *cf_opts[2];
        rocksdb_options_t *opts;
        kp_store_t *st;
        char *err = NULL;
        int64_t cp;

        if (!env || !path || !*path) {
                set_err(errstr, errstr_size, "state store: no env or path");
                return NULL;
        }
        if (mkdir_parents(path, errstr, errstr_size) == -1)
                return NULL;
        if (!(opts = store_options(env, errstr, errstr_size)))
                return NULL;
        if (kp_store_logger_set(opts, path, errstr, errstr_size) == -1) {
                rocksdb_options_destroy(opts);
                return NULL;
        }

        cf_opts[0] = opts;
        cf_opts[1] = opts;
        st         = kp_calloc(1, sizeof(*st));
        st->db = rocksdb_open_column_families(opts, path, 2, cf_names, cf_opts,
                                              cfs, &err);
        rocksdb_options_destroy(opts);
        if (err) {
                set_err(errstr, errstr_size, "%s: open: %s", path, err);
                rocksdb_free(err);
                kp_free(st);
                return NULL;
        }
        st->cf_data = cfs[0];
        st->cf_meta = cfs[1];
        st->path    = kp_strdup(path);
        st->ropts   = rocksdb_readoptions_create();
        st->wopts   = rocksdb_writeoptions_create();
        /* WAL on, no fsync per commit: after a crash the changelog replays
         * whatever the WAL lost, from the checkpoint that came with it. */
        rocksdb_writeoptions_disable_WAL(st->wopts, 0);
        rocksdb_writeoptions_set_sync(st->wopts, 0);

        if (read_checkpoint(st, &cp, errstr, errstr_size) != KP_OK) {
                kp_store_close(st);
                return NULL;
        }
        atomic_store(&st->checkpoint, cp);
        KP_DEBUG("state store %s opened, checkpoint %" PRId64, path, cp);
        return st;
}

void kp_store_close(kp_store_t *st) {
        if (!st)
                return;
        ov_clear(st);
        kp_free(st->slots);
        /* Column family handles go before the DB. */
        rocksdb_column_family_handle_destroy(st->cf_data);
        rocksdb_column_family_handle_destroy(st->cf_meta);
        rocksdb_close(st->db);
        rocksdb_readoptions_destroy(st->ropts);
        rocksdb_writeoptions_destroy(st->wopts);
        KP_DEBUG("state store %s closed", st->path);
        kp_free(st->path);
        kp_free(st);
}

kp_err_t kp_store_wipe(const char *path, char *errstr, size_t errstr_size) {
        if (!path || !*path) {
                set_err(errstr, errstr_size, "state store wipe: no path");
                return KP_ERR_INVALID_ARG;
        }
        if (remove_tree(path, errstr, errstr_size) == -1)
                return KP_ERR_IO;
        return KP_OK;
}

int64_t kp_store_checkpoint(const kp_store_t *st) {
        return atomic_load(&st->checkpoint);
}

kp_err_t kp_store_get(kp_store_t *st, const void *key, size_t klen, void **valp,
                      size_t *vlenp) {
        const kp_store_slot_t *s = ov_lookup(st, key, klen);

        if (!s)
                return kp_store_get_committed(st, key, klen, valp, vlenp);
        if (s->tombstone) {
                clear_out(valp, vlenp);
                return KP_ERR_NOT_FOUND;
        }
        copy_out(s->buf + s->klen, s->vlen, valp, vlenp);
        return KP_OK;
}

void kp_store_put(kp_store_t *st, const void *key, size_t klen, const void *val,
                  size_t vlen) {
        ov_set(st, key, klen, val, vlen, 0, 0);
}

void kp_store_delete(kp_store_t *st, const void *key, size_t klen) {
        ov_set(st, key, klen, NULL, 0, 1, 0);
}

void kp_store_write_local(kp_store_t *st, const void *key, size_t klen,
                          const void *val, size_t vlen) {
        ov_set(st, key, klen, val, val ? vlen : 0, val == NULL, 1);
}

size_t kp_store_overlay_count(const kp_store_t *st) {
        return st->count;
}

int kp_store_overlay_foreach(const kp_store_t *st, kp_store_overlay_cb *cb,
                             void *opaque) {
        for (size_t i = 0; i < st->cap; i++) {
                const kp_store_slot_t *s = &st->slots[i];
                if (!s->buf || s->local)
                        continue;
                /* A key written and deleted since the last commit that
                 * RocksDB does not hold either has nothing to delete on the
                 * changelog (kpay-inflight's entry of a payment that left
                 * flight in the transaction that brought it). */
                if (s->tombstone &&
                    kp_store_get_committed((kp_store_t *)st, s->buf, s->klen,
                                           NULL, NULL) == KP_ERR_NOT_FOUND)
                        continue;
                int r =
                    cb(s->buf, s->klen, s->tombstone ? NULL : s->buf + s->klen,
                       s->tombstone ? 0 : s->vlen, opaque);
                if (r)
                        return r;
        }
        return 0;
}

kp_err_t kp_store_commit(kp_store_t *st, int64_t checkpoint, char *errstr,
                         size_t errstr_size) {
        rocksdb_writebatch_t *wb;
        unsigned char cpbuf[8];
        char *err = NULL;
        size_t i;

        if (!st->count && checkpoint == atomic_load(&st->checkpoint))
                return KP_OK;

        wb = rocksdb_writebatch_create();
        for (i = 0; i < st->cap; i++) {
                const kp_store_slot_t *s = &st->slots[i];
                if (!s->buf)
                        continue;
                if (s->tombstone)
                        rocksdb_writebatch_delete_cf(wb, st->cf_data, s->buf,
                                                     s->klen);
                else
                        rocksdb_writebatch_put_cf(wb, st->cf_data, s->buf,
                                                  s->klen, s->buf + s->klen,
                                                  s->vlen);
        }
        encode_checkpoint(checkpoint, cpbuf);
        rocksdb_writebatch_put_cf(wb, st->cf_meta, KP_STORE_CHECKPOINT_KEY,
                                  strlen(KP_STORE_CHECKPOINT_KEY),
                                  (const char *)cpbuf, sizeof(cpbuf));
        rocksdb_write(st->db, st->wopts, wb, &err);
        rocksdb_writebatch_destroy(wb);
        if (err) {
                set_err(errstr, errstr_size, "%s: commit: %s", st->path, err);
                rocksdb_free(err);
                return KP_ERR_STORE;
        }
        ov_clear(st);
        atomic_store(&st->checkpoint, checkpoint);
        return KP_OK;
}

void kp_store_rollback(kp_store_t *st) {
        ov_clear(st);
}

kp_err_t kp_store_get_committed(kp_store_t *st, const void *key, size_t klen,
                                void **valp, size_t *vlenp) {
        rocksdb_pinnableslice_t *ps;
        char *err = NULL;
        const char *v;
        size_t vlen;

        ps = rocksdb_get_pinned_cf(st->db, st->ropts, st->cf_data, key, klen,
                                   &err);
        if (err) {
                KP_ERROR("state store %s: get: %s", st->path, err);
                rocksdb_free(err);
                clear_out(valp, vlenp);
                return KP_ERR_STORE;
        }
        if (!ps) {
                clear_out(valp, vlenp);
                return KP_ERR_NOT_FOUND;
        }
        v = rocksdb_pinnableslice_value(ps, &vlen);
        copy_out(v, vlen, valp, vlenp);
        rocksdb_pinnableslice_destroy(ps);
        return KP_OK;
}

kp_err_t kp_store_scan_committed(kp_store_t *st, const void *after,
                                 size_t after_len, kp_store_scan_cb *cb,
                                 void *opaque) {
        rocksdb_iterator_t *it;
        char *err = NULL;

        if (!cb)
                return KP_ERR_INVALID_ARG;

        it = rocksdb_create_iterator_cf(st->db, st->ropts, st->cf_data);
        if (after) {
                rocksdb_iter_seek(it, after, after_len);
                if (rocksdb_iter_valid(it)) {
                        size_t klen;
                        const char *k = rocksdb_iter_key(it, &klen);
                        if (klen == after_len &&
                            (klen == 0 || !memcmp(k, after, klen)))
                                rocksdb_iter_next(it);
                }
        } else {
                rocksdb_iter_seek_to_first(it);
        }

        for (; rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
                size_t klen, vlen;
                const char *k = rocksdb_iter_key(it, &klen);
                const char *v = rocksdb_iter_value(it, &vlen);
                if (cb(k, klen, v, vlen, opaque))
                        break;
        }

        rocksdb_iter_get_error(it, &err);
        rocksdb_iter_destroy(it);
        if (err) {
                KP_ERROR("state store %s: scan: %s", st->path, err);
                rocksdb_free(err);
                return KP_ERR_STORE;
        }
        return KP_OK;
}

uint64_t kp_store_estimate_keys(kp_store_t *st) {
        uint64_t n = 0;

        if (rocksdb_property_int_cf(st->db, st->cf_data,
                                    "rocksdb.estimate-num-keys", &n) != 0)
                return 0;
        return n;
}
