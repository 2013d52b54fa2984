"""festmon: live financial-integrity monitoring for festival cashless payments."""

__version__ = "0.1.0"
SERVICE_NAME = "festmon"
