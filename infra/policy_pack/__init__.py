"""rentagpu's policy pack: `pulumi preview --policy-pack infra/policy_pack`.

`pack.build_policies()` builds the policies (tests use it); `__main__.py` serves them to the engine.
Importing this package starts nothing.
"""
