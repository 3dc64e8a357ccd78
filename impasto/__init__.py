"""Impasto: neural style transfer for GIMP 3.

The one import name the package installs. Its parts are the repository's top-level folders, linked
here (`impasto/protocol -> ../protocol`, …) so that the working tree imports exactly what the wheel
installs: `impasto.protocol`, `impasto.daemon`, `impasto.cli`, `impasto.install`, and the plug-in's
files as data in `impasto/plugin`.
"""
