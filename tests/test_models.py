"""SampleCNN: the CLMR layer stack, shapes, parameter count and the original module names."""

from __future__ import annotations

import torch

from clmr.models import SampleCNN


def test_sample_cnn_maps_59049_samples_to_out_dim():
    model = SampleCNN(out_dim=50).eval()
    assert model(torch.randn(2, 1, 59049)).shape == (2, 50)
    assert SampleCNN.receptive_field() == 59049


def test_sample_cnn_without_fc_has_the_papers_parameter_count_and_512_features():
    model = SampleCNN(out_dim=50)
    model.fc = torch.nn.Identity()
    assert sum(p.numel() for p in model.parameters()) == 2_368_512
    assert model.eval()(torch.randn(1, 1, 59049)).shape == (1, 512)


def test_module_names_match_the_original_checkpoints():
    keys = set(SampleCNN(out_dim=10).state_dict())
    assert {
        "sequential.0.0.weight",
        "sequential.0.1.running_mean",
        "sequential.9.0.weight",
        "sequential.10.0.weight",
        "fc.weight",
        "fc.bias",
    } <= keys
    assert not any(k.startswith("sequential.11") for k in keys)


def test_layer_stack_is_conv_bn_relu_maxpool_with_clmr_channels():
    model = SampleCNN(out_dim=10)
    first = model.sequential[0]
    assert (first[0].in_channels, first[0].out_channels, first[0].stride) == (1, 128, (3,))
    channels = [block[0].out_channels for block in model.sequential[1:10]]
    assert channels == [128, 128, 256, 256, 256, 256, 256, 256, 512]
    assert all(isinstance(block[3], torch.nn.MaxPool1d) for block in model.sequential[1:10])
    assert model.sequential[10][0].in_channels == 512 and len(model.sequential[10]) == 3


def test_supervised_mode_adds_dropout_before_fc():
    assert isinstance(SampleCNN(supervised=True, out_dim=3).dropout, torch.nn.Dropout)
    assert not hasattr(SampleCNN(supervised=False, out_dim=3), "dropout")
