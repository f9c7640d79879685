"""Stage 3, Modal: the stack's Modal environment and the runtime secret."""
