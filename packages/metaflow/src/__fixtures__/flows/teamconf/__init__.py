# A package re-exporting its modules' constants.
from .pins import *
from .versions import PANDAS as PANDAS_VERSION
