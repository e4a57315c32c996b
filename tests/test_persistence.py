from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from calf_forecaster import CALF
from calf_forecaster.persistence import (
    BackboneMismatchError,
    import_reference_checkpoint,
    load_calf,
    save_calf,
)
from calf_forecaster.prototypes import word_prototypes
from conftest import save_tiny_gpt2, tiny_config


def _trained_looking(model: CALF) -> CALF:
    with torch.no_grad():  # move every trainable weight away from its initial value
        for parameter in model.parameters():
            if parameter.requires_grad:
                parameter.add_(0.01 * torch.randn_like(parameter))
    return model.eval()


def test_round_trip_gives_identical_forecasts_and_saves_only_non_backbone_weights(
        tiny_gpt2, tmp_path) -> None:
    model = _trained_looking(CALF.from_pretrained(tiny_config(tiny_gpt2)))
    save_calf(model, tmp_path, {"columns": ["b", "a", "c"]})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["calf.json", "weights.safetensors"]
    saved = load_file(str(tmp_path / "weights.safetensors"))
    assert set(saved) == set(model.trainable_parameter_names()) | {"cross_modal.prototypes"}
    loaded, metadata = load_calf(tmp_path)
    assert metadata == {"columns": ["b", "a", "c"]}
    x = torch.randn(4, 16, 3)
    assert torch.equal(loaded.predict(x), model.predict(x))
    assert loaded.config == model.config and not loaded.training


def test_random_backbone_is_saved_whole(tiny_gpt2, tmp_path) -> None:
    torch.manual_seed(7)
    model = _trained_looking(CALF.from_pretrained(tiny_config(tiny_gpt2, pretrained=False)))
    save_calf(model, tmp_path)
    saved = load_file(str(tmp_path / "weights.safetensors"))
    assert "branches.backbone.h.0.mlp.c_fc.weight" in saved
    torch.manual_seed(8)  # a different random init must not leak into the loaded model
    loaded, _ = load_calf(tmp_path)
    x = torch.randn(2, 16, 5)
    assert torch.equal(loaded.predict(x), model.predict(x))


def test_other_backbone_at_load_is_refused(tiny_gpt2, tmp_path) -> None:
    save_calf(CALF.from_pretrained(tiny_config(tiny_gpt2)), tmp_path / "model")
    other = save_tiny_gpt2(tmp_path / "other", seed=1)
    with pytest.raises(BackboneMismatchError, match="other word embeddings"):
        load_calf(tmp_path / "model", config_overrides={"backbone": str(other)})
    with pytest.raises(FileNotFoundError, match="no saved CALF model"):
        load_calf(tmp_path / "nothing")


@pytest.mark.parametrize("with_prototype_file", [True, False])
def test_authors_checkpoint_imports_with_identical_forecasts(tiny_gpt2, tmp_path,
                                                             with_prototype_file: bool) -> None:
    from transformers import GPT2Model

    from reference_layout import ReferenceLayoutCALF

    torch.manual_seed(11)
    wte = GPT2Model.from_pretrained(tiny_gpt2).wte.weight
    prototypes = word_prototypes(wte, 16)
    if with_prototype_file:  # the authors ship (D, P) principal components of their own making
        prototypes = prototypes * torch.where(torch.arange(16) % 2 == 0, 1.0, -1.0)[:, None]
    theirs = ReferenceLayoutCALF(str(tiny_gpt2), 16, 8, 2, 4, 64, prototypes).eval()
    with torch.no_grad():
        for name, parameter in theirs.named_parameters():
            if "lora_B" in name or "ln_" in name or "wpe" in name:
                parameter.add_(0.1 * torch.randn_like(parameter))  # "trained" LoRA/norms/positions
    torch.save(theirs.state_dict(), tmp_path / "checkpoint.pth")
    torch.save(prototypes.T.numpy(), tmp_path / "wte_pca_16.pt")  # pickled numpy, as theirs
    ours = import_reference_checkpoint(
        tmp_path / "checkpoint.pth", tiny_config(tiny_gpt2, seq_len=4, pred_len=2),
        prototypes=tmp_path / "wte_pca_16.pt" if with_prototype_file else None)
    assert (ours.config.seq_len, ours.config.pred_len, ours.config.n_layers) == (16, 8, 2)
    x = torch.randn(3, 16, 4) * 3 + 1
    expected = theirs(x)
    output = ours(x, with_text_branch=True)
    torch.testing.assert_close(output.forecast, expected["forecast"], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(output.text_forecast, expected["text_forecast"], rtol=1e-4,
                               atol=1e-5)
    save_calf(ours, tmp_path / "moved")
    reloaded, _ = load_calf(tmp_path / "moved")
    assert torch.equal(reloaded.predict(x), ours.predict(x))


def test_checkpoint_with_diverging_text_copy_is_refused(tiny_gpt2, tmp_path) -> None:
    from reference_layout import ReferenceLayoutCALF

    theirs = ReferenceLayoutCALF(str(tiny_gpt2), 16, 8, 2, 4, 64, torch.zeros(16, 32))
    state = theirs.state_dict()
    state["gpt2_text.h.0.mlp.c_fc.weight"] = state["gpt2_text.h.0.mlp.c_fc.weight"] + 1
    torch.save(state, tmp_path / "checkpoint.pth")
    with pytest.raises(ValueError, match="differs from the temporal branch"):
        import_reference_checkpoint(tmp_path / "checkpoint.pth", tiny_config(tiny_gpt2))
