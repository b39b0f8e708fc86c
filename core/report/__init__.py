"""The run's report: built from the folded log and the merged findings, written three ways.

`model` (the validated report), `render` (`report.json`, `report.md`, `report.sarif`),
`finalize` (after the agents: merge the coding work, verify it, merge findings, write the report).
"""
