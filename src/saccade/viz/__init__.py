"""Pictures: glimpse paths (trajectories.py). matplotlib is imported inside the drawing functions."""
