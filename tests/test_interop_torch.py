"""PyTorch: initialize() fills a real torch model in place by glob rules, on CPU and from the meta device."""

import importlib.util
import math
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import initreg  # noqa: E402
from initreg import init_tree  # noqa: E402
from initreg.errors import InitregError  # noqa: E402
from initreg.interop.torch import initialize  # noqa: E402

RULES = {
    "weights": {"match": "*weight", "init": "glorot_uniform"},
    "biases": {"match": "*bias", "init": "zeros"},
    "norms": {"match": "*norm*.weight", "init": "ones"},
    "embedding": {"match": "embed.weight", "init": {"name": "random_normal", "stddev": 0.02}, "wins_ties": True},
}


class TinyTransformer(torch.nn.Module):
    """An embedding, torch's own TransformerEncoder, and an output head tied to the embedding."""

    def __init__(self, vocab: int = 100, width: int = 32) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(vocab, width)
        layer = torch.nn.TransformerEncoderLayer(width, nhead=4, dim_feedforward=64, batch_first=True, dropout=0.0)
        self.encoder = torch.nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False)
        self.head = torch.nn.Linear(width, vocab, bias=False)
        self.head.weight = self.embed.weight

    def forward(self, tokens):
        return self.head(self.encoder(self.embed(tokens)))


def _values(module):
    return {name: p.detach().float().numpy().copy() for name, p in module.named_parameters()}


def test_a_transformer_gets_the_values_init_tree_gives_its_parameter_shapes():
    model = TinyTransformer()
    identity = {name: p for name, p in model.named_parameters()}
    entries = initialize(model, RULES, seed=4)
    shapes = {name: tuple(p.shape) for name, p in model.named_parameters()}
    expected = init_tree(shapes, RULES, seed=4, layout="torch")
    assert [entry.path for entry in entries] == list(shapes)
    assert "encoder.layers.1.self_attn.in_proj_weight" in shapes
    for name, values in _values(model).items():
        np.testing.assert_array_equal(values, expected[name], err_msg=name)
        assert identity[name] is model.get_parameter(name)
        assert model.get_parameter(name).requires_grad
    assert model.head.weight is model.embed.weight
    assert {entry.rule for entry in entries} == set(RULES)


def test_a_meta_model_is_materialized_and_equals_the_cpu_one():
    reference = TinyTransformer()
    initialize(reference, RULES, seed=1)
    with torch.device("meta"):
        model = TinyTransformer()
    assert model.embed.weight.is_meta
    initialize(model, RULES, seed=1)
    assert all(p.device.type == "cpu" for p in model.parameters())
    assert model.head.weight is model.embed.weight
    expected = _values(reference)
    for name, values in _values(model).items():
        np.testing.assert_array_equal(values, expected[name], err_msg=name)
    tokens = torch.arange(12).reshape(2, 6)
    with torch.no_grad():
        torch.testing.assert_close(model(tokens), reference(tokens))


def test_fans_follow_torch_layout_like_kaiming_uniform():
    layer = torch.nn.Linear(512, 64)
    initialize(layer, {"w": {"match": "weight", "init": "he_uniform"}, "b": {"match": "bias", "init": "zeros"}})
    ours = layer.weight.detach().numpy()
    limit = math.sqrt(6.0 / 512)  # fan_in is in_features, the second axis of torch's [out, in]
    assert 0.99 * limit < np.abs(ours).max() <= limit
    reference = torch.empty(64, 512)
    torch.nn.init.kaiming_uniform_(reference, nonlinearity="relu")
    assert ours.std() == pytest.approx(reference.std().item(), rel=0.03)
    initialize(layer, {"w": {"match": "weight", "init": "he_uniform"}}, layout="keras", allow_unmatched_params=True)
    assert np.abs(layer.weight.detach().numpy()).max() <= math.sqrt(6.0 / 64)
    assert np.abs(layer.weight.detach().numpy()).max() > limit


def test_conv_weights_use_the_receptive_field_in_torch_layout():
    conv = torch.nn.Conv2d(16, 32, kernel_size=3, bias=False)
    initialize(conv, {"all": {"match": "*", "init": "lecun_uniform"}})
    limit = math.sqrt(3.0 / (16 * 9))
    assert 0.99 * limit < conv.weight.abs().max().item() <= limit


def test_bfloat16_modules_get_initreg_bfloat16_values():
    model = TinyTransformer().to(torch.bfloat16)
    initialize(model, RULES, seed=2)
    shapes = {name: tuple(p.shape) for name, p in model.named_parameters()}
    expected = init_tree(shapes, RULES, seed=2, dtype="bfloat16", layout="torch")
    for name, values in _values(model).items():
        assert model.get_parameter(name).dtype == torch.bfloat16
        np.testing.assert_array_equal(values, expected[name].astype(np.float32), err_msg=name)


def test_unmatched_parameters_are_an_error_or_kept_when_relaxed():
    model = TinyTransformer()
    before = model.encoder.layers[0].linear1.bias.detach().clone()
    rules = {"weights": {"match": "*weight", "init": "glorot_uniform"}}
    with pytest.raises(InitregError, match=r"match no rule.*encoder\.layers\.0\.self_attn\.in_proj_bias"):
        initialize(model, rules)
    initialize(model, rules, allow_unmatched_params=True)
    torch.testing.assert_close(model.encoder.layers[0].linear1.bias, before)


def test_a_meta_model_refuses_to_leave_parameters_or_buffers_uninitialized():
    with torch.device("meta"):
        model = TinyTransformer()
        normed = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.BatchNorm1d(3))
    with pytest.raises(InitregError, match=r"meta device.*'encoder\.layers\.0\.linear1\.bias'"):
        initialize(model, {"weights": {"match": "*weight", "init": "he_normal"}}, allow_unmatched_params=True)
    with pytest.raises(InitregError, match=r"buffers.*'1\.running_mean'"):
        initialize(normed, {"all": {"match": "*", "init": "zeros"}})
    with pytest.raises(InitregError, match="seed must be an integer"):
        initialize(model, RULES, seed=1.5)
    with pytest.raises(InitregError, match="no_such_backend"):
        initialize(model, RULES, backend="no_such_backend")
    assert model.embed.weight.is_meta


def test_bad_arguments_are_refused_by_name():
    with pytest.raises(InitregError, match="Module"):
        initialize(torch.zeros(3), RULES)
    with pytest.raises(InitregError, match="lecun_normall"):
        initialize(torch.nn.Linear(2, 2), {"all": {"match": "*", "init": "lecun_normall"}})
    with pytest.raises(InitregError, match="layout"):
        initialize(torch.nn.Linear(2, 2), {"all": {"match": "*", "init": "zeros"}}, layout="jax")


class TiedLM(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(30, 6)
        self.body = torch.nn.Linear(6, 6)
        self.head = torch.nn.Linear(6, 30, bias=False)
        self.head.weight = self.embed.weight


def test_rules_match_every_name_of_a_shared_parameter_and_it_stays_shared():
    model = TiedLM()
    rules = {
        "all": {"match": "*", "init": "zeros"},
        "head": {"match": "head.weight", "init": {"name": "random_normal", "stddev": 3.0}, "wins_ties": True},
    }
    entries = initialize(model, rules, seed=5)
    assert [(entry.path, entry.aliases) for entry in entries if entry.aliases] == [("embed.weight", ("head.weight",))]
    assert model.head.weight is model.embed.weight
    expected = init_tree({"embed.weight": (30, 6)}, {"r": {"match": "*", "init": rules["head"]["init"]}}, seed=5)
    np.testing.assert_array_equal(model.embed.weight.detach().numpy(), expected["embed.weight"])
    with torch.device("meta"):
        meta = TiedLM()
    initialize(meta, rules, seed=5)
    assert meta.head.weight is meta.embed.weight and not meta.embed.weight.is_meta
    np.testing.assert_array_equal(meta.embed.weight.detach().numpy(), expected["embed.weight"])


class LearnableScale(torch.nn.Module):
    """A learnable scalar (a 0-d parameter) next to an ordinary weight."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = torch.nn.Parameter(torch.tensor(0.0))
        self.linear = torch.nn.Linear(4, 3, bias=False)


@pytest.mark.parametrize("device", ["cpu", "meta"])
def test_a_zero_dimensional_parameter_is_filled_in_place(device):
    with torch.device(device):
        module = LearnableScale()
    rules = {
        "scale": {"match": "scale", "init": {"name": "constant", "value": 0.5}},
        "weights": {"match": "*weight", "init": "he_normal"},
    }
    initialize(module, rules, seed=2)
    assert module.scale.shape == () and module.scale.item() == 0.5
    rules["scale"]["init"] = {"name": "random_normal", "stddev": 1.0}
    initialize(module, rules, seed=2)
    expected = init_tree({"scale": (), "linear.weight": (3, 4)}, rules, seed=2, layout="torch")
    assert module.scale.shape == () and module.scale.item() == float(expected["scale"])
    np.testing.assert_array_equal(module.linear.weight.detach().numpy(), expected["linear.weight"])


class WithEmptyParameters(torch.nn.Module):
    """Two zero-element parameters (one of them tied under a second name) beside an ordinary one."""

    def __init__(self) -> None:
        super().__init__()
        self.empty = torch.nn.Parameter(torch.empty(0, 3))
        self.none_out = torch.nn.Linear(4, 0, bias=False)
        self.tied = self.none_out
        self.full = torch.nn.Parameter(torch.zeros(2, 3))


@pytest.mark.parametrize("init", ["glorot_uniform", "kaiming_normal"])  # initreg-extra's kaiming_normal warns too
@pytest.mark.parametrize("device", ["cpu", "meta"])
def test_zero_element_parameters_are_skipped_with_torchs_warning_naming_each_once(init, device):
    if init not in initreg.registry.initializers.available():
        pytest.skip(f"{init!r} comes from initreg-extra, which is not installed")
    with pytest.warns(UserWarning) as caught:
        torch.nn.init.kaiming_normal_(torch.empty(0, 1))  # the only torch.nn.init functions that warn
    torchs = str(caught[0].message)
    with torch.device(device), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's own Linear(4, 0) warns as it initializes itself
        module = WithEmptyParameters()
    with pytest.warns(UserWarning) as caught:
        initialize(module, {"all": {"match": "*", "init": init}}, seed=4)
    assert sorted(str(warning.message) for warning in caught) == [
        f"{torchs}: parameter 'empty' has shape (0, 3)",
        f"{torchs}: parameter 'none_out.weight' has shape (0, 4)",
    ]
    assert module.empty.shape == (0, 3) and module.none_out.weight.shape == (0, 4)
    expected = init_tree({"full": (2, 3)}, {"all": {"match": "*", "init": init}}, seed=4, layout="torch")
    np.testing.assert_array_equal(module.full.detach().numpy(), expected["full"])


def test_orthogonal_on_a_conv2d_gives_orthonormal_rows_as_torch_does():
    conv = torch.nn.Conv2d(8, 16, 3)  # weight (16, 8, 3, 3): 16 rows of length 72
    initialize(conv, {"w": {"match": "weight", "init": "orthogonal"}, "b": {"match": "bias", "init": "zeros"}}, seed=4)
    rows = conv.weight.detach().double().view(16, -1).numpy()
    np.testing.assert_allclose(rows @ rows.T, np.eye(16), atol=1e-5)


def test_random_values_are_drawn_straight_into_float32_and_float64_parameters(monkeypatch):
    from initreg.interop import torch as torch_interop

    model = TinyTransformer()
    model.encoder.layers[1].double()  # float64 parameters too
    addresses = {name: p.data_ptr() for name, p in model.named_parameters()}
    generated = []
    generate = torch_interop.generate
    monkeypatch.setattr(
        torch_interop, "generate", lambda entry, *a: generated.append(entry.path) or generate(entry, *a)
    )
    initialize(model, RULES, seed=7)
    random = {name for name in addresses if name.endswith("weight") and "norm" not in name}
    assert random and not random & set(generated)  # no intermediate array for these, nor a copy
    assert {name: p.data_ptr() for name, p in model.named_parameters()} == addresses
    shapes = {name: tuple(p.shape) for name, p in model.named_parameters()}
    dtypes = {name: str(p.dtype).removeprefix("torch.") for name, p in model.named_parameters()}
    for name, parameter in model.named_parameters():
        spec = {name: shapes[name]}
        expected = init_tree(spec, RULES, seed=7, dtype=dtypes[name], layout="torch", allow_unused_rules=True)[name]
        assert parameter.detach().numpy().tobytes() == expected.tobytes(), name


DEVICE_RULES = {
    "weights": {"match": "*weight", "init": "lecun_normal"},  # truncated normals, through erfinv
    "in_proj": {"match": "*in_proj_weight", "init": "glorot_uniform"},
    "biases": {"match": "*bias", "init": {"name": "random_uniform", "minval": -0.1, "maxval": 0.3}},
    "norms": {"match": "*norm*.weight", "init": "ones"},
    "embedding": {
        "match": "embed.weight",
        "init": {"name": "random_normal", "mean": 0.5, "stddev": 2.0},
        "wins_ties": True,
    },
}
MAX_ULPS = 4  # in ulps of max(|value|, the distribution's std): docs/stream.md, "Reference and fast paths"


def ulps_at_scale(actual, expected, scale):
    """max |actual - expected| in ulps of max(|expected|, scale)."""
    magnitude = np.maximum(np.abs(expected), np.asarray(scale, dtype=expected.dtype))
    return float((np.abs(actual.astype(np.float64) - expected) / np.spacing(magnitude)).max(initial=0.0))


def assert_device_values(model, seed):
    """`model`'s parameters against init_tree's: uniforms and constants bit for bit, normals within MAX_ULPS."""
    for name, parameter in model.named_parameters():
        dtype = str(parameter.dtype).removeprefix("torch.")
        spec = {name: tuple(parameter.shape)}
        expected = init_tree(spec, DEVICE_RULES, seed=seed, dtype=dtype, layout="torch", allow_unused_rules=True)[name]
        actual = parameter.detach().cpu().numpy()
        assert actual.dtype == expected.dtype, name
        if "norm" in name or name.endswith(("bias", "in_proj_weight")):
            assert actual.tobytes() == expected.tobytes(), name
        else:
            std = 2.0 if name == "embed.weight" else float(np.std(expected))
            assert ulps_at_scale(actual, expected, std) <= MAX_ULPS, name
            assert np.mean(actual == expected) > 0.9, name  # the same stream, not merely close


def refuse_the_host_path(monkeypatch):
    """Makes every draw through NumPy fail, and checks that only torch tensors are copied into parameters."""
    from initreg_torch import TorchBackend

    from initreg.backends.numpy import NumpyBackend
    from initreg.interop import torch as torch_interop

    def refused(*arguments, **keywords):
        raise AssertionError("a NumPy array was made for a parameter")

    for method in ("draw", "draw_slice", "words"):
        monkeypatch.setattr(NumpyBackend, method, refused)
    monkeypatch.setattr(TorchBackend, "_from_numpy", refused)
    to_torch = torch_interop._to_torch
    copied = []

    def only_tensors(values):
        assert isinstance(values, torch.Tensor), type(values)
        copied.append(values.device.type)
        return to_torch(values)

    monkeypatch.setattr(torch_interop, "_to_torch", only_tensors)
    return copied


def test_the_device_path_draws_on_torch_tensors_without_a_numpy_array(monkeypatch):
    """The device path, selected on the CPU by passing a backend that runs the stream on torch: no array
    through NumPy, every parameter filled where it is, with init_tree's values (the documented ulp bound)."""
    initreg_torch = pytest.importorskip("initreg_torch")
    on_cpu = initreg_torch.TorchBackend("torch_stream_on_cpu", "cpu", stream_on_device=True)
    model = TinyTransformer()
    model.encoder.layers[1].double()
    addresses = {name: p.data_ptr() for name, p in model.named_parameters()}
    copied = refuse_the_host_path(monkeypatch)
    initialize(model, DEVICE_RULES, seed=8, backend=on_cpu)
    assert len(copied) == len(addresses) and set(copied) == {"cpu"}
    assert {name: p.data_ptr() for name, p in model.named_parameters()} == addresses
    assert model.head.weight is model.embed.weight
    monkeypatch.undo()
    assert_device_values(model, seed=8)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_parameters_are_drawn_on_their_device_without_a_backend(monkeypatch):
    pytest.importorskip("initreg_torch")
    with torch.device("meta"):
        model = TinyTransformer()
    copied = refuse_the_host_path(monkeypatch)
    initialize(model, DEVICE_RULES, seed=8, device="cuda")
    assert copied and set(copied) == {"cuda"}
    assert all(p.is_cuda for p in model.parameters()) and model.head.weight is model.embed.weight
    monkeypatch.undo()
    assert_device_values(model, seed=8)


def test_a_cuda_parameter_takes_the_torch_cuda_backend_only_when_initreg_torch_is_installed(monkeypatch):
    """Without initreg-torch (its backend not registered) a CUDA parameter is drawn on the host and copied."""
    from types import SimpleNamespace

    from initreg.interop import torch_distributed

    cuda, cpu = SimpleNamespace(is_cuda=True), SimpleNamespace(is_cuda=False)
    assert torch_distributed.device_backend(cpu, None) is None
    assert torch_distributed.device_backend(cuda, "numpy") == "numpy"
    if "torch_cuda" in initreg.registry.backends:
        assert torch_distributed.device_backend(cuda, None) == "torch_cuda"
    monkeypatch.setattr(torch_distributed, "CUDA_BACKEND", "torch_cuda_not_installed")
    assert torch_distributed.device_backend(cuda, None) is None


def test_dtensor_shards_take_the_device_path_too(monkeypatch, tmp_path):
    """FSDP2 over a one-rank gloo group on the CPU: each local shard is drawn by the backend passed (the
    reference stream on torch tensors), never through NumPy, with init_tree's values."""
    initreg_torch = pytest.importorskip("initreg_torch")
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    on_cpu = initreg_torch.TorchBackend("torch_stream_on_cpu", "cpu", stream_on_device=True)
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        with torch.device("meta"):
            model = TinyTransformer()
        fully_shard(model, mesh=init_device_mesh("cpu", (1,)))
        copied = refuse_the_host_path(monkeypatch)
        initialize(model, DEVICE_RULES, seed=8, backend=on_cpu)
        assert copied and set(copied) == {"cpu"}
        monkeypatch.undo()
        full = TinyTransformer()
        with torch.no_grad():
            for name, parameter in model.named_parameters():
                full.get_parameter(name).copy_(parameter.full_tensor())
    finally:
        dist.destroy_process_group()
    assert_device_values(full, seed=8)


NO_NUMBA_SCRIPT = """
import sys
import torch
from initreg import init_tree
from initreg.interop.torch import initialize

rules = {"w": {"match": "*weight", "init": "lecun_normal"}, "b": {"match": "*bias", "init": "random_uniform"}}
small = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.Linear(32, 8))
initialize(small, rules, seed=3)
assert "numba" not in sys.modules, "numba imported for a small model"
if len(sys.argv) > 1:
    from initreg_torch import TorchBackend
    large = torch.nn.Linear(2048, 1024)  # 2M elements: past the reference's share of a process
    initialize(large, rules, seed=3, backend=TorchBackend("torch_stream_on_cpu", "cpu", stream_on_device=True))
    assert "numba" not in sys.modules, "numba imported by the device path"
shapes = {name: tuple(p.shape) for name, p in small.named_parameters()}
expected = init_tree(shapes, rules, seed=3, layout="torch")
for name, parameter in small.named_parameters():
    assert parameter.detach().numpy().tobytes() == expected[name].tobytes(), name
print("ok")
"""


def test_a_small_model_and_the_device_path_do_not_import_numba():
    """In a fresh process: a small CPU model is drawn in place by the reference (the kernels' bits), and
    parameters drawn by another backend (the device path) never load the kernels."""
    import subprocess
    import sys

    arguments = ["device path"] if importlib.util.find_spec("initreg_torch") else []
    done = subprocess.run([sys.executable, "-c", NO_NUMBA_SCRIPT, *arguments], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
