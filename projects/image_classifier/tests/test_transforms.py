import numpy as np
from PIL import Image

from image_classifier.transforms import Augment, Preprocess, image_stats, shift


def test_preprocess_shape_range_and_normalisation():
    image = Image.fromarray(np.full((10, 20), 255, np.uint8), "L")
    x = Preprocess(16, mean=(0.5,) * 3, std=(0.5,) * 3)(image)
    assert x.shape == (3, 16, 16) and x.dtype == np.float32
    assert np.allclose(x, 1.0)  # white in [-1, 1] scaling
    black = Preprocess(8, mean=(0.0,) * 3, std=(1.0,) * 3)(Image.new("RGB", (5, 5)))
    assert np.allclose(black, 0.0)


def test_centre_crop_keeps_aspect_then_crops():
    image = Image.new("RGB", (400, 200), (255, 0, 0))
    image.paste((0, 0, 255), (0, 0, 50, 200))  # a blue strip on the far left
    x = Preprocess(64, mean=(0,) * 3, std=(1,) * 3, crop_ratio=0.875)(image)
    assert x.shape == (3, 64, 64)
    assert x[2].max() == 0.0  # the strip lies outside the centre crop


def test_augment_is_seeded_and_changes_images():
    image = Image.fromarray(np.arange(32 * 32, dtype=np.uint8).reshape(32, 32) % 251, "L")
    aug = Augment(scale=(0.6, 0.9), rotation=15)
    a = np.asarray(aug(image, np.random.default_rng(1)))
    b = np.asarray(aug(image, np.random.default_rng(1)))
    c = np.asarray(aug(image, np.random.default_rng(2)))
    assert (np.array_equal(a, b) and a.shape != np.asarray(image).shape) or not np.array_equal(a, c)
    assert Preprocess(32)(Image.fromarray(a)).shape == (3, 32, 32)


def test_translate_moves_the_digit_within_its_bound_over_the_background():
    image = Image.new("L", (8, 8), 0)
    image.putpixel((4, 4), 255)  # one lit pixel on a black background
    aug = Augment(scale=(1.0, 1.0), ratio=(1.0, 1.0), rotation=0, translate=0.125)
    seen = set()
    for seed in range(40):
        out = np.asarray(aug(image, np.random.default_rng(seed)))
        ys, xs = np.nonzero(out)
        assert out.shape == (8, 8) and len(ys) == 1 and out.max() == 255  # moved, not wrapped
        seen.add((int(xs[0]) - 4, int(ys[0]) - 4))
    assert seen == {(dx, dy) for dx in (-1, 0, 1) for dy in (-1, 0, 1)}  # 1 pixel of 8, each way
    still = Augment(scale=(1.0, 1.0), ratio=(1.0, 1.0), rotation=0)
    assert np.array_equal(np.asarray(still(image, np.random.default_rng(0))), np.asarray(image))


def test_shift_fills_with_the_background_not_black():
    image = Image.new("L", (4, 4), 200)  # a light background
    image.putpixel((0, 1), 10)
    moved = np.asarray(shift(image, 1, 0))
    assert moved[1, 1] == 10 and moved[0, 0] == 10  # darkest corner pixel fills the edge


def test_image_stats():
    stats = image_stats(Image.new("L", (30, 10), 255))
    assert stats == {"width": 30.0, "height": 10.0, "brightness": 1.0, "contrast": 0.0}
