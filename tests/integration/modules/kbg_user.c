// SPDX-License-Identifier: GPL-2.0
/* Uses kbg_provider's symbol: while loaded, kbg_provider is "in use" (EWOULDBLOCK). */
#include <linux/init.h>
#include <linux/module.h>

int kbg_provide(void);

static int __init kbg_user_init(void)
{
	return kbg_provide() == 42 ? 0 : -EINVAL;
}

static void __exit kbg_user_exit(void)
{
}

module_init(kbg_user_init);
module_exit(kbg_user_exit);
MODULE_LICENSE("GPL");
