/* kp_err.c: the string tables behind kp_err_t. */
#include "kpay/kp_err.h"

#include <stdarg.h>
#include <stdio.h>

const char *kp_err2str(kp_err_t err) {
        switch (err) {
#define KP__ERR_STR(name, value, desc)                                         \
        case KP_##name:                                                        \
                return desc;
                KP_ERR_TABLE(KP__ERR_STR)
#undef KP__ERR_STR
        }
        return "Unknown error";
}

const char *kp_err2name(kp_err_t err) {
        switch (err) {
#define KP__ERR_NAME(name, value, desc)                                        \
        case KP_##name:                                                        \
                return #name;
                KP_ERR_TABLE(KP__ERR_NAME)
#undef KP__ERR_NAME
        }
        return "ERR_UNKNOWN";
}

kp_err_t kp_errstr_set(kp_err_t err, char *errstr, size_t errstr_size,
                       const char *fmt, ...) {
        va_list ap;
        if (!errstr || !errstr_size)
                return err;
        va_start(ap, fmt);
        vsnprintf(errstr, errstr_size, fmt, ap);
        va_end(ap);
        return err;
}
