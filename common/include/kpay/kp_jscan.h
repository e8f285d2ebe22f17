/**
 * @file kp_jscan.h
 * @brief A fast, allocation-free reader of the simple JSON objects the hot
 *        path carries (payments, account records): members whose values
 *        are plain strings, integers, null, true, false or such objects.
 *
 * It is the first try, not a JSON parser: whatever it does not know for
 * certain to read exactly as jansson would (an escape sequence or any byte
 * outside printable ASCII in a string, a real number, an integer of more
 * than 18 digits, an array, nesting beyond KP_JSCAN_DEPTH_MAX, anything
 * malformed) makes it answer KP_JSCAN_FALLBACK, and the caller parses the
 * record again with jansson, which then decides (and words the error). So
 * a record it accepts means what jansson would have made of it, and every
 * other record takes the old path unchanged. The reader does NOT notice
 * a repeated key (it keeps no record of the keys it read): the caller
 * must, and fall back on one (jansson refuses them), or it would accept
 * what jansson rejects.
 */
#ifndef KPAY_KP_JSCAN_H
#define KPAY_KP_JSCAN_H

#include <stddef.h>
#include <stdint.h>

/** The deepest object nesting read (the top-level object is depth 1). */
#define KP_JSCAN_DEPTH_MAX 2

/** What a member's value is. */
typedef enum kp_jscan_type_e {
        KP_JSCAN_NULL,
        KP_JSCAN_TRUE,
        KP_JSCAN_FALSE,
        KP_JSCAN_STRING, /**< s, len: printable ASCII without '"' or '\\' */
        KP_JSCAN_INT,    /**< i */
        KP_JSCAN_OBJECT, /**< its members follow, then KP_JSCAN_END */
} kp_jscan_type_t;

/** kp_jscan_next()'s answers. */
typedef enum kp_jscan_res_e {
        KP_JSCAN_FALLBACK = -1, /**< not simple: parse with jansson */
        KP_JSCAN_END      = 0,  /**< the current object ended */
        KP_JSCAN_MEMBER   = 1,  /**< *m holds the next member */
} kp_jscan_res_t;

/** One member: its key (not NUL-terminated) and value. */
typedef struct kp_jscan_member_s {
        const char *key;
        size_t klen;
        kp_jscan_type_t type;
        const char *s; /**< KP_JSCAN_STRING: the bytes (not NUL-terminated) */
        size_t len;
        int64_t i; /**< KP_JSCAN_INT */
        int depth; /**< 1 for the top-level object's members */
} kp_jscan_member_t;

/** The reader's position; set it up with kp_jscan_begin(). */
typedef struct kp_jscan_s {
        const char *p;
        const char *end;
        int depth; /**< objects open */
        int first; /**< no member read yet in the innermost object */
} kp_jscan_t;

/**
 * @brief Starts reading the object in @p buf (@p len bytes).
 * @returns 0, or KP_JSCAN_FALLBACK when it does not start with an object.
 * @locality any thread
 */
int kp_jscan_begin(kp_jscan_t *js, const void *buf, size_t len);

/**
 * @brief Reads the next member of the innermost open object into @p m.
 *        When the top-level object ends, it also checks that only
 *        whitespace follows (else KP_JSCAN_FALLBACK).
 * @returns KP_JSCAN_MEMBER, KP_JSCAN_END (one object closed; after the
 *          top-level one the input is done) or KP_JSCAN_FALLBACK.
 * @locality any thread
 */
kp_jscan_res_t kp_jscan_next(kp_jscan_t *js, kp_jscan_member_t *m);

/**
 * @brief Compares the member's key with the NUL-terminated @p name.
 * @returns 1 if they are equal, else 0.
 * @locality any thread
 */
int kp_jscan_key_is(const kp_jscan_member_t *m, const char *name);

#endif /* KPAY_KP_JSCAN_H */
