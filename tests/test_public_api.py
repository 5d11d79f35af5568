"""The top-level public API: every name in ``improved_gan.__all__`` imports, is the object its sub-package
defines, has a docstring (its methods too, ``forward`` included), and ``import improved_gan`` stays light."""

from __future__ import annotations

import ast
import importlib
import inspect
import subprocess
import sys
from pathlib import Path

import pytest

import improved_gan

SRC = Path(improved_gan.__file__).parent

ISSUE_NAMES = [  # the names the README and the docs promise at the top level
    "MinibatchDiscrimination",
    "VirtualBatchNorm",
    "virtual_batch_reference",
    "feature_matching_loss",
    "discriminator_loss",
    "semi_supervised_losses",
    "HistoricalAveraging",
    "inception_score",
    "frechet_distance",
    "WeightNormLinear",
    "WeightNormConv2d",
    "WeightNormConvTranspose2d",
    "data_dependent_init",
    "GaussianNoise",
    "ReferenceAdam",
    "load_dataset",
]


def test_promised_names_are_exported():
    for name in ISSUE_NAMES:
        assert name in improved_gan.__all__, name


PUBLIC = [n for n in improved_gan.__all__ if n != "__version__"]


def test_each_name_is_the_object_of_its_sub_package():
    for name in PUBLIC:
        source = improved_gan._source(name)
        obj = getattr(improved_gan, name)
        assert obj is getattr(importlib.import_module(source), name)
        assert obj.__module__.startswith(source), (name, source, obj.__module__)  # e.g. improved_gan.nn.noise
        assert name in dir(improved_gan)


def test_a_name_exported_by_several_sub_packages_is_one_object():
    found: dict[str, set[int]] = {name: set() for name in PUBLIC}
    for module in improved_gan._SUBMODULES:
        mod = importlib.import_module(module)
        for name in PUBLIC:
            if name in getattr(mod, "__all__", ()) or (not hasattr(mod, "__all__") and hasattr(mod, name)):
                found[name].add(id(getattr(mod, name)))
    assert all(len(ids) == 1 for ids in found.values()), {n: len(i) for n, i in found.items() if len(i) != 1}


def test_unknown_attribute_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'not_a_name'"):
        improved_gan.not_a_name  # noqa: B018
    assert not hasattr(improved_gan, "Not_There")


def test_static_tools_see_every_name():
    """The TYPE_CHECKING block imports each sub-package's names (star imports follow its __all__)."""
    tree = ast.parse((SRC / "__init__.py").read_text())
    block = next(
        n for n in tree.body if isinstance(n, ast.If) and getattr(n.test, "id", "") == "TYPE_CHECKING"
    )
    static: set[str] = set()
    for node in block.body:
        assert isinstance(node, ast.ImportFrom)
        mod = importlib.import_module(node.module)
        for alias in node.names:
            if alias.name == "*":
                static |= set(mod.__all__)
            else:
                assert alias.asname == alias.name  # `import X as X`: an explicit re-export
                static.add(alias.name)
    assert set(PUBLIC) <= static
    literal = next(n for n in tree.body if isinstance(n, ast.Assign) and n.targets[0].id == "__all__")
    assert isinstance(literal.value, ast.List)  # a literal list, as static tools require


def test_py_typed_is_shipped():
    assert (SRC / "py.typed").is_file()
    pyproject = (SRC.parent.parent / "pyproject.toml").read_text()
    assert 'improved_gan = ["py.typed"]' in pyproject


def _public_members(obj):
    """(qualified name, function) of the public methods and properties of a class of this package,
    inherited ones included when a class of this package defines them."""
    out = []
    for klass in inspect.getmro(obj):
        if not klass.__module__.startswith("improved_gan"):
            continue
        for key, value in vars(klass).items():
            if key.startswith("_"):
                continue
            func = value.fget if isinstance(value, property) else value
            if isinstance(func, (staticmethod, classmethod)):
                func = func.__func__
            if inspect.isfunction(func):
                out.append((f"{obj.__name__}.{key} (from {klass.__name__})", func))
    return out


def test_every_public_object_and_method_has_a_docstring():
    missing = []
    for name in PUBLIC:
        obj = getattr(improved_gan, name)
        if not (obj.__doc__ or "").strip():
            missing.append(name)
        if inspect.isclass(obj):
            missing += [q for q, f in _public_members(obj) if not (f.__doc__ or "").strip()]
    assert not missing, f"no docstring: {missing}"


@pytest.mark.parametrize(
    "name",
    ["MinibatchDiscrimination", "VirtualBatchNorm", "WeightNormLinear", "WeightNormConv2d", "GaussianNoise"],
)
def test_layers_document_forward_with_shapes(name):
    forward = getattr(improved_gan, name).forward
    assert forward.__module__.startswith("improved_gan")
    assert "(N" in forward.__doc__, forward.__doc__


def test_docstrings_cite_the_paper_not_internal_documents():
    for path in SRC.rglob("*.py"):
        text = path.read_text()
        for bad in ("SPEC §", "SPEC.md", "CONTRACT", "issue #"):
            assert bad not in text, f"{path.relative_to(SRC)} mentions {bad!r}"


def test_import_is_light():
    """``import improved_gan`` imports neither torch nor matplotlib (the CLI starts without them)."""
    code = "import sys, improved_gan; print('torch' in sys.modules, 'matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
    code = (
        "import sys; from improved_gan import MinibatchDiscrimination, inception_score, load_dataset; "
        "print('matplotlib' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False"]
