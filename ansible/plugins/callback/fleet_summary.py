# liminix.update.fleet_summary: the table at the end of a rolling update. A callback rather than
# a last play, because a play stopped by max_fail_percentage ends the playbook: no later play runs.

DOCUMENTATION = """
name: fleet_summary
type: aggregate
short_description: table of liminix.update.update results per host
description:
  - At the end of the playbook prints one row per host of the plays that ran
    liminix.update.update (host, from -> to generation, bytes sent, seconds, result); hosts of
    those plays that never got the task (a stopped rolling update) are listed as not attempted.
  - With LIMINIX_FLEET_SUMMARY set to a file name, also writes the rows there as JSON.
requirements:
  - enable in callbacks_enabled (the collection's playbooks/ansible.cfg does)
"""

import json
import os

from ansible.plugins.callback import CallbackBase

ACTIONS = ("liminix.update.update", "update")


def sent(row):
    """Bytes sent, or in check mode the bytes the update would send."""
    if row.get("would_send_bytes") is not None:
        return "%d (would send)" % row["would_send_bytes"]
    return str(row["sent_bytes"])


def ours(task):
    return task.action in ACTIONS or getattr(task, "resolved_action", None) in ACTIONS


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "liminix.update.fleet_summary"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.rows = {}
        self.hosts = []
        self.play = None

    def v2_playbook_on_play_start(self, play):
        self.play = play

    def v2_playbook_on_task_start(self, task, is_conditional):
        # Every host of the play, also those of batches that never ran.
        if not ours(task):
            return
        inventory = self.play.get_variable_manager()._inventory
        for h in inventory.get_hosts(self.play.hosts, ignore_restrictions=True):
            if h.name not in self.hosts:
                self.hosts.append(h.name)

    def _record(self, result, outcome):
        if not ours(result._task):
            return
        r = result._result
        if outcome == "ok":
            if r.get("changed"):
                outcome = "would update" if result._task.check_mode else "updated"
                if r.get("strategy") == "ab" and r.get("slot") and not result._task.check_mode:
                    outcome += ", slot %s" % r["slot"]
            else:
                outcome = "unchanged"
        elif r.get("rolled_back"):
            outcome = "failed, rolled back"
        elif r.get("strategy") == "ab" and r.get("slot"):
            # A/B boards have no generations: the slot they run again is what counts.
            outcome = "failed, back on slot %s" % r["slot"]
        elif r.get("on_previous_generation"):
            outcome = "failed, on previous generation"
        if outcome.startswith("failed") and r.get("kind"):
            outcome += " (%s)" % r["kind"]
        self.rows[result._host.get_name()] = {
            "host": result._host.get_name(),
            "from": r.get("from_generation"),
            "to": r.get("to_generation"),
            "sent_bytes": r.get("sent_bytes", 0),
            "would_send_bytes": (r.get("would_send") or {}).get("bytes"),
            "seconds": r.get("seconds"),
            "result": outcome,
            "slot": r.get("slot"),
            "message": r.get("msg"),
        }

    def v2_runner_on_ok(self, result):
        self._record(result, "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._record(result, "failed")

    def v2_runner_on_unreachable(self, result):
        self._record(result, "unreachable")

    def v2_playbook_on_stats(self, stats):
        if not self.hosts and not self.rows:
            return
        rows = [self.rows.get(h) or {"host": h, "from": None, "to": None, "sent_bytes": 0,
                                     "seconds": None, "result": "not attempted"}
                for h in self.hosts + [h for h in self.rows if h not in self.hosts]]
        path = os.environ.get("LIMINIX_FLEET_SUMMARY")
        if path:
            with open(path, "w") as f:
                json.dump(rows, f, indent=1)
        self._display.banner("LIMINIX FLEET SUMMARY")
        head = ("host", "from -> to", "bytes sent", "seconds", "result")
        table = [head] + [(r["host"], "%s -> %s" % (r["from"], r["to"]), sent(r),
                           "-" if r["seconds"] is None else "%.1f" % r["seconds"], r["result"])
                          for r in rows]
        widths = [max(len(row[i]) for row in table) for i in range(len(head))]
        for row in table:
            self._display.display("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
        counts = {}
        for r in rows:
            key = r["result"].split(" (")[0]
            counts[key] = counts.get(key, 0) + 1
        self._display.display(", ".join("%d %s" % (n, k) for k, n in sorted(counts.items())))
