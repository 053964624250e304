"""The drift monitor: recent traffic against the training reference (monitor.py runs a pass)."""
