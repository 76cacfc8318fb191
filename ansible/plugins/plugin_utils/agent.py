# Shared by the liminix.update action plugins. Routers have no Python, so nothing here runs on
# them: agent commands go over Ansible's own connection as plain shell commands, and the
# packer's client (update.sh) runs on the controller with the ssh settings Ansible has for the
# host.

import json
import os
import shlex
import shutil
import subprocess
import tempfile
import time

from ansible.errors import AnsibleError

# Liminix puts `defaultProfile.packages` (the agent among them) on the PATH in /etc/profile, which
# an ssh command's shell does not read; an agent update.sh sent earlier waits in /run/liminix.
FIND_AGENT = (
    "[ -r /etc/profile ] && . /etc/profile >/dev/null 2>&1; "
    "a=$(command -v liminix-agent 2>/dev/null) || a=/run/liminix/liminix-agent; "
)

# Exit codes of the agent and update.sh (docs/errors.md), for messages.
EXIT_WORDS = {
    1: "failure",
    2: "usage",
    3: "verification failed",
    4: "refused",
    5: "no space",
    6: "busy",
    7: "installed, but activation or reboot failed",
    8: "ssh failed or no usable agent",
    9: "no agent carried for the device's CPU",
}


class AgentFailed(Exception):
    """The agent (or update.sh) ran and reported a failure."""

    def __init__(self, rc, kind, message):
        super().__init__(message)
        self.rc = rc
        self.kind = kind
        self.message = message


def agent_command(agent, args):
    """A shell command running the agent with ARGS (a list) on the router."""
    quoted = " ".join(shlex.quote(a) for a in args)
    if agent:
        return "%s %s" % (shlex.quote(agent), quoted)
    return '%s"$a" %s' % (FIND_AGENT, quoted)


def error_event(stdout):
    """The agent's `{"event": "error"}` line, if it printed one."""
    for line in stdout.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            e = json.loads(line)
        except ValueError:
            continue
        if isinstance(e, dict) and e.get("event") in ("error", "failed"):
            return e
    return None


def run_agent(action, agent, args):
    """Runs `liminix-agent ARGS --json` over Ansible's connection; returns its parsed JSON."""
    res = action._low_level_execute_command(agent_command(agent, list(args) + ["--json"]))
    rc = res.get("rc", 1)
    out = res.get("stdout", "")
    if rc != 0:
        e = error_event(out) or {}
        message = e.get("message") or res.get("stderr", "").strip() or out.strip()
        words = EXIT_WORDS.get(rc, "failure")
        if rc == 127:
            words = "no liminix-agent on the router"
        raise AgentFailed(rc, e.get("kind"), "liminix-agent %s: %s (exit %d): %s"
                          % (args[0], words, rc, message))
    try:
        return json.loads(out)
    except ValueError:
        raise AgentFailed(1, None, "liminix-agent %s printed no JSON: %r" % (args[0], out[:400]))


def status(action, agent):
    return run_agent(action, agent, ["status"])


def facts(st):
    """The `liminix` fact from `status --json`: the numbers a playbook decides on, and the rest."""
    gens = {g.get("number"): g for g in st.get("generations") or []}
    current = st.get("current")
    ab = st.get("ab") or {}
    rollback = ab.get("last_rollback")
    return {
        "board": st.get("board"),
        "generation": current,
        "previous_generation": st.get("previous"),
        "booted_generations": st.get("booted") or [],
        "toplevel": (gens.get(current) or {}).get("toplevel"),
        "epoch": st.get("highest_epoch"),
        "damaged_generations": [d.get("number") for d in st.get("damaged") or []],
        "store": st.get("store"),
        "slot": ab.get("booted"),
        "trial": ab.get("trial"),
        "rollback": rollback,
        # The pstore records of the boot that did not confirm, kept with the rollback.
        "crash": (rollback or {}).get("pstore") or None,
        "status": st,
    }


def probe_status(ssh, agent, timeout):
    """`status --json` over a connection of its own, given up after TIMEOUT seconds.

    Not Ansible's connection: a session opened just before the router reset (the agent's
    `apply --reboot` returns a moment before) waits for its answer forever, since the router's
    new kernel never tells the host the old connection is gone; keepalives and a time limit
    end such a probe so the next one connects afresh."""
    cmd = ssh.argv + ["-o", "ControlPath=none", "-o", "ServerAliveInterval=5",
                      "-o", "ServerAliveCountMax=2", ssh.target,
                      agent_command(agent, ["status", "--json"])]
    try:
        p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise AgentFailed(8, None, "no answer to status within %ds" % timeout)
    if p.returncode != 0:
        e = error_event(p.stdout) or {}
        raise AgentFailed(p.returncode, e.get("kind"), "liminix-agent status (exit %d): %s"
                          % (p.returncode, e.get("message") or p.stderr.strip()))
    try:
        return json.loads(p.stdout)
    except ValueError:
        raise AgentFailed(1, None, "liminix-agent status printed no JSON: %r" % p.stdout[:400])


def boot_id(ssh, timeout=60):
    """The running kernel's boot id (a new one on every boot), or None when the router does not
    answer; over a connection of its own, as `probe_status`."""
    cmd = ssh.argv + ["-o", "ControlPath=none", "-o", "ServerAliveInterval=5",
                      "-o", "ServerAliveCountMax=2", ssh.target,
                      "cat /proc/sys/kernel/random/boot_id"]
    try:
        p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None
    return p.stdout.strip() or None if p.returncode == 0 else None


def reboot(ssh, timeout=60):
    """Asks the router to reboot, over a connection of its own; the answer, if any, is not
    waited for (the reboot ends the session): `wait_for` with the boot id tells it happened."""
    cmd = ssh.argv + ["-o", "ControlPath=none", ssh.target, "reboot"]
    try:
        subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=timeout)
    except subprocess.TimeoutExpired:
        pass


def wait_for(ssh, agent, timeout, what, not_boot=None):
    """Polls `status` until the router answers again (after a reboot or levitate). With
    NOT_BOOT, a boot id taken before a reboot, an answer from that same boot does not count:
    the system that was asked to reboot may still answer for a moment."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        left = max(int(deadline - time.monotonic()), 1)
        try:
            if not_boot is not None and boot_id(ssh, min(left, 60)) in (None, not_boot):
                raise AgentFailed(8, None, "still the boot that was asked to reboot")
            return probe_status(ssh, agent, min(left, 60))
        except AgentFailed as e:
            last = e
        time.sleep(2)
    raise AgentFailed(8, None, "the router did not answer within %ds %s: %s" % (timeout, what, last))


class Ssh:
    """The ssh command Ansible would use for this host, as a wrapper script for SSH_COMMAND.

    The client splits SSH_COMMAND at blanks without shell quoting, so options with spaces (a
    ProxyCommand, a key path with a space) travel inside a script that execs ssh with them."""

    def __init__(self, connection, play_context):
        def opt(name):
            try:
                return connection.get_option(name)
            except (KeyError, AnsibleError):
                return None

        if connection.transport.split(".")[-1] != "ssh":
            raise AnsibleError("liminix.update needs the ssh connection (this host uses %s)"
                               % connection.transport)
        if opt("password"):
            raise AnsibleError("liminix.update: password logins are not supported (update.sh runs "
                               "ssh in batch mode); use ansible_ssh_private_key_file or an agent")
        self.host = opt("host") or play_context.remote_addr
        self.user = opt("remote_user") or play_context.remote_user
        argv = [opt("ssh_executable") or "ssh", "-o", "BatchMode=yes"]
        port = opt("port")
        if port:
            argv += ["-p", str(port)]
        key = opt("private_key_file")
        if key:
            argv += ["-i", os.path.expanduser(str(key))]
        if opt("host_key_checking") is False:
            argv += ["-o", "StrictHostKeyChecking=no"]
        timeout = opt("timeout")
        if timeout:
            argv += ["-o", "ConnectTimeout=%s" % timeout]
        for name in ("ssh_common_args", "ssh_extra_args"):
            argv += shlex.split(opt(name) or "")
        self.argv = argv
        self.dir = None

    @property
    def target(self):
        return "%s@%s" % (self.user, self.host) if self.user else self.host

    def __enter__(self):
        self.dir = tempfile.mkdtemp(prefix="liminix-ssh-")
        script = os.path.join(self.dir, "ssh")
        with open(script, "w") as f:
            f.write("#!/bin/sh\nexec %s \"$@\"\n" % " ".join(shlex.quote(a) for a in self.argv))
        os.chmod(script, 0o700)
        self.command = script
        return self

    def __exit__(self, *exc):
        shutil.rmtree(self.dir, ignore_errors=True)

    def env(self):
        e = dict(os.environ)
        e["SSH_COMMAND"] = self.command
        return e
