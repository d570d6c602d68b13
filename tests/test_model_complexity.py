"""Parameter count and GFLOPs of every variant config against the published ones (within 1%):
the table "Variants" of docs/yolox_facts.md."""
import pytest
import torch
from fvcore.nn import FlopCountAnalysis

from .official_reference import build_yolox_d2_model

# variant: (params in M, GFLOPs, input size): the official model zoo, docs/yolox_facts.md "Variants"
REFERENCE = {
    "nano": (0.91, 1.08, 416),
    "tiny": (5.06, 6.45, 416),
    "s": (9.0, 26.8, 640),
    "m": (25.3, 73.8, 640),
    "l": (54.2, 155.6, 640),
    "x": (99.1, 281.9, 640),
    "darknet53": (63.7, 185.3, 640),
    # end-to-end (NMS-free) Darknet53: the YOLOX paper's Table 2, "+NMS free (optional)"
    "darknet53_e2e": (67.27, 205.1, 640),
}


class _BackboneAndHead(torch.nn.Module):
    """The network without pre/post-processing, as the official numbers count it."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        features = self.model.backbone(x)
        return self.model.head([features[f] for f in self.model.head_in_features])


@pytest.mark.parametrize("variant", sorted(REFERENCE))
def test_params_and_gflops_match_reference(repo_root, variant, monkeypatch):
    import yolox_d2.layers.conv_bn_act as conv_bn_act

    # Count the network as the official numbers do: each BatchNorm as its own op (in eval
    # mode ConvBNAct would otherwise fold it into the convolution's weights).
    monkeypatch.setattr(conv_bn_act, "_has_fixed_statistics", lambda norm: False)
    params_m, gflops, size = REFERENCE[variant]
    model = build_yolox_d2_model(repo_root, variant).eval()
    n_params = sum(p.numel() for p in model.parameters()) / 1e6
    assert n_params == pytest.approx(params_m, rel=0.01)

    flops = FlopCountAnalysis(_BackboneAndHead(model), torch.zeros(1, 3, size, size))
    flops.unsupported_ops_warnings(False)
    flops.uncalled_modules_warnings(False)
    # fvcore counts one multiply-add as one flop; YOLOX's published GFLOPs count two.
    assert 2 * flops.total() / 1e9 == pytest.approx(gflops, rel=0.01)
