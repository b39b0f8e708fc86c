"""Workspaces: git worktree lifecycle for agents (GitPython and the git CLI).

Imports neither the engine (`corral.core`) nor Textual; the engine calls this from worker
threads. Modules: `git` (running git, queries), `safety` (config that could run programs),
`gitlock` (cross-process metadata lock), `workspace` (create/unlock/remove), `untracked`
(copying files such as .env), `gc` (removing a finished run's trees and branches).
"""
