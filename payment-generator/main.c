/* kpay-gen: load generator: produces payments at a target rate.
 * Its business logic lands beside this file as pure functions; main.c stays
 * a thin shell over libkpay. */
#include "kpay/kp_app.h"

int main(int argc, char **argv) {
        static const kp_app_def_t def = {
            .name    = "kpay-gen",
            .summary = "Load generator: produces payments at a target rate.",
            .groups  = KP_APP_CLIENT,
        };
        return kp_app_main_unbuilt(&def, argc, argv);
}
