#!/usr/bin/env python3
"""Writes the pytorch_model.bin fixtures of tests/test_torchbin.c into
tests/reference/torchbin/ (a few KB each; committed, so the tests need neither
Python nor torch).

Generated with (pinned; rerun only to change the fixtures):
    torch 1.13.0a0 (Debian python3-torch), transformers 4.36.2, safetensors 0.4.1
    /work/venv-ref/bin/python tests/reference/gen_torchbin_fixtures.py

Files:
  state_zip.bin      tiny BertForMaskedLM state dict, torch.save (zip format)
  state_legacy.bin   the same, _use_new_zipfile_serialization=False
  expected.safetensors  every tensor of it as a contiguous F32 copy (I64 for the
                     int64 one): the C test compares every element exactly
  bad_*.bin          malicious or broken files (the archives derive from a
                     one-tensor torch.save file); each must give one clear error

The state dict holds: the model's own tensors (OrderedDict with `_metadata`, so
the pickle has a BUILD), the tied cls.predictions.decoder.weight sharing
bert.embeddings.word_embeddings.weight's storage, an fp16 and a bf16 tensor, a
transposed (non-contiguous) weight, a slice with a storage offset, a strided
slice (offset 1, stride 2) of a larger storage, an nn.Parameter
(_rebuild_parameter), old LayerNorm gamma/beta names and an int64 buffer.
"""
import io
import os
import struct
import sys
import zipfile

import torch
from safetensors.torch import save_file
from transformers import BertConfig, BertForMaskedLM

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "torchbin")


def state_dict():
    torch.manual_seed(1234)
    cfg = BertConfig(vocab_size=12, hidden_size=4, num_hidden_layers=1, num_attention_heads=1,
                     intermediate_size=8, max_position_embeddings=8)
    model = BertForMaskedLM(cfg)
    with torch.no_grad():  # non-trivial values everywhere (LayerNorm starts at 1/0)
        for p in model.parameters():
            p.copy_(torch.randn_like(p))
    sd = model.state_dict()
    we, dec = "bert.embeddings.word_embeddings.weight", "cls.predictions.decoder.weight"
    assert sd[we].data_ptr() == sd[dec].data_ptr(), "decoder weight is not tied"
    sd["bert.embeddings.position_embeddings.weight"] = sd["bert.embeddings.position_embeddings.weight"].half()
    sd["bert.embeddings.token_type_embeddings.weight"] = sd["bert.embeddings.token_type_embeddings.weight"].bfloat16()
    q = "bert.encoder.layer.0.attention.self.query."
    sd[q + "weight"] = torch.randn(4, 4).t()  # stride (1, 4)
    assert not sd[q + "weight"].is_contiguous()
    sd[q + "bias"] = torch.randn(10)[3:7]  # storage offset 3 in a storage of 10
    k = "bert.encoder.layer.0.attention.self.key.bias"
    sd[k] = torch.randn(9)[1::2]  # offset 1, stride 2
    assert sd[k].storage_offset() == 1 and sd[k].stride() == (2,)
    sd["cls.predictions.bias"] = torch.nn.Parameter(torch.randn(12))
    # old LayerNorm names (keep the order of the dict otherwise)
    renamed = type(sd)()
    for name, t in sd.items():
        name = name.replace("embeddings.LayerNorm.weight", "embeddings.LayerNorm.gamma")
        name = name.replace("embeddings.LayerNorm.bias", "embeddings.LayerNorm.beta")
        renamed[name] = t
    renamed._metadata = sd._metadata
    renamed["bert.embeddings.position_ids"] = torch.arange(8).unsqueeze(0)  # int64
    return renamed


def zip_with(src, drop=None, replace=None, compress=zipfile.ZIP_STORED):
    """A copy of zip `src` without entry `drop`, with replace[name] = bytes."""
    buf = io.BytesIO()
    with zipfile.ZipFile(src) as zi, zipfile.ZipFile(buf, "w", compress) as zo:
        for info in zi.infolist():
            if drop and info.filename.endswith(drop):
                continue
            data = zi.read(info)
            for suffix, new in (replace or {}).items():
                if info.filename.endswith(suffix):
                    data = new
            zo.writestr(info.filename, data)
    return buf.getvalue()


def pickle_zip(pkl):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zo:
        zo.writestr("archive/data.pkl", pkl)
        zo.writestr("archive/version", b"3\n")
    return buf.getvalue()


def write(name, data):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)


def main():
    os.makedirs(OUT, exist_ok=True)
    sd = state_dict()
    zpath = os.path.join(OUT, "state_zip.bin")
    torch.save(sd, zpath)
    torch.save(sd, os.path.join(OUT, "state_legacy.bin"), _use_new_zipfile_serialization=False)
    with zipfile.ZipFile(zpath) as z:
        methods = {i.compress_type for i in z.infolist()}
        assert methods == {zipfile.ZIP_STORED}, f"torch.save compressed entries: {methods}"
    # Both files must load back to the same values in torch itself.
    for fn in ("state_zip.bin", "state_legacy.bin"):
        back = torch.load(os.path.join(OUT, fn))
        assert list(back) == list(sd)
        for k in sd:
            assert torch.equal(back[k], sd[k]), (fn, k)
    expected = {}
    for k, t in sd.items():
        t = t.detach()
        expected[k] = (t.float() if t.is_floating_point() else t).contiguous().clone()
    save_file(expected, os.path.join(OUT, "expected.safetensors"), metadata={"format": "pt"})

    # The broken archives derive from a one-tensor file, to stay small.
    spath = os.path.join(OUT, "small.bin")
    torch.save({"bert.embeddings.word_embeddings.weight": torch.randn(3, 4)}, spath)
    zbytes = open(spath, "rb").read()
    # The pickle of a malicious file: os.system("echo pwned") / builtins.eval(...)
    write("bad_os_system.bin", pickle_zip(b"\x80\x02cos\nsystem\nq\x00X\x0a\x00\x00\x00echo pwnedq\x01\x85q\x02Rq\x03."))
    write("bad_eval.bin", pickle_zip(b"\x80\x02cbuiltins\neval\nq\x00X\x06\x00\x00\x00print(1)\x85Rq\x01."))
    write("bad_missing_storage.bin", zip_with(spath, drop="/data/0"))
    with zipfile.ZipFile(spath) as z:
        short = z.read("small/data/0")[:-4]  # one fp32 element fewer than the pickle says
    write("bad_short_storage.bin", zip_with(spath, replace={"/data/0": short}))
    write("bad_deflated.bin", zip_with(spath, compress=zipfile.ZIP_DEFLATED))
    write("bad_truncated.bin", zbytes[: len(zbytes) // 2])
    eocd = zbytes.rfind(b"PK\x05\x06")
    lie = bytearray(zbytes)
    struct.pack_into("<I", lie, eocd + 16, len(zbytes) + 1000)  # central directory offset past the end
    write("bad_cdir_offset.bin", bytes(lie))
    os.remove(spath)
    for fn in sorted(os.listdir(OUT)):
        print(f"{fn:28s} {os.path.getsize(os.path.join(OUT, fn)):7d} bytes")
    print(f"torch {torch.__version__}", file=sys.stderr)


if __name__ == "__main__":
    main()
