"""Stage 1, GitHub: the deployment environments, their protection, secrets and variables."""
