"""Prints where this interpreter installs and finds packages, and whether it finds Metaflow (for
`prebuilt metaflow install` and `prebuilt run`)."""
import importlib.util
import json
import site
import sys
import sysconfig

user_site = None
if site.ENABLE_USER_SITE:
    user_site = site.getusersitepackages()
print(
    json.dumps(
        {
            "executable": sys.executable,
            "version": "%d.%d.%d" % sys.version_info[:3],
            "purelib": sysconfig.get_paths()["purelib"],
            "usersite": user_site,
            # Found on the path (PYTHONPATH included), not imported: importing Metaflow takes a second.
            "metaflow": importlib.util.find_spec("metaflow") is not None,
        }
    )
)
