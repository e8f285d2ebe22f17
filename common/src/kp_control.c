/* kp_control.c: the control plane's records (kp_control.h). */
#include "kpay/kp_control.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kpay/kp_json.h"
#include "kpay/kp_mem.h"

char *kp_control_status_to_json(const kp_control_status_t *st) {
        json_t *obj = json_pack(
            "{s:i, s:I, s:b, s:o, s:s, s:s, s:I}", "v", 1, "version",
            (json_int_t)st->version, "paused", st->paused, "rate_limit",
            st->rate_limit > 0 ? json_integer(st->rate_limit) : json_null(),
            "command", st->command, "actor", st->actor, "ts",
            (json_int_t)st->ts);
        return kp_json_dump(obj);
}

/* Copies string field @p name of @p obj into @p dst (cut to fit). */
static int copy_str(json_t *obj, const char *name, char *dst, size_t size) {
        const char *s = json_string_value(json_object_get(obj, name));
        if (!s)
                return -1;
        snprintf(dst, size, "%s", s);
        return 0;
}

kp_err_t kp_control_status_from_json(const char *json, size_t len,
                                     kp_control_status_t *out, char *errstr,
                                     size_t errstr_size) {
        json_error_t jerr;
        memset(out, 0, sizeof(*out));
        json_t *o =
            json ? json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr) : NULL;
        const char *why = NULL;
        json_t *v, *ver, *paused, *rate, *ts;
        if (!json_is_object(o))
                why = "not a JSON object";
        else if (!json_is_integer(v = json_object_get(o, "v")) ||
                 json_integer_value(v) != 1)
                why = "\"v\" must be 1";
        else if (!json_is_integer(ver = json_object_get(o, "version")) ||
                 json_integer_value(ver) < 1)
                why = "\"version\" must be an integer >= 1";
        else if (!json_is_boolean(paused = json_object_get(o, "paused")))
                why = "\"paused\" must be a boolean";
        else if (!(json_is_null(rate = json_object_get(o, "rate_limit")) ||
                   (json_is_integer(rate) && json_integer_value(rate) > 0 &&
                    json_integer_value(rate) <= KP_CONTROL_RATE_MAX)))
                why = "\"rate_limit\" must be null or an integer in range";
        else if (copy_str(o, "command", out->command, sizeof(out->command)) ||
                 copy_str(o, "actor", out->actor, sizeof(out->actor)))
                why = "\"command\" and \"actor\" must be strings";
        else if (!json_is_integer(ts = json_object_get(o, "ts")))
                why = "\"ts\" must be an integer";
        if (why) {
                snprintf(errstr, errstr_size, "ControlStatus: %s", why);
                json_decref(o);
                memset(out, 0, sizeof(*out));
                return KP_ERR_PARSE;
        }
        out->version    = json_integer_value(ver);
        out->paused     = json_is_true(paused);
        out->rate_limit = json_is_null(rate) ? 0 : json_integer_value(rate);
        out->ts         = json_integer_value(ts);
        json_decref(o);
        return KP_OK;
}

void kp_control_report_clear(kp_control_report_t *r) {
        if (!r)
                return;
        kp_money_clear(&r->inflight_amounts);
        memset(r, 0, sizeof(*r));
}

char *kp_control_report_to_json(const kp_control_report_t *r) {
        return kp_json_dump(json_pack(
            "{s:I, s:b, s:f, s:I, s:o}", "control_version",
            (json_int_t)r->version, "paused", r->paused, "rate_share",
            r->rate_share, "inflight_count", (json_int_t)r->inflight_count,
            "inflight_amounts",
            kp_money_to_json(&r->inflight_amounts, KP_MONEY_JSON_STRING)));
}

kp_err_t kp_control_report_from_json(const char *json,
                                     kp_control_report_t *out) {
        json_error_t jerr;
        memset(out, 0, sizeof(*out));
        json_t *o      = json ? json_loads(json, 0, &jerr) : NULL;
        json_t *ver    = json_object_get(o, "control_version");
        json_t *paused = json_object_get(o, "paused");
        json_t *share  = json_object_get(o, "rate_share");
        json_t *cnt    = json_object_get(o, "inflight_count");
        json_t *amt    = json_object_get(o, "inflight_amounts");
        kp_err_t err   = KP_ERR_PARSE;
        if (json_is_object(o) && json_is_integer(ver) &&
            json_is_boolean(paused) && json_is_number(share) &&
            json_is_integer(cnt) &&
            !kp_money_from_json(amt, KP_MONEY_JSON_STRING,
                                &out->inflight_amounts)) {
                out->version        = json_integer_value(ver);
                out->paused         = json_is_true(paused);
                out->rate_share     = json_number_value(share);
                out->inflight_count = json_integer_value(cnt);
                err                 = KP_OK;
        }
        json_decref(o);
        return err;
}

double kp_control_rate_share(int64_t total, int owned,
                             int32_t partition_count) {
        if (total <= 0)
                return 0;
        if (partition_count <= 0)
                return (double)total;
        if (owned <= 0)
                owned = 1;
        if (owned > partition_count)
                owned = partition_count;
        return (double)total * (double)owned / (double)partition_count;
}
