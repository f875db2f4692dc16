"""The PySide6 desktop studio over the Qt-free engine in `core`.

`rlstudio` with no command opens it (`studio.launcher`); the window is
`studio.main_window.MainWindow`.
"""
