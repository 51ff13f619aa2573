"""The MAC counter against figures computed by hand, and against published dense counts."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from isodeploy.benchmarking.macs import count_macs, count_params
from isodeploy.loading import load_model

torch.set_num_threads(2)


def conv_macs(c_in: int, c_out: int, k: int, h_out: int, w_out: int, groups: int = 1) -> int:
    return c_out * h_out * w_out * (c_in // groups) * k * k


def test_tiny_vit_matches_hand_count() -> None:
    loaded = load_model("deit_tiny_patch16_224", weights="random", img_size=32, patch_size=8, depth=2)
    report = count_macs(loaded.model, loaded.example_input(2))
    dim, heads, hidden, depth, classes = 192, 3, 768, 2, 1000
    grid = 32 // 8
    tokens = grid * grid + 1  # patches + cls
    head_dim = dim // heads
    patch = conv_macs(3, dim, 8, grid, grid)
    qkv = tokens * dim * 3 * dim
    attn = heads * tokens * tokens * head_dim * 2  # Q·Kᵀ and attn·V
    proj = tokens * dim * dim
    mlp = 2 * tokens * dim * hidden
    head = dim * classes  # only the cls token reaches the head
    expected = patch + depth * (qkv + attn + proj + mlp) + head
    assert report.macs == expected == 16_044_288
    assert report.per_module["blocks.0.attn.qkv"] == qkv
    assert report.per_module["blocks.1.attn"] == attn  # SDPA is called inside Attention.forward
    assert report.by_op == {"conv2d": patch, "linear": depth * (qkv + proj + mlp) + head, "scaled_dot_product_attention": depth * attn}
    assert sum(report.per_module.values()) == report.macs
    assert report.params == sum(p.numel() for p in loaded.model.parameters())


def basic_resnet_macs(size: int, widths=(64, 128, 256, 512), blocks=(2, 2, 2, 2), classes: int = 1000) -> int:
    """ResNet with BasicBlocks from first principles: 7×7/2 stem, 3×3 max-pool /2, stages, fc."""
    s = size // 2
    total = conv_macs(3, widths[0], 7, s, s)
    s //= 2
    c_in = widths[0]
    for stage, (width, n) in enumerate(zip(widths, blocks)):
        for b in range(n):
            stride = 2 if stage > 0 and b == 0 else 1
            s_out = s // stride
            total += conv_macs(c_in, width, 3, s_out, s_out) + conv_macs(width, width, 3, s_out, s_out)
            if stride != 1 or c_in != width:
                total += conv_macs(c_in, width, 1, s_out, s_out)  # downsample shortcut
            c_in, s = width, s_out
    return total + c_in * classes


def test_tiny_resnet_matches_hand_count() -> None:
    loaded = load_model("resnet18", weights="random", img_size=64)
    report = count_macs(loaded.model, loaded.example_input(2))
    assert report.macs == basic_resnet_macs(64)
    assert report.per_module["fc"] == 512 * 1000
    assert report.per_module["conv1"] == conv_macs(3, 64, 7, 32, 32)
    assert report.per_module["layer2.0.downsample.0"] == conv_macs(64, 128, 1, 8, 8)


class _Ops(nn.Module):
    """Grouped, depthwise and transposed convs, matmul/bmm/einsum and SDPA in one small graph."""

    def __init__(self) -> None:
        super().__init__()
        self.grouped = nn.Conv2d(8, 16, 3, padding=1, groups=4)
        self.depthwise = nn.Conv2d(16, 16, 3, padding=1, groups=16)
        self.up = nn.ConvTranspose2d(16, 4, 2, stride=2, groups=2)
        self.fc = nn.Linear(8 * 8, 10, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.depthwise(self.grouped(x))  # (B,16,8,8)
        z = self.up(y)  # (B,4,16,16)
        t = y.flatten(2)  # (B,16,64)
        a = torch.matmul(t, t.transpose(1, 2))  # (B,16,16): K = 64
        b = torch.bmm(a, t)  # (B,16,64): K = 16
        c = torch.einsum("bij,bjk->bik", a, b)  # (B,16,64): 16·16·64 per image
        q = t.view(t.shape[0], 2, 8, 64)  # 2 heads, L = 8, E = 64
        d = nn.functional.scaled_dot_product_attention(q, q, q)
        return self.fc(c + d.reshape_as(c)).sum() + z.sum()


def test_grouped_transposed_matmul_einsum_sdpa() -> None:
    model = _Ops().eval()
    report = count_macs(model, torch.randn(3, 8, 8, 8))
    expected = {
        "conv2d": conv_macs(8, 16, 3, 8, 8, groups=4) + conv_macs(16, 16, 3, 8, 8, groups=16),
        "conv_transpose2d": 16 * 8 * 8 * (4 // 2) * 2 * 2,  # every input element × C_out/groups × k²
        "matmul": 16 * 16 * 64,
        "bmm": 16 * 64 * 16,
        "einsum": 16 * 16 * 64,
        "scaled_dot_product_attention": 2 * 8 * 8 * (64 + 64),
        "linear": 16 * 10 * 64,
    }
    got = {k: v for k, v in report.by_op.items() if v}
    assert got == expected
    assert report.macs == sum(expected.values())


def test_per_image_and_batch_independent() -> None:
    model = _Ops().eval()
    one = count_macs(model, torch.randn(1, 8, 8, 8))  # batch 1 is widened to 2 for torch.export
    four = count_macs(model, torch.randn(4, 8, 8, 8))
    assert one.macs == four.macs > 0
    assert one.input_shape == (8, 8, 8)


def test_tied_parameters_counted_once() -> None:
    class Tied(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Linear(16, 16)
            self.b = nn.Linear(16, 16)
            self.b.weight = self.a.weight

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.b(self.a(x))

    model = Tied()
    assert count_params(model) == 16 * 16 + 16 + 16
    assert count_macs(model, torch.randn(2, 16)).macs == 2 * 16 * 16


@pytest.mark.slow
@pytest.mark.parametrize(("name", "published", "exact"), [
    ("deit_base_patch16_224", 17.6e9, 17_563_828_224),
    ("resnet50", 4.1e9, 4_089_184_256),
])
def test_published_dense_counts(name: str, published: float, exact: int) -> None:
    loaded = load_model(name, weights="random")
    report = count_macs(loaded.model, loaded.example_input(2))
    assert report.macs == exact
    assert abs(report.macs - published) / published < 0.01
