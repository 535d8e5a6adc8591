import itertools

import pytest
import torch
from safetensors.torch import save_file

import hybridunet as hu
from hybridunet.models import MODELS
from hybridunet.models.summary import count_flops, count_params
from hybridunet.nn import BLOCKS, BOTTLENECKS, SKIPS, UPSAMPLERS
from hybridunet.nn.bottlenecks import ASPP, TransformerBottleneck
from hybridunet.nn.skips import AttentionGateSkip

TINY = dict(num_classes=5, widths=(8, 16, 32))
BUILTIN = ["hybrid_unet", "smp_deeplabv3plus", "smp_fpn", "smp_unet", "smp_unetplusplus", "unet"]


def tiny_kwargs(name: str) -> dict:
    if name.startswith("smp_"):
        return dict(num_classes=5, encoder_name="resnet18")
    return dict(TINY)


@pytest.fixture(autouse=True)
def seeded():
    """The same initial weights whatever ran before (and in whichever process, under xdist)."""
    torch.manual_seed(0)


def assert_trains(model: torch.nn.Module, images: torch.Tensor, num_classes: int) -> None:
    model.train()
    logits = model(images)
    assert logits.shape == (images.shape[0], num_classes, *images.shape[-2:])
    logits.square().mean().backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not no_grad, f"no gradient reached {no_grad}"


def test_builtin_models_are_listed():
    assert set(BUILTIN) <= set(hu.list_models())
    assert hu.list_models("smp_*") == [n for n in BUILTIN if n.startswith("smp_")]


@pytest.mark.parametrize("name", BUILTIN)
def test_every_model_returns_logits_at_odd_sizes_and_trains(name, images):
    model = hu.create_model(name, **tiny_kwargs(name))
    assert_trains(model, images, 5)
    model.eval()
    with torch.no_grad():
        assert model(images[:1, :, :33, :17]).shape == (1, 5, 33, 17)


@pytest.mark.parametrize(
    "encoder_block,skip,bottleneck,upsampler",
    list(itertools.product(BLOCKS.names(), SKIPS.names(), BOTTLENECKS.names(), UPSAMPLERS.names())),
)
def test_every_combination_of_parts_trains(encoder_block, skip, bottleneck, upsampler, images):
    model = hu.create_model(
        "unet",
        **TINY,
        encoder_block=encoder_block,
        decoder_block=encoder_block,
        skip=skip,
        bottleneck=bottleneck,
        upsampler=upsampler,
    )
    assert_trains(model, images, 5)


def test_attention_gates_weigh_the_skip_by_a_sigmoid_of_their_state_dict():
    """The full-resolution gate is Attention U-Net's formula on its own weights; the coarse
    gate computes its attention on a quarter of the positions and upsamples it."""
    from hybridunet.nn.skips import AttentionGateSkip, CoarseAttentionGateSkip

    torch.manual_seed(0)
    x, skip = torch.randn(2, 8, 16, 12), torch.randn(2, 6, 16, 12)
    gate = AttentionGateSkip(8, 6).eval()
    alpha = gate.psi(gate.gate(x) + gate.skip(skip))
    assert torch.allclose(gate(x, skip), torch.cat([x, skip * alpha], 1), atol=1e-6)

    coarse = CoarseAttentionGateSkip(8, 6).eval()
    seen = []
    coarse.psi[1].register_forward_hook(lambda module, args, out: seen.append(out.shape))
    out = coarse(x, skip)
    assert seen == [(2, 1, 8, 6)] and out.shape == (2, 14, 16, 12) and torch.equal(out[:, :8], x)
    ratio = out[:, 8:] / skip
    assert ((ratio > 0) & (ratio < 1)).all()  # every skip pixel weighed by a sigmoid in (0, 1)


def test_hybrid_unet_is_the_unet_with_three_parts_swapped():
    unet, hybrid = hu.create_model("unet"), hu.create_model("hybrid_unet")
    assert type(unet) is type(hybrid) is hu.models.UNet
    assert unet.widths == hybrid.widths == (32, 64, 128, 256, 512)
    assert isinstance(hybrid.bottleneck, TransformerBottleneck)
    assert all(isinstance(s, AttentionGateSkip) for s in hybrid.skips)
    assert all(hasattr(b, "se") for b in hybrid.encoder)
    assert isinstance(hu.create_model("hybrid_unet", bottleneck="aspp").bottleneck, ASPP)


def test_part_options_reach_the_part():
    model = hu.create_model("hybrid_unet", **TINY, bottleneck_kwargs={"heads": 2, "layers": 3})
    assert len(model.bottleneck.blocks) == 3
    assert model.bottleneck.blocks[0].attn.num_heads == 2


def test_depth_cuts_or_extends_widths():
    assert hu.create_model("unet", widths=(8, 16, 32, 64), depth=2).widths == (8, 16, 32)
    assert hu.create_model("unet", widths=(8, 16), depth=3).widths == (8, 16, 32, 64)
    assert hu.create_model("unet", widths=(8, 16, 32)).stride == 4


def test_deep_supervision_returns_aux_logits_in_training_only(images):
    model = hu.create_model("unet", num_classes=5, widths=(8, 16, 32, 64), deep_supervision=True)
    logits, aux = model(images)
    assert logits.shape == (2, 5, 61, 93)
    assert [a.shape for a in aux] == [(2, 5, 61, 93)] * 2
    (logits.mean() + sum(a.mean() for a in aux)).backward()
    assert all(p.grad is not None for p in model.aux_heads.parameters())
    model.eval()
    assert model(images).shape == (2, 5, 61, 93)


def test_unknown_model_lists_the_known_models():
    with pytest.raises(KeyError, match=r"unknown model 'hybrid_unte'\. Did you mean 'hybrid_unet'\?.*smp_fpn"):
        hu.create_model("hybrid_unte")


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(bottleneck="asp"), r"unknown bottleneck 'asp'\. Did you mean 'aspp'\?"),
        (dict(skip="attention"), r"unknown skip 'attention'.*attention_gate, coarse_attention_gate, concat"),
        (dict(encoder_block="resnet"), r"unknown block 'resnet'.*double_conv, residual, residual_se"),
        (dict(upsampler="pixelshuffle"), r"unknown upsampler 'pixelshuffle'.*bilinear, transpose"),
    ],
)
def test_unknown_part_lists_the_known_parts(kwargs, message):
    with pytest.raises(KeyError, match=message):
        hu.create_model("unet", **kwargs)


def test_unknown_keyword_fails_clearly():
    with pytest.raises(TypeError, match=r"model 'unet'.*'bottlenek'.*Accepted keywords: num_classes"):
        hu.create_model("unet", bottlenek="aspp")
    with pytest.raises(TypeError, match=r"bottleneck 'transformer'.*'head'.*heads"):
        hu.create_model("hybrid_unet", bottleneck_kwargs={"head": 4})


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(widths=(8,)), "widths must be at least two positive integers"),
        (dict(widths=(8, -16)), "widths must be at least two positive integers"),
        (dict(depth=0), "depth must be a positive integer"),
        (dict(num_classes=0), "num_classes must be a positive integer"),
        (dict(widths=(8, 18), bottleneck="transformer"), r"channels=18 must be divisible by 4 and by heads=8"),
    ],
)
def test_bad_sizes_fail_with_the_value_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        hu.create_model("unet", **kwargs)


def test_users_own_preset_registers_and_builds(monkeypatch, images):
    monkeypatch.setattr(MODELS, "_builders", dict(MODELS._builders))

    @hu.register_model("my_unet")
    def my_unet(**kwargs):
        return hu.create_model("unet", bottleneck="aspp", upsampler="bilinear", **kwargs)

    assert "my_unet" in hu.list_models()
    model = hu.create_model("my_unet", **TINY)
    assert isinstance(model.bottleneck, ASPP)
    assert_trains(model, images, 5)


@pytest.mark.parametrize("name", ["unet", "hybrid_unet", "smp_unet"])
def test_fixed_seed_gives_identical_outputs(name, images):
    outputs = []
    for _ in range(2):
        torch.manual_seed(123)
        model = hu.create_model(name, **tiny_kwargs(name)).eval()
        with torch.no_grad():
            outputs.append(model(images))
    torch.testing.assert_close(outputs[0], outputs[1], rtol=0, atol=0)


def test_model_creation_makes_no_network_call(offline):
    for name in hu.list_models():
        hu.create_model(name, **tiny_kwargs(name))
    hu.create_model("smp_fpn", encoder_name="tu-resnet18")
    hu.create_model("smp_unet", encoder_name="efficientnet-b0")


def test_smp_encoder_weights_load_from_a_local_file(tmp_path, offline):
    source = hu.create_model("smp_unet", num_classes=5)
    path = tmp_path / "encoder.safetensors"
    save_file(source.model.encoder.state_dict(), str(path))
    target = hu.create_model("smp_unet", num_classes=5, weights_path=path)
    torch.testing.assert_close(target.model.encoder.state_dict(), source.model.encoder.state_dict())

    torch.save(source.state_dict(), tmp_path / "whole.pth")  # a whole model: encoder.* keys are used
    hu.create_model("smp_unet", num_classes=5, weights_path=tmp_path / "whole.pth")

    save_file({"conv1.weight": torch.zeros(1)}, str(tmp_path / "other.safetensors"))
    expected = r"other\.safetensors do not fit ResNetEncoder: missing keys \[bn1\.weight.*conv1\.weight \(1,\) vs \(64, 3, 7, 7\)"
    with pytest.raises(ValueError, match=expected):
        hu.create_model("smp_unet", weights_path=tmp_path / "other.safetensors")


def test_pretrained_encoder_weights_offline_fail_at_once_naming_the_local_route(offline, tmp_path, monkeypatch):
    import time

    from hybridunet.errors import UsageError

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty hub cache
    start = time.perf_counter()
    with pytest.raises(UsageError, match=r"encoder_weights='imagenet' for resnet18: the Hugging Face Hub cannot "
                                         r"be reached .*model\.weights_path"):
        hu.create_model("smp_unet", encoder_weights="imagenet")
    assert time.perf_counter() - start < 15


def test_summary_counts_params_and_flops_with_torch_counter():
    model = hu.create_model("unet", num_classes=2, widths=(4, 8), in_channels=1)
    # By hand: encoder 1->4 (36 + 8 BN + 144 + 8 BN) and 4->8 (288 + 16 + 576 + 16); transposed
    # conv 8->4 (128 + 4); decoder 8->4 (288 + 8 + 144 + 8); head 4->2 (8 + 2).
    assert count_params(model) == 196 + 896 + 132 + 448 + 10 == 1682
    model.head.requires_grad_(False)
    assert count_params(model) == 1682 - 10  # frozen parameters are not trainable
    conv = torch.nn.Conv2d(1, 4, 3, padding=1, bias=False)
    assert count_flops(conv, (1, 8, 8)) == 2 * 9 * 4 * 64  # a multiply-add counts two
    assert count_flops(model, (1, 8, 8)) > 2 * 9 * 4 * 64
    assert count_flops(hu.create_model("hybrid_unet"), (3, 64, 64)) > count_flops(hu.create_model("unet"), (3, 64, 64))


def test_layer_scaled_transformer_bottleneck_starts_as_the_identity_and_learns():
    from hybridunet.nn.bottlenecks import TransformerBottleneck

    torch.manual_seed(0)
    x = torch.randn(2, 32, 5, 7)
    block = TransformerBottleneck(32, heads=4, layer_scale=1e-4)
    out = block(x)
    assert (out - x).abs().max() < 1e-3 * x.abs().max()
    out.square().mean().backward()
    assert block.blocks[0].attn.qkv.weight.grad.abs().sum() > 0
    plain = TransformerBottleneck(32, heads=4)(x)  # post-norm: each token normalised
    assert plain.mean(1).abs().max() < 1e-4


def test_presets_are_data_rows_with_metadata_and_labels_name_their_overrides():
    from hybridunet.models import MODELS, PRESETS, preset_of, run_label

    assert [p.name for p in PRESETS] == ["unet", "hybrid_unet", "hybrid_unet_resdec"]
    resdec = preset_of("hybrid_unet_resdec")
    assert resdec.parts == {**preset_of("hybrid_unet").parts, "decoder_block": "residual_se", "upsampler": "bilinear"}
    assert resdec.description and resdec.reference
    model = hu.create_model("hybrid_unet_resdec", widths=(8, 16, 32), bottleneck_kwargs={"heads": 4})
    assert type(model.decoder[0]).__name__ == "ResidualBlock" and type(model.upsamplers[0]).__name__ == "BilinearUp"
    assert preset_of("smp_unet") is None and "segmentation-models-pytorch" in MODELS.info("smp_unet").description
    assert run_label("hybrid_unet", {"decoder_block": "residual_se", "encoder_block": "residual_se"}) == \
        "hybrid_unet+decoder_block=residual_se"  # the preset's own part is no override
    assert run_label("smp_unet", {"encoder_name": "resnet34"}) == "smp_unet"


def test_training_flops_count_the_backward_pass_and_every_deep_supervision_head():
    """A training step costs about three forwards (the backward twice the forward), and a
    model with auxiliary heads is charged for their backward too."""
    from hybridunet.models import create_model
    from hybridunet.models.summary import count_flops, count_train_flops

    model = create_model("unet", widths=[8, 16, 32])
    forward, train = count_flops(model, (3, 32, 32)), count_train_flops(model, (3, 32, 32))
    assert 2.5 * forward <= train <= 3.5 * forward
    plain, supervised = (create_model("unet", widths=[8, 16, 32], deep_supervision=d) for d in (False, True))
    assert count_train_flops(supervised, (3, 32, 32)) > count_train_flops(plain, (3, 32, 32))


SCRIPTING = [{}, {"deep_supervision": True}] + [
    {key: name} for key, registry in (("encoder_block", BLOCKS), ("skip", SKIPS), ("bottleneck", BOTTLENECKS),
                                      ("upsampler", UPSAMPLERS)) for name in registry.names()]


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:FutureWarning")
@pytest.mark.parametrize("parts", SCRIPTING, ids=lambda p: ",".join(f"{k}={v}" for k, v in p.items()) or "unet")
def test_a_model_scripts_and_matches_eager_or_says_why_it_cannot(parts, images):
    """smp's conventions: a model scripts with torch.jit.script, or says so (smp's
    `_is_torch_scriptable`, and one RuntimeError naming hybridunet and what works instead)."""
    model = hu.create_model("unet", widths=[8, 16, 32], num_classes=3, **parts).eval()
    if model._is_torch_scriptable:
        with torch.no_grad():
            assert torch.allclose(torch.jit.script(model)(images), model(images), atol=1e-4)
    else:
        with pytest.raises(RuntimeError, match=r"^hybridunet: a model with .*torch\.export.*ONNX"):
            torch.jit.script(model)


def test_the_presets_script_or_say_why_they_cannot():
    assert hu.create_model("unet")._is_torch_scriptable
    assert not any(hu.create_model(name)._is_torch_scriptable for name in ("hybrid_unet", "hybrid_unet_resdec"))


def test_a_frozen_encoder_gets_no_gradient_and_keeps_its_norm_statistics_until_unfrozen():
    model = hu.create_model("unet", widths=[8, 16, 32], num_classes=3).freeze_encoder().train()
    norms = [m for m in model.encoder.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert norms and not any(m.training for m in norms)  # train() leaves a frozen encoder's norms alone
    before = {k: v.clone() for k, v in model.encoder.state_dict().items()}
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    model(torch.randn(2, 3, 32, 32)).mean().backward()
    optimizer.step()
    assert all(torch.equal(v, model.encoder.state_dict()[k]) for k, v in before.items())  # running stats too
    assert all(p.grad is None for p in model.encoder.parameters())
    assert any(p.grad is not None for p in model.decoder.parameters())
    model.unfreeze_encoder()
    assert all(p.requires_grad for p in model.encoder.parameters()) and all(m.training for m in norms)


def test_a_part_slot_takes_a_module_class_as_well_as_a_registered_name(images):
    """timm's get_act_layer convention: the class in the name's place builds the same part."""
    by_name = hu.create_model("unet", widths=[8, 16, 32], num_classes=3, skip="attention_gate")
    by_class = hu.create_model("unet", widths=[8, 16, 32], num_classes=3, skip=AttentionGateSkip)
    assert by_name.state_dict().keys() == by_class.state_dict().keys()
    assert by_class(images).shape == (2, 3, *images.shape[-2:])
    with pytest.raises(TypeError, match="Accepted keywords"):  # its keywords are checked as a name's are
        hu.create_model("unet", widths=[8, 16, 32], skip=AttentionGateSkip, skip_kwargs={"gates": 2})


def test_a_config_names_its_parts_and_refuses_a_class_in_their_place():
    from hybridunet.config import parse_config
    from hybridunet.errors import ConfigError

    with pytest.raises(ConfigError, match="a config names a registered part"):
        parse_config({"model": {"name": "unet", "skip": AttentionGateSkip}})
