"""genredream: real-time genre scores and audio deep dream for live performers.

The code lives in three folders at the top of the repository, ``engine/``,
``models/`` and ``bridge/``; pyproject.toml's ``package-dir`` installs them as
``genredream.engine``, ``genredream.models`` and ``genredream.bridge``, so a
user's own ``models`` package (or a ``models/`` folder in the working
directory) can never shadow or overwrite ours. docs/architecture.md maps the
data flow onto those modules.
"""

import os as _os

# Run from a source checkout without an install (``python -m genredream`` in
# the repository), the three folders are this package's parents' children:
# let the import system find them there too. An installed package (wheel or
# editable) already has them under this name, and this adds nothing.
_src = _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__)))
if all(_os.path.isfile(_os.path.join(_src, p, "__init__.py")) for p in ("engine", "models", "bridge")):
    if _src not in __path__:
        __path__.append(_src)
del _os, _src
