"""The Lightning modules (clmr/modules), as the stages build them (clmr/stages.py)."""

from __future__ import annotations

from conftest import config


def test_compile_compiles_the_encoder_in_place_and_keeps_the_checkpoint_keys():
    from clmr.models import SampleCNN
    from clmr.stages import contrastive_module

    eager = contrastive_module(config(compile=0), SampleCNN())
    compiled = contrastive_module(config(compile=1), SampleCNN())
    assert compiled.model.encoder._compiled_call_impl is not None  # compiled on its first call
    assert eager.model.encoder._compiled_call_impl is None
    assert list(compiled.state_dict()) == list(eager.state_dict())
    assert any(key.startswith("model.encoder.sequential.") for key in compiled.state_dict())
