"""The vision recipes against timm's and torchvision's own init, tensor by tensor.

timm's ``VisionTransformer`` (a small ViT: 32x32 images, 8x8 patches, width 64, depth 2; and the same with
average pooling, register tokens and neither class token nor head) with its default and its
``weight_init='jax'`` init, and torchvision's ``resnet18`` and a one-block-per-stage Bottleneck
``ResNet``, with and without ``zero_init_residual``, are built by the packages themselves at torch seeds 0
(the reference) and 1 (the null); a third copy gets initreg's recipe. tests/vision_references.py makes
torchvision importable on the CPU build of torch (two operator schemas stubbed, nothing of the models or
their init replaced). Per tensor, as tests/test_recipes.py's `compare`: the all-zero and all-one tensors
match exactly, the random part passes a two-sample KS test against the reference's draws (failing no more
often, plus one, than the null), its std (and the reference's) is within max(1%, 4/sqrt(2n)) of the formula
quoted from the source, and a truncated part reaches its bound.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
import torch
from test_recipes import as_numpy, compare
from vision_references import timm_vit, torchvision_resnet

import initreg
from initreg import recipes
from initreg.interop.torch import initialize

VIT = {"img_size": 32, "patch_size": 8, "embed_dim": 64, "depth": 2, "num_heads": 4, "num_classes": 10}
LECUN_TRUNCATION = 0.87962566103423978  # std of a standard normal cut at +-2, timm's variance_scaling_


POOLED = {"class_token": False, "reg_tokens": 2, "global_pool": "avg", "num_classes": 0}  # fc_norm, no head


def vit(mode: str, seed: int, **config: object) -> torch.nn.Module:
    torch.manual_seed(seed)
    return timm_vit.VisionTransformer(**{**VIT, **config}, weight_init=mode)


def fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """torch's fans of a weight in its [out, in, *kernel] layout."""
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def vit_std(mode: str, shapes: dict[str, tuple[int, ...]]) -> Callable[[str], float | None]:
    """The std each random tensor of timm's ViT has, from init_weights_vit_timm / init_weights_vit_jax."""
    patch_fan_in = fans(shapes["patch_embed.proj.weight"])[0]

    def target(name: str) -> float | None:
        if name in ("cls_token", "reg_token") or (mode == "jax" and "mlp" in name and name.endswith(".bias")):
            return 1e-6
        if name == "pos_embed":
            return 0.02  # trunc_normal_ at +-2: 100 sigma, no truncation in effect
        if name.startswith("patch_embed.proj."):  # torch's default Conv2d init; jax: lecun_normal_
            return 1 / math.sqrt(3 * patch_fan_in) if mode == "" else 1 / math.sqrt(patch_fan_in)
        if name.endswith(".weight") and len(shapes[name]) == 2:
            return 0.02 if mode == "" else math.sqrt(2 / sum(fans(shapes[name])))
        return None

    return target


@pytest.mark.parametrize(("mode", "recipe_name"), [("", "timm_vit"), ("jax", "timm_vit_jax")])
def test_timm_vit_recipes_are_timms_own_init(mode: str, recipe_name: str) -> None:
    reference, null = as_numpy(vit(mode, 0)), as_numpy(vit(mode, 1))
    model = vit(mode, 2)
    shapes = {name: tuple(p.shape) for name, p in model.named_parameters()}
    recipe = recipes.load(recipe_name, model)
    initialize(model, recipe.rules, seed=3)
    ours = as_numpy(model)
    patch_bound = 2 * math.sqrt(1 / fans(shapes["patch_embed.proj.weight"])[0]) / LECUN_TRUNCATION

    def bound(name: str) -> float | None:
        return patch_bound if mode == "jax" and name == "patch_embed.proj.weight" else None

    compared = compare(ours, reference, null, vit_std(mode, shapes), bound)
    depth = VIT["depth"]
    if mode == "":  # 4 Linear weights per block, the head, the patch conv, its bias, pos_embed, cls_token
        assert compared == 4 * depth + 5
        assert recipe.variables == {"in_chans": 3, "patch_h": 8, "patch_w": 8}
    else:  # and 2 MLP biases per block; the head is zero
        assert compared == 6 * depth + 3
        assert not ours["head.weight"].any() and not ours["head.bias"].any()
    ones = {name for name, values in ours.items() if np.all(values == 1)}
    assert ones == {name for name in ours if "norm" in name and name.endswith(".weight")}
    assert len(ones) == 2 * depth + 1


@pytest.mark.parametrize(("mode", "recipe_name"), [("", "timm_vit"), ("jax", "timm_vit_jax")])
def test_timm_vit_recipes_serve_a_pooled_vit_with_register_tokens_and_no_class_token_or_head(
    mode: str, recipe_name: str
) -> None:
    reference, null = as_numpy(vit(mode, 0, **POOLED)), as_numpy(vit(mode, 1, **POOLED))
    model = vit(mode, 2, **POOLED)
    assert "reg_token" in reference and "cls_token" not in reference and "head.weight" not in reference
    initialize(model, recipes.load(recipe_name, model).rules, seed=3)
    ours = as_numpy(model)
    shapes = {name: values.shape for name, values in ours.items()}
    # 4 Linear weights per block, the patch conv, pos_embed, reg_token; the patch bias (default) or the
    # 2 MLP biases per block (jax)
    depth = VIT["depth"]
    assert compare(ours, reference, null, vit_std(mode, shapes)) == 4 * depth + 3 + (1 if mode == "" else 2 * depth)
    assert (
        {name for name, values in ours.items() if np.all(values == 1)}
        == {name for name in ours if "norm" in name and name.endswith(".weight")}
        >= {"fc_norm.weight"}
    )


def resnet(seed: int, bottleneck: bool = False, zero_init_residual: bool = False) -> torch.nn.Module:
    torch.manual_seed(seed)
    if bottleneck:
        return torchvision_resnet.ResNet(
            torchvision_resnet.Bottleneck, [1, 1, 1, 1], num_classes=10, zero_init_residual=zero_init_residual
        )
    return torchvision_resnet.resnet18(zero_init_residual=zero_init_residual)


def resnet_std(shapes: dict[str, tuple[int, ...]]) -> Callable[[str], float | None]:
    """kaiming_normal_(mode="fan_out", nonlinearity="relu") for convs; nn.Linear's default for fc."""
    fc_fan_in = shapes["fc.weight"][1]

    def target(name: str) -> float | None:
        if name.startswith("fc."):
            return 1 / math.sqrt(3 * fc_fan_in)
        if len(shapes[name]) == 4:
            return math.sqrt(2 / fans(shapes[name])[1])
        return None

    return target


def last_norms(model: torch.nn.Module) -> set[str]:
    """The weight of the last BatchNorm of each residual block, found by the blocks' classes."""
    found = set()
    for name, module in model.named_modules():
        if isinstance(module, torchvision_resnet.BasicBlock):
            found.add(f"{name}.bn2.weight")
        elif isinstance(module, torchvision_resnet.Bottleneck):
            found.add(f"{name}.bn3.weight")
    return found


@pytest.mark.parametrize("bottleneck", [False, True], ids=["resnet18", "bottleneck"])
@pytest.mark.parametrize("zero_init_residual", [False, True], ids=["", "zero_init_residual"])
def test_torchvision_resnet_is_torchvisions_own_init(bottleneck: bool, zero_init_residual: bool) -> None:
    reference = as_numpy(resnet(0, bottleneck, zero_init_residual))
    null = as_numpy(resnet(1, bottleneck, zero_init_residual))
    model = resnet(2, bottleneck)
    recipe = recipes.load("torchvision_resnet", model, zero_init_residual=int(zero_init_residual))
    assert recipe.variables["block_kernel"] == (1 if bottleneck else 3)
    assert recipe.variables["fc_fan_in"] == (2048 if bottleneck else 512)
    initialize(model, recipe.rules, seed=3)
    ours = as_numpy(model)
    compared = compare(ours, reference, null, resnet_std({name: v.shape for name, v in ours.items()}))
    convs = [name for name, values in ours.items() if values.ndim == 4]
    assert compared == len(convs) + 2 and len(convs) == (17 if bottleneck else 20)
    zeros = {name for name, values in ours.items() if name.endswith(".weight") and not values.any()}
    assert zeros == (last_norms(model) if zero_init_residual else set())
    assert len(last_norms(model)) == (4 if bottleneck else 8)
    norm_weights = {name for name, values in ours.items() if values.ndim == 1 and name.endswith(".weight")}
    assert {name for name in norm_weights if np.all(ours[name] == 1)} == norm_weights - zeros


def test_the_vision_comparison_fails_a_resnet_drawn_with_fan_in() -> None:
    reference, null = as_numpy(resnet(0)), as_numpy(resnet(1))
    model = resnet(2)
    rules = recipes.load("torchvision_resnet", model).rules
    fan_in = initreg.tree.parse_rules({"convs": {"match": "*conv*.weight", "init": "kaiming_normal"}})
    initialize(model, [*rules, *fan_in], seed=3)
    with pytest.raises(AssertionError, match="conv1.weight"):
        compare(as_numpy(model), reference, null, resnet_std({n: p.shape for n, p in reference.items()}))


def test_timm_vit_refuses_a_parameter_it_does_not_know() -> None:
    torch.manual_seed(0)
    model = timm_vit.VisionTransformer(**VIT, init_values=1e-5)  # LayerScale: blocks.0.ls1.gamma
    with pytest.raises(initreg.InitregError, match="ls1.gamma"):
        initialize(model, recipes.load("timm_vit", model).rules, seed=0)


def test_zero_init_residual_is_a_number() -> None:
    with pytest.raises(initreg.InitregError, match="^recipe 'torchvision_resnet': variable 'zero_init_residual' must"):
        recipes.load("torchvision_resnet", resnet(0), zero_init_residual=True)


@pytest.mark.parametrize(
    ("build", "recipe_name", "variables"),
    [
        (lambda: vit("", 0), "timm_vit", None),
        (lambda: vit("jax", 0), "timm_vit_jax", None),
        (lambda: resnet(0), "torchvision_resnet", None),
        (lambda: resnet(0, bottleneck=True, zero_init_residual=True), "torchvision_resnet", {"zero_init_residual": 1}),
    ],
    ids=["timm_vit", "timm_vit_jax", "resnet18", "bottleneck-zero_init_residual"],
)
def test_initreg_check_finds_the_references_own_models_hold_what_the_recipe_intends(
    build: Callable[[], torch.nn.Module], recipe_name: str, variables: dict[str, int] | None
) -> None:
    report = initreg.check(build(), recipe_name, variables=variables)
    assert report.ok and not report.unchecked, report.summary()


def test_initreg_check_finds_the_last_norms_left_at_one_without_zero_init_residual() -> None:
    report = initreg.check(resnet(0, bottleneck=True), "torchvision_resnet", variables={"zero_init_residual": 1})
    assert {failure.path for failure in report.failures} == {f"layer{i}.0.bn3.weight" for i in range(1, 5)}
