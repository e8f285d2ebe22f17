/* kp_buf.c: a growing output buffer (kp_buf.h). */
#include "kpay/kp_buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kpay/kp_log.h"
#include "kpay/kp_mem.h"

void kp_buf_reserve(kp_buf_t *b, size_t n) {
        if (b->len + n + 1 <= b->cap)
                return;
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->len + n + 1)
                cap *= 2;
        b->p   = kp_realloc(b->p, cap);
        b->cap = cap;
}

void kp_buf_add(kp_buf_t *b, const char *s, size_t n) {
        kp_buf_reserve(b, n);
        memcpy(b->p + b->len, s, n);
        b->len += n;
        b->p[b->len] = '\0';
}

void kp_buf_puts(kp_buf_t *b, const char *s) {
        kp_buf_add(b, s, strlen(s));
}

void kp_buf_printf(kp_buf_t *b, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(NULL, 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
                KP_FATAL("kp_buf_printf: vsnprintf failed on \"%s\"", fmt);
                abort();
        }
        kp_buf_reserve(b, (size_t)n);
        va_start(ap, fmt);
        vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
        va_end(ap);
        b->len += (size_t)n;
}

void kp_buf_int(kp_buf_t *b, int64_t v) {
        char tmp[24];
        size_t i   = sizeof(tmp);
        uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
        do {
                tmp[--i] = (char)('0' + u % 10);
                u /= 10;
        } while (u);
        if (v < 0)
                tmp[--i] = '-';
        kp_buf_add(b, tmp + i, sizeof(tmp) - i);
}

void kp_buf_json_str(kp_buf_t *b, const char *s) {
        /* jansson's forms (\n ... or \u001F), so that both write the
         * same bytes. */
        static const char hex[]           = "0123456789ABCDEF";
        static const char esc_short[0x20] = {['\b'] = 'b',
                                             ['\f'] = 'f',
                                             ['\n'] = 'n',
                                             ['\r'] = 'r',
                                             ['\t'] = 't'};
        kp_buf_add(b, "\"", 1);
        for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
                const unsigned char *run = p;
                while (*p && *p != '"' && *p != '\\' && *p >= 0x20)
                        p++;
                kp_buf_add(b, (const char *)run, (size_t)(p - run));
                if (!*p)
                        break;
                if (*p == '"' || *p == '\\') {
                        char e[2] = {'\\', (char)*p};
                        kp_buf_add(b, e, 2);
                } else if (esc_short[*p]) {
                        char e[2] = {'\\', esc_short[*p]};
                        kp_buf_add(b, e, 2);
                } else {
                        char e[6] = {'\\', 'u',          '0',
                                     '0',  hex[*p >> 4], hex[*p & 15]};
                        kp_buf_add(b, e, 6);
                }
        }
        kp_buf_add(b, "\"", 1);
}

char *kp_buf_take(kp_buf_t *b, size_t *lenp) {
        kp_buf_reserve(b, 0);
        b->p[b->len] = '\0';
        char *s      = b->p;
        if (lenp)
                *lenp = b->len;
        memset(b, 0, sizeof(*b));
        return s;
}

void kp_buf_clear(kp_buf_t *b) {
        kp_free(b->p);
        memset(b, 0, sizeof(*b));
}
