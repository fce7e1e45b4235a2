"""Gantry's generator: reads an OpenAPI document and writes the `generated/` package.

See `README.md` beside this file for the stages; `gantry generate` (`command.run`) is the entry point.
"""
