"""System identification from robot logs; writes randomization ranges."""
