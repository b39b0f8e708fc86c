"""The event types of the log, one module per family; import them through
`corral.core.log.events`, which keeps the union and every public name."""
