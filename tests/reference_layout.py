"""A deliberately naive CALF written straight from the spec, with the authors' state-dict layout.

It keeps two full backbone copies (the temporal one wrapped by ``peft.get_peft_model``), repeats the
prototypes over the batch, and adds the residual in place, as docs/method.md §8 and §3 describe the authors'
code. Tests save its ``state_dict`` as an "authors' checkpoint" and check that
``import_reference_checkpoint`` computes the same forecasts, and that the optimised model equals
this straightforward one.
"""

from __future__ import annotations

import torch
from peft import LoraConfig, get_peft_model
from torch import nn
from transformers import GPT2Model


class _InLayer(nn.Module):
    def __init__(self, seq_len: int, d_model: int, n_heads: int, ff_dim: int) -> None:
        super().__init__()
        self.linear = nn.Linear(seq_len, d_model)
        layer = nn.TransformerEncoderLayer(d_model, n_heads, ff_dim, 0.1, batch_first=True)
        self.transformer_encoder = nn.TransformerEncoder(layer, num_layers=1,
                                                         enable_nested_tensor=False)
        self.cross_attention = nn.MultiheadAttention(d_model, n_heads, batch_first=True)

    def forward(self, tokens: torch.Tensor, prototypes: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x_time = self.transformer_encoder(self.linear(tokens))
        batch_prototypes = prototypes.unsqueeze(0).repeat(tokens.shape[0], 1, 1)  # per sample
        x_text = self.cross_attention(x_time, batch_prototypes, batch_prototypes)[0]
        return x_time, x_text


class ReferenceLayoutCALF(nn.Module):
    """Naive CALF: keys ``in_layer.*``, ``gpt2.base_model.model.*``, ``gpt2_text.*`` ..."""

    def __init__(self, backbone_dir: str, seq_len: int, pred_len: int, n_layers: int,
                 n_heads: int, ff_dim: int, prototypes: torch.Tensor) -> None:
        super().__init__()
        temporal = GPT2Model.from_pretrained(backbone_dir)
        temporal.h = temporal.h[:n_layers]
        lora = LoraConfig(r=8, lora_alpha=32, lora_dropout=0.1, target_modules=["c_attn"],
                          fan_in_fan_out=True)
        self.gpt2 = get_peft_model(temporal, lora)
        self.gpt2_text = GPT2Model.from_pretrained(backbone_dir)
        self.gpt2_text.h = self.gpt2_text.h[:n_layers]
        d_model = temporal.config.n_embd
        self.in_layer = _InLayer(seq_len, d_model, n_heads, ff_dim)
        self.time_proj = nn.ModuleList(nn.Linear(d_model, d_model, bias=False)
                                       for _ in range(n_layers + 1))
        self.text_proj = nn.ModuleList(nn.Linear(d_model, d_model, bias=False)
                                       for _ in range(n_layers + 1))
        self.out_layer = nn.Linear(d_model, pred_len)
        self.prototypes = prototypes  # a plain attribute, as in the authors' code

    def forward(self, x: torch.Tensor) -> dict[str, object]:
        mean = x.mean(1, keepdim=True).detach()
        std = torch.sqrt(x.var(1, keepdim=True, unbiased=False) + 1e-5).detach()
        tokens = ((x - mean) / std).transpose(1, 2)
        x_time, x_text = self.in_layer(tokens, self.prototypes)
        time_out = self.gpt2(inputs_embeds=x_time, output_hidden_states=True)
        text_out = self.gpt2_text(inputs_embeds=x_text, output_hidden_states=True)
        time_states = list(time_out.hidden_states)
        text_states = list(text_out.hidden_states)
        time_states[-1] = time_states[-1] + x_time  # the in-place residual quirk, made explicit
        text_states[-1] = text_states[-1] + x_text
        y_time = self.out_layer(time_states[-1]).transpose(1, 2) * std + mean
        y_text = self.out_layer(text_states[-1]).transpose(1, 2) * std + mean
        return {
            "forecast": y_time,
            "text_forecast": y_text,
            "time_features": [p(s) for p, s in zip(self.time_proj, time_states)],
            "text_features": [p(s) for p, s in zip(self.text_proj, text_states)],
        }
