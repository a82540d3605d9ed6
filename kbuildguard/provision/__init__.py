"""Installing the kernel's compiler (and build tree) through the distribution's package manager:
``plan`` says what (pure, from the catalogue), ``system`` for which system and what its repositories
offer (one strategy per manager: ``apt``, ``dnf``, ``zypper``), ``install`` runs it with consent."""

from kbuildguard.provision.install import execute, install_and_reselect, reselect
from kbuildguard.provision.plan import Distro, InstallPlan, Package, detect_distro, install_hint, plan, plan_for
from kbuildguard.provision.system import Kind, System, check, cross_hint, for_system, setup_hint, system_for

__all__ = ["Distro", "InstallPlan", "Kind", "Package", "System", "check", "detect_distro", "execute", "for_system",
           "install_and_reselect", "install_hint", "cross_hint", "plan", "plan_for", "reselect", "setup_hint", "system_for"]
