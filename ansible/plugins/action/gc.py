# liminix.update.gc: deletes store paths no kept generation references (check mode: the agent's
# own --dry-run).

from ansible.plugins.action import ActionBase

from ansible_collections.liminix.update.plugins.plugin_utils import agent as lx


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        a = self._task.args
        args = ["gc", "--keep", str(int(a.get("keep", 2)))]
        if self._task.check_mode:
            args.append("--dry-run")
        try:
            plan = lx.run_agent(self, a.get("agent"), args)
        except lx.AgentFailed as e:
            return dict(result, failed=True, msg=e.message, rc=e.rc, kind=e.kind)
        changed = bool(plan.get("deleted_paths") or plan.get("removed_generations"))
        return dict(result, changed=changed, gc=plan)
