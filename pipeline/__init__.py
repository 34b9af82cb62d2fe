"""Self-post-training pipeline: a model trains its own successor (see README.md)."""
