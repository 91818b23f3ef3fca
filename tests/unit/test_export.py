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
    for k, mask in keep.items():
        assert torch.equal(loaded[k], mask)
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


def test_per_block_mask_files_merge_into_one_masks_file(tmp_path):
    """The streamed path keeps masks on disk per block; the published file holds them all."""
    rng = np.random.default_rng(0)
    blocks = [{f"b{i}.{kind}": (np.packbits(rng.random(m * n) < 0.5), (m, n)) for kind, (m, n) in
               (("q", (4, 8)), ("down", (3, 5)))} for i in range(3)]
    files = []
    for i, masks in enumerate(blocks):
        files.append(tmp_path / f"masks-{i}.safetensors")
        export.save_masks(masks, files[-1])
    export.merge_mask_files(files, tmp_path / "masks.safetensors")
    merged = export.load_packed_masks(tmp_path / "masks.safetensors")
    expected = {name: value for masks in blocks for name, value in masks.items()}
    assert merged.keys() == expected.keys()
    for name, (bits, shape) in expected.items():
        assert merged[name][1] == shape and (merged[name][0] == bits).all()
    assert set(export.load_masks(tmp_path / "masks.safetensors")) == set(expected)


def _modes(root):
    return {p.relative_to(root).as_posix(): p.stat().st_mode & 0o777 for p in [root, *root.rglob("*")]}


def test_published_files_are_readable_by_other_users_whatever_the_umask(tmp_path):
    """safetensors writes 0600 and staging directories are private; a result must not be."""
    import io
    import os

    from db.artifacts import LocalStore

    model = tiny_model("llama")
    old = os.umask(0o077)
    try:
        out = export.publish(tmp_path / "out", model, None, {}, {"method": "x"})
        store = LocalStore(tmp_path / "store")
        store.publish_dir("jobs/j1", out)
        upload = store.put_stream("datasets/d1.txt", io.BytesIO(b"text"), 100)
    finally:
        os.umask(old)
    for root in (out, tmp_path / "store" / "jobs" / "j1"):
        modes = _modes(root)
        assert "model/model.safetensors" in modes and "masks.safetensors" in modes
        assert all(mode == (0o755 if (root / name).is_dir() else 0o644) for name, mode in modes.items()), modes
    assert store.local_path(upload.location).stat().st_mode & 0o777 == 0o644
