"""One declaration of the parameter surface: both adapters' constructors follow the configs."""

from __future__ import annotations

import dataclasses
import inspect
from dataclasses import dataclass

import pytest

from calf_forecaster import CALFConfig, TrainingConfig
from calf_forecaster.config import field_docs
from calf_forecaster.parameters import Parameter, config_parameters, make_init, rst


def _signature(cls: type) -> dict[str, object]:
    return {name: p.default for name, p in inspect.signature(cls.__init__).parameters.items()
            if name != "self" and p.kind is not p.VAR_KEYWORD}


def _expected(config: type, exclude: set[str], renamed: dict[str, tuple[str, object]]
              ) -> dict[str, object]:
    out = {}
    for field in dataclasses.fields(config):
        if field.name in exclude:
            continue
        name, default = renamed.get(field.name, (field.name, field.default))
        out[name] = default
    return out


def test_sktime_signature_is_every_config_field_with_its_default() -> None:
    pytest.importorskip("sktime")
    from calf_forecaster.sktime import CALFForecaster

    expected = {**_expected(CALFConfig, {"pred_len"}, {}),
                **_expected(TrainingConfig, set(), {"seed": ("random_state", None)}),
                "trainer_kwargs": None, "verbose": False}
    assert _signature(CALFForecaster) == expected
    assert CALFForecaster().get_params() == expected  # sktime sees ordinary parameters


def test_darts_signature_is_every_config_field_darts_has_no_name_for() -> None:
    pytest.importorskip("darts")
    from calf_forecaster.darts import DARTS_NAMED, CALFModel

    # darts' own: optimizer_kwargs["lr"], batch_size, n_epochs, callbacks, val_series, Scaler,
    # loss_fn (its validation loss), random_state
    assert set(DARTS_NAMED) == {"learning_rate", "batch_size", "max_epochs", "patience",
                                "validation_size", "scale", "validation_loss", "seed"}
    expected = {"input_chunk_length": inspect.Parameter.empty,
                "output_chunk_length": inspect.Parameter.empty, "output_chunk_shift": 0,
                **_expected(CALFConfig, {"seq_len", "pred_len", "quantiles"}, {}),
                **_expected(TrainingConfig, set(DARTS_NAMED), {})}
    assert _signature(CALFModel) == expected
    assert list(_signature(CALFModel))[:2] == ["input_chunk_length", "output_chunk_length"]


@pytest.mark.parametrize("adapter", ["sktime", "darts"])
def test_parameter_docs_come_from_the_configs(adapter: str) -> None:
    module = pytest.importorskip(f"calf_forecaster.{adapter}")
    cls = module.CALFForecaster if adapter == "sktime" else module.CALFModel
    docs = {**field_docs(CALFConfig), **field_docs(TrainingConfig)}
    for parameter in module.PARAMETERS:
        if parameter.field is None or parameter.field != parameter.name:
            continue
        assert f"    {parameter.name} : " in cls.__doc__
        first_words = " ".join(rst(docs[parameter.field]).split()[:5])
        assert first_words in " ".join(cls.__doc__.split()), parameter.name


def test_a_new_config_field_appears_in_a_generated_constructor() -> None:
    @dataclass(frozen=True)
    class Toy:
        width: int = dataclasses.field(default=3, metadata={"doc": "How wide."})
        depth: int = dataclasses.field(default=2, metadata={"doc": "How deep."})

    stored: dict[str, object] = {}
    parameters = config_parameters(Toy, exclude=["depth"])
    init = make_init([*parameters, Parameter("extra", None, "object", "Own.")],
                     lambda self, values: stored.update(values), leading=("series",))
    assert list(inspect.signature(init).parameters) == ["self", "series", "width", "extra"]
    init(object(), "s", width=5)
    assert stored == {"series": "s", "width": 5, "extra": None}
    with pytest.raises(ValueError, match="no fields"):
        config_parameters(Toy, exclude=["height"])
