"""Agents on other machines: the host pool, its connections, shipping the snapshot there and the
work back, the processes' control and the control socket's relay (issue 16, runtime `ssh`).

What is not tied to SSH (the shell scripts run on a host, bundle shipping, the socket relay)
takes a `Remote` (core/remote/remote.py): a place that runs a POSIX shell script with bytes in
and out, so a later runtime (a Ray actor) can reuse it over its own channel.
"""
