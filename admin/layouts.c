/* layouts.c: the processors whose stores kpay-admin creates changelogs for
 * (layouts.h). A processor that keeps stores is added here once. */
#include "layouts.h"

#include "account.h"
#include "confirmed.h"
#include "inflight.h"
#include "metrics.h"

const kp_proc_layout_t *const admin_layouts[] = {
    &inflight_layout, &account_layout, &confirmed_layout, &metrics_layout, NULL,
};
