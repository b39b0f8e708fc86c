"""The command line: `corral run|status|logs|review|lock|gc|demo|tui ...`.

`main` (the parser and the commands), `locks` (`corral lock ...`, `corral put`), `review`
(`corral review show|approve|reject|acknowledge`), `headless` (`corral run` without the console),
`demo` (`corral demo`).
"""
