"""The paper's models: the authors' narrow ResNet-18, the standard-width one, and the 3-layer MLP."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from activews.errors import ActivewsError
from activews.models import MODELS, build_model
from activews.models.resnet import BasicBlock
from tests.helpers import assert_one_line, assert_same_state, changed_keys, snapshot

BN = nn.modules.batchnorm._BatchNorm
CONV = (nn.Conv1d, nn.Conv2d)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_all_paper_models_are_registered():
    assert {"resnet18", "resnet18_wide", "paper_mlp", "logreg"} <= set(MODELS.names())


# --------------------------------------------------------------------------------- parameter counts
#
# Narrow ResNet-18 (width w=16), C input channels, kernel area a (9 for 2-D, 3 for 1-D):
#   stem conv                        C*16*a
#   3x3 convs of the 16 block convs  (4*16*16 + 16*32 + 3*32*32 + 32*64 + 3*64*64 + 64*128 + 3*128*128)*a
#                                    = (1024 + 3584 + 14336 + 57344)*a = 76,288*a
#   1x1 projection shortcuts         16*32 + 32*64 + 64*128 = 10,752
#   BatchNorm weight+bias            2 * (16 + 4*16 + 5*32 + 5*64 + 5*128) = 2 * 1200 = 2,400
#   head                             128*K + K
# 3x32x32, K=10:  432 + 686,592 + 10,752 + 2,400 + 1,290 = 701,466   (the authors' network)
# 3x32x32, K=100: 701,466 + 90*128 + 90 = 701,466 + 11,610 = 713,076
# 1x28x28, K=10:  701,466 - 432 + 144 = 701,178
# (40,),   K=10:  48 + 228,864 + 10,752 + 2,400 + 1,290 = 243,354    (Conv1d: a = 3)
# Wide (w=64): 11,173,962 for K=10 (the standard CIFAR ResNet-18); K=100 adds 90*513 = 46,170.
@pytest.mark.parametrize(
    ("name", "shape", "classes", "count"),
    [
        ("resnet18", (3, 32, 32), 10, 701_466),
        ("resnet18", (3, 32, 32), 100, 713_076),
        ("resnet18", (1, 28, 28), 10, 701_178),
        ("resnet18", (40,), 10, 243_354),
        ("resnet18", (1, 40), 10, 243_354),
        ("resnet18_wide", (3, 32, 32), 10, 11_173_962),
        ("resnet18_wide", (3, 32, 32), 100, 11_220_132),
        # 40*100+100 + 100*100+100 + 100*10+10 = 4,100 + 10,100 + 1,010
        ("paper_mlp", (40,), 10, 15_210),
        # 3072*100+100 + 10,100 + 1,010 = 307,300 + 11,110 (the authors' CIFAR MLP)
        ("paper_mlp", (3, 32, 32), 10, 318_410),
    ],
)
def test_parameter_counts(name, shape, classes, count):
    assert n_params(build_model(name, shape, classes)) == count


def test_width_parameter_scales_the_stages():
    assert n_params(build_model("resnet18", (3, 32, 32), 10, {"width": 64})) == 11_173_962
    assert n_params(build_model("resnet18_wide", (3, 32, 32), 10, {"width": 16})) == 701_466
    model = build_model("resnet18", (40,), 10, {"width": 4})
    assert model.conv1.out_channels == 4
    stages = [model.layer1, model.layer2, model.layer3, model.layer4]
    assert [[block.conv2.out_channels for block in stage] for stage in stages] == [
        [4, 4],
        [8, 8],
        [16, 16],
        [32, 32],
    ]
    assert model.linear.in_features == 32


# ------------------------------------------------------------------------------------ architecture


def test_narrow_resnet_layout_matches_the_authors_code():
    model = build_model("resnet18", (3, 32, 32), 10)
    state = model.state_dict()
    # the authors' module names and shapes (state dicts are interchangeable with theirs)
    assert state["conv1.weight"].shape == (16, 3, 3, 3)
    assert state["layer1.0.conv1.weight"].shape == (16, 16, 3, 3)
    assert state["layer2.0.conv1.weight"].shape == (32, 16, 3, 3)
    assert state["layer2.0.shortcut.0.weight"].shape == (32, 16, 1, 1)
    assert state["layer2.0.shortcut.1.running_mean"].shape == (32,)
    assert state["layer4.1.conv2.weight"].shape == (128, 128, 3, 3)
    assert state["linear.weight"].shape == (10, 128)
    # projection shortcuts exactly where the shape changes: the first block of stages 2-4
    assert sorted({k.split(".shortcut")[0] for k in state if ".shortcut." in k}) == [
        "layer2.0",
        "layer3.0",
        "layer4.0",
    ]
    strides = [m.stride[0] for m in model.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]
    assert strides == [1] + [1, 1, 1, 1] + [2, 1, 1, 1] * 3  # stem, stage 1, stages 2-4
    convs = [m for m in model.modules() if isinstance(m, CONV)]
    assert len(convs) == 20 and all(m.bias is None for m in convs)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == 20
    assert isinstance(model.pool, nn.AvgPool2d) and model.pool.kernel_size == 4
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(128, 10)]
    assert model.linear.bias is not None


@pytest.mark.parametrize(
    ("name", "shape", "norm"),
    [
        ("resnet18", (3, 32, 32), nn.BatchNorm2d),
        ("resnet18", (1, 28, 28), nn.BatchNorm2d),
        ("resnet18", (1, 8, 8), nn.BatchNorm2d),
        ("resnet18", (40,), nn.BatchNorm1d),
        ("resnet18", (1, 40), nn.BatchNorm1d),
        ("resnet18", (2, 40), nn.BatchNorm1d),
        ("resnet18_wide", (3, 32, 32), nn.BatchNorm2d),
    ],
)
def test_resnet_forward_shapes_batchnorm_buffers_and_no_conv_bias(name, shape, norm):
    model = build_model(name, shape, 7, seed=0)
    norms = [m for m in model.modules() if isinstance(m, BN)]
    assert len(norms) == 20 and all(type(m) is norm for m in norms)
    buffers = dict(model.named_buffers())
    assert {"bn1.running_mean", "bn1.running_var", "layer4.1.bn2.running_var"} <= buffers.keys()
    convs = [m for m in model.modules() if isinstance(m, CONV)]
    assert len(convs) == 20 and all(m.bias is None for m in convs)
    x = torch.randn(3, *shape, generator=torch.Generator().manual_seed(0))
    model.train()
    out = model(x)
    assert out.shape == (3, 7) and torch.isfinite(out).all()
    assert not torch.equal(buffers["bn1.running_mean"], torch.zeros_like(buffers["bn1.running_mean"]))
    model.eval()
    assert model(x[:1]).shape == (1, 7)  # a single example works in eval mode


def test_32x32_pool_is_the_authors_4x4_pool_and_equals_global_average():
    model = build_model("resnet18", (3, 32, 32), 10, seed=0).eval()
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    features = model.layer4(model.layer3(model.layer2(model.layer1(model.relu(model.bn1(model.conv1(x)))))))
    assert features.shape == (4, 128, 4, 4)  # so the 4x4 average pool is the global average
    expected = model.linear(F.avg_pool2d(features, 4).view(4, -1))  # the authors' forward tail
    with torch.no_grad():
        out = model(x)
        torch.testing.assert_close(out, expected)
        model.pool = nn.AdaptiveAvgPool2d(1)  # what other sizes use: same output at 32x32
        torch.testing.assert_close(model(x), out)


def test_other_sizes_use_global_average_pooling():
    model = build_model("resnet18", (1, 28, 28), 10)
    assert isinstance(model.pool, nn.AdaptiveAvgPool2d)
    assert isinstance(build_model("resnet18", (40,), 10).pool, nn.AdaptiveAvgPool1d)
    # 64x64 leaves an 8x8 map, which the authors' fixed 4x4 pool would not reduce to the head's 128 inputs
    wide_input = build_model("resnet18", (3, 64, 64), 10, seed=0).eval()
    assert wide_input(torch.zeros(2, 3, 64, 64)).shape == (2, 10)


def test_basic_block_is_post_activation_with_relu_after_the_addition():
    torch.manual_seed(0)
    block = BasicBlock(4, 8, stride=2, dims=2).eval()
    for m in block.modules():  # non-trivial BatchNorm statistics, so every term matters
        if isinstance(m, BN):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.5, 0.5)
    x = torch.randn(2, 4, 8, 8)
    with torch.no_grad():
        out = block(x)
        shortcut = block.shortcut[1](block.shortcut[0](x))
        residual = block.bn2(block.conv2(F.relu(block.bn1(block.conv1(x)))))
        torch.testing.assert_close(out, F.relu(residual + shortcut))
        assert out.shape == (2, 8, 4, 4)
    identity = BasicBlock(8, 8, stride=1, dims=1).eval()
    assert isinstance(identity.shortcut, nn.Identity)
    y = torch.randn(2, 8, 10)
    with torch.no_grad():
        torch.testing.assert_close(
            identity(y), F.relu(identity.bn2(identity.conv2(F.relu(identity.bn1(identity.conv1(y))))) + y)
        )


def test_small_resnet_trains_on_1d_data():
    model = build_model("resnet18", (40,), 3, {"width": 4}, seed=0)
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(32, 40, generator=gen), torch.randint(0, 3, (32,), generator=gen)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    losses = []
    for _ in range(15):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


# ---------------------------------------------------------------------------------------- the MLP


def linear_shapes(model: nn.Module) -> list[tuple[int, int]]:
    return [(m.in_features, m.out_features) for m in model.modules() if isinstance(m, nn.Linear)]


def test_paper_mlp_is_100_100_tanh_by_default():
    model = build_model("paper_mlp", (40,), 10)
    assert linear_shapes(model) == [(40, 100), (100, 100), (100, 10)]
    assert sum(isinstance(m, nn.Tanh) for m in model.modules()) == 2
    assert not any(isinstance(m, nn.ReLU) for m in model.modules())
    assert model(torch.zeros(3, 40)).shape == (3, 10)


def test_paper_mlp_relu_and_image_input():
    model = build_model("paper_mlp", (3, 32, 32), 100, {"activation": "relu"})
    assert linear_shapes(model) == [(3072, 100), (100, 100), (100, 100)]
    assert sum(isinstance(m, nn.ReLU) for m in model.modules()) == 2
    assert not any(isinstance(m, nn.Tanh) for m in model.modules())
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 100)


def test_logreg_is_the_papers_single_linear_layer():
    model = build_model("logreg", (3, 32, 32), 10)
    assert linear_shapes(model) == [(3072, 10)]
    assert n_params(model) == 3072 * 10 + 10
    assert not any(isinstance(m, (nn.ReLU, nn.Tanh, *CONV)) for m in model.modules())


# ------------------------------------------------------------------------- seeding and errors


@pytest.mark.parametrize(
    ("name", "shape", "params"),
    [
        ("resnet18", (3, 32, 32), {}),
        ("resnet18", (40,), {"width": 4}),
        ("resnet18_wide", (1, 8, 8), {}),
        ("paper_mlp", (40,), {}),
    ],
)
def test_seeded_build_is_reproducible(name, shape, params):
    state = torch.get_rng_state()
    a = build_model(name, shape, 10, params, seed=5)
    b = build_model(name, shape, 10, params, seed=5)
    assert torch.equal(torch.get_rng_state(), state)
    assert_same_state(snapshot(a), snapshot(b))
    c = build_model(name, shape, 10, params, seed=6)
    weights = {k for k in snapshot(a) if k.endswith("weight") and not (".bn" in k or k.startswith("bn"))}
    weights -= {k for k in weights if ".shortcut.1." in k}  # BatchNorm weights start at 1 in every draw
    assert weights and changed_keys(snapshot(a), snapshot(c)) >= weights


@pytest.mark.parametrize(
    ("name", "shape", "params", "match"),
    [
        (
            "resnet18",
            (1, 2, 8, 8),
            {},
            r"model 'resnet18' supports 1-D \(L or C,L\) and 2-D \(C,H,W\).*paper_mlp",
        ),
        ("resnet18_wide", (1, 2, 8, 8), {}, "model 'resnet18_wide' supports 1-D"),
        ("resnet18", (1, 4, 4), {}, r"every side >= 8 .*got example shape \(1, 4, 4\); pad or resize"),
        ("resnet18", (7,), {}, r"every side >= 8 .*got example shape \(7,\)"),
        ("resnet18", (3, 32, 7), {}, "every side >= 8"),
        ("resnet18", (0, 32, 32), {}, "at least one channel"),
        ("resnet18", (3, 32, 32), {"width": 0}, "model 'resnet18': width"),
        ("resnet18", (3, 32, 32), {"depth": 34}, r"unknown parameter 'depth' \(known: width\)"),
        ("paper_mlp", (40,), {"activation": "gelu"}, "model 'paper_mlp': activation"),
        ("paper_mlp", (40,), {"hidden": [5]}, r"unknown parameter 'hidden' \(known: activation, dropout\)"),
    ],
)
def test_errors_are_one_line_and_name_the_fix(name, shape, params, match):
    with pytest.raises(ActivewsError, match=match) as exc:
        build_model(name, shape, 10, params)
    assert_one_line(str(exc.value))
