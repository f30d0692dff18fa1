"""Only the optional C helper (flowviz/_untrack.c); everything else is in pyproject.toml.

optional=True: without a C compiler or Python's headers the install still succeeds and flowviz
uses flowviz/gcuntrack.py's pure-Python fallback (the same output, more garbage-collector time)."""

from setuptools import Extension, setup

setup(ext_modules=[Extension("flowviz._untrack", ["flowviz/_untrack.c"], optional=True)])
