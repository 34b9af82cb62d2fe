"""The evaluate stage (run: pipeline/evaluate/stage.py)."""
