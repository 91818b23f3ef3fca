import numpy as np
import pytest
import torch

from helpers import tiny_model
from pruning_core import export


def test_masks_roundtrip_bit_packed(tmp_path):
    g = torch.Generator().manual_seed(0)
    keep = {"a.q": torch.rand(7, 13, generator=g) > 0.5, "b.down": torch.rand(3, 8, generator=g) > 0.3}
    packed = {k: (np.packbits(v.numpy().reshape(-1)), tuple(v.shape)) for k, v in keep.items()}
    path = tmp_path / "masks.safetensors"
    export.save_masks(packed, path)
    loaded = export.load_masks(path)
    assert set(loaded) == set(keep)
    for k in keep:
        assert torch.equal(loaded[k], keep[k])
    assert path.stat().st_size < 2000  # bits, not bytes per weight


def test_publish_refuses_non_empty_and_leaves_nothing_on_failure(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("earlier results")
    with pytest.raises(FileExistsError):
        export.publish(out, tiny_model("llama"), None, {}, {})
    assert (out / "keep.txt").read_text() == "earlier results"

    class Broken:
        def save_pretrained(self, path):
            raise RuntimeError("disk full")

    target = tmp_path / "fresh"
    with pytest.raises(RuntimeError):
        export.publish(target, Broken(), None, {}, {})
    assert not target.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no partial directory left behind
