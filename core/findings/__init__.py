"""Findings from audit agents: corral's published schema, SARIF in, and merging.

`schema` (the findings model and loading an attempt's output), `sarif` (SARIF 2.1.0 to findings),
`merge` (deduplicated, attributed, disagreements kept).
"""
