"""companion: a local AI companion daemon with memory."""

__version__ = "0.1.0"
