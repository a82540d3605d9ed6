// SPDX-License-Identifier: GPL-2.0
#define pr_fmt(fmt) "[%s]: " fmt, KBUILD_MODNAME

#include <linux/init.h>
#include <linux/module.h>

int blob_answer(void);	/* from the prebuilt blob.o */

static int __init blobdrv_init(void)
{
	pr_info("blob says %d\n", blob_answer());
	return 0;
}

static void __exit blobdrv_exit(void)
{
}

module_init(blobdrv_init);
module_exit(blobdrv_exit);
MODULE_LICENSE("GPL");
