# Documentation of the action plugin plugins/action/update.py, which does the work on the controller.

DOCUMENTATION = r"""
module: update
short_description: Install a new system on a Liminix router
description:
  - Runs on the controller (routers have no Python). Reads the agent's status over Ansible's
    connection, runs the packer's update.sh (closure) or pipes an image bundle into
    C(liminix-agent apply) over ssh with the host's ssh settings, then reads the status again
    and returns it as the C(liminix) fact.
  - C(changed) only when a generation was installed or an image written. Check mode runs
    C(update.sh --dry-run) and returns C(would_send).
  - A router that installed and then failed (activation, reboot) is rolled back when
    I(rollback_on_failure) is true. See docs/fleet.md.
options:
  strategy:
    description: closure (writable root, update.sh), apply (raw/UBI images), ab (A/B slots), levitate (NOR)
    type: str
    choices: [closure, apply, ab, levitate]
    default: closure
  updater:
    description: The packer's bin/update.sh (closure strategy).
    type: path
  bundle:
    description: A liminix-pack bundle with images (other strategies).
    type: path
  full_bundle:
    description: >-
      The same images without patches (liminix-pack bundle without --delta-base), sent instead
      when the router does not hold what the patches of C(bundle) were made against (the agent
      refuses with base_mismatch before it writes anything).
    type: path
  activate:
    description: After a closure install, reboot, activate now (fast) or neither (none).
    type: str
    choices: [reboot, fast, none]
    default: reboot
  root:
    description: update.sh --root, the target system's root on the device.
    type: str
  no_delta:
    description: update.sh --no-delta.
    type: bool
    default: false
  agent:
    description: The agent's path on the router (default liminix-agent on the PATH, else /run/liminix/liminix-agent).
    type: str
  rollback_on_failure:
    description: Roll a router that installed and then failed back to the generation it ran.
    type: bool
    default: true
  reboot_timeout:
    description: Seconds to wait for the router to answer after a reboot or levitate.
    type: int
    default: 300
  confirm_timeout:
    description: A/B, seconds to wait for the new slot to confirm.
    type: int
    default: 600
author:
  - Liminix updater contributors
"""
