/* Fuzz target: account commands (kp_is_account_cmd, kp_account_cmd_parse,
 * kp_account_cmd_serialize). A command that parses is recognized as a
 * command, names a valid account, and round-trips through its
 * serialization unchanged. */
#include <stdint.h>
#include <string.h>

#include "fuzz.h"
#include "kpay/kp_log.h"
#include "kpay/kp_mem.h"
#include "kpay/kp_payment.h"

FUZZ_QUIET_INIT

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        kp_account_cmd_t cmd, again;
        char detail[256];
        int is_cmd = kp_is_account_cmd(data, size);
        kp_pay_err_t err =
            kp_account_cmd_parse(data, size, &cmd, detail, sizeof(detail));
        FUZZ_CHECK(is_cmd == 0 || is_cmd == 1, "kp_is_account_cmd: %d", is_cmd);
        if (err != KP_PAY_E_OK) {
                const char *code = kp_pay_err2code(err);
                FUZZ_CHECK(code && *code && strcmp(code, "ok"),
                           "error %d has no DLQ code", (int)err);
                return 0;
        }
        FUZZ_CHECK(is_cmd, "a parsed command is not recognized as one");
        FUZZ_CHECK(kp_account_id_valid(cmd.account),
                   "command for an invalid account \"%s\"", cmd.account);
        FUZZ_CHECK(
            cmd.command == KP_CMD_FREEZE || cmd.command == KP_CMD_UNFREEZE,
            "command %d", (int)cmd.command);
        size_t len;
        char *s = kp_account_cmd_serialize(&cmd, &len);
        FUZZ_CHECK(s && strlen(s) == len, "serialize length");
        FUZZ_CHECK(kp_is_account_cmd(s, len) == 1, "serialization: %s", s);
        err = kp_account_cmd_parse(s, len, &again, detail, sizeof(detail));
        FUZZ_CHECK(err == KP_PAY_E_OK,
                   "own serialization does not parse: %s: %s", detail, s);
        FUZZ_CHECK(again.command == cmd.command && again.v == cmd.v &&
                       again.created_ms == cmd.created_ms &&
                       !strcmp(again.account, cmd.account) &&
                       !strcmp(again.id, cmd.id),
                   "a field changed in a round trip: %s", s);
        size_t len2;
        char *s2 = kp_account_cmd_serialize(&again, &len2);
        FUZZ_CHECK(len2 == len && !memcmp(s, s2, len),
                   "serialization is not stable:\n%s\n%s", s, s2);
        kp_free(s);
        kp_free(s2);
        return 0;
}
