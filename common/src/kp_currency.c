/* kp_currency.c: ISO 4217 minor-unit exponents and exact decimal amounts
 * (kp_currency.h). */
#include "kpay/kp_currency.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "kpay/kp_log.h"

/* ISO 4217 list one, codes with a minor unit, in byte order (binary
 * search). Exponent 0: BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND
 * VUV XAF XOF XPF; 3: BHD IQD JOD KWD LYD OMR TND; 4: CLF UYW; the rest 2. */
static const kp_currency_info_t table[] = {
    {"AED", 2}, {"AFN", 2}, {"ALL", 2}, {"AMD", 2}, {"AOA", 2}, {"ARS", 2},
    {"AUD", 2}, {"AWG", 2}, {"AZN", 2}, {"BAM", 2}, {"BBD", 2}, {"BDT", 2},
    {"BGN", 2}, {"BHD", 3}, {"BIF", 0}, {"BMD", 2}, {"BND", 2}, {"BOB", 2},
    {"BOV", 2}, {"BRL", 2}, {"BSD", 2}, {"BTN", 2}, {"BWP", 2}, {"BYN", 2},
    {"BZD", 2}, {"CAD", 2}, {"CDF", 2}, {"CHE", 2}, {"CHF", 2}, {"CHW", 2},
    {"CLF", 4}, {"CLP", 0}, {"CNY", 2}, {"COP", 2}, {"COU", 2}, {"CRC", 2},
    {"CUC", 2}, {"CUP", 2}, {"CVE", 2}, {"CZK", 2}, {"DJF", 0}, {"DKK", 2},
    {"DOP", 2}, {"DZD", 2}, {"EGP", 2}, {"ERN", 2}, {"ETB", 2}, {"EUR", 2},
    {"FJD", 2}, {"FKP", 2}, {"GBP", 2}, {"GEL", 2}, {"GHS", 2}, {"GIP", 2},
    {"GMD", 2}, {"GNF", 0}, {"GTQ", 2}, {"GYD", 2}, {"HKD", 2}, {"HNL", 2},
    {"HTG", 2}, {"HUF", 2}, {"IDR", 2}, {"ILS", 2}, {"INR", 2}, {"IQD", 3},
    {"IRR", 2}, {"ISK", 0}, {"JMD", 2}, {"JOD", 3}, {"JPY", 0}, {"KES", 2},
    {"KGS", 2}, {"KHR", 2}, {"KMF", 0}, {"KPW", 2}, {"KRW", 0}, {"KWD", 3},
    {"KYD", 2}, {"KZT", 2}, {"LAK", 2}, {"LBP", 2}, {"LKR", 2}, {"LRD", 2},
    {"LSL", 2}, {"LYD", 3}, {"MAD", 2}, {"MDL", 2}, {"MGA", 2}, {"MKD", 2},
    {"MMK", 2}, {"MNT", 2}, {"MOP", 2}, {"MRU", 2}, {"MUR", 2}, {"MVR", 2},
    {"MWK", 2}, {"MXN", 2}, {"MXV", 2}, {"MYR", 2}, {"MZN", 2}, {"NAD", 2},
    {"NGN", 2}, {"NIO", 2}, {"NOK", 2}, {"NPR", 2}, {"NZD", 2}, {"OMR", 3},
    {"PAB", 2}, {"PEN", 2}, {"PGK", 2}, {"PHP", 2}, {"PKR", 2}, {"PLN", 2},
    {"PYG", 0}, {"QAR", 2}, {"RON", 2}, {"RSD", 2}, {"RUB", 2}, {"RWF", 0},
    {"SAR", 2}, {"SBD", 2}, {"SCR", 2}, {"SDG", 2}, {"SEK", 2}, {"SGD", 2},
    {"SHP", 2}, {"SLE", 2}, {"SOS", 2}, {"SRD", 2}, {"SSP", 2}, {"STN", 2},
    {"SVC", 2}, {"SYP", 2}, {"SZL", 2}, {"THB", 2}, {"TJS", 2}, {"TMT", 2},
    {"TND", 3}, {"TOP", 2}, {"TRY", 2}, {"TTD", 2}, {"TWD", 2}, {"TZS", 2},
    {"UAH", 2}, {"UGX", 0}, {"USD", 2}, {"USN", 2}, {"UYI", 0}, {"UYU", 2},
    {"UYW", 4}, {"UZS", 2}, {"VED", 2}, {"VES", 2}, {"VND", 0}, {"VUV", 0},
    {"WST", 2}, {"XAF", 0}, {"XCD", 2}, {"XCG", 2}, {"XOF", 0}, {"XPF", 0},
    {"YER", 2}, {"ZAR", 2}, {"ZMW", 2}, {"ZWG", 2},
};
#define TABLE_CNT (sizeof(table) / sizeof(table[0]))

size_t kp_currency_count(void) {
        return TABLE_CNT;
}

const kp_currency_info_t *kp_currency_at(size_t i) {
        return i < TABLE_CNT ? &table[i] : NULL;
}

int kp_currency_exponent(const char *code) {
        size_t lo = 0, hi = TABLE_CNT;
        if (!code)
                return -1;
        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                int c      = strcmp(table[mid].code, code);
                if (c == 0)
                        return table[mid].exponent;
                if (c < 0)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return -1;
}

/* Appends digit @p d to @p v (non-negative): KP_ERR_OVERFLOW past
 * INT64_MAX. */
static kp_err_t push_digit(int64_t *v, int d) {
        if (__builtin_mul_overflow(*v, 10, v) ||
            __builtin_add_overflow(*v, d, v))
                return KP_ERR_OVERFLOW;
        return KP_OK;
}

kp_err_t kp_amount_parse(const char *s, size_t len, int exponent,
                         int64_t *out) {
        size_t i = 0, int_digits = 0, frac_digits = 0;
        int64_t v         = 0;
        kp_err_t overflow = KP_OK;

        if (exponent < 0 || exponent > KP_CURRENCY_EXPONENT_MAX)
                return KP_ERR_INVALID_ARG;
        if (!s)
                return KP_ERR_PARSE;
        for (; i < len && s[i] >= '0' && s[i] <= '9'; i++, int_digits++)
                if (!overflow)
                        overflow = push_digit(&v, s[i] - '0');
        /* One digit at least, and no leading zero but "0" itself. */
        if (int_digits == 0 || (s[0] == '0' && int_digits > 1))
                return KP_ERR_PARSE;
        if (i < len) {
                if (s[i] != '.')
                        return KP_ERR_PARSE;
                for (i++; i < len && s[i] >= '0' && s[i] <= '9';
                     i++, frac_digits++)
                        if (!overflow)
                                overflow = push_digit(&v, s[i] - '0');
                /* Something after the '.', all digits, none rounded. */
                if (frac_digits == 0 || i < len ||
                    frac_digits > (size_t)exponent)
                        return KP_ERR_PARSE;
        }
        /* Scale what the fraction left out: "12.3" in USD is 1230. */
        for (size_t k = frac_digits; k < (size_t)exponent && !overflow; k++)
                overflow = push_digit(&v, 0);
        if (overflow)
                return overflow;
        *out = v;
        return KP_OK;
}

size_t kp_amount_format(int64_t minor, int exponent, char *buf) {
        char digits[KP_AMOUNT_DEC_SIZE];
        size_t n = 0, len = 0;
        /* The magnitude, unsigned: -INT64_MIN does not exist. */
        uint64_t u =
            minor < 0 ? (uint64_t)0 - (uint64_t)minor : (uint64_t)minor;

        buf[0] = '\0';
        if (exponent < 0 || exponent > KP_CURRENCY_EXPONENT_MAX)
                return 0;
        do {
                digits[n++] = (char)('0' + (int)(u % 10));
                u /= 10;
        } while (u);
        /* At least one digit before the '.': 5 at exponent 2 is "0.05". */
        while (n < (size_t)exponent + 1)
                digits[n++] = '0';
        if (minor < 0)
                buf[len++] = '-';
        while (n) {
                if (n == (size_t)exponent && exponent > 0)
                        buf[len++] = '.';
                buf[len++] = digits[--n];
        }
        buf[len] = '\0';
        return len;
}

json_t *kp_currency_table_json(void) {
        json_t *o = json_object();
        if (!o)
                goto oom;
        for (size_t i = 0; i < TABLE_CNT; i++)
                if (json_object_set_new(o, table[i].code,
                                        json_integer(table[i].exponent)))
                        goto oom;
        return o;
oom:
        KP_FATAL("out of memory building JSON");
        abort();
}
