"""
The categories registered dataset(s) declare in Detectron2's ``MetadataCatalog``
(``thing_classes``, ``thing_dataset_id_to_contiguous_id``), against which records are checked.
"""

from typing import Dict, List, Optional, Sequence, Tuple, Union

from detectron2.data import MetadataCatalog

__all__ = ["dataset_names", "dataset_metadata_classes"]


def dataset_names(dataset_name: Union[None, str, Sequence[str]]) -> List[str]:
    """``dataset_name`` (None, one name or several) as a list of names."""
    if dataset_name is None:
        return []
    if isinstance(dataset_name, str):
        return [dataset_name]
    return [str(n) for n in dataset_name]


def dataset_metadata_classes(
    dataset_name: Union[None, str, Sequence[str]]
) -> Tuple[Optional[List[str]], Optional[Dict[int, int]]]:
    """
    ``thing_classes`` and ``thing_dataset_id_to_contiguous_id`` of registered dataset(s).

    Args:
        dataset_name: a registered name, several (the first that declares them wins; Detectron2
            requires them to agree), or None.

    Returns:
        ``(thing_classes or None, id map or None)``.
    """
    classes, id_map = None, None
    for name in dataset_names(dataset_name):
        meta = MetadataCatalog.get(name)
        if classes is None and meta.get("thing_classes") is not None:
            classes = list(meta.get("thing_classes"))
        if id_map is None and meta.get("thing_dataset_id_to_contiguous_id") is not None:
            id_map = {int(k): int(v) for k, v in meta.get("thing_dataset_id_to_contiguous_id").items()}
    return classes, id_map
