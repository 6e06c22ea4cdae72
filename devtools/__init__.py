"""Development tools: not part of the shipped package."""
