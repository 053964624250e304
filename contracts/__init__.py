"""What the offline side (export) and the online side (orchestrator) agree on.

Both import this package and never each other: the Triton models' names, the files the export
step writes into the model repository, and the limits a served model enforces.
"""

from pathlib import Path

# The checkout: the committed model repository and data/ are found from here.
PROJECT_ROOT = Path(__file__).resolve().parents[1]
