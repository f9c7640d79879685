"""Stage 2, AWS: the bucket, the runtime principal and the CI roles, least privilege."""
