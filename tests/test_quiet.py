"""A library fit in a script prints nothing of Lightning's or transformers' unless asked.

Tiny sktime and darts fits run in fresh interpreters (as a user's script would, with the default
logging and warning settings); their whole stdout and stderr must hold no Lightning banner, tip,
model summary or progress bar and no weight-loading report. ``verbose=True`` brings the summary and
the progress bar back.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

#: What Lightning and transformers print when nobody silences them.
NOISE = ("GPU available", "TPU available", "litmodels", "litlogger", "Trainable params",
         "it/s]", "it/s ", "Loading weights")

SKTIME_SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    import pandas as pd
    from calf_forecaster import CALFForecaster
    from calf_forecaster.testing import TINY_SETTINGS, tiny_backbone

    t = np.arange(120.0)
    y = pd.DataFrame({"a": np.sin(t / 4), "b": np.cos(t / 5)})
    sizes = {k: v for k, v in TINY_SETTINGS.items() if k != "pred_len"}
    forecaster = CALFForecaster(backbone=tiny_backbone(), max_epochs=1, random_state=0,
                                verbose=sys.argv[1] == "verbose", **sizes)
    print("forecast", forecaster.fit(y, fh=range(1, 9)).predict().shape)
""")

DARTS_SCRIPT = textwrap.dedent("""
    import numpy as np
    from darts import TimeSeries
    from calf_forecaster import CALFModel
    from calf_forecaster.testing import TINY_SETTINGS, tiny_backbone

    series = TimeSeries.from_values(np.sin(np.arange(120.0) / 4).astype(np.float32))
    sizes = {k: v for k, v in TINY_SETTINGS.items() if k not in ("seq_len", "pred_len")}
    model = CALFModel(input_chunk_length=16, output_chunk_length=8, backbone=tiny_backbone(),
                      n_epochs=1, random_state=0, **sizes)
    model.fit(series[:100], val_series=series[84:])
    print("forecast", model.predict(8).values().shape)
""")

HISTORICAL_SCRIPT = DARTS_SCRIPT + textwrap.dedent("""
    model.historical_forecasts(series, start=100, forecast_horizon=8, retrain=False)
""")


def run_script(code: str, *args: str) -> str:
    """stdout + stderr of ``code`` run with ``args`` in a fresh interpreter (must exit 0)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True,
                            text=True, timeout=180)
    printed = result.stdout + result.stderr
    assert result.returncode == 0, printed[-4000:]
    assert "forecast" in result.stdout, printed[-4000:]
    return printed


def noise_in(printed: str) -> list[str]:
    return [marker for marker in NOISE if marker in printed]


def test_sktime_fit_and_predict_print_nothing_of_lightning() -> None:
    printed = run_script(SKTIME_SCRIPT, "quiet")
    assert noise_in(printed) == [], printed


def test_sktime_verbose_shows_the_summary_and_progress_bar() -> None:
    printed = run_script(SKTIME_SCRIPT, "verbose")
    assert "Trainable params" in printed and "it/s" in printed, printed


def test_darts_fit_and_predict_print_nothing_of_lightning() -> None:
    printed = run_script(DARTS_SCRIPT)
    assert noise_in(printed) == [], printed


def test_darts_historical_forecasts_print_nothing_of_lightning() -> None:
    printed = run_script(HISTORICAL_SCRIPT)
    assert noise_in(printed) == [], printed
