"""The train stage (run: pipeline/train/stage.py)."""
