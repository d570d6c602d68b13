"""
:class:`MosaicMixupDataset`: the YOLOX training data pipeline (Mosaic + random affine + MixUp +
HSV + flip, or the plain "no-aug" letterbox of the last epochs) as a map-style dataset that
yields Detectron2 model inputs.

The mosaic on/off switch lives in a shared-memory tensor, so flipping it in the main process
reaches DataLoader worker processes that already exist (forked or spawned, persistent or not).

Bad data never stops a training run: the dataset dicts are checked once when the dataset is
built (:func:`~yolox_d2.data.validation.validate_dataset_dicts`: bad boxes are dropped, images
without a file are dropped, a summary is logged), boxes are clipped to the decoded image, and
a sample whose image cannot be decoded is skipped with a warning naming the file, another one
being drawn in its place (:mod:`~yolox_d2.data.training_images`).
"""

import logging
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from detectron2.structures import Boxes, Instances
from detectron2.utils import comm

from . import transforms as T
from .augmentation_defaults import yolox_augmentation_defaults
from .training_images import TrainingImages, UnreadableImage
from .validation import DataIssueReport, ValidatedDatasetDicts, validate_dataset_dicts

__all__ = ["MosaicMixupDataset"]

logger = logging.getLogger(__name__)

# The constructor's augmentation defaults: the large-model (L / M / X) row of the recipe table.
_RECIPE = yolox_augmentation_defaults("l")

Targets = Tuple[np.ndarray, np.ndarray]  # boxes (N, 4) XYXY, classes (N,)
Part = Tuple[np.ndarray, np.ndarray, np.ndarray]  # image (HxWx3 uint8 BGR), boxes, classes
Parts = List[Optional[Part]]  # the 4 mosaic images (None: a slot out of the output, not read)
Tiles = List[Optional[T.MosaicTile]]


def _pair(value, name: str) -> Tuple[float, float]:
    """A ``(low, high)`` float pair from any 2-sequence (tuple, list, ListConfig)."""
    value = tuple(float(v) for v in value)
    if len(value) != 2 or value[0] > value[1]:
        raise ValueError(f"{name} must be a (low, high) pair, got {value!r}")
    return value


class MosaicMixupDataset(torch.utils.data.Dataset):
    """
    YOLOX training augmentation over a whole list of Detectron2 dataset dicts.

    ``dataset[i]`` returns a Detectron2 model input: ``{"image": uint8 tensor (3, h, w) BGR,
    "instances": Instances(gt_boxes=Boxes(XYXY float32), gt_classes=int64), "height": h,
    "width": w, "file_name", "image_id"}`` where ``(h, w) = image_size`` (every sample has the
    same size, so training batches have a fixed shape; ``height`` / ``width`` describe the
    returned image, ``file_name`` / ``image_id`` the primary image ``i``).

    With mosaic enabled (and with probability ``mosaic_prob``): image ``i`` and 3 partners
    drawn uniformly from the *whole* dataset form a ``2h x 2w`` mosaic
    (:mod:`~yolox_d2.data.transforms.mosaic`), a random affine brings it to ``(h, w)``
    (:mod:`~yolox_d2.data.transforms.affine`), then with probability ``mixup_prob`` (if
    ``enable_mixup`` and some box survived) a uniformly drawn annotated image is blended in
    (:mod:`~yolox_d2.data.transforms.mixup`). Otherwise (mosaic disabled: the "no-aug"
    last epochs, or the ``1 - mosaic_prob`` draw) the image is letterboxed to fit ``(h, w)``.
    Both paths then apply, like the official ``TrainTransform``: HSV jitter with probability
    ``hsv_prob``, horizontal flip with probability ``flip_prob`` (in the plain path both happen
    before the bottom/right 114 padding), and drop boxes whose shorter side is
    ``<= min_box_size``; at most ``max_labels`` boxes are kept. Samples may have 0 boxes.

    Speed: a mosaic sample makes the same random draws and the same boxes as the step-by-step
    chain (``tests/reference_transforms.py``: canvas, warp, MixUp canvas), but its pixels are
    rendered once at the output size (each output pixel is sampled bilinearly from its source
    image, no ``2h x 2w`` canvas; MixUp partner, HSV lookup tables and the flip applied on the
    output; see :func:`~yolox_d2.data.transforms.render_mosaic_affine`), so they equal the
    step-by-step result up to interpolation. A mosaic partner in a slot that the affine leaves
    out of the output is not read (it could add no pixel and no box), an image drawn twice in
    one sample is read once, plain 8-bit PNG files are decoded with OpenCV and ordinary JPEG
    files with simplejpeg (same pixels as the PIL reader, which handles every other file;
    :mod:`~yolox_d2.data.image_io`), and ``cache_images`` keeps decoded images in RAM.

    The mosaic switch (:meth:`set_mosaic_enabled`, :attr:`mosaic_enabled`) is a shared-memory
    tensor read by every ``__getitem__``, so it reaches existing worker processes.

    Bad data: the dicts are validated when the dataset is built
    (:func:`~yolox_d2.data.validation.validate_dataset_dicts`; the counts per reason are in
    :attr:`data_report` and logged once). When an image cannot be decoded (truncated, not an
    image, deleted since, size disagreeing with the dict), the sample is skipped: a warning
    names the file, ``image_id`` and error (once per file and process), the entry is not
    drawn again by this process, and another primary image (or mosaic / MixUp partner) is
    drawn with the same generator. After ``max_read_retries`` failed images in a row,
    :class:`RuntimeError` is raised (the data is broken beyond skipping).
    Randomness: one :class:`numpy.random.Generator` per process, seeded from the DataLoader
    worker seed (``torch.utils.data.get_worker_info().seed``), the distributed rank and
    ``seed``; in the main process from ``seed`` (or ``torch.initial_seed()`` when ``seed`` is
    None). Runs with a seeded DataLoader (``build_yolox_train_loader(seed=...)``) are
    reproducible and workers / ranks differ.
    """

    def __init__(
        self,
        dataset_dicts: Sequence[Dict[str, Any]],
        image_size: Sequence[int] = _RECIPE["image_size"],
        mosaic_prob: float = _RECIPE["mosaic_prob"],
        mixup_prob: float = _RECIPE["mixup_prob"],
        enable_mixup: bool = _RECIPE["enable_mixup"],
        mosaic_scale: Sequence[float] = _RECIPE["mosaic_scale"],
        mixup_scale: Sequence[float] = _RECIPE["mixup_scale"],
        degrees: float = _RECIPE["degrees"],
        translate: float = _RECIPE["translate"],
        shear: float = _RECIPE["shear"],
        affine_pivot: str = T.DEFAULT_AFFINE_PIVOT,
        hsv_prob: float = _RECIPE["hsv_prob"],
        flip_prob: float = _RECIPE["flip_prob"],
        max_labels: Optional[int] = 120,
        seed: Optional[int] = None,
        enable_mosaic: bool = True,
        min_box_size: float = 1.0,
        box_wh_thr: float = 2.0,
        box_ar_thr: float = 20.0,
        box_area_thr: float = 0.2,
        hsv_gains: Sequence[float] = (5.0, 30.0, 30.0),
        pad_value: int = T.YOLOX_PAD_VALUE,
        dataset_name: Union[None, str, Sequence[str]] = None,
        check_files: bool = True,
        max_read_retries: int = 32,
        cache_images: bool = False,
        cache_max_bytes: Optional[int] = None,
    ):
        """
        Args:
            dataset_dicts: the whole training set as Detectron2 dataset dicts (``file_name``,
                ``height``, ``width``, ``image_id``, ``annotations`` with ``bbox``,
                ``bbox_mode``, ``category_id``; crowd boxes are ignored), preferably from
                :func:`~yolox_d2.data.validation.get_validated_dataset_dicts` (validated with
                each dataset's metadata; not validated again here); any other list is
                validated here with ``dataset_name``'s metadata. Stored serialized
                (:class:`detectron2.data.common.DatasetFromList`) to keep worker memory flat.
            image_size: training size ``(height, width)`` of every output.
            (The augmentation defaults, ``image_size`` to ``flip_prob``, are the large-model
            recipe, :func:`~yolox_d2.data.augmentation_defaults.yolox_augmentation_defaults`
            ``("l")``.)
            mosaic_prob: probability of building a mosaic when mosaic is enabled.
            mixup_prob: probability of MixUp on a mosaic sample (needs ``enable_mixup``).
            enable_mixup: allow MixUp at all (off for S / Tiny / Nano in the paper's recipe).
            mosaic_scale: ``(low, high)`` range of the random affine's scale.
            mixup_scale: ``(low, high)`` range of the MixUp partner's scale jitter.
            degrees: random affine rotation range ``U(-degrees, degrees)``.
            translate: random affine translation, a fraction of ``image_size``.
            shear: random affine shear range in degrees ``U(-shear, shear)``.
            affine_pivot: ``"origin"`` (default: the mosaic's top-left corner lands at the
                output's, as the official 0.3.0 ``get_affine_matrix``: more padding, fewer
                boxes per sample; better in six of eight paired runs of the tree recipe,
                docs/speed.md) or ``"center"`` (the mosaic's centre at the output centre);
                see :func:`~yolox_d2.data.transforms.sample_affine_matrix`.
            hsv_prob: probability of the HSV jitter.
            flip_prob: probability of the horizontal flip.
            max_labels: keep at most this many boxes per sample (official: 120; the first
                ones, i.e. the primary image's come first); None: no limit.
            seed: optional extra seed mixed into every process' generator.
            enable_mosaic: initial state of the mosaic switch (see :meth:`set_mosaic_enabled`).
            min_box_size: final filter, boxes need ``min(w, h) > min_box_size`` pixels.
            box_wh_thr: :func:`~yolox_d2.data.transforms.box_candidates` minimum side after
                mosaic cuts, the affine warp and MixUp cuts.
            box_ar_thr: :func:`~yolox_d2.data.transforms.box_candidates` max aspect ratio.
            box_area_thr: :func:`~yolox_d2.data.transforms.box_candidates` minimum kept area
                fraction.
            hsv_gains: ``(hgain, sgain, vgain)`` of
                :func:`~yolox_d2.data.transforms.sample_hsv_offsets`.
            pad_value: fill value of padding and empty canvas areas (YOLOX: 114).
            dataset_name: registered name(s) of the dataset(s) the dicts come from: their
                metadata (``thing_classes``, ``thing_dataset_id_to_contiguous_id``) declare
                the valid category ids. None: ids are only checked to be integers >= 0.
            check_files: when validating, drop records whose local image file is missing or
                empty (one ``stat`` per image).
            max_read_retries: how many unreadable images in a row one sample may skip before
                giving up with an error.
            cache_images: keep decoded images in RAM (``/dev/shm``), shared by the DataLoader
                workers of this rank: each file is decoded once while unchanged (a changed
                file is decoded again), same samples as without cache. Memory:
                ``height * width * 3`` bytes per image, reserved when the dataset is built
                (:class:`~yolox_d2.data.image_cache.SharedImageCache`). Off by default; e.g.
                ``dataloader.train.dataset.cache_images=True``.
            cache_max_bytes: bound on the cache; None: half the free space of ``/dev/shm``.
                Images beyond it (in dataset order) are decoded on every use.
        """
        super().__init__()
        if isinstance(dataset_dicts, ValidatedDatasetDicts):  # get_validated_dataset_dicts()
            self.data_report: DataIssueReport = dataset_dicts.report
        else:
            dataset_dicts = list(dataset_dicts)
            if not dataset_dicts:
                raise ValueError("MosaicMixupDataset needs a non-empty list of dataset dicts")
            names = [dataset_name] if isinstance(dataset_name, str) else list(dataset_name or [])
            self.data_report = DataIssueReport(",".join(str(n) for n in names) or None)
            dataset_dicts = validate_dataset_dicts(
                dataset_dicts,
                names or None,
                mode="train",
                check_files=check_files,
                max_labels=max_labels,
                report=self.data_report,
            )
        if not dataset_dicts:
            raise ValueError(
                "MosaicMixupDataset: no usable image left after validation: "
                + self.data_report.summary()
            )
        self._images = TrainingImages(dataset_dicts, cache_images, cache_max_bytes)

        self.image_size = T.to_hw(image_size)
        self.mosaic_prob = float(mosaic_prob)
        self.mixup_prob = float(mixup_prob)
        self.enable_mixup = bool(enable_mixup)
        self.mosaic_scale = _pair(mosaic_scale, "mosaic_scale")
        self.mixup_scale = _pair(mixup_scale, "mixup_scale")
        self.degrees = float(degrees)
        self.translate = float(translate)
        self.shear = float(shear)
        if affine_pivot not in T.AFFINE_PIVOTS:
            raise ValueError(f"affine_pivot must be one of {T.AFFINE_PIVOTS}, got {affine_pivot!r}")
        self.affine_pivot = affine_pivot
        self.hsv_prob = float(hsv_prob)
        self.flip_prob = float(flip_prob)
        self.max_labels = None if max_labels is None else int(max_labels)
        self.seed = None if seed is None else int(seed)
        self.min_box_size = float(min_box_size)
        self.box_filter = dict(
            wh_thr=float(box_wh_thr), ar_thr=float(box_ar_thr), area_thr=float(box_area_thr)
        )
        self.hsv_gains = tuple(float(g) for g in hsv_gains)
        if len(self.hsv_gains) != 3:
            raise ValueError(f"hsv_gains must have 3 values, got {self.hsv_gains!r}")
        self.pad_value = int(pad_value)
        self.max_read_retries = int(max_read_retries)
        if self.max_read_retries < 0:
            raise ValueError(f"max_read_retries must be >= 0, got {max_read_retries}")

        # Shared memory: the same storage is seen by every (forked or spawned) worker.
        self._mosaic_flag = torch.zeros(1, dtype=torch.uint8).share_memory_()
        self._mosaic_flag[0] = int(bool(enable_mosaic))
        self._rank = comm.get_rank()  # the rank that built the dataset (workers inherit it)
        self._rng: Optional[np.random.Generator] = None
        self._rng_key = None
        logger.info(
            "MosaicMixupDataset: %d images (%d with boxes), image_size=%s, mosaic=%s (p=%.2f, "
            "scale=%s), mixup=%s (p=%.2f, scale=%s), degrees=%g, translate=%g, shear=%g, "
            "hsv_prob=%g, flip_prob=%g, max_labels=%s",
            len(self._images), len(self._images.annotated), self.image_size, bool(enable_mosaic),
            self.mosaic_prob, self.mosaic_scale, self.enable_mixup, self.mixup_prob, self.mixup_scale,
            self.degrees, self.translate, self.shear, self.hsv_prob, self.flip_prob, self.max_labels,
        )

    # ------------------------------------------------------------------ switch
    @property
    def mosaic_enabled(self) -> bool:
        """Current state of the shared mosaic switch (as seen by this process)."""
        return bool(self._mosaic_flag[0].item())

    def set_mosaic_enabled(self, enabled: bool) -> None:
        """
        Turn Mosaic / affine / MixUp on or off for all processes (the "no-aug" epochs).

        Writes the shared-memory flag; DataLoader workers see the change from their next
        sample on (samples already prefetched keep the mode they were made with).

        Args:
            enabled: True for the full augmentation, False for letterbox + HSV + flip only.
        """
        self._mosaic_flag[0] = int(bool(enabled))
        logger.info("Mosaic/MixUp augmentation %s", "enabled" if enabled else "disabled")

    # ------------------------------------------------------------------ randomness
    def _generator(self) -> np.random.Generator:
        """This process' generator, (re)created when the worker / worker seed changes."""
        info = torch.utils.data.get_worker_info()
        if info is None:
            key = ("main",)
        else:
            key = ("worker", info.id, info.seed)
        if self._rng is None or self._rng_key != key:
            rank = self._rank
            extra = 0 if self.seed is None else self.seed
            if info is None:
                base = torch.initial_seed() if self.seed is None else self.seed
                entropy = [int(base) % 2**63, rank, extra]
            else:
                entropy = [int(info.seed) % 2**63, rank, extra, 1]
            self._rng = np.random.default_rng(np.random.SeedSequence(entropy))
            self._rng_key = key
        return self._rng

    # ------------------------------------------------------------------ data
    def __len__(self) -> int:
        return len(self._images)

    def _load(self, index: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray, Dict[str, Any]]:
        """:meth:`TrainingImages.load` (raises :class:`UnreadableImage`)."""
        return self._images.load(index)

    def _readable(self, index: int, rng: np.random.Generator, pool: Optional[np.ndarray] = None) -> int:
        """:meth:`TrainingImages.readable`: ``index``, or a redraw when it is known unreadable."""
        return self._images.readable(index, rng, pool)

    # ------------------------------------------------------------------ samples
    def _mosaic_sample(self, index: int, rng: np.random.Generator) -> Part:
        """
        Mosaic + random affine (+ MixUp) + HSV + flip at ``image_size``.

        Every random draw comes first, in the order of the step-by-step reference (mosaic,
        random affine, MixUp, HSV, flip), and boxes are computed with the same functions, so
        both give the same boxes. The pixels are then rendered once at the output size
        (:meth:`_render_mosaic`), and partner images in a slot the affine leaves out of the
        output are not read at all (the primary image always is). An image drawn twice in a
        sample is decoded once.
        """
        h, w = self.image_size
        indices = [index] + [self._readable(int(i), rng) for i in rng.integers(0, len(self), 3)]
        center = T.mosaic_center(rng, self.image_size)
        M, s = T.sample_affine_matrix(
            rng, (2 * h, 2 * w), (h, w), self.degrees, self.translate, self.mosaic_scale, self.shear,
            pivot=self.affine_pivot,
        )
        visible = T.mosaic_slots_visible(center, self.image_size, M)
        loaded: Dict[int, Part] = {}
        parts = [self._load_once(i, loaded) if k == 0 or visible[k] else None for k, i in enumerate(indices)]
        sizes = [None if p is None else p[0].shape[:2] for p in parts]
        tiles = T.mosaic_tiles(sizes, center, self.image_size)
        b, c = self._mosaic_boxes(parts, tiles, M, s)
        partner, mix = self._draw_mixup_partner(len(b), rng, loaded)
        if partner is not None:
            pb, pc = T.mixup_partner_boxes(
                partner[0].shape[:2], partner[1], partner[2], mix, self.image_size, **self.box_filter
            )
            b, c = np.concatenate([b, pb]).astype(np.float32), np.concatenate([c, pc])
        offsets, flip = self._draw_color_and_flip(rng)
        image = self._render_mosaic(parts, tiles, M, partner, mix, flip)
        if offsets is not None:
            T.apply_hsv_offsets(image, offsets, out=image)
        if flip:
            b = T.flip_boxes(b, w)
        return image, b, c

    def _load_once(self, index: int, loaded: Dict[int, Part]) -> Part:
        """Image, boxes and classes of ``index``, read once per sample (cached in ``loaded``)."""
        if index not in loaded:
            loaded[index] = self._load(index)[:3]
        return loaded[index]

    def _mosaic_boxes(self, parts: Parts, tiles: Tiles, M: np.ndarray, s: float) -> Targets:
        """The mosaic's boxes after the affine ``M`` (scale ``s``); unread parts have none."""
        no_boxes = np.zeros((0, 4)), np.zeros((0,), np.int64)
        b, c = T.mosaic_boxes(
            tiles,
            [no_boxes[0] if p is None else p[1] for p in parts],
            [no_boxes[1] if p is None else p[2] for p in parts],
            **self.box_filter,
        )
        return T.affine_boxes(b, c, M, s, self.image_size, **self.box_filter)

    def _draw_mixup_partner(
        self, n_boxes: int, rng: np.random.Generator, loaded: Dict[int, Part]
    ) -> Tuple[Optional[Part], Optional[T.MixupParams]]:
        """
        ``(partner, params)``: with probability ``mixup_prob`` (``enable_mixup``, ``n_boxes``
        mosaic boxes left and some annotated image readable) a uniformly drawn annotated image
        (image, boxes, classes) and its MixUp placement; else ``(None, None)``.
        """
        annotated = self._images.annotated
        if not (self.enable_mixup and n_boxes and len(annotated) and rng.uniform() < self.mixup_prob):
            return None, None
        j = int(annotated[rng.integers(0, len(annotated))])
        j = self._readable(j, rng, annotated)
        if j < 0:
            return None, None
        partner = self._load_once(j, loaded)
        return partner, T.sample_mixup_params(rng, self.image_size, self.mixup_scale)

    def _draw_color_and_flip(self, rng: np.random.Generator) -> Tuple[Optional[np.ndarray], bool]:
        """HSV offsets (None: no jitter, probability ``1 - hsv_prob``) and the flip draw."""
        offsets = T.sample_hsv_offsets(rng, *self.hsv_gains) if rng.uniform() < self.hsv_prob else None
        return offsets, bool(rng.uniform() < self.flip_prob)

    def _render_mosaic(
        self,
        parts: Parts,
        tiles: Tiles,
        M: np.ndarray,
        partner: Optional[Part],
        mix: Optional[T.MixupParams],
        flip: bool,
    ) -> np.ndarray:
        """The mosaic + affine pixels at ``image_size``, MixUp partner blended in, flip folded in."""
        images = [None if p is None else p[0] for p in parts]
        image = T.render_mosaic_affine(images, tiles, M, self.image_size, fill=self.pad_value, flip=flip)
        if partner is not None:
            window = T.warp_mixup_partner(partner[0], mix, self.image_size, fill=self.pad_value, flip=flip)
            T.average_images(image, window, out=image)
        return image

    def _plain_sample(self, index: int, rng: np.random.Generator) -> Part:
        """The official ``TrainTransform`` on one image: letterbox, HSV, flip, pad with 114."""
        image, b, c, _ = self._load(index)
        resized, r = T.letterbox_resize(image, self.image_size)
        b = b * r
        rh, rw = resized.shape[:2]
        offsets, flip = self._draw_color_and_flip(rng)
        out = np.full(self.image_size + resized.shape[2:], self.pad_value, dtype=np.uint8)
        roi = out[:rh, :rw]
        if offsets is not None:
            T.apply_hsv_offsets(resized, offsets, out=roi)
        else:
            roi[...] = resized
        if flip:
            flipped, b = T.horizontal_flip(roi, b)
            roi[...] = flipped
        return out, T.clip_boxes(b, rw, rh), c

    def __getitem__(self, index: int) -> Dict[str, Any]:
        """
        Args:
            index: dataset index of the primary image.

        Returns:
            A Detectron2 model input dict (see the class docstring). When an image of the
            sample cannot be decoded, the sample is rebuilt with another image (the primary
            image is replaced when it is the unreadable one): ``file_name`` / ``image_id``
            then name the primary image actually used.

        Raises:
            RuntimeError: ``max_read_retries + 1`` images in a row could not be decoded.
        """
        rng = self._generator()
        index = self._readable(int(index), rng)
        failures: List[str] = []
        for _ in range(self.max_read_retries + 1):
            try:
                return self._sample(index, rng)
            except UnreadableImage as e:
                failures.append(str(e.cause))
                if e.index == index:
                    index = self._readable(index, rng)
        raise RuntimeError(
            f"MosaicMixupDataset: {len(failures)} images in a row could not be read; the data is "
            f"broken beyond skipping. Last errors:\n  " + "\n  ".join(failures[-5:])
        )

    def _sample(self, index: int, rng: np.random.Generator) -> Dict[str, Any]:
        """One training sample with primary image ``index`` (raises :class:`UnreadableImage`)."""
        record = self._images.record(index)
        if self.mosaic_enabled and rng.uniform() < self.mosaic_prob:
            image, boxes, classes = self._mosaic_sample(index, rng)
        else:
            image, boxes, classes = self._plain_sample(index, rng)
        boxes, classes = T.filter_small_boxes(boxes, classes, self.min_box_size)
        if self.max_labels is not None:
            boxes, classes = boxes[: self.max_labels], classes[: self.max_labels]

        h, w = image.shape[:2]
        instances = Instances((h, w))
        instances.gt_boxes = Boxes(torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4))
        instances.gt_classes = torch.as_tensor(classes, dtype=torch.int64).reshape(-1)
        return {
            "image": torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))),
            "instances": instances,
            "height": h,
            "width": w,
            "file_name": record["file_name"],
            "image_id": record["image_id"],
        }

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(len={len(self)}, image_size={self.image_size}, "
            f"mosaic_enabled={self.mosaic_enabled}, mosaic_prob={self.mosaic_prob}, "
            f"enable_mixup={self.enable_mixup}, mixup_prob={self.mixup_prob})"
        )
