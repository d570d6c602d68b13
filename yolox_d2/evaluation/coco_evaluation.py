"""
COCO AP scored by faster-coco-eval: Detectron2's :class:`COCOEvaluator` with a faster scorer.

Detectron2 scores with its compiled ``COCOeval_opt`` when its ``_C`` extension loads, else with
the pure-Python pycocotools ``COCOeval`` (the case with the pip-installed Detectron2 wheels:
about 150 s for a COCO-val-sized result set). faster-coco-eval (PyPI ``faster-coco-eval``) runs
the same per-image matching and accumulation in C++ and gives the same AP, about 10x faster.

:class:`FasterCOCOEvaluator` keeps everything of ``COCOEvaluator`` (``process``, the result
files in ``output_dir``, box proposals, the results dict) and only swaps the scorer.
"""
import itertools
import json
import logging
import os
from typing import Dict, List, Optional, Sequence

import numpy as np

from detectron2.evaluation import COCOEvaluator
from detectron2.utils.file_io import PathManager

try:
    from faster_coco_eval import COCO as FasterCOCO
    from faster_coco_eval import COCOeval_faster

    FASTER_COCO_EVAL_AVAILABLE = True
except ImportError:  # the evaluator falls back to pycocotools, with a warning
    FasterCOCO = COCOeval_faster = None
    FASTER_COCO_EVAL_AVAILABLE = False

__all__ = [
    "BACKENDS",
    "FASTER_COCO_EVAL_AVAILABLE",
    "FasterCOCOEvaluator",
    "evaluate_predictions_with_faster_coco_eval",
    "integer_image_ids",
]

logger = logging.getLogger(__name__)

#: The scorers :class:`FasterCOCOEvaluator` can use.
BACKENDS = ("faster_coco_eval", "pycocotools")
#: The tasks faster-coco-eval scores here (the ones Detectron2's COCOEvaluator infers).
FASTER_TASKS = ("bbox", "segm", "keypoints")


class FasterCOCOEvaluator(COCOEvaluator):
    """
    Detectron2's :class:`COCOEvaluator` that scores with faster-coco-eval.

    Same interface (``reset`` / ``process`` / ``evaluate``) and the same results dict
    (``{"bbox": {"AP", "AP50", "AP75", "APs", "APm", "APl", "AP-<class>", ...}, ...}``, in
    percent) as ``COCOEvaluator``; only the scoring of ``"bbox"`` / ``"segm"`` /
    ``"keypoints"`` changes. With ``backend="pycocotools"`` it *is* Detectron2's
    ``COCOEvaluator`` (its compiled ``COCOeval_opt`` when that loads, else pycocotools).
    """

    def __init__(
        self,
        dataset_name: str,
        tasks: Optional[Sequence[str]] = None,
        distributed: bool = True,
        output_dir: Optional[str] = None,
        *,
        backend: str = "faster_coco_eval",
        max_dets_per_image: Optional[int] = None,
        use_fast_impl: bool = True,
        kpt_oks_sigmas: Sequence[float] = (),
        allow_cached_coco: bool = True,
    ):
        """
        Args:
            dataset_name, tasks, distributed, output_dir, max_dets_per_image, kpt_oks_sigmas,
                allow_cached_coco: as for Detectron2's ``COCOEvaluator`` (the dataset must
                have a ``json_file`` in its metadata or be converted to one in ``output_dir``;
                ``max_dets_per_image`` is the per-image detection limit, default 100).
            backend (str): the scorer: ``"faster_coco_eval"`` (default; falls back to
                ``"pycocotools"`` with one logged warning when ``faster_coco_eval`` does not
                import) or ``"pycocotools"`` (Detectron2's own scoring, unchanged).
            use_fast_impl (bool): with ``backend="pycocotools"`` only: as for
                ``COCOEvaluator`` (Detectron2's compiled ``COCOeval_opt`` when it is built).
        """
        if backend not in BACKENDS:
            raise ValueError(f"FasterCOCOEvaluator: unknown backend {backend!r}; expected one of {BACKENDS}")
        if backend == "faster_coco_eval" and not FASTER_COCO_EVAL_AVAILABLE:
            logger.warning(
                "faster-coco-eval is not installed (pip install faster-coco-eval): "
                "COCO AP of %s is scored with pycocotools instead, about 10x slower.",
                dataset_name,
            )
            backend = "pycocotools"
        super().__init__(
            dataset_name,
            tasks,
            distributed,
            output_dir,
            max_dets_per_image=max_dets_per_image,
            # only Detectron2's own scoring uses it (and logs that COCOeval_opt is not built)
            use_fast_impl=use_fast_impl and backend == "pycocotools",
            kpt_oks_sigmas=kpt_oks_sigmas,
            allow_cached_coco=allow_cached_coco,
        )
        self._backend = backend
        self._faster_coco_api = None
        self._image_id_to_int: Optional[Dict] = None
        if backend == "faster_coco_eval" and self._do_evaluation:
            # Its own copy of the ground truth: scoring adds fields to the annotations, and the
            # pycocotools one of the base class still serves the box-proposal recall.
            with PathManager.open(self._metadata.json_file) as f:
                coco_dict = json.load(f)
            self._image_id_to_int = integer_image_ids(coco_dict)
            self._faster_coco_api = FasterCOCO(coco_dict)

    @property
    def backend(self) -> str:
        """The scorer in use: ``"faster_coco_eval"`` or ``"pycocotools"`` (after any fallback)."""
        return self._backend

    def _eval_predictions(self, predictions: List[Dict], img_ids: Optional[Sequence[int]] = None) -> None:
        """Score the ``"instances"`` of ``predictions`` into ``self._results`` (Detectron2's hook)."""
        if self._backend == "pycocotools":
            super()._eval_predictions(predictions, img_ids=img_ids)
            return
        coco_results = list(itertools.chain(*[x["instances"] for x in predictions]))
        tasks = self._tasks or self._tasks_from_predictions(coco_results)
        self._unmap_category_ids(coco_results)

        if self._output_dir:
            file_path = os.path.join(self._output_dir, "coco_instances_results.json")
            logger.info("Saving results to %s", file_path)
            with PathManager.open(file_path, "w") as f:
                f.write(json.dumps(coco_results))
                f.flush()

        if not self._do_evaluation:
            logger.info("Annotations are not available for evaluation.")
            return

        logger.info("Evaluating predictions with faster-coco-eval ...")
        if self._image_id_to_int is not None:  # the saved json keeps the dataset's own ids
            coco_results = [dict(r, image_id=self._image_id_to_int[r["image_id"]]) for r in coco_results]
            if img_ids is not None:
                img_ids = [self._image_id_to_int[i] for i in img_ids]
        for task in sorted(tasks):
            if task not in FASTER_TASKS:
                raise ValueError(f"FasterCOCOEvaluator: unknown task {task!r}; expected one of {FASTER_TASKS}")
            coco_eval = (
                evaluate_predictions_with_faster_coco_eval(
                    self._faster_coco_api,
                    coco_results,
                    task,
                    kpt_oks_sigmas=self._kpt_oks_sigmas,
                    img_ids=img_ids,
                    max_dets_per_image=self._max_dets_per_image,
                )
                if coco_results
                else None  # no detections: NaN metrics, as COCOEvaluator gives
            )
            self._results[task] = self._derive_coco_results(
                coco_eval, task, class_names=self._metadata.get("thing_classes")
            )

    def _unmap_category_ids(self, coco_results: List[Dict]) -> None:
        """Contiguous class indices -> the dataset's category ids, in place (as COCOEvaluator)."""
        if not hasattr(self._metadata, "thing_dataset_id_to_contiguous_id"):
            return
        dataset_id_to_contiguous_id = self._metadata.thing_dataset_id_to_contiguous_id
        reverse_id_mapping = {v: k for k, v in dataset_id_to_contiguous_id.items()}
        num_classes = len(reverse_id_mapping)
        if sorted(reverse_id_mapping) != list(range(num_classes)):
            raise ValueError(
                f"metadata of {self._metadata.name}: thing_dataset_id_to_contiguous_id must map onto "
                f"0..{num_classes - 1}, got {sorted(reverse_id_mapping)}"
            )
        for result in coco_results:
            category_id = result["category_id"]
            if category_id not in reverse_id_mapping:
                raise ValueError(
                    f"a prediction on image {result['image_id']} has class={category_id}, but "
                    f"{self._metadata.name} has {num_classes} classes (valid: 0..{num_classes - 1})"
                )
            result["category_id"] = reverse_id_mapping[category_id]


def integer_image_ids(coco_dict: Dict) -> Optional[Dict]:
    """
    faster-coco-eval needs integer image ids; Detectron2 datasets may use strings (Pascal VOC's
    file ids). When some id is not an integer, renumber the images of ``coco_dict`` in place
    (``images[].id`` and ``annotations[].image_id``) and return the map from the dataset's ids
    to the new ones; return None when every id is already an integer.
    """
    images = coco_dict.get("images", [])
    if all(isinstance(img["id"], int) and not isinstance(img["id"], bool) for img in images):
        return None
    mapping = {img["id"]: index for index, img in enumerate(images)}
    for img in images:
        img["id"] = mapping[img["id"]]
    for ann in coco_dict.get("annotations", []):
        ann["image_id"] = mapping[ann["image_id"]]
    return mapping


def evaluate_predictions_with_faster_coco_eval(
    coco_gt: "FasterCOCO",
    coco_results: List[Dict],
    iou_type: str,
    *,
    kpt_oks_sigmas: Sequence[float] = (),
    img_ids: Optional[Sequence[int]] = None,
    max_dets_per_image: Optional[Sequence[int]] = None,
) -> "COCOeval_faster":
    """
    Score COCO-format results with faster-coco-eval, as Detectron2 scores them with pycocotools.

    Args:
        coco_gt (faster_coco_eval.COCO): the ground truth.
        coco_results (list[dict]): COCO-format results (``image_id``, ``category_id``,
            ``score`` and ``bbox`` in XYWH / ``segmentation`` / ``keypoints``), at least one;
            ``loadRes`` adds ``id`` / ``area`` / ``iscrowd`` to them in place.
        iou_type (str): ``"bbox"``, ``"segm"`` or ``"keypoints"``. ``"segm"`` ignores the
            results' boxes, so that the small / medium / large split uses the mask area.
        kpt_oks_sigmas (list[float]): keypoint OKS sigmas; empty for COCO's.
        img_ids (list[int] or None): score these images only (default: all of ``coco_gt``).
        max_dets_per_image (list[int] or None): the ``maxDets`` of the AR metrics, at least 3
            values (default ``[1, 10, 100]``); AP uses the last one (not for keypoints).

    Returns:
        faster_coco_eval.COCOeval_faster: evaluated, accumulated and summarized (``stats``,
        ``eval["precision"]`` of shape (iou, recall, class, area, maxDets)).
    """
    if not coco_results:
        raise ValueError("evaluate_predictions_with_faster_coco_eval: no results to score")
    if max_dets_per_image is None:
        max_dets_per_image = [1, 10, 100]
    if len(max_dets_per_image) < 3:
        raise ValueError(f"max_dets_per_image needs at least 3 values (the AR limits), got {max_dets_per_image}")
    if iou_type == "segm":
        # shallow copies without "bbox": loadRes would take the box area as the instance area
        coco_results = [{k: v for k, v in r.items() if k != "bbox"} for r in coco_results]

    coco_dt = coco_gt.loadRes(coco_results)
    coco_eval = COCOeval_faster(coco_gt, coco_dt, iou_type, print_function=logger.info)
    if iou_type != "keypoints":
        coco_eval.params.maxDets = list(max_dets_per_image)
    if img_ids is not None:
        coco_eval.params.imgIds = list(img_ids)
    if iou_type == "keypoints":
        if kpt_oks_sigmas:
            coco_eval.params.kpt_oks_sigmas = np.array(kpt_oks_sigmas)
        _check_keypoint_counts(coco_gt, coco_results, len(coco_eval.params.kpt_oks_sigmas))
    coco_eval.evaluate()
    coco_eval.accumulate()
    coco_eval.summarize()
    return coco_eval


def _check_keypoint_counts(coco_gt: "FasterCOCO", coco_results: List[Dict], num_sigmas: int) -> None:
    """Predictions, ground truth and OKS sigmas must have the same number of keypoints."""
    num_dt = len(coco_results[0]["keypoints"]) // 3
    num_gt = len(next(iter(coco_gt.anns.values()))["keypoints"]) // 3
    if not num_dt == num_gt == num_sigmas:
        raise ValueError(
            f"predictions have {num_dt} keypoints, the ground truth {num_gt} and kpt_oks_sigmas "
            f"{num_sigmas}: they must agree (see http://cocodataset.org/#keypoints-eval)"
        )
