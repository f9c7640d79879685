"""Pulumi's entry point for this project (`pulumi up` runs this file). The program is infra/."""

from infra.program import main

main()
