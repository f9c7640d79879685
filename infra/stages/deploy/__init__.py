"""Stage 4, deploy: the GPU app deployed into the stack's Modal environment, smoke-tested."""
