"""kbuildguard: build out-of-tree Linux kernel modules with the compiler that built the kernel."""

__version__ = "0.1.0"
