"""Prints where this interpreter installs and finds packages, and whether it finds Metaflow (for
`prebuilt metaflow install` and `prebuilt run`).

Usage: python3 python_site.py [module ...] — each module (a top-level name) this interpreter does
not find is listed under "missing" (found on the path, never imported).
"""
import importlib.util
import json
import site
import sys
import sysconfig


def finds(name):
    try:
        return importlib.util.find_spec(name) is not None
    except Exception:  # a finder that fails is no proof the module is missing
        return True


user_site = None
if site.ENABLE_USER_SITE:
    user_site = site.getusersitepackages()
# This script's folder is first on the path; the flow's run has the flow's folder there instead.
script_dir, sys.path[:] = sys.path[0], sys.path[1:]
missing = [name for name in sys.argv[1:] if not finds(name)]
sys.path.insert(0, script_dir)
print(
    json.dumps(
        {
            "executable": sys.executable,
            "version": "%d.%d.%d" % sys.version_info[:3],
            "purelib": sysconfig.get_paths()["purelib"],
            "usersite": user_site,
            # Found on the path (PYTHONPATH included), not imported: importing Metaflow takes a second.
            "metaflow": finds("metaflow"),
            "missing": missing,
        }
    )
)
