"""The GPU job executor that the last stage of `pulumi up` deploys to Modal."""
