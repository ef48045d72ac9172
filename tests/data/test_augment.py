"""random_crop_flip: batched random crop of the zero-padded image + random horizontal flip."""

from __future__ import annotations

import pytest
import torch

from activews.data import random_crop_flip
from activews.errors import ActivewsError

# A 3x3 image 1..9, zero-padded by 1 on each side, has 9 crops; with their mirror images, 18 outcomes.
IMAGE = torch.tensor([[1.0, 2, 3], [4, 5, 6], [7, 8, 9]])
PADDED = [
    [0, 0, 0, 0, 0],
    [0, 1, 2, 3, 0],
    [0, 4, 5, 6, 0],
    [0, 7, 8, 9, 0],
    [0, 0, 0, 0, 0],
]
CROPS = {
    (dy, dx): torch.tensor([row[dx : dx + 3] for row in PADDED[dy : dy + 3]], dtype=torch.float32)
    for dy in range(3)
    for dx in range(3)
}


def test_crops_by_hand():
    # spot-check the table itself: offset (0, 0) shows the top-left corner, (1, 1) the image unchanged
    assert CROPS[0, 0].tolist() == [[0, 0, 0], [0, 1, 2], [0, 4, 5]]
    assert CROPS[1, 1].tolist() == IMAGE.tolist()
    assert CROPS[2, 0].tolist() == [[0, 4, 5], [0, 7, 8], [0, 0, 0]]


def test_every_output_is_a_shift_of_the_padded_image_possibly_mirrored():
    batch = IMAGE.expand(720, 1, 3, 3)
    out = random_crop_flip(batch, torch.Generator().manual_seed(0), padding=1)
    seen = set()
    for img in out[:, 0]:
        matches = [
            (key, flip)
            for key, crop in CROPS.items()
            for flip in (False, True)
            if torch.equal(img, crop.flip(1) if flip else crop)
        ]
        assert matches, f"not a crop of the padded image: {img.tolist()}"
        seen.update(matches)
    assert len(seen) == 18  # every offset, mirrored or not, occurs: each image draws its own


def test_shape_dtype_device_and_a_new_tensor():
    x = torch.randn(5, 3, 8, 8, dtype=torch.float64)
    before = x.clone()
    out = random_crop_flip(x, torch.Generator().manual_seed(1))
    assert out.shape == x.shape and out.dtype == x.dtype and out.device == x.device
    assert out.data_ptr() != x.data_ptr() and torch.equal(x, before)  # the input is left alone
    meta = random_crop_flip(torch.empty(4, 3, 8, 8, device="meta"), torch.Generator().manual_seed(1))
    assert meta.device.type == "meta" and meta.shape == (4, 3, 8, 8)  # indices follow the images' device


def test_channels_share_the_draw():
    x = torch.randn(64, 1, 6, 6).expand(64, 3, 6, 6)
    out = random_crop_flip(x, torch.Generator().manual_seed(2), padding=2)
    assert torch.equal(out[:, 0], out[:, 1]) and torch.equal(out[:, 0], out[:, 2])


def test_deterministic_given_the_generator():
    x = torch.randn(32, 3, 8, 8)
    a = random_crop_flip(x, torch.Generator().manual_seed(7))
    b = random_crop_flip(x, torch.Generator().manual_seed(7))
    c = random_crop_flip(x, torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)
    gen = torch.Generator().manual_seed(7)
    first, second = random_crop_flip(x, gen), random_crop_flip(x, gen)
    assert torch.equal(first, a) and not torch.equal(first, second)  # the generator advances


def test_flips_about_half_the_time():
    x = torch.randn(1, 1, 4, 4).expand(4000, 1, 4, 4)
    out = random_crop_flip(x, torch.Generator().manual_seed(3), padding=0)  # no shift: only the flip
    flipped = (out == x[0].flip(-1)).flatten(1).all(1)
    kept = (out == x[0]).flatten(1).all(1)
    assert bool((flipped ^ kept).all())
    assert 0.46 < flipped.float().mean().item() < 0.54  # 4000 fair coins: sd 0.008


@pytest.mark.parametrize("shape", [(10, 40), (10,), (2, 3, 4, 5, 6)])
def test_needs_image_batches(shape):
    with pytest.raises(
        ActivewsError, match=r"--augment needs image data \(C, H, W\); drop --augment for data of shape"
    ):
        random_crop_flip(torch.zeros(shape), torch.Generator())


def test_negative_padding():
    with pytest.raises(ActivewsError, match="padding must be >= 0, got -1"):
        random_crop_flip(torch.zeros(2, 1, 4, 4), torch.Generator(), padding=-1)
