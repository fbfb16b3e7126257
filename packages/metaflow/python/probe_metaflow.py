"""Prints whether this interpreter imports Metaflow and which environments it loads
(for `prebuilt metaflow status`). Metaflow's own messages go to stderr."""
import json
import os
import sys

# This script's directory holds the extension shipped with prebuilt: keep it off the path, so
# only what the interpreter itself would find (an install, PYTHONPATH) is probed.
_here = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _here]

result = {"metaflow": None, "error": None, "environments": []}
stdout = sys.stdout
sys.stdout = sys.stderr
try:
    import metaflow
    from metaflow.metaflow_version import get_version
    from metaflow.plugins import ENVIRONMENTS

    result["metaflow"] = get_version()
    result["environments"] = [e.TYPE for e in ENVIRONMENTS]
except Exception as e:  # reported, not raised: status shows what is wrong
    result["error"] = "%s: %s" % (type(e).__name__, e)
finally:
    sys.stdout = stdout
print(json.dumps(result))
