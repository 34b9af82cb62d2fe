"""The propose stage (run: pipeline/propose/stage.py)."""
