/* Unit tests of kpay-account's business logic (account-processor/account.c):
 * debit, credit, refund, rejections, the overdraft limit, system accounts,
 * overflow, frozen accounts, commands, and the store value's encoding. */
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "account.h"
#include "kpay/kp_err.h"
#include "kpay/kp_mem.h"
#include "kpay/kp_payment.h"
#include "kpay/kp_topics.h"

#define NOW 1700000000500LL

/* A valid payment of @p amount from @p from to @p to in @p state. */
static void mkpay(kp_payment_t *p, kp_pay_state_t state, const char *from,
                  const char *to, int64_t amount) {
        memset(p, 0, sizeof(*p));
        p->v = 1;
        snprintf(p->id, sizeof(p->id), "p-0001");
        snprintf(p->from, sizeof(p->from), "%s", from);
        snprintf(p->to, sizeof(p->to), "%s", to);
        snprintf(p->currency, sizeof(p->currency), "USD");
        p->amount           = amount;
        p->state            = state;
        p->created_ms       = 1700000000000LL;
        p->inflight_ms      = 1700000000003LL;
        p->complete_ms      = -1;
        p->origin_partition = 7;
}

static acct_t mkacct(int64_t balance, int frozen) {
        acct_t a;
        acct_init(&a);
        a.balance = balance;
        a.frozen  = frozen;
        return a;
}

/* Applies a payment that must succeed and returns the result. */
static acct_result_t apply_ok(const acct_t *cur, const kp_payment_t *p,
                              int64_t limit) {
        acct_result_t res;
        char errstr[256] = "";
        kp_err_t err     = acct_apply_payment(cur, p, limit, NOW, &res, errstr,
                                              sizeof(errstr));
        if (err)
                fail_msg("apply: %s: %s", kp_err2name(err), errstr);
        return res;
}

/* Asserts @p res left the account @p cur as it was. */
static void assert_nothing_moved(const acct_t *cur, const acct_result_t *res) {
        assert_false(acct_result_changed(res));
        assert_memory_equal(cur, &res->account, sizeof(*cur));
}

static void test_init(void **state) {
        (void)state;
        acct_t a;
        memset(&a, 0x5a, sizeof(a));
        acct_init(&a);
        assert_int_equal(a.balance, 0);
        assert_int_equal(a.frozen, 0);
        assert_int_equal(a.updated_ms, 0);
        assert_string_equal(a.last_payment, "");
}

static void test_payment_account(void **state) {
        (void)state;
        kp_payment_t p;
        mkpay(&p, KP_PAY_DEBIT, "alice", "bob", 1);
        assert_string_equal(acct_payment_account(&p), "alice");
        p.state = KP_PAY_REFUND;
        assert_string_equal(acct_payment_account(&p), "alice");
        p.state = KP_PAY_CREDIT;
        assert_string_equal(acct_payment_account(&p), "bob");
        kp_pay_state_t others[] = {KP_PAY_INCOMING, KP_PAY_COMPLETE,
                                   KP_PAY_CONFIRMED, KP_PAY_REJECTED,
                                   KP_PAY_STATE_UNKNOWN};
        for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
                p.state = others[i];
                assert_null(acct_payment_account(&p));
        }
}

static void test_debit(void **state) {
        (void)state;
        kp_payment_t p, out;
        acct_t a = mkacct(1000, 0);
        mkpay(&p, KP_PAY_DEBIT, "alice", "bob", 250);
        acct_result_t res = apply_ok(&a, &p, 0);
        assert_int_equal(res.outcome, ACCT_DEBITED);
        assert_true(acct_result_changed(&res));
        assert_string_equal(res.reason, "");
        assert_int_equal(res.account.balance, 750);
        assert_int_equal(res.account.frozen, 0);
        assert_int_equal(res.account.updated_ms, NOW);
        assert_string_equal(res.account.last_payment, "p-0001");
        /* The input is not touched. */
        assert_int_equal(a.balance, 1000);

        acct_outcome_payment(&p, &res, NOW, &out);
        assert_int_equal(out.state, KP_PAY_CREDIT);
        assert_string_equal(out.reason, "");
        assert_int_equal(out.complete_ms, -1);
        assert_int_equal(out.debit_ms, NOW); /* the stage stamp */
        assert_int_equal(out.credit_ms, p.credit_ms);
        assert_int_equal(out.amount, 250);
        assert_string_equal(out.id, "p-0001");
        assert_int_equal(out.origin_partition, 7);
        acct_route_t r = acct_route(&out);
        assert_int_equal(r.topic, KP_TOPIC_INFLIGHT);
        assert_string_equal(r.key, "bob");
        assert_int_equal(r.partition, -1);
        kp_payment_clear(&out);
}

static void test_credit(void **state) {
        (void)state;
        kp_payment_t p, out;
        acct_t a;
        acct_init(&a);
        mkpay(&p, KP_PAY_CREDIT, "alice", "bob", 250);
        p.debit_ms        = NOW - 5;
        acct_result_t res = apply_ok(&a, &p, 0);
        assert_int_equal(res.outcome, ACCT_CREDITED);
        assert_true(acct_result_changed(&res));
        assert_int_equal(res.account.balance, 250);
        assert_int_equal(res.account.updated_ms, NOW);
        assert_string_equal(res.account.last_payment, "p-0001");

        acct_outcome_payment(&p, &res, NOW + 1, &out);
        assert_int_equal(out.state, KP_PAY_COMPLETE);
        assert_string_equal(out.reason, "");
        assert_int_equal(out.complete_ms, NOW + 1);
        /* The debit's stamp is carried forward, the credit's added. */
        assert_int_equal(out.debit_ms, NOW - 5);
        assert_int_equal(out.credit_ms, NOW + 1);
        acct_route_t r = acct_route(&out);
        assert_int_equal(r.topic, KP_TOPIC_COMPLETE);
        assert_string_equal(r.key, "p-0001");
        assert_int_equal(r.partition, 7);
        kp_payment_clear(&out);
}

static void test_refund(void **state) {
        (void)state;
        kp_payment_t p, out;
        acct_t a = mkacct(750, 0);
        mkpay(&p, KP_PAY_REFUND, "alice", "bob", 250);
        snprintf(p.reason, sizeof(p.reason), "account_frozen");
        acct_result_t res = apply_ok(&a, &p, 0);
        assert_int_equal(res.outcome, ACCT_REFUNDED);
        assert_true(acct_result_changed(&res));
        assert_string_equal(res.reason, "account_frozen");
        assert_int_equal(res.account.balance, 1000);
        assert_int_equal(res.account.updated_ms, NOW);

        acct_outcome_payment(&p, &res, NOW, &out);
        assert_int_equal(out.state, KP_PAY_REJECTED);
        assert_string_equal(out.reason, "account_frozen");
        assert_int_equal(out.complete_ms, NOW);
        acct_route_t r = acct_route(&out);
        assert_int_equal(r.topic, KP_TOPIC_COMPLETE);
        assert_string_equal(r.key, "p-0001");
        assert_int_equal(r.partition, 7);
        kp_payment_clear(&out);

        /* A payer frozen since the debit still gets the money back. */
        a   = mkacct(750, 1);
        res = apply_ok(&a, &p, 0);
        assert_int_equal(res.outcome, ACCT_REFUNDED);
        assert_int_equal(res.account.balance, 1000);
        assert_int_equal(res.account.frozen, 1);

        /* A refund without a reason still ends REJECTED with one. */
        p.reason[0] = '\0';
        res         = apply_ok(&a, &p, 0);
        assert_string_equal(res.reason, kp_reason2str(KP_REASON_REFUNDED));
        assert_string_equal(res.reason, "refunded");
}

static void test_reject_insufficient(void **state) {
        (void)state;
        kp_payment_t p, out;
        acct_t a = mkacct(100, 0);
        mkpay(&p, KP_PAY_DEBIT, "alice", "bob", 250);
        acct_result_t res = apply_ok(&a, &p, 0);
        assert_int_equal(res.outcome, ACCT_DEBIT_REFUSED);
        assert_string_equal(res.reason, "insufficient_funds");
        assert_nothing_moved(&a, &res);

        acct_outcome_payment(&p, &res, NOW, &out);
        assert_int_equal(out.state, KP_PAY_REJECTED);
        assert_string_equal(out.reason, "insufficient_funds");
        assert_int_equal(out.complete_ms, NOW);
        acct_route_t r = acct_route(&out);
        assert_int_equal(r.topic, KP_TOPIC_COMPLETE);
        assert_string_equal(r.key, "p-0001");
        assert_int_equal(r.partition, 7);
        kp_payment_clear(&out);
}

static void test_overdraft_boundary(void **state) {
        (void)state;
        kp_payment_t p;
        acct_t a = mkacct(100, 0);
        /* Exactly at -limit: allowed. */
        mkpay(&p, KP_PAY_DEBIT, "alice", "bob", 600);
        acct_result_t res = apply_ok(&a, &p, 500);
        assert_int_equal(res.outcome, ACCT_DEBITED);
        assert_int_equal(res.account.balance, -500);
        /* One more minor unit: refused, nothing moves. */
        a        = res.account;
        p.amount = 1;
        res      = apply_ok(&a, &p, 500);
        assert_int_equal(res.outcome, ACCT_DEBIT_REFUSED);
        assert_string_equal(res.reason, "insufficient_funds");
        assert_nothing_moved(&a, &res);
        /* One below -limit in a single debit. */
        a        = mkacct(100, 0);
        p.amount = 601;
        res      = apply_ok(&a, &p, 500);
        assert_int_equal(res.outcome, ACCT_DEBIT_REFUSED);
        assert_int_equal(res.account.balance, 100);
        /* The largest limit: the debit that would pass INT64_MIN is
         * insufficient funds for a regular account. */
        a        = mkacct(-INT64_MAX, 0);
        p.amount = 1;
        res      = apply_ok(&a, &p, INT64_MAX);
        assert_int_equal(res.outcome, ACCT_DEBIT_REFUSED);
        assert_string_equal(res.reason, "insufficient_funds");
        a   = mkacct(-INT64_MAX + 1, 0);
        res = apply_ok(&a, &p, INT64_MAX);
        assert_int_equal(res.outcome, ACCT_DEBITED);
        assert_int_equal(res.account.balance, -INT64_MAX);
}

static void test_limit_zero(void **state) {
        (void)state;
        kp_payment_t p;
        acct_t a = mkacct(250, 0);
        mkpay(&p, KP_PAY_DEBIT, "alice", "bob", 250);
        acct_result_t res = apply_ok(&a, &p, 0);
        assert_int_equal(res.outcome, ACCT_DEBITED);
        assert_int_equal(res.account.balance, 0);
        a        = mkacct(250, 0);
        p.amount = 251;
        res      = apply_ok(&a, &p, 0);
        assert_int_equal(res.outcome, ACCT_DEBIT_REFUSED);
        assert_string_equal(res.reason, "insufficient_funds");
        assert_nothing_moved(&a, &res);
        /* An account that does not exist has nothing to pay with. */
        acct_init(&a);
        p.amount = 1;
        res      = apply_ok(&a, &p, 0);
        assert_int_equal(res.outcome, ACCT_DEBIT_REFUSED);
        assert_nothing_moved(&a, &res);
}

static void test_system_account(void **state) {
        (void)state;
        kp_payment_t p;
        acct_t a;
        acct_init(&a);
        mkpay(&p, KP_PAY_DEBIT, "@bank", "alice", INT64_MAX);
        acct_result_t res = apply_ok(&a, &p, 0);
        assert_int_equal(res.outcome, ACCT_DEBITED);
        assert_int_equal(res.account.balance, -INT64_MAX);
        /* Still no limit, down to INT64_MIN itself. */
        a        = res.account;
        p.amount = 1;
        res      = apply_ok(&a, &p, 0);
        assert_int_equal(res.outcome, ACCT_DEBITED);
        assert_int_equal(res.account.balance, INT64_MIN);
        /* A credit to a system account is an ordinary credit. */
        mkpay(&p, KP_PAY_CREDIT, "alice", "@bank", 5);
        a   = res.account;
        res = apply_ok(&a, &p, 0);
        assert_int_equal(res.outcome, ACCT_CREDITED);
        assert_int_equal(res.account.balance, INT64_MIN + 5);
}

static void test_credit_overflow(void **state) {
        (void)state;
        kp_payment_t p, out;
        acct_t a = mkacct(INT64_MAX - 5, 0);
        mkpay(&p, KP_PAY_CREDIT, "alice", "bob", 6);
        acct_result_t res = apply_ok(&a, &p, 0);
        assert_int_equal(res.outcome, ACCT_CREDIT_REFUSED);
        assert_string_equal(res.reason, "balance_overflow");
        assert_nothing_moved(&a, &res);

        acct_outcome_payment(&p, &res, NOW, &out);
        assert_int_equal(out.state, KP_PAY_REFUND);
        assert_string_equal(out.reason, "balance_overflow");
        assert_int_equal(out.complete_ms, -1);
        acct_route_t r = acct_route(&out);
        assert_int_equal(r.topic, KP_TOPIC_INFLIGHT);
        assert_string_equal(r.key, "alice");
        assert_int_equal(r.partition, -1);
        kp_payment_clear(&out);

        p.amount = 5;
        res      = apply_ok(&a, &p, 0);
        assert_int_equal(res.outcome, ACCT_CREDITED);
        assert_int_equal(res.account.balance, INT64_MAX);
}

static void test_system_debit_overflow(void **state) {
        (void)state;
        kp_payment_t p;
        acct_t a = mkacct(INT64_MIN + 5, 0);
        mkpay(&p, KP_PAY_DEBIT, "@bank", "alice", 6);
        acct_result_t res = apply_ok(&a, &p, 0);
        assert_int_equal(res.outcome, ACCT_DEBIT_REFUSED);
        assert_string_equal(res.reason, "balance_overflow");
        assert_nothing_moved(&a, &res);
        p.amount = 5;
        res      = apply_ok(&a, &p, 0);
        assert_int_equal(res.outcome, ACCT_DEBITED);
        assert_int_equal(res.account.balance, INT64_MIN);
}

/* A refund is never refused (issue 13, defect 4): the payer's balance may
 * have been credited up to INT64_MAX since the debit; the refund takes it
 * above, exactly, and the payment still ends REJECTED. Credits are then
 * refused until the balance is back within int64; debits still work. */
static void test_refund_overflow(void **state) {
        (void)state;
        kp_payment_t p, out;
        acct_t a = mkacct(INT64_MAX, 0);
        mkpay(&p, KP_PAY_REFUND, "alice", "bob", INT64_MAX);
        snprintf(p.reason, sizeof(p.reason), "balance_overflow");
        acct_result_t res = apply_ok(&a, &p, 0);
        assert_int_equal(res.outcome, ACCT_REFUNDED);
        assert_true(res.account.balance == (kp_i128_t)INT64_MAX * 2);
        acct_outcome_payment(&p, &res, NOW, &out);
        assert_int_equal(out.state, KP_PAY_REJECTED);
        assert_string_equal(out.reason, "balance_overflow");
        assert_int_equal(acct_route(&out).topic, KP_TOPIC_COMPLETE);
        kp_payment_clear(&out);

        a = res.account;
        mkpay(&p, KP_PAY_CREDIT, "bob", "alice", 1);
        res = apply_ok(&a, &p, 0);
        assert_int_equal(res.outcome, ACCT_CREDIT_REFUSED);
        assert_string_equal(res.reason, "balance_overflow");
        mkpay(&p, KP_PAY_DEBIT, "alice", "bob", INT64_MAX);
        res = apply_ok(&a, &p, 0);
        assert_int_equal(res.outcome, ACCT_DEBITED);
        assert_true(res.account.balance == INT64_MAX);
}

static void test_frozen_payer(void **state) {
        (void)state;
        kp_payment_t p, out;
        acct_t a = mkacct(1000, 1);
        mkpay(&p, KP_PAY_DEBIT, "alice", "bob", 10);
        acct_result_t res = apply_ok(&a, &p, 0);
        assert_int_equal(res.outcome, ACCT_DEBIT_REFUSED);
        assert_string_equal(res.reason, "account_frozen");
        assert_nothing_moved(&a, &res);
        acct_outcome_payment(&p, &res, NOW, &out);
        assert_int_equal(out.state, KP_PAY_REJECTED);
        assert_string_equal(out.reason, "account_frozen");
        kp_payment_clear(&out);
        /* Frozen system accounts are frozen too. */
        a = mkacct(0, 1);
        mkpay(&p, KP_PAY_DEBIT, "@bank", "bob", 10);
        res = apply_ok(&a, &p, 0);
        assert_int_equal(res.outcome, ACCT_DEBIT_REFUSED);
        assert_string_equal(res.reason, "account_frozen");
}

static void test_frozen_payee(void **state) {
        (void)state;
        kp_payment_t p, out;
        acct_t a = mkacct(5, 1);
        mkpay(&p, KP_PAY_CREDIT, "alice", "bob", 10);
        acct_result_t res = apply_ok(&a, &p, 0);
        assert_int_equal(res.outcome, ACCT_CREDIT_REFUSED);
        assert_string_equal(res.reason, "account_frozen");
        assert_nothing_moved(&a, &res);
        acct_outcome_payment(&p, &res, NOW, &out);
        assert_int_equal(out.state, KP_PAY_REFUND);
        assert_string_equal(out.reason, "account_frozen");
        acct_route_t r = acct_route(&out);
        assert_int_equal(r.topic, KP_TOPIC_INFLIGHT);
        assert_string_equal(r.key, "alice");
        assert_int_equal(r.partition, -1);
        kp_payment_clear(&out);
}

static void test_commands(void **state) {
        (void)state;
        kp_account_cmd_t cmd;
        kp_payment_t p;
        char detail[128];
        const char *json =
            "{\"v\":1,\"command\":\"FREEZE\",\"account\":"
            "\"bob\",\"id\":\"cmd-1\",\"created_ms\":1}";
        assert_true(kp_is_account_cmd(json, strlen(json)));
        assert_int_equal(kp_account_cmd_parse(json, strlen(json), &cmd, detail,
                                              sizeof(detail)),
                         KP_PAY_E_OK);
        assert_int_equal(cmd.command, KP_CMD_FREEZE);

        /* FREEZE creates an account that did not exist. */
        acct_t a, next;
        acct_init(&a);
        acct_apply_cmd(&a, &cmd, NOW, &next);
        assert_int_equal(next.frozen, 1);
        assert_int_equal(next.balance, 0);
        assert_int_equal(next.updated_ms, NOW);
        assert_string_equal(next.last_payment, "");

        /* A frozen payee refuses the credit... */
        mkpay(&p, KP_PAY_CREDIT, "alice", "bob", 10);
        acct_result_t res = apply_ok(&next, &p, 0);
        assert_int_equal(res.outcome, ACCT_CREDIT_REFUSED);

        /* ...until UNFREEZE, which keeps the balance and last payment. */
        a = mkacct(42, 1);
        snprintf(a.last_payment, sizeof(a.last_payment), "p-9");
        cmd.command = KP_CMD_UNFREEZE;
        acct_apply_cmd(&a, &cmd, NOW + 7, &a); /* in place */
        assert_int_equal(a.frozen, 0);
        assert_int_equal(a.balance, 42);
        assert_int_equal(a.updated_ms, NOW + 7);
        assert_string_equal(a.last_payment, "p-9");
        res = apply_ok(&a, &p, 0);
        assert_int_equal(res.outcome, ACCT_CREDITED);
        assert_int_equal(res.account.balance, 52);

        /* Freezing twice is still frozen; so is unfreezing twice. */
        cmd.command = KP_CMD_FREEZE;
        acct_apply_cmd(&a, &cmd, NOW, &a);
        acct_apply_cmd(&a, &cmd, NOW, &a);
        assert_int_equal(a.frozen, 1);
        cmd.command = KP_CMD_UNFREEZE;
        acct_apply_cmd(&a, &cmd, NOW, &a);
        acct_apply_cmd(&a, &cmd, NOW, &a);
        assert_int_equal(a.frozen, 0);
}

static void test_bad_payments(void **state) {
        (void)state;
        kp_payment_t p;
        acct_result_t res;
        char errstr[256];
        acct_t a = mkacct(1000, 0);

        /* States that do not belong on the inflight topic. */
        mkpay(&p, KP_PAY_INCOMING, "alice", "bob", 10);
        errstr[0] = '\0';
        assert_int_equal(
            acct_apply_payment(&a, &p, 0, NOW, &res, errstr, sizeof(errstr)),
            KP_ERR_STATE);
        assert_non_null(strstr(errstr, "INCOMING"));
        p.state = KP_PAY_COMPLETE;
        assert_int_equal(
            acct_apply_payment(&a, &p, 0, NOW, &res, errstr, sizeof(errstr)),
            KP_ERR_STATE);

        /* A DEBIT breaking a business rule is rejected with its reason. */
        mkpay(&p, KP_PAY_DEBIT, "alice", "bob", 0);
        res = apply_ok(&a, &p, 0);
        assert_int_equal(res.outcome, ACCT_DEBIT_REFUSED);
        assert_string_equal(res.reason, "invalid_amount");
        assert_nothing_moved(&a, &res);
        mkpay(&p, KP_PAY_DEBIT, "alice", "bob", -5);
        res = apply_ok(&a, &p, 0);
        assert_string_equal(res.reason, "invalid_amount");
        assert_int_equal(res.account.balance, 1000);
        mkpay(&p, KP_PAY_DEBIT, "alice", "alice", 5);
        res = apply_ok(&a, &p, 0);
        assert_string_equal(res.reason, "same_account");

        /* A CREDIT or REFUND breaking one is not processable. */
        mkpay(&p, KP_PAY_CREDIT, "alice", "bob", -5);
        assert_int_equal(
            acct_apply_payment(&a, &p, 0, NOW, &res, errstr, sizeof(errstr)),
            KP_ERR_INVALID_ARG);
        assert_non_null(strstr(errstr, "invalid_amount"));
        mkpay(&p, KP_PAY_REFUND, "alice", "bob", 0);
        assert_int_equal(
            acct_apply_payment(&a, &p, 0, NOW, &res, errstr, sizeof(errstr)),
            KP_ERR_INVALID_ARG);

        /* A negative overdraft limit is a caller's mistake. */
        mkpay(&p, KP_PAY_DEBIT, "alice", "bob", 5);
        assert_int_equal(
            acct_apply_payment(&a, &p, -1, NOW, &res, errstr, sizeof(errstr)),
            KP_ERR_INVALID_ARG);
}

/* Emitted payments keep the fields this version does not know. */
static void test_outcome_keeps_unknown_fields(void **state) {
        (void)state;
        kp_payment_t p, out, back;
        char detail[128];
        const char *json =
            "{\"v\":1,\"id\":\"p-7\",\"from\":\"alice\",\"to\":\"bob\","
            "\"amount\":300,\"currency\":\"EUR\",\"state\":\"DEBIT\","
            "\"reason\":null,\"created_ms\":1,\"inflight_ms\":2,"
            "\"complete_ms\":null,\"origin_partition\":3,"
            "\"memo\":{\"note\":\"rent\"}}";
        assert_int_equal(
            kp_payment_parse(json, strlen(json), &p, detail, sizeof(detail)),
            KP_PAY_E_OK);
        acct_t a          = mkacct(300, 0);
        acct_result_t res = apply_ok(&a, &p, 0);
        assert_int_equal(res.outcome, ACCT_DEBITED);
        assert_string_equal(res.account.last_payment, "p-7");
        acct_outcome_payment(&p, &res, NOW, &out);
        kp_payment_clear(&p);

        size_t len;
        char *ser = kp_payment_serialize(&out, &len);
        kp_payment_clear(&out);
        assert_non_null(strstr(ser, "\"memo\":{\"note\":\"rent\"}"));
        assert_int_equal(
            kp_payment_parse(ser, len, &back, detail, sizeof(detail)),
            KP_PAY_E_OK);
        kp_free(ser);
        assert_int_equal(back.state, KP_PAY_CREDIT);
        assert_int_equal(back.amount, 300);
        assert_string_equal(back.currency, "EUR");
        assert_int_equal(back.inflight_ms, 2);
        assert_int_equal(back.origin_partition, 3);
        assert_non_null(back.extra);
        kp_payment_clear(&back);
}

/* Encodes @p r, decodes it and checks the result is the same account. */
static void assert_round_trip(const acct_record_t *r) {
        acct_record_t back;
        size_t len;
        char errstr[256] = "";
        acct_record_init(&back);
        char *val = acct_encode(r, &len);
        assert_int_equal(len, strlen(val));
        /* Byte for byte what jansson writes for the same value (the
         * encoder writes it by hand). */
        json_error_t jerr;
        json_t *j = json_loadb(val, len, JSON_REJECT_DUPLICATES, &jerr);
        if (!j)
                fail_msg("not JSON: %s: %s", jerr.text, val);
        char *jv = json_dumps(j, JSON_COMPACT);
        assert_string_equal(jv, val);
        free(jv);
        json_decref(j);
        kp_err_t err = acct_decode(val, len, &back, errstr, sizeof(errstr));
        if (err)
                fail_msg("decode %s: %s", val, errstr);
        kp_free(val);
        assert_true(kp_money_equal(&back.balances, &r->balances));
        assert_int_equal(back.balances.cnt, r->balances.cnt);
        assert_int_equal(back.frozen, r->frozen);
        assert_int_equal(back.updated_ms, r->updated_ms);
        assert_string_equal(back.last_payment, r->last_payment);
        acct_record_clear(&back);
}

static void record_set(acct_record_t *r, const char *currency,
                       kp_i128_t balance) {
        assert_int_equal(kp_money_set(&r->balances, currency, balance), KP_OK);
}

static void test_encode_decode(void **state) {
        (void)state;
        acct_record_t r;
        acct_record_init(&r);
        record_set(&r, "USD", 1250);
        record_set(&r, "EUR", -300);
        r.updated_ms = 1700000000000LL;
        snprintf(r.last_payment, sizeof(r.last_payment), "p-1");
        size_t len;
        char *val = acct_encode(&r, &len);
        assert_string_equal(val,
                            "{\"balances\":{\"EUR\":\"-300\",\"USD\":\"1250\"},"
                            "\"frozen\":false,\"updated_ms\":1700000000000,"
                            "\"last_payment\":\"p-1\"}");
        kp_free(val);
        assert_round_trip(&r);
        acct_record_clear(&r);

        val = acct_encode(&r, NULL);
        assert_string_equal(val,
                            "{\"balances\":{},\"frozen\":false,"
                            "\"updated_ms\":0,\"last_payment\":null}");
        kp_free(val);
        assert_round_trip(&r);

        /* The limits, and beyond int64 after a refund: exact. */
        record_set(&r, "USD", INT64_MIN);
        record_set(&r, "JPY", (kp_i128_t)INT64_MAX * 2);
        r.frozen     = 1;
        r.updated_ms = INT64_MAX;
        assert_round_trip(&r);
        val = acct_encode(&r, NULL);
        assert_non_null(strstr(val, "\"JPY\":\"18446744073709551614\""));
        assert_non_null(strstr(val, "\"USD\":\"-9223372036854775808\""));
        kp_free(val);

        /* Ids are printable ASCII, quotes and backslashes included. */
        snprintf(r.last_payment, sizeof(r.last_payment), "a\"b\\c /{}");
        assert_round_trip(&r);
        /* The longest id. */
        memset(r.last_payment, '~', KP_PAYMENT_ID_MAX);
        r.last_payment[KP_PAYMENT_ID_MAX] = '\0';
        assert_round_trip(&r);

        /* Unknown fields are ignored; field order does not matter. */
        const char *newer =
            "{\"last_payment\":null,\"tier\":\"gold\",\"updated_ms\":5,"
            "\"frozen\":true,\"balances\":{\"GBP\":\"-3\"}}";
        char errstr[256];
        assert_int_equal(
            acct_decode(newer, strlen(newer), &r, errstr, sizeof(errstr)),
            KP_OK);
        assert_int_equal(r.balances.cnt, 1);
        assert_true(kp_money_get(&r.balances, "GBP") == -3);
        assert_int_equal(r.frozen, 1);
        assert_int_equal(r.updated_ms, 5);
        assert_string_equal(r.last_payment, "");

        /* A value from before per-currency balances: its one balance is
         * read as USD, the default currency; 0 is no balance. */
        const char *legacy =
            "{\"balance\":-7,\"frozen\":false,"
            "\"updated_ms\":5,\"last_payment\":\"p-2\"}";
        assert_int_equal(
            acct_decode(legacy, strlen(legacy), &r, errstr, sizeof(errstr)),
            KP_OK);
        assert_int_equal(r.balances.cnt, 1);
        assert_true(kp_money_get(&r.balances, "USD") == -7);
        assert_string_equal(r.last_payment, "p-2");
        legacy =
            "{\"balance\":0,\"frozen\":true,\"updated_ms\":5,"
            "\"last_payment\":null}";
        assert_int_equal(
            acct_decode(legacy, strlen(legacy), &r, errstr, sizeof(errstr)),
            KP_OK);
        assert_int_equal(r.balances.cnt, 0);
        assert_int_equal(r.frozen, 1);
        acct_record_clear(&r);
}

/* Two currencies on one account never mix (issue 13, defect 7): a payment
 * sees and changes only the balance of its currency; freeze is the
 * account's. */
static void test_per_currency(void **state) {
        (void)state;
        acct_record_t r;
        acct_t v;
        kp_payment_t p;
        acct_record_init(&r);
        record_set(&r, "USD", 1000);
        record_set(&r, "EUR", 5);

        /* 600 EUR cannot be paid with 1000 USD. */
        mkpay(&p, KP_PAY_DEBIT, "alice", "bob", 600);
        snprintf(p.currency, sizeof(p.currency), "EUR");
        acct_view(&r, p.currency, &v);
        assert_true(v.balance == 5);
        acct_result_t res = apply_ok(&v, &p, 0);
        assert_int_equal(res.outcome, ACCT_DEBIT_REFUSED);
        assert_string_equal(res.reason, "insufficient_funds");

        /* 600 USD can; EUR stays. */
        snprintf(p.currency, sizeof(p.currency), "USD");
        acct_view(&r, p.currency, &v);
        res = apply_ok(&v, &p, 0);
        assert_int_equal(res.outcome, ACCT_DEBITED);
        assert_int_equal(acct_record_update(&r, p.currency, &res.account),
                         KP_OK);
        assert_true(kp_money_get(&r.balances, "USD") == 400);
        assert_true(kp_money_get(&r.balances, "EUR") == 5);
        assert_int_equal(r.updated_ms, NOW);
        assert_string_equal(r.last_payment, "p-0001");

        /* A new currency gets its own entry; a currency that is not a
         * code is refused and changes nothing. */
        mkpay(&p, KP_PAY_CREDIT, "carol", "alice", 70);
        snprintf(p.currency, sizeof(p.currency), "JPY");
        acct_view(&r, p.currency, &v);
        assert_true(v.balance == 0);
        res = apply_ok(&v, &p, 0);
        assert_int_equal(res.outcome, ACCT_CREDITED);
        assert_int_equal(acct_record_update(&r, p.currency, &res.account),
                         KP_OK);
        assert_int_equal(r.balances.cnt, 3);
        assert_true(kp_money_get(&r.balances, "JPY") == 70);
        assert_int_equal(acct_record_update(&r, "usd", &res.account),
                         KP_ERR_INVALID_ARG);
        assert_int_equal(r.balances.cnt, 3);

        /* A command sees no balance and changes none; frozen holds for
         * every currency. */
        kp_account_cmd_t cmd = {.command = KP_CMD_FREEZE};
        acct_view(&r, NULL, &v);
        assert_true(v.balance == 0);
        acct_apply_cmd(&v, &cmd, NOW + 1, &v);
        assert_int_equal(acct_record_update(&r, NULL, &v), KP_OK);
        assert_int_equal(r.frozen, 1);
        assert_true(kp_money_get(&r.balances, "USD") == 400);
        assert_true(kp_money_get(&r.balances, "EUR") == 5);
        acct_view(&r, "EUR", &v);
        mkpay(&p, KP_PAY_CREDIT, "carol", "alice", 1);
        snprintf(p.currency, sizeof(p.currency), "EUR");
        res = apply_ok(&v, &p, 0);
        assert_int_equal(res.outcome, ACCT_CREDIT_REFUSED);
        assert_string_equal(res.reason, "account_frozen");
        acct_record_clear(&r);
}

static void test_decode_strict(void **state) {
        (void)state;
        static const char *const bad[] = {
            "",
            "not json",
            "[]",
            "\"x\"",
            "null",
            "{}",
            "{\"balances\":{},\"frozen\":false,\"updated_ms\":0,"
            "\"last_payment\":null} trailing",
            /* balances */
            "{\"frozen\":false,\"updated_ms\":0,\"last_payment\":null}",
            "{\"balances\":{\"USD\":1},\"frozen\":false,\"updated_ms\":0,"
            "\"last_payment\":null}",
            "{\"balances\":{\"USD\":\"1.5\"},\"frozen\":false,"
            "\"updated_ms\":0,\"last_payment\":null}",
            "{\"balances\":{\"usd\":\"1\"},\"frozen\":false,"
            "\"updated_ms\":0,\"last_payment\":null}",
            "{\"balances\":{\"USD\":\"1\",\"USD\":\"2\"},\"frozen\":false,"
            "\"updated_ms\":0,\"last_payment\":null}",
            "{\"balances\":[],\"frozen\":false,\"updated_ms\":0,"
            "\"last_payment\":null}",
            "{\"balances\":null,\"frozen\":false,\"updated_ms\":0,"
            "\"last_payment\":null}",
            "{\"balances\":{\"USD\":\"1\"},\"balances\":{},\"frozen\":false,"
            "\"updated_ms\":0,\"last_payment\":null}",
            /* the legacy balance */
            "{\"balance\":\"1\",\"frozen\":false,\"updated_ms\":0,"
            "\"last_payment\":null}",
            "{\"balance\":1.5,\"frozen\":false,\"updated_ms\":0,"
            "\"last_payment\":null}",
            "{\"balance\":null,\"frozen\":false,\"updated_ms\":0,"
            "\"last_payment\":null}",
            "{\"balance\":9223372036854775808,\"frozen\":false,"
            "\"updated_ms\":0,\"last_payment\":null}",
            /* frozen */
            "{\"balances\":{},\"updated_ms\":0,\"last_payment\":null}",
            "{\"balances\":{},\"frozen\":1,\"updated_ms\":0,"
            "\"last_payment\":null}",
            "{\"balances\":{},\"frozen\":\"true\",\"updated_ms\":0,"
            "\"last_payment\":null}",
            "{\"balances\":{},\"frozen\":null,\"updated_ms\":0,"
            "\"last_payment\":null}",
            /* updated_ms */
            "{\"balances\":{},\"frozen\":false,\"last_payment\":null}",
            "{\"balances\":{},\"frozen\":false,\"updated_ms\":\"0\","
            "\"last_payment\":null}",
            "{\"balances\":{},\"frozen\":false,\"updated_ms\":-1,"
            "\"last_payment\":null}",
            /* last_payment */
            "{\"balances\":{},\"frozen\":false,\"updated_ms\":0}",
            "{\"balances\":{},\"frozen\":false,\"updated_ms\":0,"
            "\"last_payment\":5}",
            "{\"balances\":{},\"frozen\":false,\"updated_ms\":0,"
            "\"last_payment\":\"\"}",
            "{\"balances\":{},\"frozen\":false,\"updated_ms\":0,"
            "\"last_payment\":[\"p\"]}",
            "{\"balances\":{},\"frozen\":false,\"updated_ms\":0,"
            "\"last_payment\":\"a\\u0000b\"}",
        };
        char errstr[256];
        acct_record_t r;
        acct_record_init(&r);
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                errstr[0] = '\0';
                record_set(&r, "USD", 9);
                if (acct_decode(bad[i], strlen(bad[i]), &r, errstr,
                                sizeof(errstr)) != KP_ERR_PARSE)
                        fail_msg("decoded: %s", bad[i]);
                assert_true(errstr[0] != '\0');
                /* Empty on error: nothing half-decoded is used. */
                assert_int_equal(r.balances.cnt, 0);
        }
        assert_int_equal(acct_decode(NULL, 0, &r, errstr, sizeof(errstr)),
                         KP_ERR_PARSE);

        /* An id one byte over the limit. */
        char over[KP_PAYMENT_ID_MAX + 2];
        memset(over, 'x', KP_PAYMENT_ID_MAX + 1);
        over[KP_PAYMENT_ID_MAX + 1] = '\0';

        char *json = kp_asprintf(
            "{\"balances\":{},\"frozen\":false,"
            "\"updated_ms\":0,"
            "\"last_payment\":\"%s\"}",
            over);
        assert_int_equal(
            acct_decode(json, strlen(json), &r, errstr, sizeof(errstr)),
            KP_ERR_PARSE);
        assert_non_null(strstr(errstr, "last_payment"));
        kp_free(json);
        acct_record_clear(&r);
}

/* Every test must give back every kp_malloc()ed byte it took. */
static int64_t live_before;

static int setup(void **state) {
        (void)state;
        live_before = kp_mem_live_allocations();
        return 0;
}

static int teardown(void **state) {
        (void)state;
        int64_t live = kp_mem_live_allocations();
        if (live != live_before) {
                fprintf(stderr, "leaked %lld allocations\n",
                        (long long)(live - live_before));
                return -1;
        }
        return 0;
}

/* What kpay-account reads and keeps, indexed by the header's constant. */
static void test_layout(void **state) {
        (void)state;
        assert_string_equal(account_layout.service, "account");
        assert_int_equal(account_layout.inputs[0], KP_TOPIC_INFLIGHT);
        assert_int_equal(account_layout.inputs[1], KP_TOPIC_NONE);
        assert_string_equal(account_layout.stores[ACCT_ST_BALANCES],
                            "balances");
        assert_null(account_layout.stores[1]);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void) {
        const struct CMUnitTest tests[] = {
            T(test_init),
            T(test_layout),
            T(test_payment_account),
            T(test_debit),
            T(test_credit),
            T(test_refund),
            T(test_reject_insufficient),
            T(test_overdraft_boundary),
            T(test_limit_zero),
            T(test_system_account),
            T(test_credit_overflow),
            T(test_system_debit_overflow),
            T(test_refund_overflow),
            T(test_frozen_payer),
            T(test_frozen_payee),
            T(test_commands),
            T(test_bad_payments),
            T(test_outcome_keeps_unknown_fields),
            T(test_encode_decode),
            T(test_per_currency),
            T(test_decode_strict),
        };
        return cmocka_run_group_tests_name("account", tests, NULL, NULL);
}
