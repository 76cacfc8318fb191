# liminix.update.rollback: makes the previous generation (or `generation`) current; on A/B boards
# cancels a pending trial or switches slots.

from ansible.plugins.action import ActionBase

from ansible_collections.liminix.update.plugins.plugin_utils import agent as lx


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        a = self._task.args
        agent = a.get("agent")
        try:
            before = lx.status(self, agent)
            if self._task.check_mode:
                # What the agent would pick without a number: the previous generation.
                to = a.get("generation", before.get("previous"))
                return dict(result, changed=to is not None and to != before.get("current"),
                            from_generation=before.get("current"), to_generation=to,
                            ansible_facts={"liminix": lx.facts(before)})
            args = ["rollback"]
            if a.get("generation") is not None:
                args.append(str(int(a["generation"])))
            for flag in ("reboot", "allow_downgrade", "force"):
                if a.get(flag):
                    args.append("--" + flag.replace("_", "-"))
            r = lx.run_agent(self, agent, args)
            after = lx.status(self, agent) if not a.get("reboot") else before
        except lx.AgentFailed as e:
            return dict(result, failed=True, msg=e.message, rc=e.rc, kind=e.kind)
        frm = r.get("from", r.get("from_slot"))
        to = r.get("to", r.get("to_slot"))
        return dict(result, changed=frm != to, from_generation=r.get("from"),
                    to_generation=r.get("to"), from_slot=r.get("from_slot"),
                    to_slot=r.get("to_slot"), skipped=r.get("skipped"),
                    ansible_facts={"liminix": lx.facts(after)})
