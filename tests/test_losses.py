from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from calf_forecaster import CALF, CALFOutput, TrainingConfig
from calf_forecaster.losses import calf_loss
from conftest import tiny_config


def _output(n_states: int = 3, channels: int = 4) -> CALFOutput:
    g = torch.Generator().manual_seed(0)
    return CALFOutput(
        forecast=torch.randn(2, 5, channels, generator=g),
        text_forecast=torch.randn(2, 5, channels, generator=g),
        time_features=[torch.randn(2, channels, 6, generator=g) for _ in range(n_states)],
        text_features=[torch.randn(2, channels, 6, generator=g) for _ in range(n_states)],
    )


@pytest.mark.parametrize(("name", "distance"), [("l1", F.l1_loss), ("smooth_l1", F.smooth_l1_loss),
                                                ("mse", F.mse_loss)])
def test_parts_and_total_follow_the_spec(name: str, distance) -> None:
    output = _output()
    target = torch.randn(2, 5, 4)
    config = TrainingConfig(loss=name, supervised_weight=0.5, output_weight=2.0, feature_weight=0.1)
    parts = calf_loss(output, target, config)
    torch.testing.assert_close(parts.supervised, distance(output.forecast, target))
    torch.testing.assert_close(parts.output, distance(output.forecast, output.text_forecast))
    # states are ordered embedding output first: index 2 is the deepest (k=0, weight 1)
    feature = sum(0.8 ** (2 - i) * distance(a, b)
                  for i, (a, b) in enumerate(zip(output.time_features, output.text_features)))
    torch.testing.assert_close(parts.feature, feature)
    torch.testing.assert_close(parts.total, 0.5 * parts.supervised + 2.0 * parts.output
                               + 0.1 * parts.feature)


def test_targets_are_the_last_channels_and_supervised_term_can_be_replaced() -> None:
    output = _output(channels=4)
    target = torch.randn(2, 5, 1)
    parts = calf_loss(output, target, TrainingConfig())
    torch.testing.assert_close(parts.supervised, F.l1_loss(output.forecast[..., -1:], target))
    torch.testing.assert_close(parts.output, F.l1_loss(output.forecast[..., -1:],
                                                       output.text_forecast[..., -1:]))
    replaced = calf_loss(output, target, TrainingConfig(), supervised=torch.tensor(7.0))
    assert replaced.supervised.item() == 7.0


def test_loss_needs_the_textual_branch() -> None:
    with pytest.raises(ValueError, match="with_text_branch=True"):
        calf_loss(CALFOutput(torch.zeros(1, 2, 3)), torch.zeros(1, 2, 3), TrainingConfig())


def test_deepest_feature_includes_the_branch_residual(tiny_gpt2) -> None:
    model = CALF.from_pretrained(tiny_config(tiny_gpt2)).eval()
    x = torch.randn(2, 16, 3)
    output = model(x, with_text_branch=True)
    tokens = ((x - x.mean(1, keepdim=True)) / torch.sqrt(x.var(1, keepdim=True, unbiased=False)
                                                          + 1e-5)).transpose(1, 2)
    x_time = model.cross_modal.encode(tokens)
    hidden = model.branches.backbone(inputs_embeds=x_time, output_hidden_states=True).hidden_states
    deepest = model.time_feature_projections[-1](hidden[-1] + x_time)
    torch.testing.assert_close(output.time_features[-1], deepest)
    torch.testing.assert_close(output.time_features[0], model.time_feature_projections[0](hidden[0]))


def test_every_trainable_parameter_receives_gradient(tiny_gpt2) -> None:
    model = CALF.from_pretrained(tiny_config(tiny_gpt2)).train()
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.normal_()  # LoRA B starts at zero, which would hide A's gradient
    calf_loss(model(torch.randn(4, 16, 3)), torch.randn(4, 8, 3), TrainingConfig()).total.backward()
    missing = [n for n, p in model.named_parameters()
               if p.requires_grad and (p.grad is None or not p.grad.abs().sum() > 0)]
    assert missing == []
    assert all(p.grad is None for p in model.parameters() if not p.requires_grad)


def test_term_distances_default_to_loss_and_defaults_are_unchanged() -> None:
    config = TrainingConfig(loss="smooth_l1")
    assert config.term_losses() == ("smooth_l1", "smooth_l1", "smooth_l1")
    output, target = _output(), torch.randn(2, 5, 4)
    plain = calf_loss(output, target, config)
    with_insample = calf_loss(output, target, config, insample=torch.randn(2, 7, 4))
    assert torch.equal(plain.total, with_insample.total)  # bit-identical: insample unused
    assert torch.equal(plain.supervised, F.smooth_l1_loss(output.forecast, target))


def test_m4_term_losses_smape_mase_smooth_l1_with_mask() -> None:
    from calf_forecaster.losses import mase_loss, smape_loss

    output = _output(channels=1)
    target = torch.randn(2, 5, 1)
    mask = torch.ones(2, 5, 1)
    mask[1, 3:] = 0  # padding past the end of a series
    insample = torch.randn(2, 10, 1)
    config = TrainingConfig(supervised_loss="smape", output_loss="mase", feature_loss="smooth_l1",
                            mase_seasonality=2)
    parts = calf_loss(output, target, config, mask=mask, insample=insample)
    f, t, s = output.forecast, target, output.text_forecast
    expected_smape = 200 * torch.mean((f - t).abs() / (f.abs() + t.abs()) * mask)
    torch.testing.assert_close(parts.supervised, expected_smape)
    scale = (insample[:, 2:] - insample[:, :-2]).abs().mean(1, keepdim=True)
    torch.testing.assert_close(parts.output, torch.mean((f - s).abs() / scale * mask))
    feature = sum(0.8 ** (2 - i) * F.smooth_l1_loss(a, b)
                  for i, (a, b) in enumerate(zip(output.time_features, output.text_features)))
    torch.testing.assert_close(parts.feature, feature)
    # 0/0 counts as 0 and a zero scale gives weight 0 (no NaN)
    zero = torch.zeros(1, 3, 1)
    assert smape_loss(zero, zero).item() == 0.0
    assert mase_loss(zero + 1, zero, torch.ones(1, 4, 1), 1).item() == 0.0


def test_mase_needs_the_lookback_and_term_names_are_validated() -> None:
    config = TrainingConfig(supervised_loss="mase")
    with pytest.raises(ValueError, match="insample"):
        calf_loss(_output(), torch.randn(2, 5, 4), config)
    with pytest.raises(ValueError, match="`feature_loss`"):
        TrainingConfig(feature_loss="mase")
    with pytest.raises(ValueError, match="`output_loss`"):
        TrainingConfig(output_loss="mape")
    with pytest.raises(ValueError, match="`mase_seasonality`"):
        TrainingConfig(mase_seasonality=0)
