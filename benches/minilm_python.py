"""Python onnxruntime side of benches/models.rs: embeds the same texts with the same model file
and tokenizer, mean-pools and normalises, and prints {"sentences_per_s", "checksum"} as JSON.

    python benches/minilm_python.py MODEL TOKENIZER TEXTS_JSON BATCH THREADS
"""
import json
import sys
import time

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer


def main():
    model, tokenizer_path, texts_path, batch, threads = sys.argv[1:6]
    batch, threads = int(batch), int(threads)
    texts = json.load(open(texts_path, encoding="utf-8"))
    tok = Tokenizer.from_file(tokenizer_path)
    tok.enable_truncation(256)
    tok.enable_padding()
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    checksum = 0.0
    started = time.perf_counter()
    for start in range(0, len(texts), batch):
        enc = tok.encode_batch(texts[start:start + batch])
        ids = np.array([e.ids for e in enc], dtype=np.int64)
        mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
        types = np.array([e.type_ids for e in enc], dtype=np.int64)
        hidden = session.run(None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": types})[0]
        pooled = (hidden * mask[:, :, None]).sum(1)
        pooled /= np.linalg.norm(pooled, axis=1, keepdims=True)
        checksum += float(pooled[:, 0].sum())
    elapsed = time.perf_counter() - started
    print(json.dumps({"sentences_per_s": len(texts) / elapsed, "checksum": checksum}))


if __name__ == "__main__":
    main()
