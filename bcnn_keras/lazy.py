"""Packages whose names import their module on first use (PEP 562): importing the package costs
nothing until one of its names is needed.

Example:
    >>> import types
    >>> package = types.ModuleType("shelf")
    >>> sys.modules["shelf"] = package
    >>> lazy_package("shelf", {"JSONDecoder": "decoder"})
    >>> _ = sys.modules.setdefault("shelf.decoder", __import__("json").decoder)
    >>> package.JSONDecoder is __import__("json").JSONDecoder
    True
"""

import importlib
import importlib.util
import sys
import types


class _LazyPackage(types.ModuleType):
    """A package module whose exported names beat its submodules of the same name."""

    def __setattr__(self, name, value):
        # The import system binds a loaded submodule to its package's attribute. Where a
        # function has its module's name (`export.census`), the function stays the attribute.
        if isinstance(value, types.ModuleType) and name in self.__dict__.get("_lazy_exports", ()):
            return
        super().__setattr__(name, value)


def lazy_package(name, exports, submodules=()):
    """Makes the package `name` lazy: each name of `exports` (`{name: module relative to the
    package}`) is imported from its module on first use, and every submodule is reachable as an
    attribute, as after an eager import. A value is looked up once, then kept."""
    package = sys.modules[name]
    namespace = vars(package)

    def __getattr__(attribute):
        if attribute in exports:
            value = getattr(importlib.import_module(f"{name}.{exports[attribute]}"), attribute)
        elif not attribute.startswith("_") and importlib.util.find_spec(f"{name}.{attribute}") is not None:
            value = importlib.import_module(f"{name}.{attribute}")
        else:
            raise AttributeError(f"module {name!r} has no attribute {attribute!r}")
        namespace[attribute] = value
        return value

    def __dir__():
        return sorted({*namespace, *exports, *submodules})

    namespace.update(__getattr__=__getattr__, __dir__=__dir__, _lazy_exports=frozenset(exports))
    package.__class__ = _LazyPackage
