/* The smallest gcc plugin: it only checks that the gcc loading it is the one it was built for, as
 * every kernel plugin does (scripts/gcc-plugins: plugin_default_version_check). Built with one
 * gcc's plugin headers (gcc-N-plugin-dev) and loaded by another, it fails with "incompatible
 * gcc/plugin versions": what the toolchain preflight's trial compile must catch. */
#include "gcc-plugin.h"
#include "plugin-version.h"
#include "diagnostic-core.h"

int plugin_is_GPL_compatible;

int plugin_init(struct plugin_name_args *info, struct plugin_gcc_version *version)
{
	if (!plugin_default_version_check(version, &gcc_version)) {
		error("incompatible gcc/plugin versions"); /* as the kernel's plugins say it */
		return 1;
	}
	return 0;
}
