# Documentation of the action plugin plugins/action/mark_good.py, which does the work on the controller.

DOCUMENTATION = r"""
module: mark_good
short_description: Confirm the running A/B slot of a Liminix router
description:
  - C(liminix-agent mark-good) after its health check; C(changed) when the slot was confirmed now.
options:
  deadline:
    description: Seconds the health check may take.
    type: int
  services:
    description: s6-rc services that must be up.
    type: list
    elements: str
  check:
    description: Shell command that must exit 0.
    type: str
  no_check:
    description: Confirm without a health check.
    type: bool
    default: false
  agent:
    description: The agent's path on the router.
    type: str
author:
  - Liminix updater contributors
"""
