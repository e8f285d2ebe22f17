/* kp_mem.c: allocation wrappers that abort on out-of-memory. */
#include "kpay/kp_mem.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static atomic_int_fast64_t live_allocations;

static void oom(size_t size) {
        fprintf(stderr, "level=fatal msg=\"out of memory\" size=%zu\n", size);
        abort();
}

void *kp_malloc(size_t size) {
        void *p = malloc(size ? size : 1);
        if (!p)
                oom(size);
        atomic_fetch_add(&live_allocations, 1);
        return p;
}

void *kp_calloc(size_t nmemb, size_t size) {
        void *p = calloc(nmemb ? nmemb : 1, size ? size : 1);
        if (!p)
                oom(nmemb * size);
        atomic_fetch_add(&live_allocations, 1);
        return p;
}

void *kp_realloc(void *ptr, size_t size) {
        void *p = realloc(ptr, size ? size : 1);
        if (!p)
                oom(size);
        if (!ptr)
                atomic_fetch_add(&live_allocations, 1);
        return p;
}

char *kp_strdup(const char *s) {
        if (!s)
                return NULL;
        return kp_strndup(s, strlen(s));
}

char *kp_strndup(const char *s, size_t n) {
        size_t len = strnlen(s, n);
        char *p    = kp_malloc(len + 1);
        memcpy(p, s, len);
        p[len] = '\0';
        return p;
}

void kp_free(void *ptr) {
        if (!ptr)
                return;
        atomic_fetch_sub(&live_allocations, 1);
        free(ptr);
}

char *kp_asprintf(const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        int len = vsnprintf(NULL, 0, fmt, ap);
        va_end(ap);
        if (len < 0)
                oom(0);
        char *p = kp_malloc((size_t)len + 1);
        va_start(ap, fmt);
        vsnprintf(p, (size_t)len + 1, fmt, ap);
        va_end(ap);
        return p;
}

int64_t kp_mem_live_allocations(void) {
        return (int64_t)atomic_load(&live_allocations);
}
