# Documentation of the action plugin plugins/action/gc.py, which does the work on the controller.

DOCUMENTATION = r"""
module: gc
short_description: Collect unreferenced store paths on a Liminix router
description:
  - C(liminix-agent gc --keep N); check mode runs the agent's own --dry-run.
options:
  keep:
    description: Also keep the N newest generations.
    type: int
    default: 2
  agent:
    description: The agent's path on the router.
    type: str
author:
  - Liminix updater contributors
"""
