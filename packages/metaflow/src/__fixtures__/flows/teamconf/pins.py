from . import versions

SCIENCE = {"numpy": versions.NUMPY, "scipy": "1.13.0"}
