"""Image size insights: where an image's bytes go and what would save them (a job per image)."""
