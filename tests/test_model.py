from __future__ import annotations

import pytest
import torch
from torch import nn

from calf_forecaster import CALF
from calf_forecaster.backbone import count_parameters, save_backbone_config
from conftest import tiny_config


@pytest.fixture(scope="module")
def tiny_model(tiny_gpt2) -> CALF:
    torch.manual_seed(0)
    return CALF.from_pretrained(tiny_config(tiny_gpt2))


@pytest.mark.parametrize("n_variates", [1, 7])
def test_shapes_in_training_and_prediction(tiny_model: CALF, n_variates: int) -> None:
    x = torch.randn(5, 16, n_variates)
    output = tiny_model.train()(x)
    assert output.forecast.shape == output.text_forecast.shape == (5, 8, n_variates)
    assert len(output.time_features) == len(output.text_features) == 3  # K + 1
    assert all(f.shape == (5, n_variates, 32) for f in output.time_features + output.text_features)
    tiny_model.eval()
    assert tiny_model(x).text_forecast is None
    assert tiny_model.predict(x).shape == (5, 8, n_variates)


def test_exact_trainable_parameter_names(tiny_model: CALF) -> None:
    backbone = [f"branches.backbone.{n}" for n in [
        "wpe.weight", "h.0.ln_1.weight", "h.0.ln_1.bias",
        "h.0.attn.c_attn.lora_A.default.weight", "h.0.attn.c_attn.lora_B.default.weight",
        "h.0.ln_2.weight", "h.0.ln_2.bias", "h.1.ln_1.weight", "h.1.ln_1.bias",
        "h.1.attn.c_attn.lora_A.default.weight", "h.1.attn.c_attn.lora_B.default.weight",
        "h.1.ln_2.weight", "h.1.ln_2.bias", "ln_f.weight", "ln_f.bias"]]
    cross_modal = [f"cross_modal.{n}" for n in [
        "token_embedding.weight", "token_embedding.bias",
        "encoder.self_attn.in_proj_weight", "encoder.self_attn.in_proj_bias",
        "encoder.self_attn.out_proj.weight", "encoder.self_attn.out_proj.bias",
        "encoder.linear1.weight", "encoder.linear1.bias", "encoder.linear2.weight",
        "encoder.linear2.bias", "encoder.norm1.weight", "encoder.norm1.bias",
        "encoder.norm2.weight", "encoder.norm2.bias", "cross_attention.in_proj_weight",
        "cross_attention.in_proj_bias", "cross_attention.out_proj.weight",
        "cross_attention.out_proj.bias"]]
    projections = [f"{side}_feature_projections.{i}.weight" for side in ("time", "text")
                   for i in range(3)]
    expected = set(backbone + cross_modal + projections +
                   ["branches.text_position_embedding", "head.weight", "head.bias"])
    assert set(tiny_model.trainable_parameter_names()) == expected
    projection_ids = {id(p) for p in tiny_model.feature_projection_parameters()}
    assert len(projection_ids) == 6
    assert not projection_ids & {id(p) for p in tiny_model.main_parameters()}


def test_gpt2_small_random_init_has_the_reference_trainable_count(tmp_path) -> None:
    """GPT-2 small, K=6, L=H=96: 18,022,496 trainable parameters, as in the reference."""
    save_backbone_config(tmp_path)
    model = CALF.from_pretrained(tiny_config(tmp_path, pretrained=False, seq_len=96, pred_len=96, n_layers=6,
                             n_heads=12, n_prototypes=500, encoder_ff_dim=2048))
    assert count_parameters(model, trainable_only=True) == 18_022_496
    # One shared frozen copy: total = one 6-block GPT-2 + the textual position table and the
    # non-backbone modules (the reference holds two copies: 180.25M).
    backbone = count_parameters(model.branches.backbone)
    extra = count_parameters(model) - backbone
    assert extra == 18_022_496 - count_parameters(model.branches.backbone, trainable_only=True)
    assert count_parameters(model) < 100_000_000
    kept = set(model.trainable_parameter_names()) | {"cross_modal.prototypes"}
    saved_bytes = sum(t.numel() * t.element_size() for name, t in model.state_dict().items()
                      if name in kept)  # what save_calf keeps for a pre-trained GPT-2 small
    assert saved_bytes < 80_000_000


def test_branches_share_one_frozen_backbone(tiny_model: CALF) -> None:
    frozen = [p for p in tiny_model.parameters() if not p.requires_grad]
    assert all(any(p is q for q in tiny_model.branches.backbone.parameters()) for p in frozen)
    storages = {p.data_ptr() for p in tiny_model.parameters()}
    assert len(storages) == len(list(tiny_model.parameters()))  # no duplicated tensors


def test_prediction_never_runs_the_textual_branch(tiny_model: CALF, monkeypatch) -> None:
    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("textual branch executed during prediction")

    monkeypatch.setattr(tiny_model.branches, "textual", forbidden)
    monkeypatch.setattr(tiny_model.cross_modal, "attend_prototypes", forbidden)
    x = torch.randn(3, 16, 4)
    tiny_model.eval()
    assert tiny_model(x).forecast.shape == (3, 8, 4)
    assert tiny_model.predict(x).shape == (3, 8, 4)
    with pytest.raises(AssertionError, match="textual branch executed"):
        tiny_model.train()(x)


def test_prototype_attention_equals_per_sample_multihead_attention(tiny_model: CALF) -> None:
    module = tiny_model.cross_modal.eval()
    x_time = torch.randn(6, 5, 32)
    prototypes = module.prototypes.unsqueeze(0).repeat(6, 1, 1)  # the reference's per-sample copy
    expected = module.cross_attention(x_time, prototypes, prototypes, need_weights=False)[0]
    torch.testing.assert_close(module.attend_prototypes(x_time), expected, rtol=1e-5, atol=1e-6)


def test_textual_branch_is_the_pretrained_backbone_with_its_own_positions(tiny_gpt2) -> None:
    from transformers import GPT2Model

    model = CALF.from_pretrained(tiny_config(tiny_gpt2)).eval()
    with torch.no_grad():  # make LoRA and the temporal norms differ from the pre-trained model
        for parameter in model.branches.backbone.parameters():
            if parameter.requires_grad:
                parameter.add_(0.5)
        model.branches.text_position_embedding.mul_(2.0)
    plain = GPT2Model.from_pretrained(tiny_gpt2).eval()
    with torch.no_grad():
        plain.wpe.weight.copy_(model.branches.text_position_embedding)
    x_text = torch.randn(2, 5, 32)
    output, states = model.branches.textual(x_text)
    expected = plain(inputs_embeds=x_text).last_hidden_state + x_text
    torch.testing.assert_close(output, expected)
    assert torch.equal(states[-1], output)  # deepest state includes the residual (docs/method.md §3 quirk)
    temporal_output, _ = model.branches.temporal(x_text)
    assert not torch.allclose(temporal_output, output)


def test_model_matches_the_naive_two_copy_implementation(tiny_gpt2) -> None:
    from calf_forecaster.persistence import import_reference_checkpoint  # noqa: F401 (layout)
    from reference_layout import ReferenceLayoutCALF

    torch.manual_seed(3)
    ours = CALF.from_pretrained(tiny_config(tiny_gpt2)).eval()
    naive = ReferenceLayoutCALF(str(tiny_gpt2), 16, 8, 2, 4, 64, ours.cross_modal.prototypes).eval()
    mapping = {"in_layer.linear": ours.cross_modal.token_embedding,
               "in_layer.transformer_encoder.layers.0": ours.cross_modal.encoder,
               "in_layer.cross_attention": ours.cross_modal.cross_attention,
               "out_layer": ours.head}
    with torch.no_grad():
        for prefix, module in mapping.items():
            naive.get_submodule(prefix).load_state_dict(module.state_dict())
        for index in range(3):
            naive.time_proj[index].weight.copy_(ours.time_feature_projections[index].weight)
            naive.text_proj[index].weight.copy_(ours.text_feature_projections[index].weight)
        for name, parameter in ours.branches.backbone.named_parameters():
            if "lora_B" in name:
                parameter.normal_()  # a non-zero adapter, so LoRA's effect is compared too
        naive.gpt2.base_model.model.load_state_dict(ours.branches.backbone.state_dict())
    x = torch.randn(4, 16, 3) * 5 + 2
    mine, theirs = ours(x, with_text_branch=True), naive(x)
    torch.testing.assert_close(mine.forecast, theirs["forecast"], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(mine.text_forecast, theirs["text_forecast"], rtol=1e-4, atol=1e-5)
    for a, b in zip(mine.time_features + mine.text_features,
                    theirs["time_features"] + theirs["text_features"]):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(("mode", "n_states"), [("none", 1), ("attention", 2), ("transformer", 2)])
def test_ablations_replace_the_llm(tiny_gpt2, mode: str, n_states: int) -> None:
    model = CALF.from_pretrained(tiny_config(tiny_gpt2, llm_mode=mode))
    assert not any("backbone" in name for name, _ in model.named_parameters())
    assert all(p.requires_grad for p in model.parameters())
    output = model.train()(torch.randn(2, 16, 3))
    assert output.forecast.shape == (2, 8, 3) and len(output.time_features) == n_states
    if mode == "none":  # w/o LLM: the head reads the matched tokens directly
        model.eval()
        tokens = model.cross_modal.encode(torch.zeros(1, 3, 16))
        assert torch.allclose(model.branches.temporal(tokens)[0], tokens)


def test_input_errors_are_specific(tiny_model: CALF) -> None:
    with pytest.raises(ValueError, match="rank 3"):
        tiny_model(torch.randn(16, 3))
    with pytest.raises(ValueError, match="`seq_len`=16"):
        tiny_model(torch.randn(2, 15, 3))
    with pytest.raises(TypeError, match="floating point"):
        tiny_model(torch.ones(2, 16, 3, dtype=torch.int64))
    with pytest.raises(ValueError, match="position table of 64"):
        tiny_model(torch.randn(1, 16, 65))
    with pytest.raises(TypeError, match="torch.Tensor"):
        tiny_model([[1.0]])


def test_n_heads_must_divide_the_width(tiny_gpt2) -> None:
    with pytest.raises(ValueError, match="`n_heads`=12"):
        CALF.from_pretrained(tiny_config(tiny_gpt2, n_heads=12))


def test_backbone_dropout_is_active_in_training(tiny_model: CALF) -> None:
    tiny_model.train()
    dropouts = [m for m in tiny_model.branches.backbone.modules() if isinstance(m, nn.Dropout)]
    assert dropouts and all(m.training for m in dropouts)


def test_pickle_after_a_forward_round_trips_and_leaves_the_model_working(tiny_gpt2) -> None:
    """transformers' lazily installed hooks are local functions; pickling must still work."""
    import pickle

    torch.manual_seed(0)
    model = CALF.from_pretrained(tiny_config(tiny_gpt2)).eval()
    x = torch.randn(4, 16, 3)
    with torch.no_grad():
        expected = model.predict(x)  # installs the hidden-state hooks
        restored = pickle.loads(pickle.dumps(model))
        torch.testing.assert_close(restored.predict(x), expected, rtol=0, atol=0)
        torch.testing.assert_close(model.predict(x), expected, rtol=0, atol=0)
        training_output = model.train()(x, with_text_branch=True)  # hidden states still captured
    assert len(training_output.time_features) == len(training_output.text_features) == 3
    assert [name for name, p in restored.named_parameters() if p.requires_grad] \
        == model.trainable_parameter_names()
