"""Order-tracking fraud detector with a case tracker."""

import importlib.abc
import importlib.machinery
import sys

__version__ = "0.1.0"


class _SqliteUtilsWithoutPandas(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Loads sqlite-utils with pandas and numpy hidden, unless they are loaded already.

    sqlite-utils imports both (0.3 s and 110 MB a process) only to map their scalar types to column types when
    it creates a table from values; the store's schema is SQL migrations, so no command needs that. A command
    that works with frames imports pandas itself, later, as usual.
    """

    loader: importlib.abc.Loader | None = None

    def find_spec(self, name, path=None, target=None):  # noqa: ANN001, ANN201 - importlib's signature
        if name != "sqlite_utils":
            return None
        sys.meta_path.remove(self)  # once
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is not None and spec.loader is not None:
            self.loader, spec.loader = spec.loader, self
        return spec

    def create_module(self, spec):  # noqa: ANN001, ANN201
        return self.loader.create_module(spec)

    def exec_module(self, module) -> None:  # noqa: ANN001
        module.__loader__ = module.__spec__.loader = self.loader
        hidden = [name for name in ("pandas", "numpy") if name not in sys.modules]
        for name in hidden:
            sys.modules[name] = None  # `import pandas` raises ImportError meanwhile
        try:
            self.loader.exec_module(module)
        finally:
            for name in hidden:
                if name in sys.modules and sys.modules[name] is None:
                    del sys.modules[name]


if "sqlite_utils" not in sys.modules:
    sys.meta_path.insert(0, _SqliteUtilsWithoutPandas())
