"""
The inference engines a :class:`~yolox_d2_runtime.YOLOXDetector` runs an exported graph with:
onnxruntime for ``.onnx`` files, OpenVINO for ``.xml`` IR files (``openvino`` also reads
``.onnx``). Both run on the CPU and map one float32 (N, 3, H, W) batch to the graph's outputs.
"""

import os
from typing import List, Optional, Tuple, Union

import numpy as np

__all__ = ["OnnxRuntimeEngine", "OpenVINOEngine", "open_engine"]

PathLike = Union[str, os.PathLike]


class OnnxRuntimeEngine:
    """An ``onnxruntime.InferenceSession`` on the CPU."""

    def __init__(self, path: PathLike, num_threads: Optional[int] = None, allow_spinning: bool = True):
        """
        Args:
            path: the ``.onnx`` file.
            num_threads: intra-op threads (None: onnxruntime's default, all cores).
            allow_spinning: let idle threads busy-wait for the next run (lowest latency for
                back-to-back runs; turn off when other work shares the cores).
        """
        import onnxruntime as ort

        options = ort.SessionOptions()
        if num_threads is not None:
            options.intra_op_num_threads = int(num_threads)
            options.inter_op_num_threads = 1
        if not allow_spinning:
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.path = os.fspath(path)
        self.session = ort.InferenceSession(self.path, options, providers=["CPUExecutionProvider"])
        graph_input = self.session.get_inputs()[0]
        self.input_name = graph_input.name
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.input_shape = tuple(d if isinstance(d, int) else None for d in graph_input.shape)

    def __call__(self, batch: np.ndarray) -> List[np.ndarray]:
        """Run on a float32 (N, 3, H, W) batch; returns the outputs in graph order."""
        return self.session.run(None, {self.input_name: np.ascontiguousarray(batch, dtype=np.float32)})


class OpenVINOEngine:
    """An OpenVINO model compiled for the CPU, float32 inference precision, latency hint."""

    def __init__(
        self,
        path: PathLike,
        num_threads: Optional[int] = None,
        input_size: Optional[Tuple[int, int]] = None,
    ):
        """
        Args:
            path: the IR ``.xml`` (its ``.bin`` beside it) or an ``.onnx`` file.
            num_threads: inference threads (None: OpenVINO's default).
            input_size: ``(H, W)`` of the canvas to compile a dynamic-size graph for (the
                batch stays dynamic); None keeps the graph's shapes.
        """
        import openvino as ov

        self.path = os.fspath(path)
        core = ov.Core()
        model = core.read_model(self.path)
        if input_size is not None:
            model.reshape({model.input(0).get_any_name(): ov.PartialShape([-1, 3, int(input_size[0]), int(input_size[1])])})
        config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}
        if num_threads is not None:
            config["INFERENCE_NUM_THREADS"] = int(num_threads)
        self.compiled = core.compile_model(model, "CPU", config)
        self.request = self.compiled.create_infer_request()
        self.input_name = model.input(0).get_any_name()
        self.output_names = [o.get_any_name() for o in model.outputs]
        shape = model.input(0).get_partial_shape()
        self.input_shape = tuple(d.get_length() if d.is_static else None for d in shape)

    def __call__(self, batch: np.ndarray) -> List[np.ndarray]:
        """Run on a float32 (N, 3, H, W) batch; returns the outputs in graph order."""
        result = self.request.infer({0: np.ascontiguousarray(batch, dtype=np.float32)})
        return [np.array(result[output]) for output in self.compiled.outputs]


def open_engine(path: PathLike, num_threads: Optional[int] = None, input_size: Optional[Tuple[int, int]] = None):
    """
    The engine for a file: :class:`OpenVINOEngine` for an ``.xml`` IR, else
    :class:`OnnxRuntimeEngine`.

    Args:
        path: ``.onnx`` or ``.xml``.
        num_threads: intra-op threads (None: the engine's default).
        input_size: for OpenVINO, the canvas ``(H, W)`` to compile for (see
            :class:`OpenVINOEngine`).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Model file {path!r} does not exist")
    if path.endswith(".xml"):
        return OpenVINOEngine(path, num_threads, input_size)
    return OnnxRuntimeEngine(path, num_threads)
