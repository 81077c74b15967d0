#!/usr/bin/env python3
"""Writes the Hugging Face model directories of tests/test_hf.c and
tests/cli/import_export.sh into tests/reference/hf/ (tiny: ~30 KB each; committed,
so the tests need neither Python nor torch).

Generated with (pinned; rerun only to change the fixtures):
    torch 1.13 (Debian python3-torch), transformers 4.36.2, safetensors 0.4.1
    /work/venv-ref/bin/python tests/reference/gen_hf_models.py

One random BertForSequenceClassification (values spread well beyond HF's init so
that every tensor matters), with a 160-token vocabulary cut from bert-base-cased's
(the five special tokens, then ids 104..258: punctuation, digits, letters of both
cases, so it looks cased), saved in every form import must read:

  st_f32/        save_pretrained(safe_serialization=True) + BertTokenizer.save_pretrained
                 (do_lower_case false): model.safetensors F32, the real file layout
  st_f16/        the model in float16, safetensors F16; no tokenizer_config.json
                 (import must default to lowercase and warn: the vocab is cased)
  st_bf16/       bfloat16, safetensors BF16; tokenizer_config.json do_lower_case true
  bin_zip/       save_pretrained(safe_serialization=False): pytorch_model.bin (zip)
  bin_legacy/    torch.save(..., _use_new_zipfile_serialization=False)
  noprefix/      names without `bert.` (a BertModel's) + classifier.*, plus one
                 unknown tensor `lm_head.bias` (must be reported, then ignored)
  gammabeta/     every LayerNorm as .gamma/.beta (old names), torch.save zip
  pretraining/   BertForPreTraining sharing the encoder and pooler: cls.* heads with
                 the decoder tied to the word embeddings, the position_ids buffer;
                 no classifier (must be initialised and reported)
  nopooler/      BertModel(add_pooling_layer=False), `bert.` names, safetensors: no
                 pooler, no classifier
  bad_missing_encoder/  st_f32 without bert.encoder.layer.1.output.dense.weight
  bad_pickle/    pytorch_model.bin whose pickle calls os.system (must be refused)
  bad_offsets/   model.safetensors whose header puts a tensor past the data

expected.json holds the fixed token-id sequences (token types 0, no padding), the
reference logits of each weight rounding (HF in float64 with the F32 weights, and
with the F16- and BF16-rounded ones), and per directory what import must do.
"""
import copy
import io
import json
import os
import shutil
import struct
import sys
import zipfile

import torch
import transformers
from safetensors.torch import save_file
from transformers import BertConfig, BertForPreTraining, BertForSequenceClassification, BertModel, BertTokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "hf")
DATA = os.environ.get("ADEBERT_TEST_DATA", os.path.join(HERE, "..", "..", "..", "shared", "data"))
CASED_VOCAB = os.path.join(DATA, "vocab", "bert-base-cased-vocab.txt")


def tiny_vocab():
    full = open(CASED_VOCAB, encoding="utf-8").read().split("\n")
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    assert full[0] == "[PAD]" and full[100:104] == ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    toks = specials + full[104:259]
    assert any(t.isupper() for t in toks) and len(set(toks)) == len(toks)
    return toks


def base_model(vocab_size):
    torch.manual_seed(20240605)
    cfg = BertConfig(vocab_size=vocab_size, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=32, max_position_embeddings=24, type_vocab_size=2)
    model = BertForSequenceClassification(cfg)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "LayerNorm.weight" in name:
                p.copy_(1 + 0.2 * torch.randn_like(p))
            else:
                p.copy_(0.3 * torch.randn_like(p))
    return model.eval()


def sequences(vocab_size):
    g = torch.Generator().manual_seed(7)
    seqs = []
    for n in (2, 5, 13, 24):
        mid = torch.randint(4, vocab_size, (n - 2,), generator=g).tolist()
        seqs.append([2] + mid + [3])  # [CLS] ... [SEP] in the tiny vocab
    seqs.append([2, 0, 1, 4, 3])  # [PAD], [UNK], [MASK] inside
    return seqs


def logits64(model, sd, seqs):
    """HF in float64 with the weights of `sd` (any dtype), one sequence at a time."""
    m = BertForSequenceClassification(model.config).double().eval()
    m.load_state_dict({k: v.double() for k, v in sd.items()}, strict=True)
    out = []
    with torch.no_grad():
        for s in seqs:
            ids = torch.tensor([s])
            out.append(m(input_ids=ids, token_type_ids=torch.zeros_like(ids)).logits[0].tolist())
    return out


def write_common(d, vocab, tokenizer_lower=None):
    os.makedirs(d, exist_ok=True)
    if tokenizer_lower is None:
        with open(os.path.join(d, "vocab.txt"), "w", encoding="utf-8") as f:
            f.write("\n".join(vocab) + "\n")
    else:
        tmp = os.path.join(d, "_vocab_in.txt")
        with open(tmp, "w", encoding="utf-8") as f:
            f.write("\n".join(vocab) + "\n")
        BertTokenizer(tmp, do_lower_case=tokenizer_lower).save_pretrained(d)
        os.remove(tmp)
        # save_pretrained also writes special_tokens_map.json; keep the fixture lean
        os.remove(os.path.join(d, "special_tokens_map.json"))


def write_config(d, model):
    model.config.to_json_file(os.path.join(d, "config.json"))


def pickle_zip(pkl):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zo:
        zo.writestr("archive/data.pkl", pkl)
        zo.writestr("archive/version", b"3\n")
    return buf.getvalue()


def main():
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    os.makedirs(OUT)
    vocab = tiny_vocab()
    model = base_model(len(vocab))
    sd = {k: v.detach().clone() for k, v in model.state_dict().items()}
    seqs = sequences(len(vocab))
    ref = {
        "f32": logits64(model, sd, seqs),
        "f16": logits64(model, {k: v.half() for k, v in sd.items()}, seqs),
        "bf16": logits64(model, {k: v.bfloat16() for k, v in sd.items()}, seqs),
    }
    variants = {}

    def variant(name, ref_key, lowercase, missing=(), unexpected=(), error=None):
        variants[name] = {"ref": ref_key, "lowercase": lowercase, "missing": list(missing),
                          "unexpected": list(unexpected), "error": error}

    d = os.path.join(OUT, "st_f32")
    write_common(d, vocab, tokenizer_lower=False)
    model.save_pretrained(d, safe_serialization=True)
    variant("st_f32", "f32", False)

    d = os.path.join(OUT, "st_f16")
    write_common(d, vocab)
    m16 = copy.deepcopy(model).half()
    m16.save_pretrained(d, safe_serialization=True)
    variant("st_f16", "f16", True)

    d = os.path.join(OUT, "st_bf16")
    write_common(d, vocab, tokenizer_lower=True)
    mb16 = copy.deepcopy(model).to(torch.bfloat16)
    mb16.save_pretrained(d, safe_serialization=True)
    variant("st_bf16", "bf16", True)

    d = os.path.join(OUT, "bin_zip")
    write_common(d, vocab, tokenizer_lower=False)
    model.save_pretrained(d, safe_serialization=False)
    variant("bin_zip", "f32", False)

    d = os.path.join(OUT, "bin_legacy")
    write_common(d, vocab, tokenizer_lower=False)
    write_config(d, model)
    torch.save(model.state_dict(), os.path.join(d, "pytorch_model.bin"), _use_new_zipfile_serialization=False)
    variant("bin_legacy", "f32", False)

    d = os.path.join(OUT, "noprefix")
    write_common(d, vocab, tokenizer_lower=False)
    write_config(d, model)
    nop = {(k[5:] if k.startswith("bert.") else k): v.contiguous() for k, v in sd.items()}
    nop["lm_head.bias"] = torch.zeros(3)
    save_file(nop, os.path.join(d, "model.safetensors"), metadata={"format": "pt"})
    variant("noprefix", "f32", False, unexpected=["lm_head.bias"])

    d = os.path.join(OUT, "gammabeta")
    write_common(d, vocab, tokenizer_lower=False)
    write_config(d, model)
    gb = {}
    for k, v in model.state_dict().items():
        k = k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta")
        gb[k] = v
    torch.save(gb, os.path.join(d, "pytorch_model.bin"))
    variant("gammabeta", "f32", False)

    d = os.path.join(OUT, "pretraining")
    write_common(d, vocab, tokenizer_lower=False)
    pt = BertForPreTraining(model.config)
    with torch.no_grad():
        pt.bert.load_state_dict(model.bert.state_dict())
        for name, p in pt.cls.named_parameters():
            if "decoder.weight" not in name:
                p.copy_(0.3 * torch.randn_like(p))
    psd = pt.state_dict()
    assert psd["cls.predictions.decoder.weight"].data_ptr() == psd["bert.embeddings.word_embeddings.weight"].data_ptr()
    psd["bert.embeddings.position_ids"] = torch.arange(model.config.max_position_embeddings).unsqueeze(0)
    pt.config.architectures = ["BertForPreTraining"]
    pt.config.to_json_file(os.path.join(d, "config.json"))
    torch.save(psd, os.path.join(d, "pytorch_model.bin"))
    variant("pretraining", "f32", False, missing=["classifier.weight", "classifier.bias"])

    d = os.path.join(OUT, "nopooler")
    write_common(d, vocab, tokenizer_lower=False)
    write_config(d, model)
    bm = BertModel(model.config, add_pooling_layer=False)
    bm.load_state_dict({k[5:]: v for k, v in sd.items() if k.startswith("bert.") and "pooler" not in k})
    save_file({"bert." + k: v.contiguous() for k, v in bm.state_dict().items()},
              os.path.join(d, "model.safetensors"), metadata={"format": "pt"})
    variant("nopooler", "f32", False,
            missing=["bert.pooler.dense.weight", "bert.pooler.dense.bias", "classifier.weight", "classifier.bias"])

    d = os.path.join(OUT, "bad_missing_encoder")
    write_common(d, vocab, tokenizer_lower=False)
    write_config(d, model)
    miss = {k: v.contiguous() for k, v in sd.items() if k != "bert.encoder.layer.1.output.dense.weight"}
    save_file(miss, os.path.join(d, "model.safetensors"), metadata={"format": "pt"})
    variant("bad_missing_encoder", None, False, error="bert.encoder.layer.1.output.dense.weight is missing")

    d = os.path.join(OUT, "bad_pickle")
    write_common(d, vocab, tokenizer_lower=False)
    write_config(d, model)
    with open(os.path.join(d, "pytorch_model.bin"), "wb") as f:  # os.system("echo pwned")
        f.write(pickle_zip(b"\x80\x02cos\nsystem\nq\x00X\x0a\x00\x00\x00echo pwnedq\x01\x85q\x02Rq\x03."))
    variant("bad_pickle", None, False, error="os.system")

    d = os.path.join(OUT, "bad_offsets")
    write_common(d, vocab, tokenizer_lower=False)
    write_config(d, model)
    blob = open(os.path.join(OUT, "st_f32", "model.safetensors"), "rb").read()
    hl = struct.unpack("<Q", blob[:8])[0]
    hdr = json.loads(blob[8:8 + hl])
    last = max((k for k in hdr if k != "__metadata__"), key=lambda k: hdr[k]["data_offsets"][1])
    b, e = hdr[last]["data_offsets"]
    hdr[last]["data_offsets"] = [b + 64, e + 64]  # same size, but past the end of the data
    h = json.dumps(hdr, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(os.path.join(d, "model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + blob[8 + hl:])
    variant("bad_offsets", None, False, error="do not match its shape or the data size")

    # every good variant must load back in Transformers' own loader too where it can
    for name in ("st_f32", "bin_zip", "bin_legacy"):
        back = BertForSequenceClassification.from_pretrained(os.path.join(OUT, name)).eval()
        assert all(torch.equal(back.state_dict()[k], sd[k]) for k in sd), name

    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump({"generator": "tests/reference/gen_hf_models.py", "torch": torch.__version__,
                   "transformers": transformers.__version__, "seqs": seqs, "logits": ref,
                   "variants": variants}, f, indent=1)
        f.write("\n")
    total = 0
    for root, _, files in sorted(os.walk(OUT)):
        for fn in sorted(files):
            p = os.path.join(root, fn)
            total += os.path.getsize(p)
    print(f"{OUT}: {total} bytes", file=sys.stderr)


if __name__ == "__main__":
    main()
