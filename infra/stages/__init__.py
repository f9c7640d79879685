"""The four stages of a stack, in dependency order: github, aws, modal, deploy.

Each stage is a package with `component.py` (a `pulumi.ComponentResource` and its typed Args,
which only wire resources together) and the pure builders that compute its names, documents and
settings. Stages import the core and the Modal hook, never each other: the program (`infra.program`)
passes one stage's outputs into the next.
"""
