"""A user's own model: a factory ``path/to/file.py:build`` or ``package.module:build``.

The factory returns an ``nn.Module`` that takes images in ``[0, 1]`` (normalisation inside) and
returns one logits tensor ``(N, classes)``; a factory with a ``dataset`` parameter is given the
dataset's name. :func:`check_user_model` says in one line what does not fit (an error) and what
is suspicious (a note): a wrong output shape or a tuple output stop the run; a model handed back
in train mode with randomness (dropout), or whose output is random in eval mode, is noted (the
suite evaluates in eval mode).
"""

from __future__ import annotations

import copy
import importlib
import importlib.util
import inspect
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from core.errors import first_line
from models.datasets import model_dataset
from models.errors import ModelError


@dataclass(frozen=True)
class FactoryRef:
    """Where a factory lives: ``path`` (a file) or ``module``, and the ``function`` name.

    ``name`` is the model's name in the store: ``<file stem>:<function>`` or
    ``<module>:<function>``."""

    text: str
    function: str
    path: Path | None = None
    module: str | None = None

    @property
    def name(self) -> str:
        where = self.path.stem if self.path is not None else self.module
        return f"{where}:{self.function}"


def parse_factory(text: str, *, is_file: bool) -> FactoryRef:
    """``file.py:build`` (``is_file``) or ``package.module:build``; bad text -> ModelError."""
    where, colon, function = str(text).rpartition(":")
    if not colon or not where or not function.isidentifier():
        form = "path/to/file.py:build" if is_file else "package.module:build"
        raise ModelError(f"a model factory is written {form}, got {text!r}")
    if not is_file:
        if not all(part.isidentifier() for part in where.split(".")):
            raise ModelError(f"not a module path: {where!r} (write package.module:build)")
        return FactoryRef(str(text), function, module=where)
    path = Path(where)
    if not path.is_file():
        raise ModelError(f"model file not found: {path}")
    markup = sorted(set(path.stem) & set(MARKUP)) or [c for c in path.stem[:1] if c in "=+-@"]
    if markup or any(ord(ch) < 32 for ch in path.stem):
        shown = "".join(markup) if markup else "a control character"
        raise ModelError(
            f"{path.name}: the model is named after its file, and {shown!r} in that name would "
            "be read as markup in the report's Markdown, CSV and LaTeX tables; rename the file"
        )
    return FactoryRef(str(text), function, path=path.resolve())


MARKUP = "|<>[]()*`#\\\"'&$%{}~^"  # table, HTML, link, emphasis, code, TeX characters


def load_factory(ref: FactoryRef) -> Callable[..., nn.Module]:
    """Import the factory's module (a file is run as a module, its folder on ``sys.path``)."""
    try:
        module = _import_file(ref.path) if ref.path is not None else _import(ref.module)
    except ModelError:
        raise
    except (Exception, SystemExit, KeyboardInterrupt) as err:  # noqa: BLE001 - the user's code
        raise ModelError(f"cannot import {ref.text}: {_what(err)}") from None
    factory = getattr(module, ref.function, None)
    if not callable(factory):
        raise ModelError(f"{ref.text}: no callable {ref.function!r} in the module")
    return factory


def _import(module: str) -> object:
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as err:
        raise ModelError(f"cannot import module {module!r}: {err}") from None


def _import_file(path: Path) -> object:
    name = f"racl_user_model_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ModelError(f"cannot load {path} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.parent))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(path.parent))
    return module


def build_user_model(ref: FactoryRef, dataset: str, seed: int = 0) -> nn.Module:
    """Call the factory (seeded, so unloaded weights are reproducible); it must give a Module."""
    factory = load_factory(ref)
    kwargs = {"dataset": dataset} if _takes_dataset(factory) else {}
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        try:
            model = factory(**kwargs)
        except (Exception, SystemExit, KeyboardInterrupt) as err:  # noqa: BLE001 - user code
            raise ModelError(f"{ref.text} failed: {_what(err)}") from None
    if not isinstance(model, nn.Module):
        raise ModelError(f"{ref.text} returned {type(model).__name__}, not a torch.nn.Module")
    return model


def _what(err: BaseException) -> str:
    """One line for what the user's code raised (its ``sys.exit(7)`` or Ctrl-C included: the
    suite reports it instead of leaving with the code's exit status)."""
    if isinstance(err, SystemExit):
        return f"it called sys.exit({err.code!r})"
    if isinstance(err, KeyboardInterrupt):
        return "it raised KeyboardInterrupt"
    return f"{type(err).__name__}: {first_line(err)}"


def _takes_dataset(factory: Callable[..., object]) -> bool:
    try:
        return "dataset" in inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return False


@torch.no_grad()
def check_user_model(model: nn.Module, dataset: str, name: str) -> list[str]:
    """Raise ModelError when the output does not fit ``dataset``; return one-line notes."""
    info = model_dataset(dataset)
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(2, *info.shape, generator=generator).to(device)
    notes = []
    random_in_train = False
    if model.training:  # a module is built in train mode: say so only if that mode is random
        probe = copy.deepcopy(model)  # a train-mode forward may update BatchNorm statistics
        random_in_train = not torch.equal(_logits(probe, x, name), _logits(probe, x, name))
    model.eval()
    first = _logits(model, x, name)
    if first.dim() != 2 or first.shape != (2, info.num_classes):
        raise ModelError(
            f"{name}: output of shape {tuple(first.shape)} for a batch of 2 {dataset} images; "
            f"it must be logits of shape (N, {info.num_classes})"
        )
    if not torch.equal(first, _logits(model, x, name)):
        notes.append(f"{name}: its output is random in eval mode (two forwards differ): "
                     "randomized_forward wants an EoT attack, e.g. pgd20(eot=10)")  # fmt: skip
    elif random_in_train:
        notes.append(f"{name}: the factory returns the model in train mode, where its output "
                     "is random (dropout?); the suite evaluates it in eval mode")  # fmt: skip
    return notes


def _logits(model: nn.Module, x: torch.Tensor, name: str) -> torch.Tensor:
    try:
        out = model(x)
    except Exception as err:  # noqa: BLE001 - the user's code: one line, whatever it raised
        raise ModelError(f"{name}: forward failed on {tuple(x.shape)} images: {err}") from None
    if isinstance(out, (tuple, list)):
        raise ModelError(f"{name}: forward returns a {type(out).__name__}; the suite needs one "
                         "logits tensor (N, classes): return the logits only")  # fmt: skip
    if not isinstance(out, torch.Tensor):
        raise ModelError(f"{name}: forward returns {type(out).__name__}, not a logits tensor")
    if not out.is_floating_point():  # complex, integer or bool "logits"
        raise ModelError(f"{name}: forward returns {out.dtype} logits; real floating-point needed")
    if out.device.type == "meta":
        raise ModelError(f"{name}: forward returns a tensor on the meta device (no values)")
    out = out.float()
    if not torch.isfinite(out).all():
        raise ModelError(f"{name}: forward returns NaN or infinite logits (broken weights?)")
    return out
