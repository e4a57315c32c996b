"""The adapters' parameter surface, generated from the configs: one declaration of every knob.

:class:`~calf_forecaster.config.CALFConfig` and :class:`~calf_forecaster.config.TrainingConfig`
declare each field once, with its default and its documentation. An adapter lists which fields
it exposes (all, minus those its framework names itself, e.g. darts' ``n_epochs`` for
``max_epochs``) and adds its own (``trainer_kwargs``); :func:`make_init` then writes its
``__init__`` with explicit keyword parameters and the configs' defaults (as :mod:`dataclasses`
does, so that ``inspect.signature``, sktime's ``get_params`` and darts' ``model_params`` see
ordinary parameters), and :func:`numpydoc_parameters` its parameter docs. A new config field
thus appears in both adapters unless one excludes it by name, and ``tests/test_parameters.py``
checks both signatures against the configs.

Validation stays in the configs; adapters build them when their framework expects errors
(sktime: in ``fit``; darts: at construction).
"""

from __future__ import annotations

import dataclasses
import textwrap
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from calf_forecaster.config import CALFConfig, TrainingConfig

CONFIG_CLASSES: tuple[type, ...] = (CALFConfig, TrainingConfig)


@dataclass(frozen=True)
class Parameter:
    """One constructor parameter of an adapter.

    Attributes
    ----------
    name
        The parameter's name in the adapter.
    default
        Its default value.
    annotation
        Its type, as written in a signature (a string).
    doc
        One paragraph of documentation.
    field
        The config field it sets, ``None`` for an adapter's own parameter.
    config
        The config class of ``field``.
    """

    name: str
    default: Any
    annotation: str
    doc: str
    field: str | None = None
    config: type | None = None


def config_parameters(config: type, exclude: Iterable[str] = (),
                      renamed: dict[str, tuple[str, Any, str]] | None = None) -> list[Parameter]:
    """The fields of ``config`` as adapter parameters, in declaration order.

    Parameters
    ----------
    config
        ``CALFConfig`` or ``TrainingConfig``.
    exclude
        Fields the adapter does not expose (its framework has its own name for them).
    renamed
        ``{field: (adapter name, adapter default, doc)}`` for fields an adapter names after its
        framework's convention (e.g. sktime's ``random_state`` for ``seed``).
    """
    excluded, renamed = set(exclude), renamed or {}
    unknown = (excluded | set(renamed)) - {f.name for f in dataclasses.fields(config)}
    if unknown:
        raise ValueError(f"{config.__name__} has no fields {sorted(unknown)}")
    parameters = []
    for field in dataclasses.fields(config):
        if field.name in excluded:
            continue
        annotation = str(field.type)
        if field.name in renamed:
            name, default, doc = renamed[field.name]
            parameters.append(Parameter(name, default, annotation, doc, field.name, config))
        else:
            parameters.append(Parameter(field.name, field.default, annotation,
                                        field.metadata["doc"], field.name, config))
    return parameters


def make_init(parameters: Sequence[Parameter], body: Callable[..., None],
              leading: Sequence[str] = (), var_keyword: bool = False,
              qualname: str = "__init__") -> Callable[..., None]:
    """An ``__init__`` with one explicit keyword parameter per entry of ``parameters``.

    The generated function calls ``body(self, values, **kwargs)`` where ``values`` maps every
    parameter name (``leading`` ones first, which have no default) to the value passed.

    Parameters
    ----------
    parameters
        Parameters with defaults, in signature order.
    body
        What the constructor does with the values.
    leading
        Names of required parameters placed first (e.g. darts' ``input_chunk_length``).
    var_keyword
        Accept ``**kwargs`` (passed on to ``body``).
    qualname
        ``__qualname__`` of the generated function (e.g. ``"CALFForecaster.__init__"``).
    """
    names = [*leading, *(p.name for p in parameters)]
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate parameter names in {names}")
    defaults = {p.name: p.default for p in parameters}
    signature = ", ".join([*leading, *(f"{p.name}=_defaults[{p.name!r}]" for p in parameters),
                           *(["**kwargs"] if var_keyword else [])])
    values = ", ".join(f"{name!r}: {name}" for name in names)
    source = (f"def __init__(self, {signature}):\n"
              f"    _body(self, {{{values}}}{', **kwargs' if var_keyword else ''})\n")
    namespace: dict[str, Any] = {"_defaults": defaults, "_body": body}
    exec(compile(source, f"<generated {qualname}>", "exec"), namespace)  # noqa: S102
    init = namespace["__init__"]
    init.__qualname__ = qualname
    init.__annotations__ = {p.name: p.annotation for p in parameters}
    return init


def numpydoc_parameters(parameters: Sequence[Parameter], indent: int = 4,
                        width: int = 92) -> str:
    """The numpydoc ``Parameters`` entries of ``parameters`` (``name : type, default=value``)."""
    pad = " " * indent
    lines = []
    for parameter in parameters:
        lines.append(f"{pad}{parameter.name} : {parameter.annotation}, "
                     f"default={parameter.default!r}")
        lines.extend(textwrap.wrap(rst(parameter.doc), width, initial_indent=pad + "    ",
                                   subsequent_indent=pad + "    "))
    return "\n".join(lines)


def rst(text: str) -> str:
    """The configs' Markdown-style ``x`` code spans as reStructuredText literals."""
    return text.replace("``", "`").replace("`", "``")


def split_values(parameters: Sequence[Parameter], values: dict[str, Any]
                 ) -> dict[type, dict[str, Any]]:
    """``{config class: {field: value}}`` of the parameters that set config fields."""
    fields: dict[type, dict[str, Any]] = {config: {} for config in CONFIG_CLASSES}
    for parameter in parameters:
        if parameter.field is not None and parameter.config is not None:
            fields[parameter.config][parameter.field] = values[parameter.name]
    return fields
