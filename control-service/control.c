/* control.c: kpay-control's business logic (control.h). */
#include "control.h"

#include "kpay/kp_audit.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

const char *control_cmd2str(control_cmd_t cmd) {
        switch (cmd) {
        case CONTROL_CMD_PAUSE:
                return "pause";
        case CONTROL_CMD_RESUME:
                return "resume";
        case CONTROL_CMD_RATE_LIMIT:
                return "rate-limit";
        }
        return "unknown";
}

const char *control_state2str(control_state_t st) {
        switch (st) {
        case CONTROL_RUNNING:
                return "RUNNING";
        case CONTROL_PAUSED:
                return "PAUSED";
        case CONTROL_DRAINED:
                return "DRAINED";
        }
        return "UNKNOWN";
}

/* Checks the fields of a request object: only "reason" and, for a rate
 * limit, "payments_per_second". */
static kp_err_t check_fields(control_cmd_t cmd, json_t *o,
                             control_request_t *out, char *errstr,
                             size_t errstr_size) {
        const char *k;
        json_t *v;
        json_object_foreach(o, k, v) {
                if (!strcmp(k, "reason")) {
                        const char *s = json_string_value(v);
                        if (!s || strlen(s) >= sizeof(out->reason)) {
                                snprintf(errstr, errstr_size,
                                         "\"reason\" must be a string of at "
                                         "most %zu characters",
                                         sizeof(out->reason) - 1);
                                return KP_ERR_INVALID_ARG;
                        }
                        snprintf(out->reason, sizeof(out->reason), "%s", s);
                } else if (cmd != CONTROL_CMD_RATE_LIMIT ||
                           strcmp(k, "payments_per_second")) {
                        snprintf(errstr, errstr_size, "unknown field \"%.64s\"",
                                 k);
                        return KP_ERR_INVALID_ARG;
                }
        }
        return KP_OK;
}

/* The rate limit of a rate-limit request: null or 1..KP_CONTROL_RATE_MAX. */
static kp_err_t check_rate(json_t *o, control_request_t *out, char *errstr,
                           size_t errstr_size) {
        json_t *v = json_object_get(o, "payments_per_second");
        if (json_is_null(v)) {
                out->rate_limit = 0;
                return KP_OK;
        }
        if (!json_is_integer(v) || json_integer_value(v) < 1 ||
            json_integer_value(v) > KP_CONTROL_RATE_MAX) {
                snprintf(errstr, errstr_size,
                         "\"payments_per_second\" must be an integer in "
                         "1..%d, or null for no limit",
                         KP_CONTROL_RATE_MAX);
                return KP_ERR_INVALID_ARG;
        }
        out->rate_limit = json_integer_value(v);
        return KP_OK;
}

kp_err_t control_parse_request(control_cmd_t cmd, const char *body, size_t len,
                               control_request_t *out, char *errstr,
                               size_t errstr_size) {
        memset(out, 0, sizeof(*out));
        out->cmd = cmd;
        if ((!body || !len) && cmd != CONTROL_CMD_RATE_LIMIT)
                return KP_OK;
        json_error_t jerr;
        json_t *o =
            body ? json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr) : NULL;
        if (!o) {
                snprintf(errstr, errstr_size, "the body is not JSON: %s",
                         body ? jerr.text : "empty");
                return KP_ERR_PARSE;
        }
        kp_err_t err = KP_OK;
        if (!json_is_object(o)) {
                snprintf(errstr, errstr_size, "the body must be a JSON object");
                err = KP_ERR_INVALID_ARG;
        } else if (cmd == CONTROL_CMD_RATE_LIMIT &&
                   !json_object_get(o, "payments_per_second")) {
                snprintf(errstr, errstr_size,
                         "\"payments_per_second\" is required (null for no "
                         "limit)");
                err = KP_ERR_INVALID_ARG;
        }
        if (!err)
                err = check_fields(cmd, o, out, errstr, errstr_size);
        if (!err && cmd == CONTROL_CMD_RATE_LIMIT)
                err = check_rate(o, out, errstr, errstr_size);
        json_decref(o);
        return err;
}

int control_token_equal(const char *a, const char *b) {
        size_t la = strlen(a), lb = strlen(b);
        /* A fixed number of steps, so that the time tells neither the
         * token's length nor where the first difference is; longer
         * strings are never equal to a token (tokens are shorter). */
        size_t n   = CONTROL_TOKEN_CMP_LEN;
        unsigned d = (la != lb) | (la >= n) | (lb >= n);
        for (size_t i = 0; i < n; i++) {
                unsigned char ca = i < la ? (unsigned char)a[i] : 0;
                unsigned char cb = i < lb ? (unsigned char)b[i] : 0;
                d |= (unsigned)(ca ^ cb);
        }
        return d == 0;
}

int control_authorize(const char *token, const char *authorization) {
        static const char bearer[] = "Bearer ";
        if (!token || !*token)
                return 0;
        if (!authorization ||
            strncasecmp(authorization, bearer, sizeof(bearer) - 1))
                return 401;
        const char *t = authorization + sizeof(bearer) - 1;
        while (*t == ' ')
                t++;
        if (!*t)
                return 401;
        return control_token_equal(t, token) ? 0 : 403;
}

void control_actor(char *buf, size_t size, const char *header,
                   int authenticated) {
        kp_audit_actor(buf, size, header,
                       authenticated ? "token" : "anonymous");
}

void control_next(const kp_control_status_t *cur, const control_request_t *req,
                  const char *actor, int64_t now_ms,
                  kp_control_status_t *next) {
        *next         = *cur;
        next->version = cur->version + 1;
        memset(next->command, 0, sizeof(next->command));
        memset(next->actor, 0, sizeof(next->actor));
        if (req->cmd == CONTROL_CMD_PAUSE)
                next->paused = 1;
        else if (req->cmd == CONTROL_CMD_RESUME)
                next->paused = 0;
        else
                next->rate_limit = req->rate_limit;
        snprintf(next->command, sizeof(next->command), "%s",
                 control_cmd2str(req->cmd));
        snprintf(next->actor, sizeof(next->actor), "%s", actor);
        next->ts = now_ms;
}

/* a + b, saturated at INT64_MAX / INT64_MIN. */
static int64_t sat_add(int64_t a, int64_t b) {
        if (b > 0 && a > INT64_MAX - b)
                return INT64_MAX;
        if (b < 0 && a < INT64_MIN - b)
                return INT64_MIN;
        return a + b;
}

/* 1 if the instances together own every partition 0..N-1 of one count N. */
static int covers_all(const control_instance_t *inst, size_t cnt) {
        int32_t n = cnt ? inst[0].info->partition_count : 0;
        if (n <= 0 || n > 1 << 16)
                return 0;
        unsigned char seen[(1 << 16) / 8];
        memset(seen, 0, ((size_t)n + 7) / 8);
        int32_t got = 0;
        for (size_t i = 0; i < cnt; i++) {
                const kp_instance_info_t *info = inst[i].info;
                if (info->partition_count != n)
                        return 0;
                for (size_t j = 0; j < info->partition_cnt; j++) {
                        int32_t p = info->partitions[j];
                        if (p < 0 || p >= n || (seen[p / 8] >> (p % 8)) & 1)
                                continue;
                        seen[p / 8] |= (unsigned char)(1u << (p % 8));
                        got++;
                }
        }
        return got == n;
}

control_view_t control_compute(const kp_control_status_t *st,
                               control_instance_t *inst, size_t cnt) {
        control_view_t v = {
            .state     = st->paused ? CONTROL_PAUSED : CONTROL_RUNNING,
            .instances = cnt};
        int all_ready = cnt > 0;
        for (size_t i = 0; i < cnt; i++) {
                control_instance_t *in = &inst[i];
                in->applied            = in->has_report &&
                              in->report.version >= st->version &&
                              (!st->paused || in->report.paused);
                if (in->applied)
                        v.applied++;
                if (in->has_report) {
                        v.inflight_count = sat_add(v.inflight_count,
                                                   in->report.inflight_count);
                }
                if (!in->applied || !in->info->state ||
                    strcmp(in->info->state, "RUNNING"))
                        all_ready = 0;
        }
        v.covered = covers_all(inst, cnt);
        if (st->paused && all_ready && v.covered && v.inflight_count == 0)
                v.state = CONTROL_DRAINED;
        return v;
}

kp_err_t control_inflight_amounts(const control_instance_t *inst, size_t cnt,
                                  kp_money_t *out) {
        for (size_t i = 0; i < cnt; i++) {
                if (!inst[i].has_report)
                        continue;
                kp_err_t err =
                    kp_money_add_all(out, &inst[i].report.inflight_amounts);
                if (err)
                        return err;
        }
        return KP_OK;
}
