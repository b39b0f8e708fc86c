"""corral over MCP (issue 14): `relay.py` (what each agent tool does, on the control socket),
`agent_server.py` (`corral mcp agent`: those tools for an agent's CLI, over stdio) and
`operator_server.py` (`corral mcp serve`: runs, status and actions for a person's assistant).

The only modules of corral that import the MCP SDK (tests/test_imports.py): the agent-side
commands (`corral heartbeat`, `corral lock`) never load it.
"""
