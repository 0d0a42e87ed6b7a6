"""Pictures: glimpse paths (trajectories.py), class-index masks as palette PNGs (masks.py). matplotlib is imported
inside the drawing functions."""
