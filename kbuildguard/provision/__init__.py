"""Installing the kernel's compiler (and build tree) through the distribution's package manager:
``plan`` says what (pure, from the catalogue), ``install`` runs it with consent."""

from kbuildguard.provision.install import execute, install_and_reselect, reselect
from kbuildguard.provision.plan import Distro, InstallPlan, detect_distro, install_hint, plan, plan_for

__all__ = ["Distro", "InstallPlan", "detect_distro", "execute", "install_and_reselect", "install_hint", "plan",
           "plan_for", "reselect"]
