"""Waiting for another package manager that holds the lock (unattended-upgrades, a second terminal).

No manager waits by itself the way kbuildguard needs, bounded and saying so:
- apt 2.6: ``apt-get update`` fails at once with "Could not get lock /var/lib/apt/lists/lock" (exit
  100); ``DPkg::Lock::Timeout`` makes ``apt-get install`` wait for the dpkg lock only, not for the
  lists lock of ``update`` (apt-pkg/contrib/fileutl.cc GetLock, called without a timeout by
  pkgAcquire for the lists directory). So kbuildguard retries the command itself.
- zypper: fails with exit 7 (ZYPPER_EXIT_ZYPP_LOCKED) unless ``ZYPP_LOCK_TIMEOUT`` says how many
  seconds to wait: kbuildguard sets it to what is left of its bound.
- dnf 4 (and yum) wait without limit ("Waiting for process with pid N to finish."): kbuildguard
  stops the command when it has waited that long (run.Stall) and says so.
- dnf 5 fails at once ("Failed to obtain rpm transaction lock"): kbuildguard retries.

A failure is a lock failure when its exit status and its output (run under LC_ALL=C, so the text
is the untranslated one) both say so; any other failure is the caller's, at once.
"""

import re
import time
from typing import Callable, Dict, Mapping, NamedTuple, Optional, Pattern, Sequence, Tuple

from kbuildguard.context import Context
from kbuildguard.errors import InstallFailed
from kbuildguard.run import CommandFailed, Stall, quote

WAIT_SECONDS = 300.0  # how long kbuildguard waits for another package manager in all
RETRY_SECONDS = 10.0  # between two attempts


class LockRule(NamedTuple):
    statuses: Tuple[int, ...]  # the exit statuses a lock failure has
    pattern: Pattern[str]  # what its output says (C locale)


# apt-pkg/contrib/fileutl.cc GetLock: "Could not get lock %s. It is held by process %d (%s)"; the
# lock is /var/lib/apt/lists/lock, /var/lib/dpkg/lock(-frontend), or wherever Dir::State::Lists says.
_APT = LockRule((100,), re.compile(
    r"Could not get lock /\S*lock|Unable to acquire the dpkg frontend lock"
    r"|Unable to lock directory /|Unable to lock the administration directory"))
_DNF = LockRule((1, 200), re.compile(
    r"Failed to obtain rpm transaction lock|Another app is currently holding the yum lock"
    r"|Waiting for process with pid \d+ to finish"))
_ZYPPER = LockRule((7,), re.compile(r"System management is locked by the application with pid"))
RULES: Dict[str, LockRule] = {"apt-get": _APT, "dnf": _DNF, "yum": _DNF, "zypper": _ZYPPER}
# What dnf 4 and yum print while they wait without limit
# (yum repeats its holder's "The other application is: ...", "Memory : ...", "Started: ...",
# "State  : ..." every few seconds while it waits: yum/cli.py)
_WAITING = re.compile(rb"Waiting for process with pid \d+ to finish|Another app is currently holding the yum lock"
                      rb"|The other application is:|^\s*(?:Memory|Started|State)\s*:")


def is_lock_failure(manager: str, exc: CommandFailed) -> bool:
    rule = RULES.get(manager)
    if rule is None:
        return False
    return exc.stalled or (exc.returncode in rule.statuses and bool(rule.pattern.search(exc.output or exc.stderr)))


def locked_env(manager: str, env: Mapping[str, str], left: float) -> Dict[str, str]:
    """The environment for a package-manager command: C locale (the lock text is read), and for
    zypper the seconds it may wait for the lock itself."""
    out = dict(env)
    out["LC_ALL"] = "C"
    out.pop("LANGUAGE", None)
    if manager == "zypper":
        out["ZYPP_LOCK_TIMEOUT"] = str(max(1, int(left)))
    return out


def run_waiting(ctx: Context, cmd: Sequence[str], manager: str, wait: float = WAIT_SECONDS,
                retry: float = RETRY_SECONDS, sleep: Callable[[float], None] = time.sleep,
                clock: Callable[[], float] = time.monotonic) -> None:
    """Run one package-manager command; while another holds the lock, wait (at most ``wait`` seconds
    in all, saying so) and try again. InstallFailed when the lock is still held at the end; any other
    failure is raised as it is (CommandFailed)."""
    start = clock()
    said = False
    while True:
        left = wait - (clock() - start)
        stall: Optional[Stall] = Stall(_WAITING, max(1.0, left)) if manager in ("dnf", "yum") else None
        try:
            if stall is None:
                ctx.runner.action(list(cmd), env=locked_env(manager, ctx.env, left))
            else:
                ctx.runner.action(list(cmd), env=locked_env(manager, ctx.env, left), stall=stall)
            return
        except CommandFailed as exc:
            if not is_lock_failure(manager, exc):
                raise
            waited = clock() - start
            if waited + retry > wait:
                raise InstallFailed(
                    "%s: another package manager still holds the lock after %d s of waiting: nothing was installed"
                    % (quote(cmd), int(waited)),
                    hint="wait for it to finish (unattended-upgrades, packagekit, another terminal: "
                         "`ps -e | grep -E 'apt|dpkg|dnf|yum|zypper'`), then run kbuildguard again")
            if not said:
                ctx.console.warn("another package manager holds the lock (%s): waiting for it, up to %d s, "
                                 "trying again every %d s" % (_last_line(exc), int(wait), int(retry)))
                said = True
            else:
                ctx.console.info("still locked after %d s; trying again" % int(waited))
            sleep(retry)


def _last_line(exc: CommandFailed) -> str:
    """The manager's own first line about the lock (apt's names the holder: "It is held by process 4242")."""
    said = [line.strip() for line in (exc.output or exc.stderr).splitlines() if "lock" in line.lower()]
    return said[0][:160] if said else "exit status %d" % exc.returncode
