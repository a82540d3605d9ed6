// SPDX-License-Identifier: GPL-2.0
#define pr_fmt(fmt) "[%s]: " fmt, KBUILD_MODNAME

#include <linux/init.h>
#include <linux/module.h>
#include "counter.h"

static int __init multifile_init(void)
{
	pr_info("loaded, counter %d\n", counter_next());
	return 0;
}

static void __exit multifile_exit(void)
{
	pr_info("unloaded, counter %d\n", counter_next());
}

module_init(multifile_init);
module_exit(multifile_exit);
MODULE_LICENSE("GPL");
