// SPDX-License-Identifier: GPL-2.0
#include <linux/init.h>
#include <linux/module.h>

int kbg_provide(void)
{
	return 42;
}
EXPORT_SYMBOL(kbg_provide);

static int __init kbg_provider_init(void)
{
	return 0;
}

static void __exit kbg_provider_exit(void)
{
}

module_init(kbg_provider_init);
module_exit(kbg_provider_exit);
MODULE_LICENSE("GPL");
