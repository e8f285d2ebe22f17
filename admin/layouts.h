/**
 * @file layouts.h
 * @brief The layouts of kpay's stream processors, as kpay-admin creates
 *        their changelogs (`kpay-admin topics`).
 */
#ifndef KPAY_ADMIN_LAYOUTS_H
#define KPAY_ADMIN_LAYOUTS_H

#include "kpay/kp_topics.h"

/**
 * The layout of every stream processor kpay builds, each declared by the
 * processor beside its business logic (inflight_layout, account_layout,
 * confirmed_layout), ending with NULL. kp_topic_plan_all() takes it.
 */
extern const kp_proc_layout_t *const admin_layouts[];

#endif /* KPAY_ADMIN_LAYOUTS_H */
