"""What the target kernel is: its release, build tree, architecture and compiler (kernel), its
configuration (kconfig), a captured root filesystem (sysroot), a banner pasted from a log (pasted),
how its build tree drifted from its own configuration (drift), its exports (exports), and the keys
it checks module signatures with (keyrings).

Everything here describes the kernel; nothing judges a module (that is gates/).
"""
