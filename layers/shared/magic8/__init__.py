"""magic8 shared package."""
