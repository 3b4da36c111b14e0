"""The engine installer: the engine's Python packages in a folder of the plugin's own in the QGIS profile.

Nothing in this package imports QGIS, Qt, torch or the engine's models (only the engine's progress helper
and atomic moves, which need the standard library alone): it must work precisely when the engine's packages
are missing, and it is tested in a plain Python.
The plugin gives it the profile folder and a progress callback (``plugin/alg_install.py``).

- ``interpreter``: the real Python interpreter of the running QGIS, which pip must run with;
- ``plan``: what to install (requirements, the torch build, the index) and the constraints that keep
  QGIS's own packages (numpy, GDAL, PyQt, …) as they are;
- ``pip``: running pip with progress, cancellation and a sentence for each way it fails;
- ``folder``: the dependencies folder, put on ``sys.path`` at start, replaced only by a complete install;
- ``install``: the whole install, repair and removal.
"""


class InstallError(Exception):
    """An install problem explained in one sentence with what to do."""


CANCELLED = "The installation was cancelled; nothing was changed."


class InstallCancelled(InstallError):  # noqa: N818 (a cancel is not an error to the user)
    """The user cancelled; the previous state is untouched."""

    def __init__(self, message: str = CANCELLED) -> None:
        super().__init__(message)
