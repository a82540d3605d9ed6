// SPDX-License-Identifier: GPL-2.0
/* No module_exit(): the kernel marks it [permanent] and delete_module() answers EBUSY. */
#include <linux/init.h>
#include <linux/module.h>

static int __init kbg_noexit_init(void)
{
	return 0;
}

module_init(kbg_noexit_init);
MODULE_LICENSE("GPL");
