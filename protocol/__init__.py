"""Impasto's wire protocol: messages (the specification in code) and the client both sides share.

Imports nothing itself, so that `impasto.protocol.endpoint` (standard library only) serves the
installer in any python3, without pyzmq or msgpack.
"""
