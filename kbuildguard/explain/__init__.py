"""Explanations for support engineers: why a loaded module will not unload (``unload``), why a
module would not load, from the kernel's own log lines (``load``, with the table of loader messages
in ``loadlog``).
"""
