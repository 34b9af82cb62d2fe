"""The drift stage (run: pipeline/drift/stage.py)."""
