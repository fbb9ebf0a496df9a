"""hashflow: optical flow by coordinate descent through a multiresolution hash autoencoder.

Quick use::

    import hashflow
    flow = hashflow.estimate(img1, img2, mode="patch")   # (H, W, 2) float32, img1(x) ~ img2(x + flow)
"""

from hashflow.decoder import Decoder
from hashflow.encoding import HashEncoding, decode
from hashflow.fit import fit_image
from hashflow.grid import HashGridConfig
from hashflow.images import load_image

__version__ = "0.1.0"

__all__ = ["Decoder", "HashEncoding", "HashGridConfig", "decode", "fit_image", "load_image",
           "__version__"]
