"""Impasto's wire protocol: messages (the specification in code) and the client both sides share."""

from .messages import PROTOCOL, VERSION

__all__ = ["PROTOCOL", "VERSION"]
