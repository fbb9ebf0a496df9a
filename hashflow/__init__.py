"""hashflow: optical flow by coordinate descent through a multiresolution hash autoencoder.

Quick use::

    import hashflow
    flow = hashflow.estimate(img1, img2, mode="patch")   # (H, W, 2) float32, img1(x) ~ img2(x + flow)
"""

from hashflow.decoder import Decoder
from hashflow.encoding import HashEncoding, decode
from hashflow.estimator import FlowEstimator, estimate
from hashflow.fit import fit_image
from hashflow.flow_io import read_flow, write_flow
from hashflow.flow_viz import flow_to_color
from hashflow.grid import HashGridConfig
from hashflow.images import load_image
from hashflow.metrics import flow_metrics
from hashflow.solver_config import PRESETS, SolverConfig
from hashflow.warp import warp

__version__ = "0.1.0"


def load_pretrained(order: int = 2, device=None):
    """The shipped hash autoencoder (MiT-B0 encoder + hash head + universal decoder)."""
    from hashflow.autoencoder import load_pretrained as _load
    return _load(order=order, device=device)


__all__ = ["Decoder", "FlowEstimator", "HashEncoding", "HashGridConfig", "PRESETS",
           "SolverConfig", "decode", "estimate", "fit_image", "flow_metrics", "flow_to_color",
           "load_image", "load_pretrained", "read_flow", "warp", "write_flow", "__version__"]
