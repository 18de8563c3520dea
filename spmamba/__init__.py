__version__ = "0.1.0"  # one owner: pyproject reads it (tool.setuptools.dynamic)
