"""RetinaFace face detection on any GPU through wgpu: a drop-in for the ``retina-face`` package.

    from retinaface_wgpu import RetinaFace          # instead of: from retinaface import RetinaFace
    faces = RetinaFace.detect_faces("photo.jpg")    # the package's dict, the package's numbers
    crops = RetinaFace.extract_faces("photo.jpg")   # its crops, RGB uint8 arrays

The default network is the package's own (``retinaface.h5``, found where deepface keeps it, in
``~/.cache/retinaface-wgpu`` or at ``RETINAFACE_WEIGHTS``; ``retinaface fetch-weights retinaface``
downloads it). ``Detector`` is the native API for new code. ``install_as_retinaface()`` makes
``import retinaface`` resolve to this module, so deepface runs on it unchanged.
"""

import base64
import json
import sys
import threading

import numpy as np

from ._native import Detector, Face, RetinaFaceError, _cv_resize, imread

__all__ = ["RetinaFace", "Detector", "Face", "RetinaFaceError", "imread", "install_as_retinaface"]


_default = None
_default_lock = threading.Lock()


def _model(model):
    """The detector to use: the caller's, else one shared instance of the package's network."""
    global _default
    if model is not None:
        if not isinstance(model, Detector):
            raise ValueError("model must be what RetinaFace.build_model() returns (a retinaface_wgpu.Detector)")
        return model
    with _default_lock:
        if _default is None:
            # The package's own network: its answers, not another model's.
            _default = Detector(model="retinaface")
        return _default


def _image(img):
    """The package's inputs: a path, a BGR uint8 array, or a ``data:image/...;base64,`` string."""
    if isinstance(img, str) and img.startswith("data:image/"):
        try:
            return base64.b64decode(img.split(",", 1)[1], validate=True)
        except (IndexError, ValueError) as e:
            raise ValueError(f"not a base64 data URL: {e}") from None
    if isinstance(img, np.ndarray) and img.ndim == 3 and img.shape[2] == 4:
        # The package reads channels 0..2 of an array as BGR.
        return img[:, :, :3]
    return img


def _letterbox(img, target_size, min_max_norm):
    """The package's ``postprocess.resize_image``: fit, pad centred with zeros, /255."""
    th, tw = target_size
    h, w = img.shape[:2]
    if h == 0 or w == 0:
        raise ZeroDivisionError("the crop is empty (the package raises here too)")
    f = min(th / h, tw / w)
    nw, nh = int(w * f), int(h * f)
    img = _cv_resize(np.ascontiguousarray(img), nw, nh)
    dh, dw = th - nh, tw - nw
    img = np.pad(img, ((dh // 2, dh - dh // 2), (dw // 2, dw - dw // 2), (0, 0)))
    if img.shape[:2] != (th, tw):
        # cv2.resize(img, target_size) takes (w, h): the package's quirk, kept.
        img = _cv_resize(np.ascontiguousarray(img), th, tw)
    if min_max_norm and img.max() > 1:
        img = img.astype(np.float32) / 255.0
    return img


class RetinaFace:
    """The ``retina-face`` package's entry points, same arguments, same results."""

    @staticmethod
    def build_model():
        return _model(None)

    @staticmethod
    def detect_faces(img_path, threshold=0.9, model=None, allow_upscaling=True):
        det = _model(model)
        text = det._detect_json(_image(img_path), "bgr", float(threshold), bool(allow_upscaling))
        return json.loads(text)

    @staticmethod
    def extract_faces(
        img_path,
        threshold=0.9,
        model=None,
        align=True,
        allow_upscaling=True,
        expand_face_area=0,
        target_size=None,
        min_max_norm=True,
    ):
        det = _model(model)
        _, crops = det._extract(
            _image(img_path), "bgr", float(threshold), bool(allow_upscaling), bool(align), int(expand_face_area)
        )
        if target_size is not None:
            # The package letterboxes the BGR crop, then flips it to RGB: the same pixels.
            crops = [_letterbox(c, tuple(target_size), min_max_norm) for c in crops]
        return crops


def install_as_retinaface():
    """Makes ``import retinaface`` / ``from retinaface import RetinaFace`` resolve here, so code
    written for the package (deepface's ``detector_backend="retinaface"``) runs unchanged."""
    module = sys.modules[__name__]
    sys.modules["retinaface"] = module
    sys.modules["retinaface.RetinaFace"] = RetinaFace
    return module
