"""rentagpu's Pulumi program and tools. Importing any module here has no side effects."""
