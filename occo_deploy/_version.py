"""The package version, in a module of its own so the floors below ``occo_deploy/__init__`` (the
sidecar writer) read it without importing the package's lazy exports."""

__version__ = "0.1.0"
