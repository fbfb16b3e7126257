# Constants of the team's flows (imported by imported_constants.py).
PYTHON = "3.11"
TORCH = {"torch": "2.3.1", "numpy": "1.26.4"}
BASE = {"click": "8.1.7"}
