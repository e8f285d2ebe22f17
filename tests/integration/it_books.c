/* The books of a running pipeline (it_books.h). */
#include "it_books.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "it_util.h"

static int64_t add_checked(int64_t a, int64_t b, const char *what) {
        int64_t r;
        if (__builtin_add_overflow(a, b, &r))
                fail_msg("%s: the sum overflows int64", what);
        return r;
}

/* An amount as JSON: an integer, or a decimal string (amounts that may
 * exceed 2^53 are written as strings). Fails the test for anything else
 * or for a value outside int64 (no test sum comes near it). */
static int64_t amount_value(const json_t *v, const char *what) {
        if (json_is_integer(v))
                return json_integer_value(v);
        const char *s = json_string_value(v);
        if (s && *s) {
                char *end;
                errno       = 0;
                long long n = strtoll(s, &end, 10);
                if (!*end && errno != ERANGE)
                        return n;
        }
        char *dump = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        fail_msg("%s: %s is not an int64 amount", what, dump ? dump : "?");
        return 0; /* not reached */
}

int64_t it_books_amount(const json_t *value, const char *field,
                        const char *currency) {
        /* One currency per deployment: "balance": 12. */
        json_t *f = json_object_get(value, field);
        if (f && !json_is_object(f))
                return amount_value(f, field);
        /* Per currency (decision D1): "balances": {"USD": "12"}; also
         * accepted under the singular name. */
        if (!f) {
                char plural[128];
                snprintf(plural, sizeof(plural), "%ss", field);
                f = json_object_get(value, plural);
        }
        if (json_is_object(f)) {
                json_t *c = json_object_get(f, currency);
                return c ? amount_value(c, field) : 0;
        }
        /* Absent is an error too: a renamed field must not read as 0. */
        char *dump = json_dumps(value, JSON_COMPACT);
        fail_msg("%s is neither an amount nor currency -> amount in %s", field,
                 dump ? dump : "?");
        return 0; /* not reached */
}

void it_books_outcomes(const char *topic, const char *id_prefix,
                       const char *currency, it_outcomes_t *o) {
        memset(o, 0, sizeof(*o));
        json_t *seen = json_object(); /* id -> count */
        it_rec_t *recs;
        size_t cnt  = it_read_all(topic, "read_committed", &recs);
        size_t plen = id_prefix ? strlen(id_prefix) : 0;
        for (size_t i = 0; i < cnt; i++) {
                json_error_t jerr;
                json_t *p =
                    recs[i].value ? json_loads(recs[i].value, 0, &jerr) : NULL;
                if (!p)
                        fail_msg("outcome at %s [%d] @%lld is not JSON: %s",
                                 topic, (int)recs[i].partition,
                                 (long long)recs[i].offset,
                                 recs[i].value ? recs[i].value : "(null)");
                const char *id = json_string_value(json_object_get(p, "id"));
                const char *st = json_string_value(json_object_get(p, "state"));
                const char *cur =
                    json_string_value(json_object_get(p, "currency"));
                json_t *amt = json_object_get(p, "amount");
                if (!id || !st || !json_is_integer(amt))
                        fail_msg("outcome without id, state or amount: %s",
                                 recs[i].value);
                if (id_prefix && strncmp(id, id_prefix, plen)) {
                        json_decref(p);
                        continue;
                }
                if (cur && strcmp(cur, currency))
                        fail_msg("outcome %s in %s, not %s", id, cur, currency);
                json_t *n  = json_object_get(seen, id);
                int64_t nn = n ? json_integer_value(n) + 1 : 1;
                json_object_set_new(seen, id, json_integer(nn));
                if (nn == 2) {
                        if (!o->multiple)
                                snprintf(o->first_multiple,
                                         sizeof(o->first_multiple), "%s", id);
                        o->multiple++;
                }
                o->total++;
                if (!strcmp(st, "COMPLETE")) {
                        o->complete++;
                        o->complete_amount =
                            add_checked(o->complete_amount,
                                        json_integer_value(amt), "COMPLETE");
                } else if (!strcmp(st, "REJECTED")) {
                        o->rejected++;
                        o->rejected_amount =
                            add_checked(o->rejected_amount,
                                        json_integer_value(amt), "REJECTED");
                } else {
                        fail_msg("outcome %s has state %s", id, st);
                }
                json_decref(p);
        }
        o->ids = json_object_size(seen);
        json_decref(seen);
        it_free_recs(recs, cnt);
}

json_t *it_books_balances(const char *const *endpoints, size_t cnt,
                          const char *currency) {
        json_t *merged = json_object();
        for (size_t e = 0; e < cnt; e++) {
                json_t *items = it_store_items(endpoints[e], "balances");
                size_t i;
                json_t *it;
                json_array_foreach(items, i, it) {
                        const char *k =
                            json_string_value(json_object_get(it, "key"));
                        if (!k)
                                fail_msg("a balance without a key");
                        if (json_object_get(merged, k))
                                fail_msg("account %s is served twice", k);
                        int64_t b = it_books_amount(
                            json_object_get(it, "value"), "balance", currency);
                        json_object_set_new(merged, k, json_integer(b));
                }
                json_decref(items);
        }
        return merged;
}

int64_t it_books_store_sum(const char *const *endpoints, size_t cnt,
                           const char *store, const char *key_prefix,
                           const char *field, const char *currency) {
        int64_t sum = 0;
        size_t plen = key_prefix ? strlen(key_prefix) : 0;
        for (size_t e = 0; e < cnt; e++) {
                json_t *items = it_store_items(endpoints[e], store);
                size_t i;
                json_t *it;
                json_array_foreach(items, i, it) {
                        const char *k =
                            json_string_value(json_object_get(it, "key"));
                        if (!k || (key_prefix && strncmp(k, key_prefix, plen)))
                                continue;
                        sum = add_checked(
                            sum,
                            it_books_amount(json_object_get(it, "value"), field,
                                            currency),
                            field);
                }
                json_decref(items);
        }
        return sum;
}
