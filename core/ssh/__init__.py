"""`corral serve --ssh`: the console over SSH, one `corral tui` on a pseudo-terminal per
session, public-key authentication only, from corral's own authorized keys file.

`keys` (the keys file: one named key a line, with its roles), `hostkey` (the server's persistent
key and its fingerprint), `options` (where it listens and how it is hardened), `console_child`
(one console process on a pseudo-terminal: spawn, relay, resize, stop) and `console_server` (the
asyncssh server that ties them together). The only home of asyncssh apart from the remote
runtime; a front end: it may use the operator API's identity, never the engine. Kept empty so
that `corral serve --web` loads none of it.
"""
