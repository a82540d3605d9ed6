"""The guarded make: ``pipeline`` runs one build from plan to placed modules; ``preflight`` checks
the toolchain before make runs; ``render`` writes the module's Makefile and Kbuild from templates;
``kbuild`` runs kbuild with the chosen toolchain in a staging folder; ``outputs`` places verified
modules and quarantines the rest (fail closed); ``modbtf`` gives kbuild the kernel's BTF to split
module BTF against; ``modsign`` signs verified modules.
"""
