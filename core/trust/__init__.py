"""The trust boundary (docs/reliability.md T1-T7): what agents may not do or see.

`authority` (operator actions come from people, not agents), `integrity` (what agents must not
touch in the shared repository), `inert` (agent text made inert before a terminal or report),
`redact` (known secret values kept out of what corral stores).
"""
