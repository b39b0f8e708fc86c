"""The human gate: approve or reject a run's report, bound to what the reviewer saw.

`gate` (decisions, their checks and landing). The reviewer's identity is a value passed in.
"""
