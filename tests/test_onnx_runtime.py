"""The one ONNX loader and ONNX Runtime session: one-line errors, CPU sessions, random feeds."""

from __future__ import annotations

import onnx
import pytest
from onnx import TensorProto, helper

from ednas.errors import InputError
from ednas.onnx_runtime import load_onnx, random_feeds, session


@pytest.fixture(scope="module")
def relu(tmp_path_factory):
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3, 8, 8])])
    path = tmp_path_factory.mktemp("onnx") / "relu.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    return path


@pytest.mark.parametrize("content, message", [
    (None, "no such ONNX file"), (b"", "the file is empty"), (b"\x00garbage\xff" * 7, "not an ONNX model"),
])
def test_load_fails_in_one_line(tmp_path, content, message):
    path = tmp_path / "m.onnx"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(InputError, match=message) as info:
        load_onnx(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_truncated_file(tmp_path, relu):
    blob = relu.read_bytes()
    (tmp_path / "t.onnx").write_bytes(blob[: len(blob) // 3])
    with pytest.raises(InputError, match="truncated"):
        load_onnx(tmp_path / "t.onnx")
    with pytest.raises(InputError, match="ONNX Runtime cannot load it"):
        session(tmp_path / "t.onnx")


def test_session_from_path_or_model_runs_random_feeds(relu):
    for model in (relu, load_onnx(relu)):
        sess = session(model, threads=1)
        feeds = random_feeds(sess, seed=3)
        assert feeds["x"].shape == (1, 3, 8, 8) and feeds["x"].dtype.name == "float32"
        assert (sess.run(None, feeds)[0] >= 0).all()
    assert (random_feeds(sess, 3)["x"] == feeds["x"]).all()
