# Documentation of the action plugin plugins/action/rollback.py, which does the work on the controller.

DOCUMENTATION = r"""
module: rollback
short_description: Roll a Liminix router back
description:
  - C(liminix-agent rollback); on A/B boards cancels a pending trial or switches slots.
options:
  generation:
    description: Generation to make current (default the previous one).
    type: int
  reboot:
    description: Reboot into it now.
    type: bool
    default: false
  allow_downgrade:
    description: Allow a generation below the highest security epoch.
    type: bool
    default: false
  force:
    description: A/B, switch even to a slot marked failed.
    type: bool
    default: false
  agent:
    description: The agent's path on the router.
    type: str
author:
  - Liminix updater contributors
"""
