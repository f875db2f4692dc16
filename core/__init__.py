"""RL Studio's engine: models, rollouts, algorithms, rewards and the run store (no Qt)."""

# The one place the version lives: pyproject.toml reads it (hatch), runs record it, and a
# frozen app (which has no package metadata) can still report it.
__version__ = "0.2.0"
