// SPDX-License-Identifier: GPL-2.0
/* The module from the original incident: nothing but init and exit, so that a module which loads
 * but cannot be unloaded (rmmod: Device or resource busy) can only be a toolchain problem. */
#define pr_fmt(fmt) "[%s]: " fmt, KBUILD_MODNAME

#include <linux/init.h>
#include <linux/module.h>
#include <linux/kernel.h>
#include <linux/version.h>

static int __init kdemo_init(void)
{
	pr_info("loaded\n");
	return 0;
}

static void __exit kdemo_exit(void)
{
	pr_info("unloaded\n");
}

module_init(kdemo_init);
module_exit(kdemo_exit);

MODULE_LICENSE("GPL");
