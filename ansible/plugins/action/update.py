# liminix.update.update: installs a new system on one router from the controller. See
# plugins/modules/update.py for the options and docs/fleet.md for the design.

import json
import os
import subprocess
import time

from ansible.errors import AnsibleError
from ansible.plugins.action import ActionBase

from ansible_collections.liminix.update.plugins.plugin_utils import agent as lx

STRATEGIES = ("closure", "apply", "ab", "levitate")
ACTIVATE = {"reboot": [], "fast": ["--fast"], "none": ["--no-reboot"]}


def json_lines(text):
    out = []
    for line in text.splitlines():
        try:
            e = json.loads(line)
        except ValueError:
            continue
        if isinstance(e, dict):
            out.append(e)
    return out


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _supports_check_mode = True
    _requires_connection = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        a = self._task.args
        strategy = a.get("strategy", "closure")
        if strategy not in STRATEGIES:
            raise AnsibleError("strategy must be one of %s, not %r" % (", ".join(STRATEGIES), strategy))
        self.agent = a.get("agent")
        result.update(strategy=strategy, changed=False)
        try:
            before = lx.status(self, self.agent)
        except lx.AgentFailed:
            # A router without an agent yet: update.sh brings one (closure strategy).
            before = None
        result["from_generation"] = (before or {}).get("current")
        started = time.monotonic()
        try:
            # Kept for the waits after a reboot, which need only its ssh arguments.
            self.ssh = lx.Ssh(self._connection, self._play_context)
            with self.ssh as ssh:
                if strategy == "closure":
                    self._closure(ssh, a, result)
                else:
                    self._images(ssh, a, strategy, result)
        except lx.AgentFailed as e:
            result.update(failed=True, msg=e.message, rc=e.rc, kind=e.kind)
        result["seconds"] = round(time.monotonic() - started, 3)
        self._settle(a, before, result)
        return result

    # -- closure updates: the packer's update.sh ------------------------------------------------

    def _closure(self, ssh, a, result):
        updater = a.get("updater")
        if not updater:
            raise AnsibleError("the closure strategy needs updater: (the packer's bin/update.sh)")
        activate = a.get("activate", "reboot")
        if activate not in ACTIVATE:
            raise AnsibleError("activate must be reboot, fast or none, not %r" % activate)
        argv = [os.path.expanduser(updater), "--json"] + ACTIVATE[activate]
        if a.get("root"):
            argv += ["--root", a["root"]]
        if self.agent:
            argv += ["--agent", self.agent]
        if a.get("no_delta"):
            argv.append("--no-delta")
        if self._task.check_mode:
            argv.append("--dry-run")
        argv.append(ssh.target)
        p = subprocess.run(argv, env=ssh.env(), stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        events = json_lines(p.stdout)
        result.update(events=events, rc=p.returncode, sent_bytes=0, sent_paths=0)
        for e in events:
            kind = e.get("event")
            if kind == "installed":
                result.update(changed=True, installed=True, to_generation=e.get("generation"),
                              copied_bytes=e.get("copied_bytes"))
            elif kind == "unchanged":
                result["to_generation"] = e.get("generation")
            elif kind == "done":
                result.update(sent_bytes=e.get("sent_bytes", 0), sent_paths=e.get("sent_paths", 0))
                if e.get("dry_run"):
                    result["changed"] = bool(e.get("would_install"))
            elif kind == "would_send":
                result["would_send"] = {k: e.get(k) for k in ("paths", "bytes", "store_paths")}
            elif kind == "rebooting":
                result["rebooting"] = True
        if p.returncode != 0:
            failed = next((e for e in events if e.get("event") == "failed"), {})
            message = failed.get("message") or p.stderr.strip() or "update.sh failed"
            raise lx.AgentFailed(p.returncode, failed.get("kind"), "update.sh: %s (exit %d): %s" % (
                lx.EXIT_WORDS.get(p.returncode, "failure"), p.returncode, message))

    # -- image bundles: apply, A/B, levitate ----------------------------------------------------

    def _images(self, ssh, a, strategy, result):
        bundle = a.get("bundle")
        if not bundle:
            raise AnsibleError("the %s strategy needs bundle: (a liminix-pack bundle with images)" % strategy)
        try:
            self._images_with(ssh, a, strategy, result, os.path.expanduser(bundle))
        except lx.AgentFailed as e:
            # The router does not hold what the bundle's image patches were made against; it
            # said so before anything was written. The whole images go instead, when given.
            full = a.get("full_bundle")
            if e.kind != "base_mismatch" or not full:
                raise
            result["fallback"] = e.message
            self._images_with(ssh, a, strategy, result, os.path.expanduser(full))

    def _images_with(self, ssh, a, strategy, result, bundle):
        size = os.path.getsize(bundle)
        if self._task.check_mode:
            self._images_dry_run(ssh, bundle, size, result)
            return
        timeout = int(a.get("reboot_timeout", 300))
        if strategy == "levitate":
            # The router checks the bundle's header and whether RAM holds the update before it
            # leaves its flash: a refusal here changes nothing.
            result["plan"] = self._agent_with_bundle(
                ssh, ["image-plan", "--json", "--bundle-bytes", str(size)], bundle)
            lx.run_agent(self, self.agent, ["levitate"])
            lx.wait_for(ssh, self.agent, timeout, "after levitate")
        args = ["apply", "--json", "-"]
        if strategy == "ab":
            # The A/B strategy arms the other slot and reboots into it in one step.
            args.insert(1, "--reboot")
        if strategy in ("ab", "levitate"):
            # After the reboot, only an answer from a new boot counts.
            result["boot_id"] = lx.boot_id(ssh)
        result.update(sent_bytes=size, sent_paths=0)
        report = self._agent_with_bundle(ssh, args, bundle)
        result.update(rc=0, apply=report)
        images = report.get("images") or []
        written = any(i.get("method") != "raw" or i.get("rewritten_blocks", 0) > 0 for i in images)
        result["changed"] = written or report.get("ab") is not None
        if strategy == "levitate":
            # Asked once apply's answer is read: the maintenance root's reboot may cut the
            # session it runs in.
            lx.reboot(ssh)
        if strategy in ("ab", "levitate"):
            result["rebooting"] = True

    def _agent_with_bundle(self, ssh, args, bundle):
        """Runs the agent with ARGS over ssh, the bundle on its stdin; returns its JSON answer."""
        cmd = ssh.argv + [ssh.target, lx.agent_command(self.agent, args)]
        with open(bundle, "rb") as f:
            p = subprocess.run(cmd, stdin=f, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if p.returncode != 0:
            e = lx.error_event(p.stdout) or {}
            raise lx.AgentFailed(p.returncode, e.get("kind"), "liminix-agent %s: %s (exit %d): %s" % (
                args[0], lx.EXIT_WORDS.get(p.returncode, "failure"), p.returncode,
                e.get("message") or p.stderr.strip()))
        return json.loads(p.stdout)

    def _images_dry_run(self, ssh, bundle, size, result):
        """Check mode: the agent's `apply --dry-run` checks the bundle against the router and
        compares every target with its image; an image bundle goes whole, so its size is what
        an update would send."""
        plan = self._agent_with_bundle(ssh, ["apply", "--dry-run", "--json", "-"], bundle)
        result["apply"] = plan
        changed = bool(plan.get("would_change"))
        result.update(changed=changed, would_send={"paths": 0, "bytes": size})

    # -- after: facts, and a failed host back on its previous generation ------------------------

    def _settle(self, a, before, result):
        if result.get("rebooting") and not self._task.check_mode:
            timeout = int(a.get("reboot_timeout", 300))
            try:
                after = lx.wait_for(self.ssh, self.agent, timeout, "after the reboot",
                                    not_boot=result.get("boot_id"))
                if result["strategy"] == "ab":
                    after = self._confirmed(a, after, result)
                self._drop_connection()
            except lx.AgentFailed as e:
                result.update(failed=True, msg=e.message, rc=e.rc)
                return
        else:
            try:
                after = lx.status(self, self.agent)
            except lx.AgentFailed as e:
                result.setdefault("msg", e.message)
                return
        frm = (before or {}).get("current")
        if result.get("failed") and result.get("installed") and a.get("rollback_on_failure", True) \
                and after.get("current") != frm and frm is not None:
            try:
                lx.run_agent(self, self.agent, ["rollback", str(frm)])
                result["rolled_back"] = True
                after = lx.status(self, self.agent)
            except lx.AgentFailed as e:
                result["msg"] += "; rolling back to generation %s failed too: %s" % (frm, e.message)
        result["ansible_facts"] = {"liminix": lx.facts(after)}
        result["to_generation"] = result.get("to_generation", after.get("current"))
        if result.get("failed"):
            result["to_generation"] = after.get("current")
            result["on_previous_generation"] = after.get("current") == frm
        result["slot"] = (after.get("ab") or {}).get("booted")

    def _drop_connection(self):
        """Ansible's persistent connection (ControlPersist) still points at the system before
        the reboot; a later task would wait on it forever."""
        try:
            self._connection.reset()
        except Exception:  # nothing to stop, or a connection that reconnects anyway
            pass

    def _confirmed(self, a, after, result):
        """A/B: waits until the new slot confirms (mark-good) or the boot loader fell back."""
        deadline = time.monotonic() + int(a.get("confirm_timeout", 600))
        while (after.get("ab") or {}).get("trial") not in ("confirmed", "rolled-back", "none"):
            if time.monotonic() > deadline:
                raise lx.AgentFailed(1, "unhealthy", "the new slot did not confirm in time")
            time.sleep(5)
            # The router is down again while the boot loader tries the new slot (and, when
            # that fails, boots the old one): give it what is left of the confirm deadline.
            left = max(int(deadline - time.monotonic()), 1)
            after = lx.wait_for(self.ssh, self.agent, left,
                                 "while waiting for the slot to confirm")
        # The first reader after a fallback settles it (`rolled-back` once, then `none` with
        # `last_rollback`); the router's own mark-good at boot may be that reader, so the
        # booted slot decides.
        ab = after.get("ab") or {}
        to = ((result.get("apply") or {}).get("ab") or {}).get("to")
        if ab.get("trial") == "rolled-back" or (to is not None and ab.get("booted") != to):
            result.update(failed=True, msg="the new slot did not confirm: the boot loader went back "
                          "to slot %s" % ab.get("booted"))
        return after
