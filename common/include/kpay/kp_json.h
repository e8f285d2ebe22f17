/**
 * @file kp_json.h
 * @brief Small JSON records of int64 fields (per-partition totals and the
 *        like), decoded strictly and encoded in a fixed field order.
 */
#ifndef KPAY_KP_JSON_H
#define KPAY_KP_JSON_H

#include <stddef.h>

#include "kpay/kp_err.h"

/** One int64_t field of a struct: its JSON name and offsetof(). */
typedef struct kp_json_field_s {
        const char *name;
        size_t offset;
} kp_json_field_t;

/**
 * @brief Decodes a JSON object in which every field of @p fields is a JSON
 *        integer (other keys are ignored, for forward compatibility) into
 *        the int64_t members of the struct at @p out.
 * @param struct_size sizeof the struct; @p out is left unchanged on error.
 * @returns KP_OK, or KP_ERR_PARSE for input that is not such an object
 *          (not JSON, duplicate keys, a field missing or not an integer).
 * @locality any thread
 */
kp_err_t kp_json_decode_int64s(const void *buf, size_t len,
                               const kp_json_field_t *fields, size_t cnt,
                               void *out, size_t struct_size);

/**
 * @brief Encodes the int64_t members of the struct at @p in as a compact
 *        JSON object, in the order of @p fields.
 * @returns a kp_malloc()ed string; *lenp its length (when not NULL).
 */
char *kp_json_encode_int64s(const kp_json_field_t *fields, size_t cnt,
                            const void *in, size_t *lenp);

typedef struct json_t json_t;

/**
 * @brief kp_json_decode_int64s() on an object already parsed: reads every
 *        field of @p fields from @p obj (a JSON integer each) into the
 *        struct at @p out, which is left unchanged on error.
 * @returns KP_OK, or KP_ERR_PARSE (@p obj not an object, a field missing or
 *          not an integer).
 * @locality any thread
 */
kp_err_t kp_json_get_int64s(const json_t *obj, const kp_json_field_t *fields,
                            size_t cnt, void *out, size_t struct_size);

/**
 * @brief Sets the int64_t members of the struct at @p in on the object
 *        @p obj, as JSON integers, in the order of @p fields (aborts when
 *        out of memory, like every kp_mem allocation).
 * @locality any thread
 */
void kp_json_set_int64s(json_t *obj, const kp_json_field_t *fields, size_t cnt,
                        const void *in);

/**
 * @brief Dumps @p v as compact JSON into a kp_malloc()ed string and drops
 *        the reference (takes ownership of @p v). A NULL @p v (what a
 *        jansson constructor returns when out of memory) or a failed dump
 *        aborts, like every kp_mem allocation.
 * @locality any thread
 */
char *kp_json_dump(json_t *v);

/**
 * @brief json_object_set_new(@p obj, @p key, @p val), aborting like every
 *        kp_mem allocation when @p val is NULL (a jansson constructor out of
 *        memory) or the set fails.
 * @locality any thread
 */
void kp_json_set(json_t *obj, const char *key, json_t *val);

/** @brief json_array_append_new(), aborting likewise. */
void kp_json_append(json_t *arr, json_t *val);

#endif /* KPAY_KP_JSON_H */
