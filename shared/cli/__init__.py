"""``pipeline-gateway``, the on-call engineer's command line: failure alerts and runs in the terminal.

It reads what the app reads (its settings, the run registry, the alert queue) with the same identity
rules, so it shows what the app knows. Installed with the project's ``cli`` extra (click, rich); the
function app never imports this package, which keeps those libraries off its cold start.
"""
