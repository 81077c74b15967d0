"""The peers of `adebert serve` for bench/serve/run.sh, on the same API
(POST /v1/classify {"inputs": ...} -> [{"label", "score", "p_adverse_event",
"threshold"}]):
  --backend hf    Hugging Face pipeline("text-classification") behind FastAPI/uvicorn
  --backend onnx  the same model exported to ONNX, run by ONNX Runtime (CPU), same app
Both on the CPU with --threads intra-op threads; the HF tokenizer (fast) truncates to
--max-seq-len as adebert does. Needs fastapi, uvicorn, transformers, torch, and for
onnx onnxruntime (pip, in the venv of launch/install-deps.sh).

  python bench/serve/peer_server.py --backend hf --model HF_DIR --port 8081
"""
import argparse
import math
import os
import tempfile


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--backend", choices=["hf", "onnx"], required=True)
    ap.add_argument("--model", required=True, help="HF folder (adebert export's output)")
    ap.add_argument("--port", type=int, default=8081)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-seq-len", type=int, default=128)
    ap.add_argument("--workers", type=int, default=1)
    a = ap.parse_args()

    import numpy as np
    import torch
    import uvicorn
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.set_num_threads(a.threads)
    tok = AutoTokenizer.from_pretrained(a.model)
    model = AutoModelForSequenceClassification.from_pretrained(a.model).eval()

    if a.backend == "hf":
        from transformers import pipeline
        pipe = pipeline("text-classification", model=model, tokenizer=tok, device=-1, top_k=None)

        def score(texts):
            out = pipe(texts, truncation=True, max_length=a.max_seq_len)
            return [next(d["score"] for d in o if d["label"] in ("LABEL_1", "Adverse_Event")) for o in out]
    else:
        import onnxruntime as ort
        path = os.path.join(tempfile.mkdtemp(), "model.onnx")
        dummy = tok(["an example"], return_tensors="pt")
        torch.onnx.export(model, (dummy["input_ids"], dummy["attention_mask"], dummy["token_type_ids"]), path,
                          input_names=["input_ids", "attention_mask", "token_type_ids"], output_names=["logits"],
                          dynamic_axes={k: {0: "b", 1: "t"} for k in ["input_ids", "attention_mask", "token_type_ids"]},
                          opset_version=17)
        so = ort.SessionOptions()
        so.intra_op_num_threads = a.threads
        sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])

        def score(texts):
            enc = tok(texts, truncation=True, max_length=a.max_seq_len, padding=True, return_tensors="np")
            logits = sess.run(["logits"], {k: enc[k].astype(np.int64) for k in
                                           ["input_ids", "attention_mask", "token_type_ids"]})[0]
            return [1.0 / (1.0 + math.exp(-(float(l[1]) - float(l[0])))) for l in logits]

    app = FastAPI()

    @app.get("/ping")
    def ping():
        return {"status": "ok"}

    @app.post("/v1/classify")
    async def classify(req: Request):
        body = await req.json()
        inputs = body["inputs"]
        texts = [inputs] if isinstance(inputs, str) else inputs
        thr = float((body.get("parameters") or {}).get("threshold", 0.5))
        res = []
        for p in score(texts):
            ae = p >= thr
            res.append({"label": "Adverse_Event" if ae else "Not_AE", "score": p if ae else 1 - p,
                        "p_adverse_event": p, "threshold": thr})
        return JSONResponse(res)

    uvicorn.run(app, host="127.0.0.1", port=a.port, workers=a.workers, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
