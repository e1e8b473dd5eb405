"""Load the user's task from an import path such as `package.module:function`."""

import importlib
import inspect
from collections.abc import Callable
from typing import Any

Task = Callable[[Any, dict[str, Any]], Any]


class TaskLoadError(ValueError):
    pass


def load_task(path: str) -> Task:
    module_name, separator, attribute = path.partition(":")
    if not separator or not module_name or not attribute:
        raise TaskLoadError("expected package.module:function")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise TaskLoadError(f"cannot import {module_name!r}: {error}") from None
    task = getattr(module, attribute, None)
    if not callable(task):
        raise TaskLoadError(f"{module_name!r} has no callable {attribute!r}")
    return task


def is_async(task: Task) -> bool:
    """An `async def` function (or a callable object whose __call__ is one, or a partial of one)."""
    return inspect.iscoroutinefunction(task) or inspect.iscoroutinefunction(getattr(task, "__call__", None))
