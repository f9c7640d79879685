"""The pure core: config schema and parsing, names, secret handling, errors.

Nothing here imports `pulumi`, a cloud SDK or another part of `infra`: every layer above may
import it, and it can be tested and reasoned about on its own.
"""
