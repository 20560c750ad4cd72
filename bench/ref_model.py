"""The model of bench/pytorch_ref.py: nanoGPT's GPT, written afresh, with the modern recipe's
options as config keys of [model] (unset: off). Every option off is nanoGPT's
model.py exactly: pre-LN, LayerNorm with optional bias, exact-erf GELU, learned positions,
lm_head tied to the token embedding, init N(0, 0.02) with the residual projections at
0.02/sqrt(2L).

The options, each as qkv defines it:
  pos_encoding = "rope"  no position table; q and k of each head rotated by position p: the pair
                         (x[i], x[i + hs/2]) by the angle p * rope_base^(-2i/hs), i < hs/2.
  norm_type = "rmsnorm"  x / sqrt(mean(x^2) + 1e-5) * weight: a gain, never a bias.
  qk_norm                q and k of each head RMS-normalised (no parameters), before the rotation.
  activation             "gelu" (exact erf); "relu2": relu(x)^2; "swiglu": silu(x W1) * (x W3),
                         then W2, with ffn_hidden 0 meaning 8/3 * n_embd rounded up to a multiple
                         of 64 (the parameters of the 4 * n_embd GELU MLP).
  zero_init_proj         the attention and MLP output projections start at zero.
"""
import math

import torch
import torch.nn as nn
from torch.nn import functional as F


def option(cfg, key, default):
    return cfg.get(key, default)


def ffn_hidden(cfg):
    if cfg.get("ffn_hidden", 0) > 0:
        return cfg["ffn_hidden"]
    C = cfg["n_embd"]
    if option(cfg, "activation", "gelu") == "swiglu":
        return -(-8 * C // (3 * 64)) * 64
    return 4 * C


class Norm(nn.Module):
    """LayerNorm with an optional bias (torch 1.13's nn.LayerNorm cannot drop only the bias), or
    RMSNorm with a gain."""

    def __init__(self, ndim, cfg):
        super().__init__()
        self.rms = option(cfg, "norm_type", "layernorm") == "rmsnorm"
        self.weight = nn.Parameter(torch.ones(ndim))
        self.bias = nn.Parameter(torch.zeros(ndim)) if cfg["bias"] and not self.rms else None

    def forward(self, x):
        if self.rms:
            return rms(x) * self.weight
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, 1e-5)


def rms(x):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5)


def rotate(x, cos, sin):
    """x: [B, H, T, hs]; the pair (i, i + hs/2) turned by the angle of its position."""
    half = x.size(-1) // 2
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1)


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        C, T = cfg["n_embd"], cfg["block_size"]
        self.n_head = cfg["n_head"]
        self.qk_norm = option(cfg, "qk_norm", False)
        self.c_attn = nn.Linear(C, 3 * C, bias=cfg["bias"])
        self.c_proj = nn.Linear(C, C, bias=cfg["bias"])
        self.attn_dropout = nn.Dropout(cfg["dropout"])
        self.resid_dropout = nn.Dropout(cfg["dropout"])
        self.register_buffer("mask", torch.tril(torch.ones(T, T)).view(1, 1, T, T))

    def forward(self, x, rope):
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(C, dim=2)
        hs = C // self.n_head
        q = q.view(B, T, self.n_head, hs).transpose(1, 2)
        k = k.view(B, T, self.n_head, hs).transpose(1, 2)
        v = v.view(B, T, self.n_head, hs).transpose(1, 2)
        if self.qk_norm:
            q, k = rms(q), rms(k)
        if rope is not None:
            cos, sin = rope[0][:T], rope[1][:T]
            q, k = rotate(q, cos, sin).type_as(v), rotate(k, cos, sin).type_as(v)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hs))
        att = att.masked_fill(self.mask[:, :, :T, :T] == 0, float("-inf"))
        att = self.attn_dropout(F.softmax(att, dim=-1))
        y = (att @ v).transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        C, H = cfg["n_embd"], ffn_hidden(cfg)
        self.activation = option(cfg, "activation", "gelu")
        self.c_fc = nn.Linear(C, H, bias=cfg["bias"])
        self.c_gate = nn.Linear(C, H, bias=cfg["bias"]) if self.activation == "swiglu" else None
        self.c_proj = nn.Linear(H, C, bias=cfg["bias"])
        self.dropout = nn.Dropout(cfg["dropout"])

    def forward(self, x):
        h = self.c_fc(x)
        if self.activation == "gelu":
            h = F.gelu(h)
        elif self.activation == "relu2":
            h = F.relu(h).square()
        else:
            h = F.silu(h) * self.c_gate(x)
        return self.dropout(self.c_proj(h))


class Block(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.ln_1 = Norm(cfg["n_embd"], cfg)
        self.attn = CausalSelfAttention(cfg)
        self.ln_2 = Norm(cfg["n_embd"], cfg)
        self.mlp = MLP(cfg)

    def forward(self, x, rope):
        x = x + self.attn(self.ln_1(x), rope)
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        C, T, L = cfg["n_embd"], cfg["block_size"], cfg["n_layer"]
        self.wte = nn.Embedding(cfg["vocab_size"], C)
        self.rope = None
        if option(cfg, "pos_encoding", "learned") == "rope":
            hs = C // cfg["n_head"]
            freq = option(cfg, "rope_base", 10000.0) ** (-torch.arange(0, hs, 2).double() / hs)
            angle = torch.outer(torch.arange(T).double(), freq)
            self.rope = (angle.cos().float(), angle.sin().float())
        else:
            self.wpe = nn.Embedding(T, C)
        self.drop = nn.Dropout(cfg["dropout"])
        self.h = nn.ModuleList([Block(cfg) for _ in range(L)])
        self.ln_f = Norm(C, cfg)
        self.lm_head = nn.Linear(C, cfg["vocab_size"], bias=False)
        self.lm_head.weight = self.wte.weight  # tied
        self.apply(self._init_weights)
        zero = option(cfg, "zero_init_proj", False)
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * L))
                if zero:
                    nn.init.zeros_(p)

    @staticmethod
    def _init_weights(m):
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, mean=0.0, std=0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)

    def forward(self, idx, targets):
        T = idx.size(1)
        x = self.wte(idx)
        if self.rope is None:
            x = x + self.wpe(torch.arange(0, T, dtype=torch.long))
        x = self.drop(x)
        for block in self.h:
            x = block(x, self.rope)
        logits = self.lm_head(self.ln_f(x))
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1), ignore_index=-1)

    def non_embedding_params(self):
        wpe = self.wpe.weight.numel() if self.rope is None else 0
        return sum(p.numel() for p in self.parameters()) - wpe
