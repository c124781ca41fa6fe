"""What every benchmark script shares: where results go and how they are written."""

import json
import os

RESULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def write_json(data, path):
    """Writes `data` as indented JSON to `path` (creating its directory) and says so."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as stream:
        json.dump(data, stream, indent=2)
    print("wrote", path)
