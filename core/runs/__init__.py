"""Runs on disk: where a run keeps its files, the list of runs, and clearing old ones.

`rundir` (`<git-common-dir>/corral/runs/<run-id>/`), `listing` (`corral runs`), `gc` (`corral gc`),
`environment` (the environment a run's agents start from, recorded at run start).
"""
