"""torch.distributed: DTensor models (FSDP2, tensor parallel, pipeline stages) get the single-process values.

Real process groups: worlds of 1, 2 and 4 processes are spawned on the gloo backend (localhost, a free
port), each checking several meshes, and bounded by a timeout so that a hang fails. Every rank saves
the gathered full_tensor() of each parameter of each case; the test compares them, bit for bit, with
initialize() of the unsharded model in this process.
"""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

import torch.distributed as dist  # noqa: E402
from torch.distributed.device_mesh import init_device_mesh  # noqa: E402
from torch.distributed.fsdp import fully_shard  # noqa: E402

from initreg import init_tree, recipes  # noqa: E402
from initreg.errors import InitregError  # noqa: E402
from initreg.initializers.orthogonal import Orthogonal  # noqa: E402
from initreg.interop import torch_distributed  # noqa: E402
from initreg.interop.torch import initialize, shared_names  # noqa: E402
from initreg.slicing import init_slice  # noqa: E402
from initreg.tree import parse_rules, plan  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "torchtitan_fsdp"
sys.path.insert(0, str(EXAMPLE))
import init_sharded  # noqa: E402
import llama  # noqa: E402

WORLD_TIMEOUT_S = 240  # a world that has not finished by then hangs: it fails the test
SEED = 7
LLAMA = llama.ModelArgs(dim=32, n_layers=2, n_heads=4, n_kv_heads=2, vocab_size=37, hidden_dim=88)


def llama_rules():
    """torchtitan_llama3 for LLAMA, with wq drawn by Orthogonal (a whole-tensor initializer)."""
    recipe = recipes.load("torchtitan_llama3", n_layers=LLAMA.n_layers)
    return [*recipe.rules, *parse_rules({"orthogonal_wq": {"match": "*attention.wq.weight", "init": "orthogonal"}})]


def gpt2_rules():
    return recipes.load("hf_gpt2", initializer_range=0.02, n_layer=2).rules


def gpt2_model():
    config = transformers.GPT2Config(
        n_embd=32, n_layer=2, n_head=2, vocab_size=50, n_positions=16, bos_token_id=0, eos_token_id=0
    )
    return transformers.GPT2LMHeadModel(config)


class Small(torch.nn.Module):
    """A layer of 5 outputs: on 4 ranks its rows split 2, 2, 1, 0 (one rank holds an empty shard)."""

    def __init__(self):
        super().__init__()
        self.proj = torch.nn.Linear(3, 5)
        self.square = torch.nn.Linear(5, 5, bias=False)


SMALL_RULES = {
    "weights": {"match": "proj.weight", "init": "glorot_uniform"},
    "biases": {"match": "*bias", "init": {"name": "random_normal", "stddev": 0.5}},
    "square": {"match": "square.weight", "init": "orthogonal"},
}
MODELS = {
    "llama": (lambda: llama.Transformer(LLAMA), llama_rules),
    "gpt2": (gpt2_model, gpt2_rules),
    "small": (Small, lambda: SMALL_RULES),
}


# --- what each rank runs -------------------------------------------------------------------------


def _full(model):
    """{name: the gathered parameter as NumPy} (a collective on each parameter's mesh)."""
    return {
        name: (p.full_tensor() if isinstance(p, torch_distributed.DTensor) else p).detach().numpy().copy()
        for name, p in model.named_parameters()
    }


def _meta(kind):
    with torch.device("meta"):
        return MODELS[kind][0]()


def _fsdp(kind, mesh):
    model = _meta(kind)
    blocks = model.layers.values() if kind == "llama" else model.transformer.h if kind == "gpt2" else []
    for block in blocks:
        fully_shard(block, mesh=mesh)
    fully_shard(model, mesh=mesh)
    initialize(model, MODELS[kind][1](), seed=SEED)
    return _full(model)


def _llama_on(mesh):
    model = llama.parallelize(_meta("llama"), mesh)
    initialize(model, llama_rules(), seed=SEED)
    return _full(model)


def _pipeline(world):
    """Two stages, each a DTensor model (FSDP2 over its share of the ranks) initializing its own modules."""
    mesh = init_device_mesh("cpu", (2, world // 2), mesh_dim_names=("pp", "dp"))
    stage = mesh.get_local_rank("pp")
    model = llama.pipeline_stage(_meta("llama"), stage, 2)
    llama.apply_fsdp(model, mesh["dp"])
    initialize(model, llama_rules(), seed=SEED, allow_unused_rules=True)
    return _full(model)


def _refusal(call):
    try:
        call()
    except InitregError as error:
        return f"{type(error).__name__}: {error}"
    return "no error"


def _refusals(world):
    """Messages of the calls each rank must refuse: a seed, then a rule set, differing on the last rank."""
    mesh = init_device_mesh("cpu", (world,))
    last = dist.get_rank() == world - 1

    def model():
        built = _meta("small")
        fully_shard(built, mesh=mesh)
        return built

    other = {**SMALL_RULES, "weights": {"match": "proj.weight", "init": "he_normal"}}
    return {
        "seed": _refusal(lambda: initialize(model(), SMALL_RULES, seed=SEED + last)),
        "rules": _refusal(lambda: initialize(model(), other if last else SMALL_RULES, seed=SEED)),
        "invalid seed": _refusal(lambda: initialize(model(), SMALL_RULES, seed="x" if last else SEED)),
        "unmatched": _refusal(lambda: initialize(model(), {"w": SMALL_RULES["weights"]}, allow_unmatched_params=True)),
    }


def _cases(world):
    """{case: {name: values}} of every case a world of this size checks."""
    flat = init_device_mesh("cpu", (world,), mesh_dim_names=("dp",))
    cases = {
        f"llama fsdp {world}": lambda: _fsdp("llama", flat),
        f"gpt2 fsdp {world}": lambda: _fsdp("gpt2", flat),
        f"small fsdp {world}": lambda: _fsdp("small", flat),
    }
    if world > 1:
        tp = init_device_mesh("cpu", (world,), mesh_dim_names=("tp",))
        cases[f"llama tp {world}"] = lambda: _llama_on(tp)
        cases[f"llama pipeline 2x{world // 2}"] = lambda: _pipeline(world)
    if world == 4:
        cases["llama fsdp x tp 2x2"] = lambda: _llama_on(init_device_mesh("cpu", (2, 2), mesh_dim_names=("dp", "tp")))
    return {name: case() for name, case in cases.items()}


def _on_cuda(world):
    """{case: {name: values}} of FSDP2 models built on meta and materialized on each rank's GPU."""
    torch.cuda.set_device(dist.get_rank())
    mesh = init_device_mesh("cuda", (world,), mesh_dim_names=("dp",))
    cases = {}
    for kind in ("llama", "small"):
        model = _meta(kind)
        fully_shard(model, mesh=mesh)
        initialize(model, MODELS[kind][1](), seed=SEED, device="cuda")
        assert all(p.to_local().is_cuda for p in model.parameters())
        cases[f"{kind} fsdp {world} cuda"] = {
            name: p.full_tensor().cpu().numpy() for name, p in model.named_parameters()
        }
    return {"cases": cases}


def _cpu_cases(world):
    return {"cases": _cases(world), "refusals": _refusals(world) if world > 1 else {}}


def _world(rank, world, port, folder, cuda=False):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("nccl" if cuda else "gloo", rank=rank, world_size=world)
    try:
        results = _on_cuda(world) if cuda else _cpu_cases(world)
        torch.save(results, Path(folder) / f"rank{rank}.pt")
        dist.barrier()  # no rank tears gloo down while another still talks to it
    finally:
        dist.destroy_process_group()


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run_world(world, folder, cuda=False):
    """Every rank's results, from `world` spawned processes (NCCL on GPUs with `cuda`, else gloo); fails if
    they have not ended in time."""
    context = torch.multiprocessing.start_processes(
        _world, args=(world, _free_port(), str(folder), cuda), nprocs=world, join=False, start_method="spawn"
    )
    deadline = time.monotonic() + WORLD_TIMEOUT_S
    while not context.join(timeout=5):
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail(f"a world of {world} processes did not finish in {WORLD_TIMEOUT_S} s")
    return [torch.load(Path(folder) / f"rank{rank}.pt", weights_only=False) for rank in range(world)]


# --- the checks ----------------------------------------------------------------------------------


def single_process(kind):
    """{name: values} of initialize() on the unsharded CPU model, and its init_tree equivalent."""
    model = MODELS[kind][0]()
    initialize(model, MODELS[kind][1](), seed=SEED)
    return {name: p.detach().numpy().copy() for name, p in model.named_parameters()}


@pytest.fixture(scope="module", name="ranks_of")
def ranks_of_fixture(tmp_path_factory):
    """ranks_of(world): every rank's results from one world of that size (spawned once per module)."""
    worlds = {}

    def ranks_of(world):
        if world not in worlds:
            worlds[world] = run_world(world, tmp_path_factory.mktemp(f"world{world}"))
        return worlds[world]

    return ranks_of


@pytest.fixture(scope="module", name="expected")
def expected_fixture():
    return {kind: single_process(kind) for kind in MODELS}


@pytest.mark.parametrize("kind", list(MODELS))
def test_the_single_process_reference_is_init_tree_under_torch_layout(kind, expected):
    model = MODELS[kind][0]()
    spec = {name: tuple(p.shape) for name, p in model.named_parameters()}
    tree = init_tree(spec, MODELS[kind][1](), seed=SEED, layout="torch", ties=shared_names(model))
    assert set(tree) == set(expected[kind])
    for name, values in tree.items():
        np.testing.assert_array_equal(values, expected[kind][name], err_msg=name)


@pytest.mark.parametrize("world", [1, 2, 4])
def test_every_mesh_gathers_the_single_process_model_bit_for_bit(world, expected, ranks_of):
    ranks = ranks_of(world)
    checked = set()
    for name, values in ranks[0]["cases"].items():
        kind = name.split()[0]
        if "pipeline" in name:  # each stage holds its own modules: together, the whole model
            stages = {**ranks[0]["cases"][name], **ranks[-1]["cases"][name]}
            assert set(stages) == set(expected[kind]), name
            assert not set(ranks[0]["cases"][name]) & set(ranks[-1]["cases"][name]), name
        else:
            assert set(values) == set(expected[kind]), name
        for rank in ranks:
            for parameter, gathered in rank["cases"][name].items():
                np.testing.assert_array_equal(gathered, expected[kind][parameter], err_msg=f"{name}: {parameter}")
                checked.add(name)
    assert len(checked) == {1: 3, 2: 5, 4: 6}[world]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_shards_filled_on_gpus_equal_the_cpu_values(expected, tmp_path):
    world = min(2, torch.cuda.device_count())
    (rank0, *_) = run_world(world, tmp_path, cuda=True)
    assert set(rank0["cases"]) == {f"llama fsdp {world} cuda", f"small fsdp {world} cuda"}
    for name, values in rank0["cases"].items():
        kind = name.split()[0]
        assert set(values) == set(expected[kind])
        for parameter, gathered in values.items():
            np.testing.assert_array_equal(gathered, expected[kind][parameter], err_msg=f"{name}: {parameter}")


@pytest.mark.parametrize("world", [2, 4])
def test_ranks_given_different_rules_or_seeds_are_all_refused_alike(world, ranks_of):
    ranks = ranks_of(world)
    refusals = [rank["refusals"] for rank in ranks]
    for case in ("seed", "rules", "invalid seed"):
        assert refusals[0][case] == refusals[-1][case], case
        assert refusals[0][case].startswith("RankMismatchError: the ranks were given different rules"), case
        assert f"ranks {list(range(world - 1))}: " in refusals[0][case], case
    last = f"ranks [{world - 1}]: "
    assert last in refusals[0]["seed"] and last in refusals[0]["rules"]
    assert f"{last}refused here: seed must be an integer; got 'x'" in refusals[0]["invalid seed"]
    for rank in refusals:
        assert rank["unmatched"] == (
            "InvalidArgumentError: the module is on the meta device and parameters ['proj.bias', 'square.weight'] "
            "match no rule: they would be left uninitialized; add rules for them"
        )


def test_the_example_under_torchrun_prints_the_digest_of_one_process():
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    options = ["init_sharded.py", "--layers", "2", "--dim", "32", "--seed", "3"]
    finished = subprocess.run(
        [*command, *options], cwd=EXAMPLE, capture_output=True, text=True, timeout=WORLD_TIMEOUT_S, check=False
    )
    assert finished.returncode == 0, finished.stderr[-3000:]
    one_process = init_sharded.digest(init_sharded.initialized(init_sharded.model_args(2, 32), 3, None, "cpu"))
    assert finished.stdout.strip() == f"2 processes, mesh dp 2: digest {one_process}"


# JAX: one process of a two-process CPU job saves the shards init_sharded made on its two devices.
JAX_PROCESS = """
import sys
import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from initreg.interop.jax import init_sharded

port, process, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
jax.config.update("jax_cpu_collectives_implementation", "gloo")
jax.distributed.initialize(coordinator_address=f"127.0.0.1:{port}", num_processes=2, process_id=process)
mesh = Mesh(np.array(jax.devices()).reshape(2, 2), ("x", "y"))
shards = {}
for name, (init, shape, spec) in {
    "kernel": ("he_normal", (14, 6), PartitionSpec("x", "y")),
    "bias": ({"name": "random_uniform", "minval": -1.0, "maxval": 1.0}, (8,), PartitionSpec(("x", "y"))),
}.items():
    made = init_sharded(init, shape, NamedSharding(mesh, spec), seed=5, path=name)
    for shard in made.addressable_shards:
        bounds = "_".join(f"{part.start or 0}-{part.stop or size}" for part, size in zip(shard.index, shape))
        shards[f"{name}:{bounds}"] = np.asarray(shard.data)
np.savez(out, **shards)
jax.distributed.shutdown()
"""


def test_two_jax_processes_make_the_shards_of_the_unsharded_parameters(tmp_path):
    pytest.importorskip("jax")
    environment = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2", "JAX_PLATFORMS": "cpu"}
    port = str(_free_port())
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", JAX_PROCESS, port, str(process), str(tmp_path / f"process{process}.npz")],
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for process in range(2)
    ]
    try:
        outputs = [process.communicate(timeout=WORLD_TIMEOUT_S)[0] for process in processes]
    finally:
        for process in processes:
            process.kill()
    assert [process.returncode for process in processes] == [0, 0], outputs
    whole = {
        "kernel": init_slice("he_normal", (14, 6), (), 5, "kernel"),
        "bias": init_slice({"name": "random_uniform", "minval": -1.0, "maxval": 1.0}, (8,), (), 5, "bias"),
    }
    covered = {name: np.zeros(values.shape, dtype=int) for name, values in whole.items()}
    for process in range(2):
        for key, values in np.load(tmp_path / f"process{process}.npz").items():
            name, bounds = key.split(":")
            index = tuple(slice(*map(int, part.split("-"))) for part in bounds.split("_"))
            np.testing.assert_array_equal(values, whole[name][index], err_msg=key)
            covered[name][index] += 1
    assert all((count == 1).all() for count in covered.values())  # 4 devices, each shard once


# --- one rank's shard, without a process group -----------------------------------------------------

STRIDED = ([1, 2, 3, 8, 9, 12], range(4, 40))  # rows as _StridedShard leaves them, columns as Shard does


def _pieces(rules, shape, chunk_bytes):
    (entry,) = plan({"w": shape}, rules, layout="torch")
    whole = init_tree({"w": shape}, rules, seed=SEED, layout="torch")["w"]
    local = torch.full((len(STRIDED[0]), len(STRIDED[1])), float("nan"))
    pieces = []
    for view, values in torch_distributed.shard_pieces(entry, local, STRIDED, SEED, None, chunk_bytes):
        pieces.append(values.size)
        view.copy_(torch.from_numpy(np.asarray(values)))
    np.testing.assert_array_equal(local.numpy(), whole[np.ix_(*STRIDED)])
    return pieces


def test_a_strided_shard_is_drawn_in_pieces_of_at_most_one_chunk_each_element_once():
    pieces = _pieces({"w": {"match": "w", "init": "he_normal"}}, (16, 48), chunk_bytes=4 * 20)
    assert sum(pieces) == 6 * 36  # no element drawn twice, none drawn outside the shard
    assert max(pieces) <= 20
    assert len(pieces) == 12  # 6 rows (runs 1:4, 8:10, 12:13) of 36 columns, each in pieces of 20 and 16


def test_a_whole_tensor_initializer_is_drawn_once_and_cut():
    calls = []
    original = Orthogonal.generate

    def counted(self, *args, **kwargs):
        calls.append(args[0])
        return original(self, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Orthogonal, "generate", counted)
        _pieces({"w": {"match": "w", "init": "orthogonal"}}, (16, 48), chunk_bytes=4 * 20)
    assert calls == [(16, 48), (16, 48)]  # the reference's draw, then the shard's one whole draw
