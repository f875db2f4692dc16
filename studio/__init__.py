"""The PySide6 desktop studio.

The window lands with issue #3; until then `rlstudio` runs the default recipe headless.
"""
