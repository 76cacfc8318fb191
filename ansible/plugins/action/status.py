# liminix.update.status: the agent's `status --json` as the `liminix` fact. Never changes anything.

from ansible.plugins.action import ActionBase

from ansible_collections.liminix.update.plugins.plugin_utils import agent as lx


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        try:
            st = lx.status(self, self._task.args.get("agent"))
        except lx.AgentFailed as e:
            return dict(result, failed=True, msg=e.message, rc=e.rc, kind=e.kind)
        return dict(result, changed=False, ansible_facts={"liminix": lx.facts(st)})
