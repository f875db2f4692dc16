"""The run loop and what serves it: checkpoints, evaluation, memory."""
