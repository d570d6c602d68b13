"""
Box / pixel consistency of the YOLOX augmentations in :mod:`yolox_d2.data.transforms` and of
the step-by-step reference chain in :mod:`tests.reference_transforms`, and the fused renderers
against that reference.

Every ground-truth box is drawn as a filled rectangle of its own colour (a vertex of the RGB
cube, so interpolated edge pixels never look like another rectangle's colour) on a plain
image. After a transform, the pixels of each colour are located and compared with the
returned boxes: a kept box must tightly contain its rectangle's pixels (rotated / sheared
rectangles included; tolerance 2 px for interpolation), and rectangles that vanished or were
cut to (almost) nothing must have lost their box.
"""

import math

import cv2
import numpy as np
import pytest

from yolox_d2.data import transforms as T

from tests import reference_transforms as R

# BGR vertex colours; background 0, fill 114
PALETTE = np.array(
    [[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0], [255, 0, 255], [0, 255, 255], [255, 255, 255]],
    dtype=np.int32,
)
CTOL = 60  # Chebyshev colour tolerance
TOL = 2.0  # pixel tolerance


def make_image(h, w, rects, background=0):
    """Image with filled rectangles; rects: (x1, y1, x2, y2, colour_index) in pixels."""
    img = np.full((h, w, 3), background, np.uint8)
    boxes, classes = [], []
    for x1, y1, x2, y2, k in rects:
        img[y1:y2, x1:x2] = PALETTE[k]
        boxes.append([x1, y1, x2, y2])
        classes.append(k)
    return img, np.array(boxes, np.float64).reshape(-1, 4), np.array(classes, np.int64)


def colour_mask(image, k, palette=PALETTE, ctol=CTOL):
    return (np.abs(image.astype(np.int32) - palette[k]).max(-1) <= ctol).astype(np.uint8)


def check_boxes(image, boxes, classes, ks, palette=PALETTE, ctol=CTOL, tol=TOL, max_dropped_area=None):
    """
    For each colour index in ``ks``: pixels of that colour lie inside the boxes of that class
    (up to ``tol``), each such box is tight around its pixels (up to ``tol`` + 1), and pixels
    not covered by any box form only "dropped" blobs: area <= max_dropped_area[k] (default
    50 px) or a side <= 4 px.
    """
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    classes = np.asarray(classes).reshape(-1)
    H, W = image.shape[:2]
    assert len(boxes) == len(classes)
    if len(boxes):
        assert (boxes[:, 0] >= -1e-3).all() and (boxes[:, 1] >= -1e-3).all()
        assert (boxes[:, 2] <= W + 1e-3).all() and (boxes[:, 3] <= H + 1e-3).all()
        assert (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all()
    for k in ks:
        mask = colour_mask(image, k, palette, ctol)
        cover = np.zeros_like(mask)
        for b in boxes[classes == k]:
            x1, y1 = max(int(math.floor(b[0] - tol)), 0), max(int(math.floor(b[1] - tol)), 0)
            x2, y2 = min(int(math.ceil(b[2] + tol)), W), min(int(math.ceil(b[3] + tol)), H)
            region = mask[y1:y2, x1:x2]
            ys, xs = np.nonzero(region)
            assert len(xs) > 0, f"box {b} of colour {k} covers no pixel of its colour"
            px = np.array([xs.min() + x1, ys.min() + y1, xs.max() + 1 + x1, ys.max() + 1 + y1], np.float64)
            np.testing.assert_allclose(px, b, atol=tol + 1, err_msg=f"colour {k}: pixels {px} vs box {b}")
            cover[y1:y2, x1:x2] = 1
        uncovered = mask & (1 - cover)
        n, _, stats, _ = cv2.connectedComponentsWithStats(uncovered, connectivity=8)
        limit = 50 if max_dropped_area is None else max_dropped_area[k]
        for i in range(1, n):
            _, _, cw, ch, area = stats[i]
            assert (
                area <= limit or min(cw, ch) <= 4
            ), f"colour {k}: visible blob of {area} px ({cw}x{ch}) has no box"


def base_image():
    rects = [
        (20, 15, 60, 45, 0),
        (90, 20, 120, 70, 1),
        (150, 10, 195, 40, 2),
        (10, 100, 50, 150, 3),
        (80, 110, 140, 145, 4),
        (170, 120, 198, 158, 5),  # touches the right border
        (100, 75, 118, 95, 6),
    ]
    return make_image(160, 200, rects)


# ------------------------------------------------------------------------------------------
def test_letterbox_resize_sizes_and_official_parity():
    from yolox.data.data_augment import preproc  # test-time reference only

    rng = np.random.default_rng(0)
    for H, W, size in [
        (300, 500, (640, 640)),
        (1035, 1249, (640, 640)),
        (480, 640, (416, 416)),
        (100, 50, (320, 640)),
        (640, 640, (640, 640)),
    ]:
        img = rng.integers(0, 255, (H, W, 3), dtype=np.uint8)
        out, r = T.letterbox_resize(img, size)
        assert r == pytest.approx(min(size[0] / H, size[1] / W))
        assert out.shape == (int(H * r), int(W * r), 3) and out.dtype == np.uint8
        padded, boxes, r2 = T.letterbox(img, np.array([[0, 0, W, H]]), size)
        ref, ref_r = preproc(img, size)
        assert r2 == ref_r
        np.testing.assert_array_equal(padded, ref.transpose(1, 2, 0).astype(np.uint8))
        assert padded.shape == (size[0], size[1], 3)
        if out.shape[0] < size[0]:
            assert (padded[out.shape[0] :] == 114).all()
        if out.shape[1] < size[1]:
            assert (padded[:, out.shape[1] :] == 114).all()
        np.testing.assert_allclose(boxes, [[0, 0, W * r, H * r]], rtol=1e-6)


def test_letterbox_chw_is_the_resized_image_in_chw_layout():
    """letterbox_chw: letterbox_resize (no padding) then HWC -> CHW, contiguous, the ratio a float."""
    from yolox.data.data_augment import preproc  # test-time reference only

    rng = np.random.default_rng(1)
    for H, W, size in [(300, 500, (640, 640)), (480, 640, (416, 416)), (100, 50, 64), (64, 64, 64)]:
        img = rng.integers(0, 255, (H, W, 3), dtype=np.uint8)
        chw, r = T.letterbox_chw(img, size)
        resized, r_ref = T.letterbox_resize(img, size)
        assert type(r) is float and r == r_ref
        assert chw.dtype == np.uint8 and chw.flags.c_contiguous
        assert chw.shape == (3,) + resized.shape[:2]
        np.testing.assert_array_equal(chw, resized.transpose(2, 0, 1))
        # the official preproc's top-left block (before its 114 padding)
        ref, _ = preproc(img, T.to_hw(size))
        np.testing.assert_array_equal(chw, ref[:, : chw.shape[1], : chw.shape[2]].astype(np.uint8))
        assert not np.shares_memory(chw, img)
    with pytest.raises(ValueError, match="HxWxC"):
        T.letterbox_chw(np.zeros((10, 10), np.uint8), 8)


def test_box_consistency_letterbox():
    img, boxes, classes = base_image()
    for size in [(320, 320), (100, 100), (416, 640)]:
        out, new_boxes, r = T.letterbox(img, boxes, size)
        check_boxes(out, new_boxes, classes, range(7), tol=1.5)


def test_box_consistency_flip():
    img, boxes, classes = base_image()
    out, new_boxes = T.horizontal_flip(img, boxes)
    check_boxes(out, new_boxes, classes, range(7), tol=0.01)
    np.testing.assert_array_equal(out, img[:, ::-1])
    # flipping twice is the identity
    back, back_boxes = T.horizontal_flip(out, new_boxes)
    np.testing.assert_array_equal(back, img)
    np.testing.assert_allclose(back_boxes, boxes)


def test_augment_hsv_noop_and_ranges():
    img, boxes, classes = base_image()
    rng = np.random.default_rng(0)
    same = R.augment_hsv(img, rng, 0, 0, 0)
    np.testing.assert_array_equal(same, img)  # no-op keeps colours exactly
    check_boxes(same, boxes, classes, range(7), tol=0.01)
    changed = [not np.array_equal(R.augment_hsv(img, np.random.default_rng(s)), img) for s in range(10)]
    assert sum(changed) >= 5
    a = R.augment_hsv(img, np.random.default_rng(3))
    b = R.augment_hsv(img, np.random.default_rng(3))
    np.testing.assert_array_equal(a, b)
    assert a.dtype == np.uint8 and a.shape == img.shape


def test_augment_hsv_matches_official(monkeypatch):
    """Same random offsets -> the same pixels as the official implementation."""
    from yolox.data import data_augment as official  # test-time reference only

    img = np.random.default_rng(1).integers(0, 255, (40, 50, 3), dtype=np.uint8)

    class FixedRng:
        def __init__(self, u, i):
            self.u, self.i = u, i

        def uniform(self, *a, **k):
            return np.array(self.u, np.float64)

        def integers(self, *a, **k):
            return np.array(self.i)

    for u, i in [
        ([0.7, -0.3, 0.9], [1, 1, 1]),
        ([-0.99, 0.5, -0.2], [1, 0, 1]),
        ([0.1, 0.9, 0.9], [0, 1, 0]),
    ]:
        monkeypatch.setattr(official.np.random, "uniform", lambda *a, **k: np.array(u, np.float64))
        monkeypatch.setattr(official.np.random, "randint", lambda *a, **k: np.array(i))
        ref = img.copy()
        official.augment_hsv(ref, 5, 30, 30)
        monkeypatch.undo()
        ours = R.augment_hsv(img, FixedRng(u, i), 5, 30, 30)
        np.testing.assert_array_equal(ours, ref)


def test_box_candidates_rule():
    before = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 100, 4], [0, 0, 10, 10]], float)
    after = np.array([[0, 0, 10, 10], [0, 0, 10, 1.5], [0, 0, 4, 4], [0, 0, 90, 4], [0, 0, 5, 4.1]], float)
    np.testing.assert_array_equal(T.box_candidates(before, after), [True, False, False, False, True])
    # area ratio 0.205 > 0.2 kept, 0.16 dropped
    assert T.box_candidates([[0, 0, 10, 10]], [[0, 0, 5, 4.1]])[0]
    assert not T.box_candidates([[0, 0, 10, 10]], [[0, 0, 4, 4]])[0]


@pytest.mark.parametrize("seed", range(8))
def test_box_consistency_random_affine(seed):
    img, boxes, classes = base_image()
    kwargs = dict(degrees=10.0, translate=0.1, scale=(0.5, 1.5), shear=2.0, target_size=(180, 220))
    out, new_boxes, new_classes = R.random_affine(img, boxes, classes, np.random.default_rng(seed), **kwargs)
    assert out.shape == (180, 220, 3)
    # replay the draw: full transformed area of each rectangle bounds what may be dropped
    M, s = T.sample_affine_matrix(
        np.random.default_rng(seed), (160, 200), (180, 220), 10.0, 0.1, (0.5, 1.5), 2.0, pivot="center"
    )
    det = abs(np.linalg.det(M[:, :2]))
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    max_dropped = {int(k): 0.2 * a * s * s * 1.05 + 2 * math.sqrt(a * det) for k, a in zip(classes, areas)}
    check_boxes(out, new_boxes, new_classes, range(7), max_dropped_area=max_dropped)
    # boxes fully inside the output are exactly the hull of the warped corners
    hull = T.apply_affine_to_boxes(boxes, M)
    for b, c in zip(new_boxes, new_classes):
        if hull[c, 0] >= 0 and hull[c, 1] >= 0 and hull[c, 2] <= 220 and hull[c, 3] <= 180:
            np.testing.assert_allclose(b, hull[c], atol=1e-3)


def test_apply_affine_to_boxes_clips_the_warped_rectangle():
    """The clipped box is the extent of the visible part of the warped rectangle."""
    rng = np.random.default_rng(0)
    W, H = 100.0, 80.0
    for _ in range(40):
        x1, y1 = rng.uniform(-30, 90, 2)
        box = np.array([[x1, y1, x1 + rng.uniform(5, 60), y1 + rng.uniform(5, 60)]])
        M, _ = T.sample_affine_matrix(
            rng, (80, 100), (80, 100), degrees=45.0, translate=0.3, scale=(0.5, 1.5), shear=10.0
        )
        got = T.apply_affine_to_boxes(box, M, W, H)[0]
        # brute force: dense samples of the rectangle, warped, kept inside the image
        u, v = np.meshgrid(np.linspace(0, 1, 400), np.linspace(0, 1, 400))
        pts = (
            np.stack(
                [
                    box[0, 0] + u.ravel() * (box[0, 2] - box[0, 0]),
                    box[0, 1] + v.ravel() * (box[0, 3] - box[0, 1]),
                ],
                1,
            )
            @ M[:, :2].T
            + M[:, 2]
        )
        pts = pts[(pts[:, 0] >= 0) & (pts[:, 0] <= W) & (pts[:, 1] >= 0) & (pts[:, 1] <= H)]
        if len(pts) == 0:
            assert (got[2] - got[0]) * (got[3] - got[1]) < 1.0
            continue
        ref = np.concatenate([pts.min(0), pts.max(0)])
        np.testing.assert_allclose(got, ref, atol=0.6)
        hull = T.clip_boxes(T.apply_affine_to_boxes(box, M), W, H)[0]
        assert (got[:2] >= hull[:2] - 1e-6).all() and (got[2:] <= hull[2:] + 1e-6).all()


def test_random_affine_strong_rotation_and_shear():
    img, boxes, classes = base_image()
    for seed in range(4):
        out, nb, nc = R.random_affine(
            img,
            boxes,
            classes,
            np.random.default_rng(seed),
            degrees=(25.0, 35.0),
            translate=0.05,
            scale=(0.9, 1.1),
            shear=5.0,
            target_size=(160, 200),
            area_thr=0.0,
        )
        assert len(nb) >= 3
        check_boxes(out, nb, nc, range(7), max_dropped_area={k: 1e9 for k in range(7)})
        # a rotated rectangle's box is clearly bigger than the unrotated rectangle
        for b, c in zip(nb, nc):
            if b[0] > 0 and b[1] > 0 and b[2] < 200 and b[3] < 160:
                w0, h0 = boxes[c, 2] - boxes[c, 0], boxes[c, 3] - boxes[c, 1]
                assert (b[2] - b[0]) * (b[3] - b[1]) > 1.15 * w0 * h0 * 0.81


def test_random_affine_drops_vanished_boxes():
    """No rotation / scale / translation, output = the centre 100x100 of a 200x200 image."""
    rects = [
        (60, 60, 100, 100, 0),  # fully inside the crop [50, 150)
        (5, 5, 40, 40, 1),  # fully outside: vanishes
        (40, 105, 80, 130, 2),  # 75% inside: kept, clipped
        (140, 60, 180, 100, 3),  # 25% inside: kept
        (145, 110, 185, 150, 4),  # 12.5% inside: dropped by the area rule
        (100, 148, 140, 160, 5),  # 2 px sliver inside: dropped by the size rule
    ]
    img, boxes, classes = make_image(200, 200, rects)
    out, nb, nc = R.random_affine(
        img,
        boxes,
        classes,
        np.random.default_rng(0),
        degrees=0.0,
        translate=0.0,
        scale=(1.0, 1.0),
        shear=0.0,
        target_size=(100, 100),
    )
    np.testing.assert_array_equal(out, img[50:150, 50:150])
    assert sorted(nc.tolist()) == [0, 2, 3]
    got = {int(c): b for b, c in zip(nb, nc)}
    np.testing.assert_allclose(got[0], [10, 10, 50, 50], atol=1e-4)
    np.testing.assert_allclose(got[2], [0, 55, 30, 80], atol=1e-4)
    np.testing.assert_allclose(got[3], [90, 10, 100, 50], atol=1e-4)
    check_boxes(out, nb, nc, range(6), max_dropped_area={4: 200, 5: 100, 0: 0, 1: 0, 2: 0, 3: 0})
    # border convention: target_size None and border = -50 gives the same crop
    out2, nb2, _ = R.random_affine(
        img,
        boxes,
        classes,
        np.random.default_rng(0),
        degrees=0.0,
        translate=0.0,
        scale=(1.0, 1.0),
        shear=0.0,
        border=(-50, -50),
    )
    np.testing.assert_array_equal(out2, out)
    np.testing.assert_allclose(nb2, nb)


def mosaic_inputs():
    imgs = [
        make_image(120, 160, [(10, 10, 50, 40, 0), (100, 60, 150, 110, 1)]),
        make_image(160, 120, [(20, 30, 70, 90, 2), (80, 120, 115, 155, 3)]),
        make_image(100, 100, [(30, 30, 70, 70, 4)]),
        make_image(150, 200, [(5, 5, 60, 50, 5), (120, 90, 190, 140, 6)]),
    ]
    return [i[0] for i in imgs], [i[1] for i in imgs], [i[2] for i in imgs]


@pytest.mark.parametrize("seed", range(6))
def test_box_consistency_mosaic(seed):
    images, boxes, classes = mosaic_inputs()
    canvas, nb, nc = R.mosaic(images, boxes, classes, np.random.default_rng(seed), size=(128, 128))
    assert canvas.shape == (256, 256, 3)
    assert (canvas == 114).all(-1).any()  # empty area filled with 114
    # every image is scaled by min(128/h, 128/w) <= 1.28; cut boxes keep > 20% of their area
    max_dropped = {}
    for b, c in zip(boxes, classes):
        for bb, cc in zip(b, c):
            max_dropped[int(cc)] = 0.2 * (bb[2] - bb[0]) * (bb[3] - bb[1]) * 1.28**2 + 10
    check_boxes(canvas, nb, nc, range(7), tol=1.5, max_dropped_area=max_dropped)


@pytest.mark.parametrize("seed", range(6))
def test_box_consistency_mosaic_then_affine(seed):
    images, boxes, classes = mosaic_inputs()
    rng = np.random.default_rng(seed)
    canvas, nb, nc = R.mosaic(images, boxes, classes, rng, size=(128, 128))
    out, nb, nc = R.random_affine(
        canvas, nb, nc, rng, degrees=10.0, translate=0.1, scale=(0.5, 1.5), shear=2.0, target_size=(128, 128)
    )
    assert out.shape == (128, 128, 3)
    max_dropped = {k: 0.2 * 60 * 60 * 1.28**2 * 1.5**2 for k in range(7)}
    check_boxes(out, nb, nc, range(7), max_dropped_area=max_dropped)


@pytest.mark.parametrize("seed", range(6))
def test_box_consistency_mixup(seed):
    """MixUp is linear: check the kept main boxes and the pasted partner boxes separately."""
    main, main_boxes, main_classes = make_image(
        128, 160, [(10, 10, 50, 50, 0), (70, 20, 110, 100, 1), (120, 90, 158, 126, 2)]
    )
    partner, p_boxes, p_classes = make_image(
        100, 90, [(5, 5, 35, 45, 3), (40, 50, 85, 95, 4), (50, 5, 80, 30, 5)]
    )
    black_main = np.zeros_like(main)
    black_partner = np.zeros_like(partner)
    kw = dict(scale=(0.5, 1.5), flip_prob=0.5, fill=0)  # fill 0 keeps the blend exactly linear
    out, nb, nc = R.mixup(
        main, main_boxes, main_classes, partner, p_boxes, p_classes, np.random.default_rng(seed), **kw
    )
    assert out.shape == main.shape and out.dtype == np.uint8
    np.testing.assert_allclose(nb[:3], main_boxes)  # own boxes unchanged, first
    # same draws, one side black: the blend shows each side at half intensity
    only_partner, _, _ = R.mixup(
        black_main, main_boxes, main_classes, partner, p_boxes, p_classes, np.random.default_rng(seed), **kw
    )
    only_main, _, _ = R.mixup(
        main, main_boxes, main_classes, black_partner, p_boxes, p_classes, np.random.default_rng(seed), **kw
    )
    diff = out.astype(int) - only_main.astype(int) - only_partner.astype(int)
    assert diff.min() >= 0 and diff.max() <= 1
    half = PALETTE // 2
    jit = np.random.default_rng(seed).uniform(0.5, 1.5)
    r = min(128 / 100, 160 / 90) * jit
    max_dropped = {k: 0.2 * 45 * 45 * r * r + 20 for k in range(7)}
    check_boxes(
        only_partner, nb[3:], nc[3:], [3, 4, 5], palette=half, ctol=30, tol=2.0, max_dropped_area=max_dropped
    )
    check_boxes(only_main, nb[:3], nc[:3], [0, 1, 2], palette=half, ctol=30, tol=0.01)
    # default fill: areas the partner does not cover are blended with 114
    jit_small_seed = next(s for s in range(100) if np.random.default_rng(s).uniform(0.5, 1.5) < 0.8)
    out114, _, _ = R.mixup(
        black_main,
        main_boxes,
        main_classes,
        black_partner,
        p_boxes,
        p_classes,
        np.random.default_rng(jit_small_seed),
        scale=(0.5, 1.5),
    )
    assert (out114 == 57).all(-1).mean() > 0.3


def test_mixup_partner_boxes_move_with_pixels_when_flipped():
    main = np.zeros((100, 100, 3), np.uint8)
    partner, p_boxes, p_classes = make_image(100, 100, [(10, 20, 40, 60, 0)])
    found_flip = found_plain = False
    for seed in range(20):
        out, nb, nc = R.mixup(
            main,
            np.zeros((0, 4)),
            np.zeros(0),
            partner,
            p_boxes,
            p_classes,
            np.random.default_rng(seed),
            scale=(1.0, 1.0),
            flip_prob=0.5,
        )
        assert len(nb) == 1
        check_boxes(out, nb, nc, [0], palette=PALETTE // 2, ctol=30, tol=1.0)
        if nb[0, 0] > 50:
            found_flip = True
        else:
            found_plain = True
    assert found_flip and found_plain


def test_transforms_are_reproducible():
    images, boxes, classes = mosaic_inputs()

    def run(seed):
        rng = np.random.default_rng(seed)
        canvas, b, c = R.mosaic(images, boxes, classes, rng, size=(96, 96))
        out, b, c = R.random_affine(canvas, b, c, rng, target_size=(96, 96))
        out, b, c = R.mixup(out, b, c, images[1], boxes[1], classes[1], rng)
        return R.augment_hsv(out, rng), b, c

    a, b = run(5), run(5)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    c = run(6)
    assert not np.array_equal(a[0], c[0])


# ------------------------------------------------------------------------------------------
# The fused renderers (used by MosaicMixupDataset) against the step-by-step reference
def _reference_chain(images, boxes, classes, partner, rng, size, scale, flip):
    canvas, b, c = R.mosaic(images, boxes, classes, rng, size=size)
    out, b, c = R.random_affine(
        canvas, b, c, rng, degrees=10.0, translate=0.1, scale=scale, shear=2.0, target_size=size
    )
    if partner is not None:
        out, b, c = R.mixup(out, b, c, *partner, rng)
    if flip:
        out, b = T.horizontal_flip(out, b)
    return out, b, c


def _fused_chain(images, boxes, classes, partner, rng, size, scale, flip):
    h, w = size
    center = T.mosaic_center(rng, size)
    M, s = T.sample_affine_matrix(rng, (2 * h, 2 * w), size, 10.0, 0.1, scale, 2.0, pivot="center")
    tiles = T.mosaic_tiles([im.shape[:2] for im in images], center, size)
    b, c = T.mosaic_boxes(tiles, boxes, classes)
    b, c = T.affine_boxes(b, c, M, s, size)
    if partner is not None:
        params = T.sample_mixup_params(rng, size)
        pb, pc = T.mixup_partner_boxes(partner[0].shape[:2], partner[1], partner[2], params, size)
        b, c = np.concatenate([b, pb]).astype(np.float32), np.concatenate([c, pc])
    out = T.render_mosaic_affine(images, tiles, M, size, flip=flip)
    if partner is not None:
        T.average_images(out, T.warp_mixup_partner(partner[0], params, size, flip=flip), out=out)
    if flip:
        b = T.flip_boxes(b, w)
    return out, b, c


def _photo(name, size):
    skimage = pytest.importorskip("skimage")
    img = cv2.imread(f"{skimage.data_dir}/{name}", cv2.IMREAD_COLOR)
    return cv2.resize(img, (size[1], size[0]), interpolation=cv2.INTER_AREA)


@pytest.mark.parametrize("seed", range(8))
def test_fused_render_matches_reference(seed):
    """Same draws, same boxes; pixels equal up to interpolation (photos) and box-consistent."""
    names = ["astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg", "motorcycle_left.png"]
    sizes = [(160, 160), (120, 180), (150, 220), (130, 190), (100, 150)]
    photos = [_photo(n, s) for n, s in zip(names, sizes)]
    g = np.random.default_rng(100 + seed)
    pick = g.permutation(5)
    images = [photos[i] for i in pick[:4]]
    boxes = [np.array([[10, 12, 70, 60], [60, 50, 110, 95]], np.float64) for _ in range(4)]
    classes = [np.array([2 * k, 2 * k + 1]) for k in range(4)]
    partner = (photos[pick[4]], np.array([[5, 5, 90, 80]], np.float64), np.array([8]))
    for with_mixup in (False, True):
        for flip in (False, True):
            args = (images, boxes, classes, partner if with_mixup else None)
            ref, rb, rc = _reference_chain(*args, np.random.default_rng(seed), (128, 160), (0.3, 1.8), flip)
            out, fb, fc = _fused_chain(*args, np.random.default_rng(seed), (128, 160), (0.3, 1.8), flip)
            assert out.shape == ref.shape == (128, 160, 3) and out.dtype == np.uint8
            np.testing.assert_array_equal(fc, rc)
            np.testing.assert_allclose(fb, rb, atol=1e-4)
            # one bilinear sampling instead of two: small differences, larger along image
            # edges and tile seams (1-px lines); a 1-px shift would give p90 >= 12
            diff = np.abs(out.astype(np.int32) - ref).max(-1)
            assert np.median(diff) <= 2 and np.percentile(diff, 90) <= 10, (with_mixup, flip)
            assert (diff > 40).mean() < 0.03

    # synthetic rectangles: the fused output's boxes follow its own pixels
    images, boxes, classes = mosaic_inputs()
    for flip in (False, True):
        out, b, c = _fused_chain(
            images, boxes, classes, None, np.random.default_rng(seed), (128, 128), (0.5, 1.5), flip
        )
        max_dropped = {k: 0.2 * 60 * 60 * 1.28**2 * 1.5**2 for k in range(7)}
        check_boxes(out, b, c, range(7), max_dropped_area=max_dropped)


@pytest.mark.parametrize("seed", range(4))
def test_invisible_mosaic_slots_change_nothing(seed):
    """A slot that mosaic_slots_visible() rules out adds no pixel and no box to the output."""
    images, boxes, classes = mosaic_inputs()
    rng = np.random.default_rng(seed)
    size = (64, 64)
    found = 0
    for _ in range(60):
        state = rng.bit_generator.state
        center = T.mosaic_center(rng, size)
        M, _ = T.sample_affine_matrix(rng, (128, 128), size, 10.0, 0.1, (1.2, 2.0), 2.0, pivot="center")
        visible = T.mosaic_slots_visible(center, size, M)
        if all(visible):
            continue
        found += 1
        grey = [im if v else np.full_like(im, 200) for im, v in zip(images, visible)]
        outs = []
        for imgs in (images, grey):
            r = np.random.default_rng(0)
            r.bit_generator.state = state
            canvas, b, c = R.mosaic(imgs, boxes, classes, r, size=size)
            outs.append(R.random_affine(canvas, b, c, r, scale=(1.2, 2.0), target_size=size))
        np.testing.assert_array_equal(outs[0][0], outs[1][0])
        hidden = {int(k) for cl, v in zip(classes, visible) if not v for k in cl}  # distinct per image
        assert not hidden & set(outs[0][2].tolist())
    assert found >= 3


def test_average_images_is_the_official_float_blend():
    g = np.random.default_rng(0)
    for shape in [(64, 80, 3), (7, 5, 3), (9, 11)]:  # 8-pixel and byte-wise paths
        a = g.integers(0, 256, shape, dtype=np.uint8)
        b = g.integers(0, 256, shape, dtype=np.uint8)
        ref = (0.5 * a.astype(np.float32) + 0.5 * b.astype(np.float32)).astype(np.uint8)
        np.testing.assert_array_equal(T.average_images(a, b), ref)
        out = a.copy()
        T.average_images(out, b, out=out)
        np.testing.assert_array_equal(out, ref)


def test_apply_hsv_offsets_in_place_and_copy():
    img = _photo("astronaut.png", (64, 64))
    offsets = np.array([3, -20, 25], np.int16)
    ref = T.apply_hsv_offsets(img, offsets)
    assert not np.array_equal(ref, img)
    out = img.copy()
    assert T.apply_hsv_offsets(out, offsets, out=out) is out
    np.testing.assert_array_equal(out, ref)
    big = np.zeros((80, 90, 3), np.uint8)
    T.apply_hsv_offsets(img, offsets, out=big[:64, :64])
    np.testing.assert_array_equal(big[:64, :64], ref)
    np.testing.assert_array_equal(T.apply_hsv_offsets(img, [0, 0, 0]), img)


def test_sample_affine_matrix_pivot_origin_keeps_the_linear_part_and_moves_the_pivot():
    """``pivot="origin"``: same draws as the centre pivot (same rotation / scale / shear), the
    input's top-left corner lands within ``translate`` of the output's, the centre pivot puts the
    input centre within ``translate`` of the output centre."""
    out_hw, in_hw, tr = (180, 220), (360, 440), 0.1
    for seed in range(20):
        Mc, sc = T.sample_affine_matrix(np.random.default_rng(seed), in_hw, out_hw, 10.0, tr, (0.5, 1.5), 2.0, pivot="center")
        Mo, so = T.sample_affine_matrix(
            np.random.default_rng(seed), in_hw, out_hw, 10.0, tr, (0.5, 1.5), 2.0, pivot="origin"
        )
        assert sc == so
        np.testing.assert_allclose(Mo[:, :2], Mc[:, :2])
        origin = Mo[:, 2]
        assert abs(origin[0]) <= tr * out_hw[1] + 1e-9 and abs(origin[1]) <= tr * out_hw[0] + 1e-9
        centre = Mc[:, :2] @ np.array([in_hw[1] / 2, in_hw[0] / 2]) + Mc[:, 2]
        assert abs(centre[0] - out_hw[1] / 2) <= tr * out_hw[1] + 1e-9
        assert abs(centre[1] - out_hw[0] / 2) <= tr * out_hw[0] + 1e-9
        # the centre pivot does move the top-left corner away from the output's
        assert np.abs(Mc[:, 2]).max() > tr * max(out_hw)
    # the default is the origin pivot
    Md, _ = T.sample_affine_matrix(np.random.default_rng(0), in_hw, out_hw, 10.0, tr, (0.5, 1.5), 2.0)
    Mo, _ = T.sample_affine_matrix(np.random.default_rng(0), in_hw, out_hw, 10.0, tr, (0.5, 1.5), 2.0, pivot="origin")
    np.testing.assert_array_equal(Md, Mo)
    # no jitter at all: origin pivot is the identity
    M, _ = T.sample_affine_matrix(np.random.default_rng(0), in_hw, out_hw, 0.0, 0.0, (1.0, 1.0), 0.0, pivot="origin")
    np.testing.assert_allclose(M, np.eye(3)[:2], atol=1e-12)
    with pytest.raises(ValueError, match="pivot"):
        T.sample_affine_matrix(np.random.default_rng(0), in_hw, out_hw, pivot="corner")
