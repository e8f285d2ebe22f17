/* kp_store_wbm.cc: what the C API of RocksDB 7.8 does not expose, for
 * kp_store.c: the WriteBufferManager, and an info logger of our own. The
 * only C++ in kpay: keep it small, and let no exception cross into C. */
#include "kp_store_wbm.h"

#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <exception>
#include <memory>
#include <new>
#include <string>
#include <utility>

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
/* RocksDB's info log of one store, written as the daemon's own log lines
 * (`rocksdb: <store>/<partition>: ...`): its warnings and errors at WARN
 * and ERROR, everything else (flush and compaction reports, option dumps,
 * the periodic statistics) only at --log-level debug. It replaces a LOG
 * file per store and partition, each with its own 64 KiB write buffer
 * (2.3 MiB of kpay-inflight's heap for 36 stores). GetInfoLogLevel()
 * follows the daemon's level, so RocksDB skips what would be dropped. */
class KpLogger : public rocksdb::Logger {
      public:
        explicit KpLogger(std::string name)
            : rocksdb::Logger(rocksdb::InfoLogLevel::DEBUG_LEVEL),
              name_(std::move(name)) {}

        rocksdb::InfoLogLevel GetInfoLogLevel() const override {
                if (kp_store_log_enabled(KP_STORE_LOG_DEBUG))
                        return rocksdb::InfoLogLevel::DEBUG_LEVEL;
                if (kp_store_log_enabled(KP_STORE_LOG_WARN))
                        return rocksdb::InfoLogLevel::WARN_LEVEL;
                return rocksdb::InfoLogLevel::ERROR_LEVEL;
        }

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
                /* Most lines fit; a statistics dump or an event's JSON may
                 * not, and is formatted again into the heap. */
                char small[1024];
                va_list again;
                va_copy(again, ap);
                int n       = std::vsnprintf(small, sizeof(small), format, ap);
                char *text  = small;
                char *large = nullptr;
                if (n >= (int)sizeof(small) &&
                    (large = new (std::nothrow) char[(size_t)n + 1])) {
                        std::vsnprintf(large, (size_t)n + 1, format, again);
                        text = large;
                }
                va_end(again);
                if (n >= 0) {
                        /* One kpay line per line of RocksDB's. */
                        for (char *p = text; p;) {
                                char *nl = std::strchr(p, '\n');
                                if (nl)
                                        *nl = '\0';
                                if (*p)
                                        kp_store_log(kl, name_.c_str(), p);
                                p = nl ? nl + 1 : nullptr;
                        }
                }
                delete[] large;
        }

      private:
        const std::string name_;
};

/* "<store>/<partition>": the last two parts of a store's path. */
std::string store_name(const char *path) {
        std::string p(path);
        while (p.size() > 1 && p.back() == '/')
                p.pop_back();
        size_t last = p.rfind('/');
        if (last == std::string::npos || last == 0)
                return p;
        size_t prev = p.rfind('/', last - 1);
        return prev == std::string::npos ? p : p.substr(prev + 1);
}
} // namespace

extern "C" int kp_store_logger_set(rocksdb_options_t *opts, const char *path,
                                   char *errstr, size_t errstr_size) {
        try {
                opts->rep.info_log =
                    std::make_shared<KpLogger>(store_name(path));
                return 0;
        } catch (const std::exception &e) {
                set_errstr(errstr, errstr_size, e.what(), "info logger");
        } catch (...) {
                set_errstr(errstr, errstr_size, "unknown C++ exception",
                           "info logger");
        }
        return -1;
}
