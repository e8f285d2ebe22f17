/* kp_store_wbm.cc: what the C API of RocksDB 7.8 does not expose, for
 * kp_store.c: the WriteBufferManager, and an info logger of our own. The
 * only C++ in kpay: keep it small, and let no exception cross into C. */
#include "kp_store_wbm.h"

#include <cstdarg>
#include <cstdio>
#include <exception>
#include <memory>

#include <rocksdb/cache.h>
#include <rocksdb/env.h>
#include <rocksdb/options.h>
#include <rocksdb/write_buffer_manager.h>


/* The C API's handles are opaque structs wrapping the C++ objects. To reach
 * those objects we re-declare the two wrappers we need exactly as RocksDB's
 * db/c.cc defines them (RocksDB 7.8.3; they have had this form since the C
 * API began). The definitions must stay identical to the library's, or the
 * layout would differ: if a RocksDB upgrade changes them, change them here,
 * or better, switch to rocksdb_write_buffer_manager_* once the C API has it
 * (RocksDB 8.x). */
extern "C" {
struct rocksdb_options_t {
        rocksdb::Options rep;
};
struct rocksdb_cache_t {
        std::shared_ptr<rocksdb::Cache> rep;
};
}

struct kp_store_wbm_s {
        std::shared_ptr<rocksdb::WriteBufferManager> rep;
};

static void set_errstr(char *errstr, size_t errstr_size, const char *what,
                       const char *part = "write buffer manager") {
        if (errstr && errstr_size)
                std::snprintf(errstr, errstr_size, "%s: %s", part, what);
}

extern "C" kp_store_wbm_t *kp_store_wbm_new(size_t write_buffer_bytes,
                                            rocksdb_cache_t *cache,
                                            char *errstr, size_t errstr_size) {
        try {
                auto wbm = std::make_unique<kp_store_wbm_s>();
                wbm->rep = std::make_shared<rocksdb::WriteBufferManager>(
                    write_buffer_bytes,
                    cache ? cache->rep : std::shared_ptr<rocksdb::Cache>());
                return wbm.release();
        } catch (const std::exception &e) {
                set_errstr(errstr, errstr_size, e.what());
        } catch (...) {
                set_errstr(errstr, errstr_size, "unknown C++ exception");
        }
        return nullptr;
}

extern "C" int kp_store_wbm_set(rocksdb_options_t *opts, kp_store_wbm_t *wbm,
                                char *errstr, size_t errstr_size) {
        try {
                opts->rep.write_buffer_manager = wbm->rep;
                return 0;
        } catch (const std::exception &e) {
                set_errstr(errstr, errstr_size, e.what());
        } catch (...) {
                set_errstr(errstr, errstr_size, "unknown C++ exception");
        }
        return -1;
}

extern "C" void kp_store_wbm_destroy(kp_store_wbm_t *wbm) {
        delete wbm;
}

namespace {
/* RocksDB's info log, written as the daemon's own log lines: its warnings
 * and errors at WARN and ERROR, everything else (flush and compaction
 * reports, option dumps, the periodic statistics) only at --log-level
 * debug. It replaces a LOG file per store and partition, each with its own
 * 64 KiB write buffer (2.3 MiB of kpay-inflight's heap for 36 stores). A
 * line above the daemon's --log-level costs no formatting. */
class KpLogger : public rocksdb::Logger {
      public:
        KpLogger() : rocksdb::Logger(rocksdb::InfoLogLevel::DEBUG_LEVEL) {}

        using rocksdb::Logger::Logv;
        void Logv(const char *format, va_list ap) override {
                Logv(rocksdb::InfoLogLevel::INFO_LEVEL, format, ap);
        }
        void Logv(const rocksdb::InfoLogLevel level, const char *format,
                  va_list ap) override {
                kp_store_log_level_t kl;
                switch (level) {
                case rocksdb::InfoLogLevel::WARN_LEVEL:
                        kl = KP_STORE_LOG_WARN;
                        break;
                case rocksdb::InfoLogLevel::ERROR_LEVEL:
                case rocksdb::InfoLogLevel::FATAL_LEVEL:
                        kl = KP_STORE_LOG_ERROR;
                        break;
                default:
                        kl = KP_STORE_LOG_DEBUG;
                        break;
                }
                if (!kp_store_log_enabled(kl))
                        return;
                char line[1024];
                std::vsnprintf(line, sizeof(line), format, ap);
                kp_store_log(kl, line);
        }
};
} // namespace

extern "C" int kp_store_logger_set(rocksdb_options_t *opts, char *errstr,
                                   size_t errstr_size) {
        try {
                /* One for the process: every store logs through it. */
                static const std::shared_ptr<rocksdb::Logger> logger =
                    std::make_shared<KpLogger>();
                opts->rep.info_log = logger;
                return 0;
        } catch (const std::exception &e) {
                set_errstr(errstr, errstr_size, e.what(), "info logger");
        } catch (...) {
                set_errstr(errstr, errstr_size, "unknown C++ exception",
                           "info logger");
        }
        return -1;
}
