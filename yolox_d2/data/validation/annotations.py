"""
The checks of one annotation of a record: its box (4 finite numbers in an axis-aligned
``bbox_mode``, converted to ``XYXY_ABS``, positive width and height, position against the
declared image size) and its ``category_id`` (an integer among the declared classes, dataset
ids converted with the metadata's ``thing_dataset_id_to_contiguous_id``).
"""

import math
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from detectron2.structures import BoxMode

from .report import DataIssueReport

__all__ = ["check_annotation", "dataset_category_remap"]

# bbox_mode (BoxMode member or its int value: BoxMode is an IntEnum) -> (is XYWH, is relative)
_MODES = {
    BoxMode.XYXY_ABS: (False, False),
    BoxMode.XYWH_ABS: (True, False),
    BoxMode.XYXY_REL: (False, True),
    BoxMode.XYWH_REL: (True, True),
}


def _integer(value: Any) -> Optional[int]:
    """``value`` as an int if it is integral (3, 3.0, np.int64), else None (bool / str / NaN)."""
    if type(value) is int:  # the common case, fast
        return value
    if isinstance(value, (bool, str, bytes)) or value is None:
        return None
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(f) or f != int(f):
        return None
    return int(f)


def _mode_name(raw_mode: Any) -> str:
    try:
        return BoxMode(int(raw_mode)).name
    except (ValueError, TypeError):
        return repr(raw_mode)


def _parse_box(
    ann: Mapping[str, Any], size: Optional[Tuple[int, int]]
) -> Tuple[Optional[List[float]], Optional[str], str]:
    """``(xyxy_abs, None, "")`` or ``(None, reason, detail)`` for one annotation."""
    raw_mode = ann.get("bbox_mode")
    try:
        xywh, relative = _MODES[raw_mode]
    except (KeyError, TypeError):  # missing, rotated (XYWHA_ABS), unknown or unhashable
        return None, "unsupported_bbox_mode", f"bbox_mode={_mode_name(raw_mode)}"
    raw = ann.get("bbox")
    try:
        x, y, a, b = raw  # type: ignore[misc]
        x, y, a, b = float(x), float(y), float(a), float(b)
    except (TypeError, ValueError):
        return None, "malformed_bbox", f"bbox={raw!r}"
    if not (math.isfinite(x) and math.isfinite(y) and math.isfinite(a) and math.isfinite(b)):
        return None, "non_finite_bbox", f"bbox={[x, y, a, b]} ({_mode_name(raw_mode)})"
    values = (x, y, a, b)
    if xywh:
        a, b = x + a, y + b
    if relative:
        if size is None:
            return None, "relative_bbox_without_size", f"bbox={list(values)} ({_mode_name(raw_mode)})"
        h, w = size
        x, a, y, b = x * w, a * w, y * h, b * h
    if not (math.isfinite(a) and math.isfinite(b)):  # overflow of x + w
        return None, "non_finite_bbox", f"bbox={list(values)} ({_mode_name(raw_mode)})"
    if not (a > x and b > y):
        return (
            None,
            "degenerate_bbox",
            f"bbox={list(values)} ({_mode_name(raw_mode)}), width={a - x:g}, height={b - y:g}",
        )
    return [x, y, a, b], None, ""


def dataset_category_remap(
    records: Sequence[Any], n_cls: Optional[int], id_map: Optional[Dict[int, int]]
) -> Optional[Dict[int, int]]:
    """
    The id map to apply when the records hold *dataset* category ids: some id is outside
    ``[0, n_cls)``, every id is a key of the metadata's map and the map is not the identity.

    Args:
        records: the dataset dicts (malformed records and annotations are skipped here).
        n_cls: number of declared classes, or None (unknown: no conversion).
        id_map: the metadata's ``thing_dataset_id_to_contiguous_id``, or None.

    Returns:
        ``id_map`` when it must be applied, else None.
    """
    if not id_map or n_cls is None:
        return None
    if all(k == v for k, v in id_map.items()):
        return None
    ids = set()
    for rec in records:
        if not isinstance(rec, Mapping):
            continue
        anns = rec.get("annotations") or []
        if not isinstance(anns, (list, tuple)):
            continue
        for ann in anns:
            if isinstance(ann, Mapping):
                cid = _integer(ann.get("category_id"))
                if cid is not None:
                    ids.add(cid)
    if ids and any(not 0 <= i < n_cls for i in ids) and ids <= set(id_map):
        return id_map
    return None


def _report_outside_image(
    box: List[float], size: Tuple[int, int], report: DataIssueReport, where: Dict[str, Any]
) -> None:
    """Report a box entirely or partly outside the declared ``(height, width)`` (kept here)."""
    h, w = size
    x1, y1, x2, y2 = box
    if x2 <= 0 or y2 <= 0 or x1 >= w or y1 >= h:
        report.add("bbox_outside_image", detail=f"bbox(XYXY)={box}, image {w}x{h} (WxH)", **where)
    elif x1 < 0 or y1 < 0 or x2 > w or y2 > h:
        report.add("bbox_partly_outside", detail=f"bbox(XYXY)={box}, image {w}x{h} (WxH)", **where)


def check_annotation(
    ann: Any,
    size: Optional[Tuple[int, int]],
    n_cls: Optional[int],
    remap: Optional[Dict[int, int]],
    report: DataIssueReport,
    where: Dict[str, Any],
) -> Optional[Dict[str, Any]]:
    """
    A normalised copy of one annotation, or None (dropped; the reason is recorded).

    Args:
        ann: the annotation as registered.
        size: the record's valid ``(height, width)``, or None.
        n_cls: number of declared classes, or None (ids only checked to be >= 0).
        remap: dataset id -> contiguous id map to apply (:func:`dataset_category_remap`), or None.
        report: where problems are recorded.
        where: ``file_name`` and ``image_id`` of the record, for the messages.

    Returns:
        The annotation with ``bbox`` in ``XYXY_ABS`` floats, ``bbox_mode=BoxMode.XYXY_ABS``,
        an int contiguous ``category_id`` and an int ``iscrowd``; or None.
    """
    if not isinstance(ann, Mapping):
        report.add("malformed_annotation", detail=f"got {type(ann).__name__}", **where)
        return None
    box, reason, detail = _parse_box(ann, size)
    if box is None:
        report.add(reason, detail=detail, **where)
        return None
    cid = _integer(ann.get("category_id"))
    if cid is None:
        report.add("invalid_category_id", detail=f"category_id={ann.get('category_id')!r}", **where)
        return None
    if remap is not None:
        report.add("category_id_remapped", **where)
        cid = remap[cid]
    if cid < 0 or (n_cls is not None and cid >= n_cls):
        declared = f"declared classes: 0..{n_cls - 1}" if n_cls is not None else "must be >= 0"
        report.add("undeclared_category_id", detail=f"category_id={ann.get('category_id')!r} ({declared})", **where)
        return None
    iscrowd = int(bool(ann.get("iscrowd", 0)))
    if iscrowd:
        report.add("crowd_ignored", **where)
    elif size is not None:
        _report_outside_image(box, size, report, where)
    return dict(ann, bbox=box, bbox_mode=BoxMode.XYXY_ABS, category_id=cid, iscrowd=iscrowd)
