"""The core must import, train and predict with sktime and darts unavailable."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from conftest import REPO_ROOT


def test_core_works_with_sktime_and_darts_blocked(tiny_gpt2, tmp_path) -> None:
    script = textwrap.dedent(f"""
        import sys
        sys.modules["sktime"] = None  # any import of these now raises ImportError
        sys.modules["darts"] = None
        import numpy as np
        from calf_forecaster import CALF, CALFConfig, TrainingConfig
        from calf_forecaster.preprocessing import WindowDataset
        from calf_forecaster.training import predict_windows, train_calf
        config = CALFConfig(seq_len=16, pred_len=8, backbone={str(tiny_gpt2)!r}, n_layers=2,
                            n_prototypes=16, n_heads=4, encoder_ff_dim=64)
        series = np.sin(np.arange(200.0))[:, None].repeat(2, axis=1)
        model = train_calf(CALF.from_pretrained(config), WindowDataset(series, 16, 8), None,
                           TrainingConfig(batch_size=64, max_epochs=1),
                           {{"enable_progress_bar": False}})
        assert predict_windows(model, series[None, -16:]).shape == (1, 8, 2)
        for name in ("CALFForecaster", "CALFModel"):
            try:
                getattr(__import__("calf_forecaster"), name)
            except ImportError as error:
                assert "pip install" in str(error), error
            else:
                raise AssertionError(name + " imported without its framework")
        assert not any(m.split(".")[0] in ("sktime", "darts") and sys.modules[m] is not None
                       for m in sys.modules)
        print("core-ok")
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            cwd=tmp_path, env={"CALF_FORECASTER_CACHE": str(tmp_path),
                                               "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin",
                                               "PYTHONPATH": str(REPO_ROOT)}, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "core-ok" in result.stdout
