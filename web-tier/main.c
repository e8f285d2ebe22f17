/* kpay-web: web tier: UI, public REST API, OpenAPI and query fan-out.
 * Its business logic lands beside this file as pure functions; main.c stays
 * a thin shell over libkpay. */
#include "kpay/kp_app.h"

int main(int argc, char **argv) {
        static const kp_app_def_t def = {
            .name = "kpay-web",
            .summary =
                "Web tier: UI, public REST API, OpenAPI and query fan-out.",
            .groups = KP_APP_CLIENT | KP_APP_SERVICE,
        };
        return kp_app_main_unbuilt(&def, argc, argv);
}
