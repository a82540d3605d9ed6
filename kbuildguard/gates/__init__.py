"""The loader model: what load_module() and delete_module() of the target kernel will do with a
module. ``model`` holds the Gate and Effect enums and the Check record; ``signature`` and ``trust``
the signature gate and what the kernel trusts; ``loader`` the gates read from the kernel's side
(vermagic, symbol versions, symbols, licence, BTF); ``verify`` the struct module layout and
compiler gates, a module's report and verdict.

Each rule cites the kernel source it models, next to the code.
"""
