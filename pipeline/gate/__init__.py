"""The gate stage (run: pipeline/gate/stage.py)."""
