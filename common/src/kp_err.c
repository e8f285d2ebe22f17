/* kp_err.c: the string tables behind kp_err_t. */
#include "kpay/kp_err.h"

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
