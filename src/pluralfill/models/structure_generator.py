"""DSI's diverse structure generator (Peng et al. 2021, Table 2) as the official code builds it: a condition network
reads the masked image and its hole down to the top latent's size; a PixelSNAIL-style network gives, at
every top-latent position in raster order, the distribution of its code from the code vectors before it.

    h      = condition([masked image, 1, hole])                       (8 x cond_channels, S x S)
    e'     = [e, 1]                        e: the code vectors, 0 where not yet sampled
    u      = down_shift(conv_2x3(e'))                                  the stream of the rows above
    ul     = down_shift(conv_1x3(e')) + right_shift(conv_2x1(e'))      the stream above and to the left
    num_attention times: (num_resnets / num_attention) x {u = gres(u, h); ul = gres(ul, a=u, h)},
                         the last ul block with causal attention
    num_out_resnets x ul = ul + nin(elu(ul));   logits = nin(elu(ul))

The condition network: 5x5 conv (C), gres, 3x3 stride-2 conv (2C), gres, (4C), gres, (8C), 3 gres,
gres with dilations 2, 4, 8, 16, 3 gres; weight-normalized convolutions throughout.

Incremental sampling (`new_cache`, `prefill`, `step`, `write`): the u stream depends only on the rows
above, so it runs a whole row when a row starts; the ul stream, the output blocks and the logits run one
position at a time. Both give the logits of the plain pass over the whole map.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, model_validator
from torch import nn

from pluralfill.nn.pixelsnail import GatedResNet, ShiftedConv2d, concat_elu, down_shift, right_shift
from pluralfill.nn.weight_norm import WNConv2d, WNLinear


class StructureGeneratorConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    side: int = 32  # top latent side (image / 8)
    num_codes: int = 512
    code_dim: int = 64
    channels: int = 128  # nr_channel_s
    res_channels: int = 128  # nr_res_channel_s
    num_resnets: int = 20  # nr_resnet_s: gated blocks of each stream
    num_attention: int = 4  # nr_attention_s: groups, each closed by a causal attention
    num_heads: int = 8
    num_out_resnets: int = 20
    cond_channels: int = 32  # nr_channel_cond_s; the condition has 8x this
    cond_res_channels: int = 32
    dropout: float = 0.1

    @model_validator(mode="after")
    def _check(self):
        if self.num_attention < 1 or self.num_resnets % self.num_attention:
            raise ValueError(
                f"num_resnets ({self.num_resnets}) must be a multiple of num_attention ({self.num_attention})"
            )
        if self.channels % 8:
            raise ValueError(f"channels ({self.channels}) must be a multiple of 8 (attention keys have channels / 8)")
        return self

    @property
    def resolution(self) -> int:
        return self.side * 8


def _same_conv(cin: int, cout: int, rate: int) -> WNConv2d:
    return WNConv2d(cin, cout, 3, dilation=rate)


class ConditionNetwork(nn.Module):
    """(masked image, hole) at 8S -> (8 cond_channels, S, S)."""

    def __init__(self, c: int, r: int):
        super().__init__()
        layers: list[nn.Module] = [WNConv2d(5, c, 5), GatedResNet(c, r, _same_conv)]
        for k in (1, 2, 4):
            layers += [WNConv2d(k * c, 2 * k * c, 3, stride=2), GatedResNet(2 * k * c, 2 * k * r, _same_conv)]
        layers += [GatedResNet(8 * c, 8 * r, _same_conv, rate) for rate in (1, 1, 2, 4, 8, 16, 1, 1, 1)]
        self.layers = nn.ModuleList(layers)

    def forward(self, masked: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
        x = torch.cat([masked, torch.ones_like(hole), hole], dim=1)
        for layer in self.layers:
            x = layer(x)
        return x


class StructureGenerator(nn.Module):
    def __init__(self, cfg: StructureGeneratorConfig | None = None):
        super().__init__()
        self.config = cfg = cfg or StructureGeneratorConfig()
        c, d, hc = cfg.channels, cfg.code_dim + 1, 8 * cfg.cond_channels
        self.condition = ConditionNetwork(cfg.cond_channels, cfg.cond_res_channels)
        self.u_in = ShiftedConv2d(d, c, (2, 3), "down")
        self.ul_in_above = ShiftedConv2d(d, c, (1, 3), "down")
        self.ul_in_left = ShiftedConv2d(d, c, (2, 1), "down_right")
        per_group = cfg.num_resnets // cfg.num_attention

        def conv(kernel, kind):
            return lambda cin, cout, rate: ShiftedConv2d(cin, cout, kernel, kind)

        self.u_stream = nn.ModuleList(
            GatedResNet(c, cfg.res_channels, conv((2, 3), "down"), cond_channels=hc, dropout=cfg.dropout)
            for _ in range(cfg.num_resnets)
        )
        self.ul_stream = nn.ModuleList(
            GatedResNet(
                c,
                cfg.res_channels,
                conv((2, 2), "down_right"),
                aux_channels=c,
                cond_channels=hc,
                dropout=cfg.dropout,
                heads=cfg.num_heads if (k + 1) % per_group == 0 else 0,
            )
            for k in range(cfg.num_resnets)
        )
        self.out_resnets = nn.ModuleList(WNLinear(c, c) for _ in range(cfg.num_out_resnets))
        self.head = WNLinear(c, cfg.num_codes)

    def forward(self, e: torch.Tensor, h: torch.Tensor, cache: dict | None = None) -> torch.Tensor:
        """e (B, code_dim, S, S) code vectors (0 where not yet sampled), h = condition(masked, hole) ->
        logits (B, num_codes, S, S); the logits at a position depend only on the codes before it."""
        hn = concat_elu(h)
        x = torch.cat([e, torch.ones_like(e[:, :1])], dim=1)
        u = down_shift(self.u_in(x))
        ul = down_shift(self.ul_in_above(x)) + right_shift(self.ul_in_left(x))
        if cache is not None:
            for name in ("u_in", "ul_in_above", "ul_in_left"):
                getattr(self, name).fill(cache[name], x)
        for k, (u_block, ul_block) in enumerate(zip(self.u_stream, self.ul_stream)):
            u = u_block(u, h=hn, cache=None if cache is None else cache["u"][k])
            ul = ul_block(ul, a=u, h=hn, cache=None if cache is None else cache["ul"][k])
            if cache is not None:
                cache["u_maps"][k].copy_(u)
        return self._logits(ul)

    def _logits(self, ul: torch.Tensor) -> torch.Tensor:
        for out in self.out_resnets:
            ul = ul + out(F.elu(ul))
        return self.head(F.elu(ul))

    # ------------------------------------------------------------------ incremental sampling

    def new_cache(self, h: torch.Tensor) -> dict:
        """Caches for the rows of h (B, 8 cond_channels, S, S)."""
        b, s, c = h.shape[0], self.config.side, self.config.channels
        cache = {name: getattr(self, name).new_cache(b, s, h) for name in ("u_in", "ul_in_above", "ul_in_left")}
        cache["u"] = [block.new_cache(b, s, h) for block in self.u_stream]
        cache["ul"] = [block.new_cache(b, s, h) for block in self.ul_stream]
        cache["u_maps"] = [h.new_zeros(b, c, s, s) for _ in self.u_stream]  # each u block's output
        cache["h"], cache["u_row"] = concat_elu(h), -1  # u_maps are final up to row u_row
        return cache

    def prefill(self, cache: dict, e: torch.Tensor, h: torch.Tensor, start: int) -> None:
        """Fill the caches from one plain pass over e; entries before raster position `start` are final if
        the codes before it are, and stepping from `start` rewrites the rest."""
        self.forward(e, h, cache)
        cache["u_row"] = start // self.config.side

    def write(self, cache: dict, i: int, j: int, vector: torch.Tensor) -> None:
        """Set the code vector (B, code_dim) at (i, j)."""
        x = torch.cat([vector, torch.ones_like(vector[:, :1])], dim=1)[:, :, None, None]
        for name in ("u_in", "ul_in_above", "ul_in_left"):
            getattr(self, name).write(cache[name], x, i, j)

    def _u_row(self, cache: dict, i: int) -> None:
        s = self.config.side
        u = (
            self.u_in.output(cache["u_in"], i - 1, 0, s)
            if i > 0
            else cache["h"].new_zeros(cache["h"].shape[0], self.config.channels, 1, s)
        )
        h = cache["h"][:, :, i : i + 1]
        for k, block in enumerate(self.u_stream):
            u = block.step(cache["u"][k], u, i, 0, h=h)
            cache["u_maps"][k][:, :, i : i + 1] = u
        cache["u_row"] = i

    def step(self, cache: dict, i: int, j: int) -> torch.Tensor:
        """Logits (B, num_codes) at (i, j); every code vector before it must be written."""
        if cache["u_row"] < i:
            self._u_row(cache, i)
        ul = 0
        if i > 0:
            ul = ul + self.ul_in_above.output(cache["ul_in_above"], i - 1, j, 1)
        if j > 0:
            ul = ul + self.ul_in_left.output(cache["ul_in_left"], i, j - 1, 1)
        if not torch.is_tensor(ul):
            ul = cache["h"].new_zeros(cache["h"].shape[0], self.config.channels, 1, 1)
        h = cache["h"][:, :, i : i + 1, j : j + 1]
        for k, block in enumerate(self.ul_stream):
            ul = block.step(cache["ul"][k], ul, i, j, a=cache["u_maps"][k][:, :, i : i + 1, j : j + 1], h=h)
        return self._logits(ul)[:, :, 0, 0]
