"""
The positive sample selector (PSS) of end-to-end, NMS-free YOLOX.

The YOLOX paper (arXiv 2107.08430, Sec. 2.1 "End-to-end YOLO", Table 2 "+NMS free") follows
PSS (Zhou et al. 2021, "Object Detection Made Simpler by Eliminating Heuristic NMS",
arXiv 2101.11782): "two additional conv layers, one-to-one label assignment, and stop
gradient". What the two papers fix, and this implementation follows:

* one extra binary branch attached to the **regression** branch (PSS found attaching it to
  the classification branch worse): :class:`~yolox_d2.modeling.YOLOXHead` with
  ``end_to_end=True``;
* its target is one positive per object (a one-to-one assignment);
* its loss is a cross entropy on the product ``sigma(cls) * sigma(quality) * sigma(pss)``
  (in YOLOX the quality is the objectness), the very score ranked at inference (see choice 5
  for the form used here);
* the stop-gradient makes that loss update the PSS branch only; PSS describes it as
  equivalent in theory to training the detector, freezing it, then training the PSS branch;
* the detector keeps training with its own one-to-many assignment (SimOTA) and losses;
* inference ranks by the product and needs no NMS;
* size (YOLOX-Darknet53: 63.72 M params / 185.3 GFLOPs -> 67.27 M / 205.1 at 640): exactly
  two 3x3 convs of the head's width (256) with BN plus a 1-channel 1x1 output, per level.

Where the papers are silent, the choices made here:

1. **Features.** The branch reads the output of the regression branch's two 3x3 convs (what
   the box and objectness convs read), detached; its own two 3x3 convs (same kind as the other
   branches: depthwise for Nano) and the 1x1 output are all it has. Its bias starts at the
   class / objectness prior (0.01).
2. **Stop-gradient points.** (a) The branch input; (b) the class and objectness factors of
   the product. So the PSS loss has no gradient on any detector parameter and the detector
   losses none on the PSS branch: the detector part of an end-to-end model trains exactly as
   plain YOLOX (``tests/test_end_to_end.py`` checks both).
3. **One-to-one positive.** Each object's candidate of lowest SimOTA cost
   (:class:`~yolox_d2.modeling.simota.OneToOneMatcher`: the detector's geometry rule and
   cost, ties -> lowest anchor index, conflicts between objects settled greedily by cost),
   the cost evaluated on the end-to-end score: objectness x pss in place of the objectness
   (:func:`end_to_end_objectness_logits`). PSS ranks its candidates by a quality of score and
   IoU inside a spatial prior; the SimOTA cost is one (``BCE(sqrt(p), 1) + 3 * -log IoU`` =
   ``-log(p^0.5 * IoU^3)`` plus the other classes' terms). The PSS factor makes the choice
   self-consistent, as a one-to-one matching on the output it trains (DETR, DeFCN): the
   neighbours of an object's centre have near-equal detector costs, and a choice made on the
   detector's scores alone hops between them from one iteration to the next, so the branch
   cannot learn it (measured on the overfit test set: PSS flat at ~0.25 after 250 iterations,
   AP50 without NMS 73 %, against 89 % with the factor).
4. **The class factor** of the product is the object's class at the positive and, everywhere
   else, the best class (the class a detection there is reported with).
5. **Loss.** With ``q = sigma(obj) * sigma(cls_k)`` detached and ``z`` the PSS logit, the
   cross entropy of the product, ``-log(q sigma(z))`` at a positive and ``-log(1 - q sigma(z))``
   elsewhere, has the gradients ``-(1 - sigma(z))`` and ``q sigma(z) (1 - sigma(z)) /
   (1 - q sigma(z))``: the second vanishes once ``sigma(z)`` saturates, and a PSS that reaches
   1 over an object's neighbourhood (its features differ little from the positive's) never
   comes back down. Measured on the overfit test set (250 iterations): with loss weights from
   0.2 to 4 every 3-object image keeps two duplicates above 0.6, the PSS above 0.99 on 10 %
   (weight 0.2) to 14 % (0.5) of the cells. So the loss used here is the cross entropy of the PSS probability,
   weighted by the detached detector score at the negatives:
   ``-sum_a [t_a log sigma(z_a) + (1 - t_a) q_a log(1 - sigma(z_a))]``. It has the product's
   gradient at the positives and, where the PSS is low, at the negatives (``q sigma(z)``: the
   thousands of cells the detector already rejects hardly count, the PSS only has to choose
   among the predictions the detector rates high), without the saturation (same test: no
   duplicate left, the best duplicate scored 0.02). Summed over every prediction, divided by
   the number of ground truths (averaged over workers, like YOLOX's ``num_fg``), weight
   ``pss_loss_weight`` = 1.0 (as YOLOX's other BCE terms). Because of the stop-gradient the
   weight cannot trade the PSS loss off against the detector's: it only scales the PSS
   branch's gradient.
6. **Inference.** ``score = objectness x best class probability x pss``, score threshold,
   best ``max_detections_per_image``, no NMS (:class:`~yolox_d2.modeling.YOLOX` with
   ``end_to_end=True``; ``test_nms`` to add it back for comparisons).
"""

import torch
from torch import Tensor
from torch.nn import functional as F

from .simota import SimOTAAssignment

__all__ = ["end_to_end_objectness_logits", "pss_loss"]

_LOGIT_CAP = 100.0


def end_to_end_objectness_logits(obj_logits: Tensor, pss_logits: Tensor) -> Tensor:
    """
    The logits of ``sigma(obj) * sigma(pss)``, detached (the one-to-one matching's
    "objectness", choice 3 of the module docstring), clamped to [-100, 100].

    Args:
        obj_logits, pss_logits: (B, A) objectness and PSS logits.
    """
    log_p = F.logsigmoid(obj_logits.detach().float()) + F.logsigmoid(pss_logits.detach().float())
    return (log_p - torch.log(-torch.expm1(log_p))).clamp(-_LOGIT_CAP, _LOGIT_CAP)


def pss_loss(
    pss_logits: Tensor,
    cls_logits: Tensor,
    obj_logits: Tensor,
    assignment: SimOTAAssignment,
    gt_classes: Tensor,
    *,
    normalizer: float,
) -> Tensor:
    """
    The PSS loss (choices 2, 4 and 5 of the module docstring), unweighted:
    ``-sum_a [t_a log sigma(z_a) + (1 - t_a) q_a log(1 - sigma(z_a))] / normalizer`` with
    ``z`` the PSS logits, ``q = sigma(obj) * sigma(cls_k)`` detached and ``t`` the one-to-one
    positives.

    Args:
        pss_logits: (B, A) PSS logits (with grad).
        cls_logits: (B, A, C) class logits; obj_logits: (B, A) objectness logits (detached here).
        assignment: the one-to-one assignment (:class:`~yolox_d2.modeling.simota.OneToOneMatcher`).
        gt_classes: (B, G) int64 classes of the padded ground truths.
        normalizer: the number of ground truths (averaged over workers); values below 1 are
            raised to 1.

    Returns:
        scalar float32 tensor.
    """
    B, A, C = cls_logits.shape
    if pss_logits.shape != (B, A):
        raise ValueError(f"pss_logits must be (B, A) = {(B, A)}, got {tuple(pss_logits.shape)}")
    cls_logits = cls_logits.detach().float()
    z = pss_logits.float()
    fg = assignment.fg_mask
    classes = cls_logits.argmax(dim=-1)
    G = gt_classes.shape[1]
    if G > 0:
        matched_classes = gt_classes.long().gather(1, assignment.matched_gt.clamp(0, G - 1))
        classes = torch.where(fg, matched_classes.clamp(0, C - 1), classes)
    cls_k = cls_logits.gather(-1, classes.unsqueeze(-1)).squeeze(-1)
    q = torch.sigmoid(obj_logits.detach().float()) * torch.sigmoid(cls_k)
    loss = -torch.where(fg, F.logsigmoid(z), q * F.logsigmoid(-z)).sum()
    return loss / max(float(normalizer), 1.0)
