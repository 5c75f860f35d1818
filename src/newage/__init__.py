"""newage: a Python server for the SillyTavern-NewAge real-time protocol."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("newage")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0+unknown"
