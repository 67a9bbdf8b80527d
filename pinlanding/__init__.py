"""PinLanding: catalog feed -> curated attributes -> collections -> landing pages."""

__version__ = "0.1.0"
