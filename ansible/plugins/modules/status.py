# Documentation of the action plugin plugins/action/status.py, which does the work on the controller.

DOCUMENTATION = r"""
module: status
short_description: The agent's status of a Liminix router as facts
description:
  - C(liminix-agent status --json) over Ansible's connection, returned as the C(liminix) fact
    (generation, previous_generation, epoch, board, slot, trial, rollback, crash, status).
options:
  agent:
    description: The agent's path on the router.
    type: str
author:
  - Liminix updater contributors
"""
