# liminix.update.mark_good: confirms the running A/B slot once its health check passes.

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
            if self._task.check_mode:
                st = lx.status(self, agent)
                trial = (st.get("ab") or {}).get("trial")
                return dict(result, changed=trial == "running", ansible_facts={"liminix": lx.facts(st)})
            args = ["mark-good"]
            if a.get("deadline") is not None:
                args += ["--deadline", str(int(a["deadline"]))]
            for s in a.get("services") or []:
                args += ["--service", s]
            if a.get("check"):
                args += ["--check", a["check"]]
            if a.get("no_check"):
                args.append("--no-check")
            m = lx.run_agent(self, agent, args)
            st = lx.status(self, agent)
        except lx.AgentFailed as e:
            return dict(result, failed=True, msg=e.message, rc=e.rc, kind=e.kind)
        return dict(result, changed=not m.get("already_good"), slot=m.get("slot"), mark_good=m,
                    ansible_facts={"liminix": lx.facts(st)})
