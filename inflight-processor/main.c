/* kpay-inflight: gateway processor: intake, dedup, in-flight totals, pause
 * gate. Its business logic lands beside this file as pure functions; main.c
 * stays a thin shell over libkpay. */
#include "kpay/kp_app.h"

int main(int argc, char **argv) {
        static const kp_app_def_t def = {
            .name = "kpay-inflight",
            .summary =
                "Gateway processor: intake, dedup, in-flight totals, pause "
                "gate.",
            .groups = KP_APP_CLIENT | KP_APP_SERVICE | KP_APP_PROCESSOR,
        };
        return kp_app_main_unbuilt(&def, argc, argv);
}
