"""The runbook as commands that cannot skip a step: `rotate` and `incident`.

They drive a stack through `driver.StackDriver` (the real one runs the `pulumi` CLI; tests run an
in-process engine), read credentials only from the environment or stdin (`credential_input`), print
numbered steps (`steps`), and show ids only masked.
"""
